"""Delivery: documents for auto-linked records, sent from the outbox to QuickBooks email-in."""

from ledgerlink.delivery.sender import deliver_pending
from ledgerlink.delivery.shards import DeliveryShard, plan_delivery_shards

__all__ = ["DeliveryShard", "deliver_pending", "plan_delivery_shards"]
