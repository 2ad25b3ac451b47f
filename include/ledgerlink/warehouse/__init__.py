"""The warehouse: the embedded or external PostgreSQL, its connections, schema and landing."""

from ledgerlink.warehouse.database import ServerAddress, connect, resolve_server
from ledgerlink.warehouse.regions import connect_for_workspace, connect_region

__all__ = ["ServerAddress", "connect", "connect_for_workspace", "connect_region", "resolve_server"]
