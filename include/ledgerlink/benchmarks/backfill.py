"""The big-history benchmark: a workspace's first sync of a long Square history through the whole
pipeline, then a 15-minute window of new records on top of it, through the DAG itself
(``airflow dags test``: extraction, dbt, scoring, the outbox and the SMTP hand-off).

Each stage's wall time comes from Airflow's own task records. Peak memory is the kernel's
high-water mark of every process involved, the database server's included. The figures are
printed, never asserted: run ``ledgerlink benchmark backfill --history 1000000`` for the full
scale; the tests run it small.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
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
    "score_and_route": "score_and_route",
    "deliver_documents": "deliver_documents",
    "dbt_reporting_marts": "dbt_reporting_marts.",
}


@dataclass
class RunFigures:
    """One DAG run: its tasks' span (no scheduler in ``dags test``), each stage's span, each task's
    own seconds (a mapped task's instances summed), and the whole call including Airflow's
    start-up. ``dags test`` runs the tasks one at a time in one process, so the first task's
    seconds include Airflow's in-process start and the first dbt task's include importing dbt."""

    seconds: float
    call_seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=dict)


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
            "window_task_seconds": self.window_run.tasks,
            "peak_rss_bytes": self.peak_rss_bytes,
            "largest_processes": self.largest_processes,
        }


#: Reports a stage starting (its name) to whoever shows progress.
StageCallback = Callable[[str], None]


def _no_progress(stage: str) -> None:
    return None


@dataclass
class BenchmarkFigures:
    """The issue's figures from one ``ledgerlink benchmark all`` run."""

    large: BackfillFigures
    small: BackfillFigures
    landing: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "history": self.large.history,
            "small_history": self.small.history,
            "window": self.large.window,
            "backfill_seconds": self.large.backfill.seconds,
            "backfill_stages": self.large.backfill.stages,
            "backfill_call_seconds": self.large.backfill.call_seconds,
            # named for the scales (1M and 10k records of history); "history" and
            # "small_history" say which scales this run used
            "window_seconds_1m_history": self.large.window_run.seconds,
            "window_stages_1m_history": self.large.window_run.stages,
            "window_seconds_10k_history": self.small.window_run.seconds,
            "window_stages_10k_history": self.small.window_run.stages,
            "window_task_seconds_1m_history": self.large.window_run.tasks,
            "window_task_seconds_10k_history": self.small.window_run.tasks,
            "landing_rows": self.landing["rows"],
            "landing_rows_per_second": self.landing["landing_rows_per_second"],
            "copy_rows_per_second": self.landing["copy_rows_per_second"],
            "peak_rss_bytes": max(self.large.peak_rss_bytes, self.small.peak_rss_bytes),
            "largest_processes": sorted(
                [*self.large.largest_processes, *self.small.largest_processes],
                key=lambda process: -int(str(process["peak_rss_bytes"])),
            )[:5],
        }


def run_benchmark(
    history: int,
    small_history: int,
    window: int,
    landing_rows: int,
    on_stage: StageCallback = _no_progress,
) -> BenchmarkFigures:
    """The whole benchmark: landing throughput against plain COPY, then the first sync of
    ``history`` payments with a window on top, and the same window on ``small_history``."""
    figures: dict[str, Any] = {}
    large = run_backfill_benchmark(
        history, window, landing_rows=landing_rows, landing=figures, on_stage=on_stage
    )
    small = run_backfill_benchmark(
        small_history, window, on_stage=lambda stage: on_stage(f"small history: {stage}")
    )
    return BenchmarkFigures(large, small, figures)


def run_backfill_benchmark(
    history: int,
    window: int,
    seed: int = 3,
    *,
    landing_rows: int = 0,
    landing: dict[str, Any] | None = None,
    on_stage: StageCallback = _no_progress,
) -> BackfillFigures:
    """Run the benchmark in a state folder of its own (its own embedded warehouse), so nothing of
    the developer's data is touched; the folder is removed afterwards. With ``landing_rows``, the
    landing benchmark runs first in that warehouse and its figures go into ``landing``."""
    with tempfile.TemporaryDirectory(prefix="ledgerlink-benchmark-") as state:
        # prepare() and the sandbox leave this run's Airflow and dbt settings in os.environ; put
        # the caller's back, or a second run in this process would reach this run's server
        previous = dict(os.environ)
        os.environ[STATE_DIR_VARIABLE] = state
        try:
            return _run_in_state_dir(Path(state), history, window, seed, landing_rows, landing, on_stage)
        finally:
            from ledgerlink.warehouse.embedded import stop_embedded_server

            stop_embedded_server(Path(state) / "postgres")
            os.environ.clear()
            os.environ.update(previous)


def _run_in_state_dir(
    state: Path,
    history: int,
    window: int,
    seed: int,
    landing_rows: int,
    landing: dict[str, Any] | None,
    on_stage: StageCallback,
) -> BackfillFigures:
    from ledgerlink.sandbox.generator import generate_fixtures

    on_stage("preparing a warehouse of its own")
    settings, address = prepare(load_settings())
    if landing_rows:
        from ledgerlink.benchmarks.landing import measure_landing
        from ledgerlink.warehouse import connect

        on_stage(f"landing {landing_rows:,} rows, then a plain COPY of them")
        with connect(address) as conn:
            figures = measure_landing(conn, landing_rows)
        if landing is not None:
            landing.update(figures.as_json())
    on_stage(f"generating {history:,} payments of history")
    # the proportions: 1,000,000 payments with 100,000 open invoices, customers and
    # Qonto supplier invoices
    fixtures = generate_fixtures(
        state / "fixtures",
        seed=seed,
        square_payments=history,
        customers=max(60, history // 10),
        qonto_invoices=max(10, history // 10),
        open_invoices_without_charge=max(10, history // 10),
        paid_invoices=max(10, history // 20),
    )
    with watch_peak_memory(extra_roots=_database_server_pid(address)) as memory:
        on_stage(f"first sync of {history:,} payments through the DAG")
        backfill = _run_against_sandbox(settings, address, fixtures, FIRST_SYNC_AT)
        _append_new_payments(fixtures / "square" / "payments.json", window, FIRST_SYNC_AT + WINDOW / 3)
        on_stage(f"a window of {window:,} new payments on {history:,} of history")
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
    task_seconds: dict[str, float] = {}
    for task_id, start, end in sorted(tasks, key=lambda row: row[1]):
        task_seconds[task_id] = task_seconds.get(task_id, 0.0) + (end - start).total_seconds()
    return RunFigures(
        seconds=span(tasks),
        call_seconds=round(call_seconds, 2),
        stages=stages,
        tasks={task_id: round(seconds, 2) for task_id, seconds in task_seconds.items()},
    )


def _append_new_payments(payments_file: Path, count: int, at: datetime) -> None:
    """``count`` new charges, copies of existing ones with new ids, created and updated at ``at``.
    The file is rewritten record by record: a million payments are never in memory at once."""
    from ledgerlink.sandbox.fixtures import STREAMED_LIST, read_listing, write_json_streaming

    existing = read_listing(payments_file, "payments")
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def new_payments() -> Iterator[dict[str, Any]]:
        for index in range(count):
            payment = copy.deepcopy(existing[index % len(existing)])
            payment["id"] = f"WINDOW{index:08d}{payment['id'][14:]}"
            payment["created_at"] = payment["updated_at"] = stamp
            yield payment

    records = itertools.chain(existing, new_payments())
    write_json_streaming(payments_file, {"payments": STREAMED_LIST}, records)


def _database_server_pid(address: ServerAddress) -> list[int]:
    """The PostgreSQL server's main process, when it runs on this machine (the embedded one does)."""
    with psycopg.connect(address.conninfo()) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        try:
            return [parent_pid(backend)]
        except OSError:
            return []  # a server elsewhere: its memory is not this machine's to measure
