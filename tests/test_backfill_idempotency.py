"""Backfilling ``ledgerlink_reconcile`` over the same past window twice, through Airflow's own
backfill (``airflow backfill create``, what the UI's "Run backfill" calls) executed by a real
``airflow scheduler``: the second backfill reruns the same logical dates (reprocess behaviour
``completed``) and must land, decide, queue and email nothing new.

Everything runs in a state folder of its own (its own embedded PostgreSQL and Airflow home), so no
workspace another test registered in the session's warehouse is extracted here. The scheduler's
cron scheduling is off (``use_job_schedule``), so the only runs are the backfills' own. Every
process started here is stopped on the way out, failed or not."""

from __future__ import annotations

import email
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow_processes import IsolatedState, isolated_state, ledgerlink_executable

from ledgerlink.settings import AIRFLOW_DATABASE
from ledgerlink.warehouse import ServerAddress, connect

# four DAG runs one after another, plus preparing a fresh state folder: about 20 minutes on two
# busy cores (each run is some 30 dbt tasks, two at a time). Too long for every `make test`, so it
# runs when asked: `make test-backfill`.
RUN_VARIABLE = "LEDGERLINK_RUN_BACKFILL_TEST"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        os.environ.get(RUN_VARIABLE) != "1",
        reason=f"about 20 minutes; run with `make test-backfill` ({RUN_VARIABLE}=1)",
    ),
]

SEED = 11
DAG_ID = "ledgerlink_reconcile"
# two logical dates of the DAG's 15-minute schedule, long past
WINDOW = (datetime(2026, 11, 19, 10, 0, tzinfo=UTC), datetime(2026, 11, 19, 10, 15, tzinfo=UTC))
BACKFILL_TIMEOUT = 900
# Every table a run writes to, with what a row must not repeat: a record lands once (the data does
# not change between runs), is decided once, queued once and sent once.
RECORD_KEY = "workspace_id, source_record_id"
UNIQUE_KEYS = {
    **{
        f"raw.{table}": (RECORD_KEY, "true")
        for table in (
            "qonto_supplier_invoices",
            "qonto_attachments",
            "square_payments",
            "square_customers",
            "square_refunds",
            "qbo_vendors",
            "qbo_customers",
            "qbo_invoices",
            "qbo_accounts",
        )
    },
    "ops.routing_decisions": ("workspace_id, source, source_record_id", "true"),
    "ops.delivery_outbox": ("workspace_id, source, source_record_id", "true"),
    "ops.delivery_attempts": ("outbox_id", "outcome = 'sent'"),
}


def _backfill(state: IsolatedState, reprocess: str) -> list[tuple[datetime, str, int]]:
    """Create a backfill of WINDOW, wait until the scheduler marks it complete, and return
    (logical date, state, clear number) of each run it made or reran."""
    state.airflow(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        WINDOW[0].isoformat(),
        "--to-date",
        WINDOW[-1].isoformat(),
        "--max-active-runs",
        "1",
        "--reprocess-behavior",
        reprocess,
    )
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    with psycopg.connect(state.address.conninfo(AIRFLOW_DATABASE), autocommit=True) as airflow_db:
        backfill_id = airflow_db.execute(
            "select max(id) from backfill where dag_id = %s", (DAG_ID,)
        ).fetchone()[0]  # type: ignore[index]
        while not airflow_db.execute(
            "select completed_at is not null from backfill where id = %s", (backfill_id,)
        ).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"backfill {backfill_id} unfinished after {BACKFILL_TIMEOUT}s; logs in {state.logs}"
                )
            time.sleep(2)
        skipped = airflow_db.execute(
            "select logical_date, exception_reason from backfill_dag_run"
            " where backfill_id = %s and dag_run_id is null",
            (backfill_id,),
        ).fetchall()
        assert not skipped, f"backfill {backfill_id} left logical dates out: {skipped}"
        runs = airflow_db.execute(
            "select dag_run.logical_date, dag_run.state, dag_run.clear_number from backfill_dag_run"
            " join dag_run on dag_run.id = backfill_dag_run.dag_run_id"
            " where backfill_dag_run.backfill_id = %s order by dag_run.logical_date",
            (backfill_id,),
        ).fetchall()
    return [(logical_date, str(state), int(clear_number)) for logical_date, state, clear_number in runs]


def _warehouse_state(address: ServerAddress) -> dict[str, dict[str, int]]:
    """Rows per table, and how many rows repeat a key that must be unique."""
    counts, duplicates = {}, {}
    with connect(address) as conn:
        for table, (key, rows) in UNIQUE_KEYS.items():
            counts[table] = conn.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            duplicates[table] = conn.execute(
                f"select coalesce(sum(n - 1), 0) from (select count(*) n from {table} where {rows} group by {key}) k"  # noqa: S608
            ).fetchone()[0]  # type: ignore[index]
    return {"counts": counts, "duplicates": duplicates}


def _emailed_records(mailbox: Path) -> list[str]:
    """One entry per message in the mailbox, the owner's inbox included: the folder it is in and
    the source record it carries."""
    return sorted(
        f"{path.parent.name}/"
        + str(
            email.message_from_bytes(path.read_bytes(), policy=default_policy)["X-Ledgerlink-Source-Record"]
        )  # type: ignore[arg-type]
        for path in mailbox.rglob("*.eml")
    )


@pytest.fixture(scope="module")
def backfills(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from ledgerlink.cli.run import sandbox_connections
    from ledgerlink.sandbox.generator import generate_fixtures

    root = tmp_path_factory.mktemp("backfill")
    mailbox = root / "mailbox"
    started = time.monotonic()
    with isolated_state(root) as state:
        fixtures = generate_fixtures(root / "fixtures", seed=SEED)
        sandbox = state.register_sandbox(fixtures, mailbox)
        state.environment |= sandbox_connections(sandbox) | {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # two task slots on two cores: the default 32 starts every dbt model of a run at once,
            # and on a busy machine each then takes minutes instead of seconds
            "AIRFLOW__CORE__PARALLELISM": "2",
            # no cron runs: the backfills' runs are the only ones
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        # The scheduler schedules only serialized, unpaused DAGs; no dag-processor runs here.
        state.airflow("dags", "reserialize")
        state.airflow("dags", "unpause", DAG_ID)
        state.start_execution_api()
        state.start("scheduler", [ledgerlink_executable(), "airflow", "scheduler"])
        prepared_at = time.monotonic()

        first_runs = _backfill(state, reprocess="none")
        after_first = _warehouse_state(state.address) | {"emails": _emailed_records(mailbox)}
        first_at = time.monotonic()
        second_runs = _backfill(state, reprocess="completed")
        after_second = _warehouse_state(state.address) | {"emails": _emailed_records(mailbox)}
        seconds = {
            "prepare": prepared_at - started,
            "first_backfill": first_at - prepared_at,
            "second_backfill": time.monotonic() - first_at,
        }
        yield {
            "runs": (first_runs, second_runs),
            "states": (after_first, after_second),
            "workspace_id": sandbox["workspace_id"],
            "seconds": seconds,
            "logs": state.logs,
        }


def test_both_backfills_ran_every_logical_date_successfully(backfills: dict[str, Any]) -> None:
    print("wall seconds:", json.dumps({k: round(v, 1) for k, v in backfills["seconds"].items()}))
    first_runs, second_runs = backfills["runs"]
    for runs in (first_runs, second_runs):
        assert [logical_date for logical_date, _, _ in runs] == list(WINDOW)
        assert {state for _, state, _ in runs} == {"success"}, f"runs {runs}; logs in {backfills['logs']}"
    # the second backfill cleared and reran the first one's runs, not skipped them
    assert all(clear_number >= 1 for _, _, clear_number in second_runs), second_runs


def test_first_backfill_landed_decided_and_emailed(backfills: dict[str, Any]) -> None:
    after_first, _ = backfills["states"]
    assert after_first["counts"]["raw.qonto_supplier_invoices"] > 0
    assert after_first["counts"]["ops.routing_decisions"] > 0
    assert after_first["emails"], "the first backfill emailed nothing, so the rerun proves nothing"
    assert len(after_first["emails"]) == len(set(after_first["emails"])), "a record was emailed twice"
    assert after_first["counts"]["ops.delivery_attempts"] >= len(after_first["emails"])


def test_second_backfill_adds_no_row_and_no_email(backfills: dict[str, Any]) -> None:
    after_first, after_second = backfills["states"]
    assert after_second["emails"] == after_first["emails"], "the second backfill sent email"
    assert after_second["counts"] == after_first["counts"]
    assert set(after_second["duplicates"].values()) == {0}, after_second["duplicates"]
