"""Connections to the warehouse and to Airflow's metadata database.

Both live on one PostgreSQL server: the embedded one by default, or the server named by
``LEDGERLINK_DATABASE_URL``. The warehouse database is the URL's database (``ledgerlink`` for the
embedded server); Airflow's metadata sits beside it in a database called ``airflow``.

That warehouse database is the configuration database, and also the ``default`` storage region
when no region is configured. Workspace-scoped code connects through
:func:`ledgerlink.warehouse.regions.connect_for_workspace` instead (see that module).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledgerlink.settings import AIRFLOW_DATABASE, WAREHOUSE_DATABASE, Settings, load_settings
from ledgerlink.warehouse.embedded import start_embedded_server


@dataclass(frozen=True)
class ServerAddress:
    """How to reach the PostgreSQL server; ``host`` may be a socket folder."""

    host: str
    port: int
    user: str
    password: str
    warehouse_database: str

    def conninfo(self, database: str | None = None) -> str:
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password or None,
            dbname=database or self.warehouse_database,
        )

    def sqlalchemy_url(self, database: str, driver: str) -> str:
        credentials = quote(self.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        if self.host.startswith("/"):
            return f"postgresql+{driver}://{credentials}@/{database}?host={quote(self.host)}&port={self.port}"
        return f"postgresql+{driver}://{credentials}@{self.host}:{self.port}/{database}"


def resolve_server(settings: Settings | None = None) -> ServerAddress:
    """The server to use, starting the embedded one when no external URL is configured, with
    the warehouse and Airflow databases created if missing."""
    settings = settings or load_settings()
    if settings.database_url is None:
        socket_dir = start_embedded_server(settings.postgres_dir)
        address = ServerAddress(
            host=str(socket_dir),
            port=5432,
            user="postgres",
            password="",
            warehouse_database=WAREHOUSE_DATABASE,
        )
    else:
        address = address_from_url(settings.database_url)
    create_missing_databases(address, {address.warehouse_database, AIRFLOW_DATABASE})
    return address


def address_from_url(url: str) -> ServerAddress:
    """The server and database a PostgreSQL URL (or key=value conninfo) names."""
    parts = conninfo_to_dict(url)
    return ServerAddress(
        host=str(parts.get("host") or "localhost"),
        port=int(parts.get("port") or 5432),
        user=str(parts.get("user") or "postgres"),
        password=str(parts.get("password") or ""),
        warehouse_database=str(parts.get("dbname") or WAREHOUSE_DATABASE),
    )


def create_missing_databases(address: ServerAddress, wanted: set[str]) -> None:
    with psycopg.connect(address.conninfo("postgres"), autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("select datname from pg_database")}
        for database in sorted(wanted - existing):
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))


def connect(address: ServerAddress | None = None, **kwargs: object) -> psycopg.Connection:
    """A psycopg connection to the warehouse database."""
    address = address or resolve_server()
    return psycopg.connect(address.conninfo(), **kwargs)  # type: ignore[arg-type]


def dbt_environment(address: ServerAddress) -> dict[str, str]:
    """Environment variables read by ``dbt_project/profiles.yml``. The password goes in a
    ``DBT_ENV_SECRET_`` variable, which dbt scrubs from its logs and artefacts."""
    return {
        "LEDGERLINK_PGHOST": address.host,
        "LEDGERLINK_PGPORT": str(address.port),
        "LEDGERLINK_PGUSER": address.user,
        "LEDGERLINK_PGDATABASE": address.warehouse_database,
        "DBT_ENV_SECRET_LEDGERLINK_PGPASSWORD": address.password,
    }
