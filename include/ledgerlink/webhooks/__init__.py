"""Webhook receivers: Square payment notifications, landed raw and processed later."""
