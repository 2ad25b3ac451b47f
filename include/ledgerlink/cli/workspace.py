"""``ledgerlink workspace``: add, list, enable and disable the companies ledgerlink reconciles.

Each run of ``ledgerlink_reconcile`` fans out over the enabled workspaces. Disabling keeps every
row of the workspace's data; it only stops new runs from picking it up. A workspace's storage
region (``--region``) is fixed when it is added: its data lives only in that region's database.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal

import click
import psycopg

from ledgerlink.workspaces import (
    DEFAULT_AUTO_LINK_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    InvalidWorkspace,
    Workspace,
    list_workspaces,
    load_workspace,
)


def _connect() -> psycopg.Connection:
    """The configuration database, migrated (a new install has no tables yet)."""
    from ledgerlink.settings import load_settings
    from ledgerlink.warehouse import connect, resolve_server
    from ledgerlink.warehouse.migrations import migrate

    conn = connect(resolve_server(load_settings()))
    migrate(conn)
    return conn


@click.group()
def workspace() -> None:
    """The companies ledgerlink reconciles, and their settings."""


@workspace.command("add")
@click.argument("workspace_id")
@click.option("--name", "display_name", required=True, help="The company's name, as people know it.")
@click.option("--email-in", "email_in_address", required=True, help="Its QuickBooks email-in address.")
@click.option("--owner-email", help="Who is told when a connection breaks.")
@click.option("--home-currency", default="EUR", show_default=True, help="ISO 4217 code of its books.")
@click.option("--auto-link-threshold", type=Decimal, default=DEFAULT_AUTO_LINK_THRESHOLD, show_default=True)
@click.option("--review-threshold", type=Decimal, default=DEFAULT_REVIEW_THRESHOLD, show_default=True)
@click.option("--quickbooks-realm-id", help="The QuickBooks company id.")
@click.option("--square-location-id", help="Only this Square location's payments.")
@click.option(
    "--max-auto-link-amount-minor",
    type=click.IntRange(min=0),
    help="Above this (minor units), always review.",
)
@click.option(
    "--never-auto-link-vendor",
    "never_auto_link_vendors",
    multiple=True,
    help="A vendor or customer (name or id) whose records always go to review; repeat for more.",
)
@click.option(
    "--region",
    "storage_region",
    help="The storage region holding its data (LEDGERLINK_REGION_<NAME>_URL); needed for a new"
    " workspace when several are configured.",
)
def add(workspace_id: str, storage_region: str | None, **settings: object) -> None:
    """Add a workspace, or change the settings of an existing one (all settings are replaced,
    and it is enabled)."""
    from ledgerlink.warehouse.regions import configured_regions, place_workspace

    with _connect() as conn:
        if storage_region is None:
            try:
                storage_region = load_workspace(conn, workspace_id).storage_region
            except LookupError:
                regions = list(configured_regions())
                if len(regions) > 1:
                    raise click.UsageError(
                        f"--region is required: configured regions: {', '.join(regions)}"
                    ) from None
                storage_region = regions[0]
        candidate = Workspace(
            workspace_id=workspace_id,
            storage_region=storage_region,
            **settings,  # type: ignore[arg-type]
        )
        try:
            place_workspace(conn, candidate)
        except InvalidWorkspace as error:
            raise click.UsageError(str(error)) from error
    click.echo(f"saved workspace {workspace_id} (storage region {storage_region})")


@workspace.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per workspace, one per line.")
def list_(as_json: bool) -> None:
    """Every workspace with its settings, enabled or not."""
    with _connect() as conn:
        workspaces = list_workspaces(conn)
    if as_json:
        for item in workspaces:
            click.echo(json.dumps(asdict(item), default=str))
        return
    if not workspaces:
        click.echo("no workspaces yet: add one with `ledgerlink workspace add`")
        return
    click.echo(
        f"{'workspace':<24} {'state':<9} {'region':<8} {'currency':<8} {'auto':>5} {'review':>6}  email-in"
    )
    for item in workspaces:
        state = "enabled" if item.is_active else "disabled"
        click.echo(
            f"{item.workspace_id:<24} {state:<9} {item.storage_region:<8} {item.home_currency:<8} "
            f"{item.auto_link_threshold:>5} {item.review_threshold:>6}  {item.email_in_address}"
        )


@workspace.command("disable")
@click.argument("workspace_id")
def disable(workspace_id: str) -> None:
    """Stop reconciling a workspace; its data stays."""
    _set_active(workspace_id, False)


@workspace.command("enable")
@click.argument("workspace_id")
def enable(workspace_id: str) -> None:
    """Reconcile a disabled workspace again."""
    _set_active(workspace_id, True)


def _set_active(workspace_id: str, active: bool) -> None:
    from ledgerlink.warehouse.regions import set_workspace_active_everywhere

    with _connect() as conn:
        try:
            set_workspace_active_everywhere(conn, workspace_id, active)
        except LookupError as error:
            raise click.UsageError(str(error)) from error
    click.echo(f"{'enabled' if active else 'disabled'} workspace {workspace_id}")


@workspace.group("member")
def member() -> None:
    """Who may see and act on a workspace in the Airflow pages (by Airflow username)."""


@member.command("add")
@click.argument("workspace_id")
@click.argument("username")
def member_add(workspace_id: str, username: str) -> None:
    """Let an Airflow user review and manage the workspace."""
    from ledgerlink.workspaces import add_member

    with _connect() as conn:
        try:
            added = add_member(conn, workspace_id, username)
        except (LookupError, ValueError) as error:
            raise click.UsageError(str(error)) from error
    click.echo(f"{username} {'is now' if added else 'was already'} a member of {workspace_id}")


@member.command("remove")
@click.argument("workspace_id")
@click.argument("username")
def member_remove(workspace_id: str, username: str) -> None:
    """Take the workspace away from an Airflow user."""
    from ledgerlink.workspaces import remove_member

    with _connect() as conn:
        removed = remove_member(conn, workspace_id, username)
    if not removed:
        raise click.UsageError(f"{username} is not a member of {workspace_id}")
    click.echo(f"{username} is no longer a member of {workspace_id}")


@member.command("list")
@click.argument("workspace_id")
def member_list(workspace_id: str) -> None:
    """The workspace's members."""
    from ledgerlink.workspaces import list_members

    with _connect() as conn:
        members = list_members(conn, workspace_id)
    if not members:
        click.echo(f"no members: add one with `ledgerlink workspace member add {workspace_id} USERNAME`")
    for username, added_at in members:
        click.echo(f"{username:<32} added {added_at} UTC")
