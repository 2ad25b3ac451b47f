"""Delivery: documents for auto-linked records, sent from the outbox to QuickBooks email-in."""

from ledgerlink.delivery.sender import SmtpEndpoint, deliver_pending

__all__ = ["SmtpEndpoint", "deliver_pending"]
