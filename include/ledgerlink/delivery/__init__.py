"""Delivery: documents for auto-linked records, sent from the outbox to QuickBooks email-in."""

from ledgerlink.delivery.sender import deliver_pending

__all__ = ["deliver_pending"]
