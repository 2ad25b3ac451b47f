"""Qonto Business API: supplier invoices and their attachments."""

from ledgerlink.sources.qonto.client import QontoClient

__all__ = ["QontoClient"]
