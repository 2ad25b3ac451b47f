"""QuickBooks Online Accounting API, read only: ledgerlink never writes to QuickBooks."""

from ledgerlink.sources.quickbooks.client import QuickBooksClient

__all__ = ["QuickBooksClient"]
