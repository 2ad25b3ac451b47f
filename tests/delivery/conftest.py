"""Fixtures for the delivery tests: see :mod:`delivery_rig`."""

from delivery_rig import conn, rig

__all__ = ["conn", "rig"]
