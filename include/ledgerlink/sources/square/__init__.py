"""Square: payments (charges) and customers."""

from ledgerlink.sources.square.client import SquareClient

__all__ = ["SquareClient"]
