"""Workspaces: one company each, with its thresholds, email-in address and source accounts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

from ledgerlink.warehouse.regions import DEFAULT_REGION, configured_regions

DEFAULT_AUTO_LINK_THRESHOLD = Decimal("0.85")
DEFAULT_REVIEW_THRESHOLD = Decimal("0.55")
#: QuickBooks email-in addresses live on these domains (``apis.md`` §3.1; the second is newer).
EMAIL_IN_DOMAINS = ("qbodocs.com", "assist.intuit.com")
_WORKSPACE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    #: where its customer data lives (``ledgerlink.warehouse.regions``); fixed once created
    storage_region: str = DEFAULT_REGION
    #: Auto-link policy: above this amount (minor units) or for these vendors or customers (names
    #: or ids), a record goes to review whatever its score.
    max_auto_link_amount_minor: int | None = None
    never_auto_link_vendors: Sequence[str] = field(default_factory=tuple)

    def problems(self) -> list[str]:
        """What is wrong with these settings, in words a person can act on; empty when valid."""
        found = []
        if not _WORKSPACE_ID.match(self.workspace_id):
            found.append("workspace id: use 1-63 lower-case letters, digits, '-' or '_'")
        local, _, domain = self.email_in_address.lower().partition("@")
        if not local or domain not in EMAIL_IN_DOMAINS:
            found.append(f"email-in address: must end in @{' or @'.join(EMAIL_IN_DOMAINS)}")
        if self.owner_email is not None and not _EMAIL.match(self.owner_email):
            found.append("owner email: not an email address")
        if not _CURRENCY.match(self.home_currency):
            found.append("home currency: use a three-letter ISO 4217 code such as EUR")
        for name in ("auto_link_threshold", "review_threshold"):
            if not Decimal(0) <= getattr(self, name) <= Decimal(1):
                found.append(f"{name.replace('_', ' ')}: must be between 0 and 1")
        if self.review_threshold > self.auto_link_threshold:
            found.append("review threshold: must not exceed the auto-link threshold")
        if self.storage_region not in (regions := configured_regions()):
            found.append(
                f"storage region: unknown {self.storage_region!r}; configured regions: {', '.join(regions)}"
            )
        if self.max_auto_link_amount_minor is not None and self.max_auto_link_amount_minor < 0:
            found.append("maximum auto-link amount: must not be negative")
        if any(not name.strip() for name in self.never_auto_link_vendors):
            found.append("never-auto-link vendors: a name must not be empty")
        return found


class InvalidWorkspace(ValueError):
    """Settings a workspace cannot run with; the message lists every problem."""


_COLUMNS = tuple(Workspace.__dataclass_fields__)


def save_workspace(conn: psycopg.Connection, workspace: Workspace) -> None:
    """Create the workspace, or update its settings; refuse invalid settings, and a change of
    storage region (its data would stay behind in the old region)."""
    if problems := workspace.problems():
        raise InvalidWorkspace(f"workspace {workspace.workspace_id!r}: " + "; ".join(problems))
    values = asdict(workspace)
    values["never_auto_link_vendors"] = list(workspace.never_auto_link_vendors)
    columns = ", ".join(_COLUMNS)
    placeholders = ", ".join(f"%({name})s" for name in _COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS if name != "workspace_id")
    saved = conn.execute(
        f"insert into ops.workspaces ({columns}) values ({placeholders})"  # noqa: S608 - fixed names
        f" on conflict (workspace_id) do update set {updates}"
        " where ops.workspaces.storage_region = excluded.storage_region",
        values,
    )
    if saved.rowcount == 0:
        current = load_workspace(conn, workspace.workspace_id).storage_region
        raise InvalidWorkspace(
            f"workspace {workspace.workspace_id!r}: storage region: it lives in {current!r}; moving a"
            f" workspace to another region ({workspace.storage_region!r}) is not supported"
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


def list_workspaces(conn: psycopg.Connection) -> list[Workspace]:
    with conn.cursor(row_factory=class_row(Workspace)) as cursor:
        return cursor.execute(
            f"select {', '.join(_COLUMNS)} from ops.workspaces order by workspace_id"  # noqa: S608
        ).fetchall()


def set_workspace_active(conn: psycopg.Connection, workspace_id: str, active: bool) -> None:
    """Enable or disable a workspace. A disabled one keeps all its data; runs skip it."""
    cursor = conn.execute(
        "update ops.workspaces set is_active = %s where workspace_id = %s", (active, workspace_id)
    )
    if cursor.rowcount == 0:
        raise LookupError(f"no workspace {workspace_id!r}")


def add_member(conn: psycopg.Connection, workspace_id: str, username: str) -> bool:
    """Let the Airflow user ``username`` see and act on the workspace in the pages; ``False`` when
    they already may. Refuses an unknown workspace or a blank username."""
    if not username.strip() or username != username.strip() or len(username) > 256:
        raise ValueError("username: give the Airflow user's name, without spaces around it")
    if not conn.execute("select 1 from ops.workspaces where workspace_id = %s", (workspace_id,)).fetchone():
        raise LookupError(f"no workspace {workspace_id!r}")
    cursor = conn.execute(
        "insert into ops.workspace_members (workspace_id, username) values (%s, %s) on conflict do nothing",
        (workspace_id, username),
    )
    return cursor.rowcount == 1


def remove_member(conn: psycopg.Connection, workspace_id: str, username: str) -> bool:
    """Take the workspace away from ``username``; ``False`` when they were not a member."""
    cursor = conn.execute(
        "delete from ops.workspace_members where workspace_id = %s and username = %s",
        (workspace_id, username),
    )
    return cursor.rowcount == 1


def list_members(conn: psycopg.Connection, workspace_id: str) -> list[tuple[str, str]]:
    """The workspace's members and when each was added (ISO 8601, UTC), by name."""
    rows = conn.execute(
        "select username, to_char(added_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') from ops.workspace_members"
        " where workspace_id = %s order by username",
        (workspace_id,),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]
