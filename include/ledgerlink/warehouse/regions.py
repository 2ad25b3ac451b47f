"""Storage regions: where a workspace's customer data lives.

Each workspace has one storage region, fixed when it is created. A region is a PostgreSQL database
(on its own server, as a rule) plus a blob-store folder. Everything a workspace owns lives only in
its region: raw records, attachments and documents (blobs), rejections, sync markers, tokens,
routing decisions, review actions, the outbox and its attempts, incidents, and the dbt schemas
built from them. dbt builds every region on its own (see ``orchestration/dbt.py``).

The configuration database (the one :func:`ledgerlink.warehouse.connect` opens: the embedded
server's ``ledgerlink`` database, or ``LEDGERLINK_DATABASE_URL``) holds the shared configuration
only: the workspace registry (``ops.workspaces``, with ``storage_region``), the page members
(``ops.workspace_members``), and, beside it, Airflow's metadata.

Configuration is environment only, read without touching a database (the DAG reads the region
list at parse time):

- ``LEDGERLINK_REGION_<NAME>_URL``: a region named ``<name>`` (lower-cased: ``LEDGERLINK_REGION_EU_URL``
  makes ``eu``) in the database that PostgreSQL URL names. The database is created if missing.
- ``LEDGERLINK_REGION_<NAME>_BLOB_DIR``: its blob folder (default ``<state>/regions/<name>/blobs``).

With no region configured there is exactly one, ``default``: the configuration database itself and
``LEDGERLINK_BLOB_DIR``. That is the embedded zero-configuration setup, where shared configuration
and customer data share one database. Once regions are configured, ``default`` no longer exists,
and a workspace left in it is refused with the configured names.

A region database also holds a copy of the ``ops.workspaces`` row of each of its own workspaces,
written by :func:`place_workspace` with the registry row: the region's tables reference it, and
the code that reads a workspace's thresholds and addresses beside its data reads it there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from ledgerlink.blobstore import BlobStore
from ledgerlink.settings import Settings, load_settings
from ledgerlink.warehouse.database import ServerAddress, address_from_url, connect, create_missing_databases
from ledgerlink.warehouse.database import resolve_server as resolve_configuration_server

if TYPE_CHECKING:
    from ledgerlink.workspaces import Workspace

DEFAULT_REGION = "default"
_REGION_URL_VARIABLE = re.compile(r"^LEDGERLINK_REGION_([A-Z][A-Z0-9_]*)_URL$")
_DATABASES_ENSURED: set[str] = set()


@dataclass(frozen=True)
class Region:
    """One storage region; ``url`` is ``None`` for the default region (the configuration database)."""

    name: str
    url: str | None
    blob_dir: Path

    @property
    def shares_configuration_database(self) -> bool:
        return self.url is None

    @property
    def variable_suffix(self) -> str:
        """How this region's dbt profile variables are named (``LEDGERLINK_PGHOST_EU``); empty for
        the default region, whose variables are the plain ``LEDGERLINK_PG*``."""
        return "" if self.url is None else f"_{self.name.upper()}"


class UnknownRegion(LookupError):
    """A region name that is not configured; the message lists the configured ones."""


def configured_regions(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Region]:
    """The regions the environment configures, by name, in name order. Reads no database."""
    settings = settings or load_settings()
    environ = os.environ if environ is None else environ
    regions = {}
    for variable, url in environ.items():
        found = _REGION_URL_VARIABLE.match(variable)
        if found is None or not url:
            continue
        name = found.group(1).lower()
        blob_dir = environ.get(f"LEDGERLINK_REGION_{found.group(1)}_BLOB_DIR")
        regions[name] = Region(
            name, url, Path(blob_dir) if blob_dir else settings.state_dir / "regions" / name / "blobs"
        )
    if not regions:
        return {DEFAULT_REGION: Region(DEFAULT_REGION, None, settings.blob_dir)}
    return dict(sorted(regions.items()))


def region_named(name: str, settings: Settings | None = None) -> Region:
    """The configured region ``name``; :class:`UnknownRegion` names the configured ones otherwise."""
    regions = configured_regions(settings)
    if name not in regions:
        raise UnknownRegion(f"unknown storage region {name!r}; configured regions: {', '.join(regions)}")
    return regions[name]


def resolve_region(region: Region | str, settings: Settings | None = None) -> ServerAddress:
    """The region's server address, with its database created if missing (the default region:
    the configuration server, started when embedded)."""
    settings = settings or load_settings()
    if isinstance(region, str):
        region = region_named(region, settings)
    if region.url is None:
        return resolve_configuration_server(settings)
    address = address_from_url(region.url)
    if region.url not in _DATABASES_ENSURED:  # once per process: pages connect on every request
        create_missing_databases(address, {address.warehouse_database})
        _DATABASES_ENSURED.add(region.url)
    return address


def connect_region(region: Region | str, **kwargs: object) -> psycopg.Connection:
    """A connection to the region's database."""
    return connect(resolve_region(region), **kwargs)


def workspace_region(config_conn: psycopg.Connection, workspace_id: str) -> Region:
    """The region of a registered workspace (:class:`LookupError` for an unknown workspace,
    :class:`UnknownRegion` when its region is no longer configured)."""
    row = config_conn.execute(
        "select storage_region from ops.workspaces where workspace_id = %s", (workspace_id,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no workspace {workspace_id!r}")
    try:
        return region_named(str(row[0]))
    except UnknownRegion as error:
        raise UnknownRegion(f"workspace {workspace_id!r}: {error}") from None


def workspace_regions(config_conn: psycopg.Connection, workspace_ids: list[str]) -> dict[str, str]:
    """The region name of each of ``workspace_ids`` that is registered, in the order given."""
    found: dict[str, str] = dict(
        config_conn.execute(
            "select workspace_id, storage_region from ops.workspaces where workspace_id = any(%s)",
            (workspace_ids,),
        ).fetchall()
    )
    return {workspace_id: found[workspace_id] for workspace_id in workspace_ids if workspace_id in found}


def connect_for_workspace(workspace_id: str, **kwargs: object) -> psycopg.Connection:
    """A connection to the database of the workspace's region: the one place workspace-scoped
    code gets its warehouse connection from."""
    with connect() as config_conn:
        region = workspace_region(config_conn, workspace_id)
    return connect_region(region, **kwargs)


def blob_store_for_workspace(workspace_id: str) -> BlobStore:
    """The blob store of the workspace's region."""
    with connect() as config_conn:
        return BlobStore(workspace_region(config_conn, workspace_id).blob_dir)


@contextmanager
def region_connection(config_conn: psycopg.Connection, region: Region) -> Iterator[psycopg.Connection]:
    """The connection to use for ``region`` next to ``config_conn``: the same connection when the
    region is the configuration database (so the caller's uncommitted work stays one
    transaction), otherwise a new one, committed when the block ends without error."""
    if region.shares_configuration_database:
        yield config_conn
        return
    with connect_region(region) as conn:
        yield conn


def place_workspace(config_conn: psycopg.Connection, workspace: Workspace) -> None:
    """Save a workspace in the registry and its copy in its region's database (migrated first).
    Refuses an unknown region or a move between regions (see ``workspaces.save_workspace``)."""
    from ledgerlink.warehouse.migrations import migrate
    from ledgerlink.workspaces import save_workspace

    save_workspace(config_conn, workspace)
    region = region_named(workspace.storage_region)
    if region.shares_configuration_database:
        return
    with region_connection(config_conn, region) as region_conn:
        migrate(region_conn)
        save_workspace(region_conn, workspace)


def set_workspace_active_everywhere(config_conn: psycopg.Connection, workspace_id: str, active: bool) -> None:
    """Enable or disable a workspace in the registry and in its region's copy."""
    from ledgerlink.workspaces import set_workspace_active

    set_workspace_active(config_conn, workspace_id, active)
    region = workspace_region(config_conn, workspace_id)
    if not region.shares_configuration_database:
        with region_connection(config_conn, region) as region_conn:
            set_workspace_active(region_conn, workspace_id, active)


def migrate_every_region(settings: Settings | None = None) -> dict[str, list[str]]:
    """Apply pending migrations to every configured region's database; the names applied, by region."""
    from ledgerlink.warehouse.migrations import migrate

    applied = {}
    for region in configured_regions(settings).values():
        if region.shares_configuration_database:
            continue  # migrated with the configuration database
        with connect_region(region) as conn:
            applied[region.name] = migrate(conn)
    return applied


def region_dbt_environment(settings: Settings | None = None) -> dict[str, str]:
    """The dbt profile variables of every configured region (``LEDGERLINK_PGHOST_EU`` ...); parsed
    from the URLs, no database touched. The default region's are ``dbt_environment``'s own."""
    from ledgerlink.warehouse.database import dbt_environment

    variables = {}
    for region in configured_regions(settings).values():
        if region.url is None:
            continue
        for name, value in dbt_environment(address_from_url(region.url)).items():
            variables[f"{name}{region.variable_suffix}"] = value
    return variables
