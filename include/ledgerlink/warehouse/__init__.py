"""The warehouse: the embedded or external PostgreSQL, its connections, schema and landing."""

from ledgerlink.warehouse.database import ServerAddress, connect, resolve_server

__all__ = ["ServerAddress", "connect", "resolve_server"]
