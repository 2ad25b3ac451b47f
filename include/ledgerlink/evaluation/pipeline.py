"""The pipeline's own path for a benchmark workspace: land payloads in ``raw.*`` with COPY, build
the scoring models with dbt, score and route with :func:`ledgerlink.matching.route_workspace`, and
read the decisions back. The workspace is inactive, so the DAG's fan-out never picks it up."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import psycopg

from ledgerlink.evaluation.report import Decision
from ledgerlink.matching import route_workspace
from ledgerlink.settings import Settings, load_settings
from ledgerlink.warehouse import ServerAddress, connect, resolve_server
from ledgerlink.warehouse.landing import SourceRecord, land_records
from ledgerlink.warehouse.migrations import migrate
from ledgerlink.workspaces import Workspace, save_workspace

RAW_TABLES = (
    "qonto_supplier_invoices",
    "qonto_attachments",
    "square_payments",
    "square_customers",
    "qbo_vendors",
    "qbo_customers",
    "qbo_invoices",
    "qbo_accounts",
)
#: The models the scorer reads, with everything upstream of them.
DBT_SELECTION = "+match_features"


def prepare_warehouse(settings: Settings | None = None) -> tuple[Settings, ServerAddress]:
    settings = settings or load_settings()
    address = resolve_server(settings)
    with connect(address) as conn:
        migrate(conn)
    return settings, address


def reset_workspace(conn: psycopg.Connection, workspace: Workspace) -> None:
    """Create the benchmark workspace afresh: its raw rows, decisions and outbox go, so the run
    sees exactly the data given. Only ever called on a dedicated benchmark workspace."""
    workspace_id = workspace.workspace_id
    with conn.transaction():
        save_workspace(conn, workspace)
        conn.execute(
            "delete from ops.delivery_attempts where outbox_id in"
            " (select outbox_id from ops.delivery_outbox where workspace_id = %s)",
            (workspace_id,),
        )
        conn.execute("delete from ops.delivery_outbox where workspace_id = %s", (workspace_id,))
        # a simulated reviewer's verdicts (ledgerlink.evaluation.reviewer) from an earlier run
        conn.execute("delete from ops.review_actions where workspace_id = %s", (workspace_id,))
        conn.execute("delete from ops.routing_decisions where workspace_id = %s", (workspace_id,))
        for table in RAW_TABLES:
            conn.execute(f"delete from raw.{table} where workspace_id = %s", (workspace_id,))  # noqa: S608


def land(
    conn: psycopg.Connection,
    workspace_id: str,
    run_id: str,
    records_by_table: Mapping[str, Sequence[SourceRecord]],
) -> dict[str, int]:
    with conn.transaction():
        return {
            table: land_records(conn, table, workspace_id, run_id, records)
            for table, records in records_by_table.items()
        }


def build_scoring_models(
    settings: Settings,
    address: ServerAddress,
    selection: str = DBT_SELECTION,
    dbt_command: Literal["build", "run"] = "build",
) -> None:
    """``dbt build`` of the scorer's input and everything upstream, as the DAG's dbt tasks do (or
    of another ``selection``; ``dbt_command="run"`` skips the dbt tests), in this process (dbt's
    programmatic runner): no second interpreter to start and import dbt."""
    from dbt.cli.main import dbtRunner

    from ledgerlink.cli.environment import airflow_environment

    work_dir = settings.state_dir / "evaluation"
    work_dir.mkdir(parents=True, exist_ok=True)
    environment = {**airflow_environment(settings, address), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    arguments = [
        dbt_command,
        # reset_workspace deletes raw rows, which incremental staging never looks back for
        "--full-refresh",
        "--select",
        selection,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--quiet",
    ]
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        result = dbtRunner().invoke(arguments)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if not result.success:
        # a failed node is in the run results; an error before any node ran is in the exception
        nodes = getattr(result.result, "results", None) or []
        failed = [
            f"{n.node.unique_id}: {n.message}" for n in nodes if str(n.status) not in ("success", "pass")
        ]
        raise RuntimeError(f"dbt {dbt_command} failed: {result.exception or ''} {'; '.join(failed)[-4000:]}")


def route_and_read(
    conn: psycopg.Connection, workspace_id: str, run_id: str, timings: dict[str, float] | None = None
) -> list[Decision]:
    route_workspace(conn, workspace_id, run_id, datetime.now(UTC), timings)
    conn.commit()
    rows = conn.execute(
        "select source_record_id, route, score::float8,"
        " coalesce(array(select c ->> 'candidate_id' from jsonb_array_elements(candidates) as c), '{}')"
        " from ops.routing_decisions where workspace_id = %s",
        (workspace_id,),
    ).fetchall()
    return [Decision(record_id, route, score, list(ids)) for record_id, route, score, ids in rows]


def blocking_recall(
    conn: psycopg.Connection, workspace_id: str, truth: Mapping[str, str]
) -> dict[str, float]:
    """The share of true pairs blocking put among the candidates, and candidates per record."""
    rows = conn.execute(
        "select source_record_id, candidate_id from marts.match_features"
        " where workspace_id = %s and candidate_id is not null",
        (workspace_id,),
    ).fetchall()
    pairs = set(rows)
    found = sum((record_id, candidate_id) in pairs for record_id, candidate_id in truth.items())
    return {
        "blocking_recall": round(found / max(len(truth), 1), 4),
        "candidates_per_record": round(len(pairs) / max(len(truth), 1), 1),
    }


def new_run_id(name: str) -> str:
    return f"evaluate-{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
