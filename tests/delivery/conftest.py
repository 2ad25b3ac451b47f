"""Fixtures for the delivery tests: see :mod:`delivery_rig`."""

from delivery_rig import conn, quickbooks, quickbooks_url, rig

__all__ = ["conn", "quickbooks", "quickbooks_url", "rig"]
