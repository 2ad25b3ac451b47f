"""Workspaces: one company each, with its thresholds, email-in address and source accounts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

DEFAULT_AUTO_LINK_THRESHOLD = Decimal("0.85")
DEFAULT_REVIEW_THRESHOLD = Decimal("0.55")


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    display_name: str
    email_in_address: str
    owner_email: str | None = None
    home_currency: str = "EUR"
    auto_link_threshold: Decimal = DEFAULT_AUTO_LINK_THRESHOLD
    review_threshold: Decimal = DEFAULT_REVIEW_THRESHOLD
    quickbooks_realm_id: str | None = None
    square_location_id: str | None = None
    is_active: bool = True


_COLUMNS = tuple(Workspace.__dataclass_fields__)


def save_workspace(conn: psycopg.Connection, workspace: Workspace) -> None:
    """Create the workspace, or update its settings."""
    values = asdict(workspace)
    columns = ", ".join(_COLUMNS)
    placeholders = ", ".join(f"%({name})s" for name in _COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS if name != "workspace_id")
    conn.execute(
        f"insert into ops.workspaces ({columns}) values ({placeholders})"  # noqa: S608 - fixed names
        f" on conflict (workspace_id) do update set {updates}",
        values,
    )


def load_workspace(conn: psycopg.Connection, workspace_id: str) -> Workspace:
    with conn.cursor(row_factory=class_row(Workspace)) as cursor:
        row = cursor.execute(
            f"select {', '.join(_COLUMNS)} from ops.workspaces where workspace_id = %s",  # noqa: S608
            (workspace_id,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no workspace {workspace_id!r}")
    return row


def active_workspace_ids(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("select workspace_id from ops.workspaces where is_active order by workspace_id")
    return [row[0] for row in rows]
