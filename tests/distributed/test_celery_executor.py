"""ledgerlink_reconcile on Airflow's CeleryExecutor, on this machine: a real Redis as broker, an
api-server for the workers' Execution API, and two Celery workers. The same sandbox data is run
once with the LocalExecutor and once with Celery, each into its own warehouse database; the
Celery run must spread its tasks over both workers and end with the same decisions, outbox and
emails as the LocalExecutor's.

Everything runs in a state folder of its own (its own embedded PostgreSQL and Airflow metadata),
so the session's warehouse and Airflow home are untouched. Every process started here is stopped
on the way out, failed or not."""

from __future__ import annotations

import contextlib
import email
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow_processes import background, free_port, isolated_state, ledgerlink_executable
from worker_hostname import WORKER_NAME_VARIABLE

from ledgerlink.settings import AIRFLOW_DATABASE, Settings
from ledgerlink.warehouse import ServerAddress, connect, resolve_server

# two DAG runs at once: about 5 to 8 minutes on two busy cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SEED = 11
DAG_ID = "ledgerlink_reconcile"
LOCAL_RUN_DATE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CELERY_RUN_DATE = datetime(2026, 11, 20, 12, 15, tzinfo=UTC)
CELERY_WAREHOUSE = "ledgerlink_celery"
WORKERS = ("celery-worker-a", "celery-worker-b")
RUN_TIMEOUT = 1200
HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def _redis(logs: Path) -> Iterator[str]:
    """A Redis on loopback for this module alone: ``redis-server`` (Debian's package) on a free port,
    so no other Celery user of a shared Redis takes these tasks (the DAG's tasks go to the queue
    ``default``). Without the binary, the Redis on the default port, if one answers."""
    server = shutil.which("redis-server")
    if server is None:
        if not _redis_answers(6379):
            pytest.skip("no redis-server and no Redis on 127.0.0.1:6379: apt-get install -y redis-server")
        yield "redis://127.0.0.1:6379/0"
        return
    port = free_port()
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    with background("redis", command, os.environ.copy(), logs):
        deadline = time.monotonic() + 20
        while not _redis_answers(port):
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start:\n{(logs / 'redis.log').read_text()}")
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def _dag_test(
    environment: dict[str, str], logical_date: datetime, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``airflow dags test --use-executor``: one run of the DAG through the configured executor,
    stopped with its task processes if the block ends before it does."""
    command = [
        ledgerlink_executable(),
        "airflow",
        "dags",
        "test",
        "--use-executor",
        DAG_ID,
        logical_date.isoformat(),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_dag_run(
    address: ServerAddress, logical_date: datetime, log: Path, timeout: float = 300
) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(address.conninfo(AIRFLOW_DATABASE), autocommit=True) as airflow_db:
        while time.monotonic() < deadline:
            if airflow_db.execute(
                "select 1 from dag_run where dag_id = %s and logical_date = %s", (DAG_ID, logical_date)
            ).fetchone():
                return
            time.sleep(1)
    raise AssertionError(f"no run of {DAG_ID} at {logical_date} after {timeout}s:\n{log.read_text()[-4000:]}")


def _dag_run(address: ServerAddress, logical_date: datetime) -> tuple[str, str, list[tuple[str, str, str]]]:
    """The run's id and state, and (task id, state, hostname) of each of its task instances."""
    with psycopg.connect(address.conninfo(AIRFLOW_DATABASE)) as airflow_db:
        run = airflow_db.execute(
            "select run_id, state from dag_run where dag_id = %s and logical_date = %s",
            (DAG_ID, logical_date),
        ).fetchone()
        assert run is not None, f"Airflow recorded no run at {logical_date}"
        tasks = airflow_db.execute(
            "select task_id, state, coalesce(hostname, '') from task_instance"
            " where dag_id = %s and run_id = %s order by task_id, map_index",
            (DAG_ID, run[0]),
        ).fetchall()
    return str(run[0]), str(run[1]), [(str(t), str(s), str(h)) for t, s, h in tasks]


def _results(address: ServerAddress, mailbox: Path) -> dict[str, Any]:
    """What a run decided, queued and sent, without ids, run ids and clock times."""
    with connect(address) as conn:
        decisions = conn.execute(
            "select workspace_id, source, source_record_id, source_payload_sha256, route, score,"
            " top_candidate_type, top_candidate_id, candidates, explanation, model_version"
            " from ops.routing_decisions order by source, source_record_id"
        ).fetchall()
        outbox = conn.execute(
            "select workspace_id, source, source_record_id, source_payload_sha256, recipient, document,"
            " status, attempt_count from ops.delivery_outbox order by source, source_record_id"
        ).fetchall()
    emails = {}
    for path in sorted(mailbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)  # type: ignore[arg-type]
        attachments = [
            (part.get_filename(), part.get_content_type(), len(part.get_content()))
            for part in message.iter_attachments()  # type: ignore[attr-defined]
        ]
        record = str(message["X-Ledgerlink-Source-Record"])
        assert record not in emails, f"{record} was emailed twice"
        emails[record] = (str(message["To"]), str(message["From"]), str(message["Subject"]), attachments)
    return {
        "decisions": [tuple(map(_comparable, row)) for row in decisions],
        "outbox": [tuple(map(_comparable, row)) for row in outbox],
        "emails": emails,
    }


def _comparable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else value


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from ledgerlink.cli.run import sandbox_connections
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.warehouse.migrations import migrate

    root = tmp_path_factory.mktemp("celery")
    started = time.monotonic()
    with isolated_state(root) as state:
        local_address, logs = state.address, state.logs
        celery_url = f"postgresql://{local_address.user}@/{CELERY_WAREHOUSE}?host={local_address.host}&port={local_address.port}"
        celery_address = resolve_server(Settings(state_dir=root / "state", database_url=celery_url))
        with connect(celery_address) as conn:
            migrate(conn)

        fixtures = generate_fixtures(root / "fixtures", seed=SEED)
        sandboxes = {
            name: state.register_sandbox(fixtures, root / f"mailbox-{name}", address)
            for name, address in (("local", local_address), ("celery", celery_address))
        }
        # two task slots per run, like the two one-slot workers
        state.environment["AIRFLOW__CORE__PARALLELISM"] = "2"
        state.start_execution_api()
        broker = state.stack.enter_context(_redis(logs))
        celery = state.environment | sandbox_connections(sandboxes["celery"])
        celery |= {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "LEDGERLINK_DATABASE_URL": celery_url,
        }
        for worker in WORKERS:
            command = ["celery", "worker", "--celery-hostname", f"{worker}@%h", "--concurrency", "1"]
            command += ["--skip-serve-logs", "--without-gossip", "--without-mingle"]
            worker_environment = celery | {
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.worker_hostname",
                WORKER_NAME_VARIABLE: worker,
                "PYTHONPATH": str(HERE),
            }
            state.start(worker, [ledgerlink_executable(), "airflow", *command], worker_environment)
        prepared_at = time.monotonic()

        # Both runs at once: each is mostly a chain of dbt tasks, so together they use both cores.
        local = state.environment | sandbox_connections(sandboxes["local"])
        local["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
        local_run = state.stack.enter_context(_dag_test(local, LOCAL_RUN_DATE, logs / "local-run.log"))
        # one run at a time writes the DAG's serialized version to the metadata database
        _wait_for_dag_run(local_address, LOCAL_RUN_DATE, logs / "local-run.log")
        celery_run = state.stack.enter_context(_dag_test(celery, CELERY_RUN_DATE, logs / "celery-run.log"))
        seconds = {"prepare": prepared_at - started}
        running = {"local_run": local_run, "celery_run": celery_run}
        while running and time.monotonic() - prepared_at < RUN_TIMEOUT:
            for name, run in list(running.items()):
                if run.poll() is not None:
                    seconds[name] = time.monotonic() - prepared_at
                    del running[name]
            time.sleep(1)
        assert not running, f"still running after {RUN_TIMEOUT}s: {sorted(running)}; logs in {logs}"

        yield {
            "local": (
                _dag_run(local_address, LOCAL_RUN_DATE),
                _results(local_address, root / "mailbox-local"),
            ),
            "celery": (
                _dag_run(local_address, CELERY_RUN_DATE),
                _results(celery_address, root / "mailbox-celery"),
            ),
            "exit_codes": {"local": local_run.returncode, "celery": celery_run.returncode},
            "logs": logs,
            "seconds": seconds,
        }


def test_both_runs_succeed(runs: dict[str, Any]) -> None:
    print("wall seconds:", json.dumps({k: round(v, 1) for k, v in runs["seconds"].items()}))
    for executor in ("local", "celery"):
        (run_id, state, tasks), _ = runs[executor]
        failed = [(task, task_state) for task, task_state, _ in tasks if task_state != "success"]
        log = runs["logs"] / f"{executor}-run.log"
        assert runs["exit_codes"][executor] == 0, f"{executor} run exited badly:\n{log.read_text()[-4000:]}"
        assert state == "success", (
            f"{executor} run {run_id} ended {state}; not successful: {failed}; see {log}"
        )


def test_celery_tasks_ran_on_both_workers(runs: dict[str, Any]) -> None:
    (_, _, tasks), _ = runs["celery"]
    # tasks that ran record their worker; EmptyOperators are marked done without running
    ran_on = [host for _, state, host in tasks if state == "success" and host]
    per_worker = {worker: ran_on.count(worker) for worker in WORKERS}
    print("tasks per worker:", per_worker)
    assert set(ran_on) == set(WORKERS), f"task hosts: {sorted(set(ran_on))}"
    assert len(ran_on) > len(tasks) / 2


def test_celery_results_equal_local_executor_results(runs: dict[str, Any]) -> None:
    _, local = runs["local"]
    _, celery = runs["celery"]
    assert local["decisions"], "the LocalExecutor run decided nothing"
    assert {row[4] for row in local["decisions"]} == {"auto_link", "review", "refused"}
    assert local["emails"], "the LocalExecutor run sent nothing"
    assert celery["decisions"] == local["decisions"]
    assert celery["outbox"] == local["outbox"]
    assert celery["emails"] == local["emails"]
