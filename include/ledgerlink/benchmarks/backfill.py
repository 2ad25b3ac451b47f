"""The big-history benchmark: a workspace's first sync of a long Square history through the whole
pipeline, then a 15-minute window of new records on top of it, through the DAG itself
(``airflow dags test``: extraction, dbt, scoring, the outbox and the SMTP hand-off).

Each stage's wall time comes from Airflow's own task records. Peak memory is the kernel's
high-water mark of every process involved, the database server's included. The figures are
printed, never asserted: run ``ledgerlink benchmark backfill --history 1000000`` for the full
scale; the tests run it small.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from ledgerlink.benchmarks.memory import parent_pid, watch_peak_memory
from ledgerlink.cli.run import register_sandbox_workspace, run_dag_once, sandbox_connections
from ledgerlink.cli.setup import prepare
from ledgerlink.settings import AIRFLOW_DATABASE, STATE_DIR_VARIABLE, load_settings
from ledgerlink.warehouse import ServerAddress

#: After the generator's data (it ends on 2026-10-31), so every generated record is history.
FIRST_SYNC_AT = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
STAGES = {
    "extract": "extract_",
    "dbt_match_features": "dbt_match_features.",
    "score_and_route": "reconcile_workspace.score_and_route",
    "deliver_documents": "reconcile_workspace.deliver_documents",
    "dbt_reporting_marts": "dbt_reporting_marts.",
}


@dataclass
class RunFigures:
    """One DAG run: its tasks' span (no scheduler in ``dags test``), each stage's span, and the
    whole call including Airflow's start-up."""

    seconds: float
    call_seconds: float
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class BackfillFigures:
    history: int
    window: int
    backfill: RunFigures
    window_run: RunFigures
    peak_rss_bytes: int
    largest_processes: list[dict[str, object]]

    def as_json(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "window": self.window,
            "backfill_seconds": self.backfill.seconds,
            "backfill_call_seconds": self.backfill.call_seconds,
            "backfill_stages": self.backfill.stages,
            "window_seconds": self.window_run.seconds,
            "window_stages": self.window_run.stages,
            "peak_rss_bytes": self.peak_rss_bytes,
            "largest_processes": self.largest_processes,
        }


def run_backfill_benchmark(history: int, window: int, seed: int = 3) -> BackfillFigures:
    """Run the benchmark in a state folder of its own (its own embedded warehouse), so nothing of
    the developer's data is touched; the folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ledgerlink-benchmark-") as state:
        previous = os.environ.get(STATE_DIR_VARIABLE)
        os.environ[STATE_DIR_VARIABLE] = state
        try:
            return _run_in_state_dir(Path(state), history, window, seed)
        finally:
            from ledgerlink.warehouse.embedded import stop_embedded_server

            stop_embedded_server(Path(state) / "postgres")
            if previous is None:
                os.environ.pop(STATE_DIR_VARIABLE, None)
            else:
                os.environ[STATE_DIR_VARIABLE] = previous


def _run_in_state_dir(state: Path, history: int, window: int, seed: int) -> BackfillFigures:
    from ledgerlink.sandbox.generator import generate_fixtures

    settings, address = prepare(load_settings())
    fixtures = generate_fixtures(
        state / "fixtures",
        seed=seed,
        square_payments=history,
        customers=max(60, history // 40),
        qonto_invoices=max(10, history // 20),
        open_invoices_without_charge=max(10, history // 20),
        paid_invoices=max(10, history // 20),
    )
    with watch_peak_memory(extra_roots=_database_server_pid(address)) as memory:
        backfill = _run_against_sandbox(settings, address, fixtures, FIRST_SYNC_AT)
        _append_new_payments(fixtures / "square" / "payments.json", window, FIRST_SYNC_AT + WINDOW / 3)
        window_run = _run_against_sandbox(settings, address, fixtures, FIRST_SYNC_AT + WINDOW)
    return BackfillFigures(history, window, backfill, window_run, memory.peak_rss_bytes, memory.largest())


def _run_against_sandbox(
    settings: Any, address: ServerAddress, fixtures: Path, logical_date: datetime
) -> RunFigures:
    from ledgerlink.sandbox.services import SandboxPorts, run_sandbox
    from ledgerlink.warehouse import connect

    manifest = json.loads((fixtures / "manifest.json").read_text())
    with run_sandbox(fixtures, settings.mailbox_dir, ports=SandboxPorts.ephemeral()) as endpoints:
        sandbox = endpoints.as_json()
        with connect(address) as conn:
            register_sandbox_workspace(conn, sandbox, manifest)
        os.environ.update(sandbox_connections(sandbox))
        started = time.perf_counter()
        run_id = run_dag_once(settings, address, logical_date)
        call_seconds = time.perf_counter() - started
    return _run_figures(address, run_id, call_seconds)


def _run_figures(address: ServerAddress, run_id: str, call_seconds: float) -> RunFigures:
    with psycopg.connect(address.conninfo(AIRFLOW_DATABASE)) as airflow_db:
        tasks = airflow_db.execute(
            "select task_id, start_date, end_date from task_instance"
            " where run_id = %s and start_date is not null and end_date is not null",
            (run_id,),
        ).fetchall()

    def span(rows: list[tuple[str, datetime, datetime]]) -> float:
        return round((max(end for _, _, end in rows) - min(start for _, start, _ in rows)).total_seconds(), 2)

    stages = {
        stage: span(rows)
        for stage, prefix in STAGES.items()
        if (rows := [row for row in tasks if row[0].startswith(prefix)])
    }
    return RunFigures(seconds=span(tasks), call_seconds=round(call_seconds, 2), stages=stages)


def _append_new_payments(payments_file: Path, count: int, at: datetime) -> None:
    """``count`` new charges, copies of existing ones with new ids, created and updated at ``at``."""
    body = json.loads(payments_file.read_text())
    existing = body["payments"]
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for index in range(count):
        payment = json.loads(json.dumps(existing[index % len(existing)]))
        payment["id"] = f"WINDOW{index:08d}{payment['id'][14:]}"
        payment["created_at"] = payment["updated_at"] = stamp
        existing.append(payment)
    payments_file.write_text(json.dumps(body))


def _database_server_pid(address: ServerAddress) -> list[int]:
    """The PostgreSQL server's main process, when it runs on this machine (the embedded one does)."""
    with psycopg.connect(address.conninfo()) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        try:
            return [parent_pid(backend)]
        except OSError:
            return []  # a server elsewhere: its memory is not this machine's to measure
