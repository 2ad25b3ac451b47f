"""``ledgerlink run``: the main job on the embedded defaults. It prepares the machine, starts the
sandbox APIs and email-in, registers the sandbox workspace, runs ``ledgerlink_reconcile`` once
through Airflow (``airflow dags test``), and summarises what the run did."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from ledgerlink.cli.environment import connection_variable
from ledgerlink.cli.setup import prepare, run_logged, venv_executable
from ledgerlink.credentials import store_token
from ledgerlink.orchestration.connection_ids import (
    EMAIL_IN_CONN_ID,
    NOTIFICATIONS_CONN_ID,
    QONTO_CONN_ID,
    QUICKBOOKS_CONN_ID,
    SQUARE_CONN_ID,
)
from ledgerlink.settings import AIRFLOW_DATABASE, Settings
from ledgerlink.sources.qonto.client import RATE_LIMITS_VARIABLE
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.warehouse.regions import configured_regions, place_workspace, region_connection, region_named
from ledgerlink.workspaces import Workspace

DAG_ID = "ledgerlink_reconcile"

RAW_TABLES_BY_SOURCE = {
    "qonto": ("qonto_supplier_invoices", "qonto_attachments"),
    "square": ("square_payments", "square_customers", "square_refunds"),
    "quickbooks": ("qbo_vendors", "qbo_customers", "qbo_invoices", "qbo_accounts"),
}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    landed: dict[str, int]
    landed_by_table: dict[str, int]
    decisions: dict[str, int]
    emails_sent: int
    mailbox: str

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "landed": self.landed,
            "landed_by_table": self.landed_by_table,
            "decisions": self.decisions,
            "emails_sent": self.emails_sent,
            "mailbox": self.mailbox,
        }

    def as_text(self) -> str:
        lines = [f"ledgerlink run {self.run_id}", "", "Records landed by this run:"]
        lines += [f"  {source:<11} {count:>6}" for source, count in self.landed.items()]
        lines += ["", "Routing decisions in the warehouse:"]
        lines += [
            f"  {route:<11} {self.decisions.get(route, 0):>6}" for route in ("auto_link", "review", "refused")
        ]
        lines += ["", f"Emails delivered by this run: {self.emails_sent}", f"Mailbox: {self.mailbox}"]
        return "\n".join(lines)


def register_sandbox_workspace(
    conn: psycopg.Connection,
    sandbox: dict[str, Any],
    manifest: dict[str, Any],
    storage_region: str | None = None,
) -> str:
    """Create (or refresh) the sandbox's workspace, in ``storage_region`` (default: the first
    configured region), with its encrypted tokens in that region. ``conn`` is the configuration
    database."""
    workspace_id = str(manifest["workspace_id"])
    region = region_named(storage_region or next(iter(configured_regions())))
    with conn.transaction():
        place_workspace(
            conn,
            Workspace(
                workspace_id=workspace_id,
                display_name=str(manifest.get("company_name") or workspace_id),
                email_in_address=str(sandbox["email_in"]["address"]),
                owner_email=manifest.get("owner_email"),
                home_currency=str(manifest.get("home_currency") or "EUR"),
                quickbooks_realm_id=str(sandbox["quickbooks"]["realm_id"]),
                square_location_id=sandbox["square"].get("location_id"),
                storage_region=region.name,
            ),
        )
        with region_connection(conn, region) as region_conn:
            for source in ("qonto", "square", "quickbooks"):
                store_token(region_conn, workspace_id, source, str(sandbox[source]["access_token"]))
    return workspace_id


def sandbox_connections(sandbox: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing ledgerlink's connections at the sandbox, and the Qonto
    client paced to the limits the sandbox enforces (none unless it was started with some)."""
    email_in = sandbox["email_in"]
    return dict(
        [
            (RATE_LIMITS_VARIABLE, str(sandbox["qonto"].get("rate_limits", "off"))),
            connection_variable(QONTO_CONN_ID, {"conn_type": "http", "host": sandbox["qonto"]["base_url"]}),
            connection_variable(SQUARE_CONN_ID, {"conn_type": "http", "host": sandbox["square"]["base_url"]}),
            connection_variable(
                QUICKBOOKS_CONN_ID, {"conn_type": "http", "host": sandbox["quickbooks"]["base_url"]}
            ),
            connection_variable(
                NOTIFICATIONS_CONN_ID,
                {
                    "conn_type": "smtp",
                    "host": sandbox["owner_inbox"]["smtp_host"],
                    "port": sandbox["owner_inbox"]["smtp_port"],
                    "extra": {"from_address": email_in["registered_sender"]},
                },
            ),
            connection_variable(
                EMAIL_IN_CONN_ID,
                {
                    "conn_type": "smtp",
                    "host": email_in["smtp_host"],
                    "port": email_in["smtp_port"],
                    "extra": {"from_address": email_in["registered_sender"]},
                },
            ),
        ]
    )


def run_dag_once(settings: Settings, address: ServerAddress, logical_date: datetime) -> str:
    """Run the DAG once through Airflow and return its run id."""
    log_file = settings.state_dir / "logs" / f"run-{logical_date:%Y%m%dT%H%M%S}.log"
    with log_file.open("a") as log:
        run_logged([venv_executable("airflow"), "dags", "test", DAG_ID, logical_date.isoformat()], log)
    with psycopg.connect(address.conninfo(AIRFLOW_DATABASE)) as airflow_db:
        row = airflow_db.execute(
            "select run_id, state from dag_run where dag_id = %s and logical_date = %s",
            (DAG_ID, logical_date),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"Airflow recorded no run of {DAG_ID} at {logical_date}; see {log_file}")
    if row[1] != "success":
        raise RuntimeError(f"{DAG_ID} run {row[0]} ended {row[1]}; see {log_file}")
    return str(row[0])


def summarise(conn: psycopg.Connection, run_id: str, mailbox: Path) -> RunSummary:
    landed_by_table = {}
    for tables in RAW_TABLES_BY_SOURCE.values():
        for table in tables:
            row = conn.execute(
                f"select count(*) from raw.{table} where landed_by_run = %s",  # noqa: S608 - fixed names
                (run_id,),
            ).fetchone()
            landed_by_table[table] = int(row[0]) if row else 0
    landed = {
        source: sum(landed_by_table[table] for table in tables)
        for source, tables in RAW_TABLES_BY_SOURCE.items()
    }
    decisions = Counter({"auto_link": 0, "review": 0, "refused": 0})
    for route, count in conn.execute("select route, count(*) from ops.routing_decisions group by route"):
        decisions[route] = int(count)
    sent = conn.execute(
        "select count(*) from ops.delivery_attempts where outcome = 'sent' and attempted_by_run = %s",
        (run_id,),
    ).fetchone()
    return RunSummary(
        run_id, landed, landed_by_table, dict(decisions), int(sent[0]) if sent else 0, str(mailbox)
    )


def run_pipeline(settings: Settings, seed: int, logical_date: datetime | None = None) -> RunSummary:
    """The main job: everything above, in order."""
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.sandbox.services import SandboxPorts, run_sandbox

    settings, address = prepare(settings)
    fixtures_dir = settings.fixtures_dir / f"seed-{seed}"
    if not (fixtures_dir / "manifest.json").exists():
        generate_fixtures(fixtures_dir, seed=seed)
    manifest = json.loads((fixtures_dir / "manifest.json").read_text())
    # free ports: the run starts and stops its own sandbox, so nothing else needs to find it
    with run_sandbox(fixtures_dir, settings.mailbox_dir, ports=SandboxPorts.ephemeral()) as endpoints:
        sandbox = endpoints.as_json()
        with connect(address) as conn:
            register_sandbox_workspace(conn, sandbox, manifest)
        os.environ.update(sandbox_connections(sandbox))
        logical_date = logical_date or datetime.now(UTC).replace(microsecond=0)
        run_id = run_dag_once(settings, address, logical_date)
    with connect(address) as conn:
        return summarise(conn, run_id, settings.mailbox_dir)
