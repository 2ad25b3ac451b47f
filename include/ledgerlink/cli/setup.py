"""Getting a machine ready: warehouse schema, Airflow's metadata database, the dbt manifest."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from ledgerlink.cli.environment import airflow_environment
from ledgerlink.settings import Settings, load_settings
from ledgerlink.warehouse import ServerAddress, connect, resolve_server
from ledgerlink.warehouse.migrations import migrate

MANIFEST_FILE = "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def venv_executable(name: str) -> str:
    """A console script installed beside this interpreter (airflow, dbt)."""
    return str(Path(sys.executable).parent / name)


def prepare(settings: Settings | None = None, log_file: Path | None = None) -> tuple[Settings, ServerAddress]:
    """Start or find the warehouse, apply migrations, migrate Airflow's metadata database and
    build the dbt manifest. Idempotent. Leaves the shared environment in ``os.environ``."""
    settings = settings or load_settings()
    address = resolve_server(settings)
    with connect(address) as conn:
        migrate(conn)
    os.environ.update(airflow_environment(settings, address))
    log_file = log_file or settings.state_dir / "logs" / "prepare.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        run_logged([venv_executable("airflow"), "db", "migrate"], log)
        parse_manifest(settings.dbt_project_dir, log)
    return settings, address


def parse_manifest(project_dir: Path, log: TextIO) -> None:
    """``dbt parse`` into ``project_dir/target``: ``manifest.json``, which Cosmos renders the DAG
    from, and ``partial_parse.msgpack``, which each model task's dbt starts from.

    Several states may share one checkout (tests in parallel, a benchmark beside a run), and each
    prepares. dbt rewrites its files in place, so a reader could see half a manifest. The parse
    therefore runs in a scratch folder, from a copy of the last parse, and its two files replace
    the old ones atomically, the manifest last."""
    target_dir = project_dir / "target"
    target_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".parse-") as scratch:
        scratch_dir = Path(scratch)
        last_parse = target_dir / PARTIAL_PARSE_FILE
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(last_parse, scratch_dir / PARTIAL_PARSE_FILE)
        # The profile and target as Cosmos names them (ledgerlink.orchestration.dbt): dbt keeps a
        # partial parse only for the same ones, so the first model task of each dbt task group
        # reuses this parse instead of parsing the whole project again.
        run_logged(
            [
                venv_executable("dbt"),
                "parse",
                "--project-dir",
                str(project_dir),
                "--profile",
                "ledgerlink",
                "--target",
                "dev",
                "--target-path",
                str(scratch_dir),
            ],
            log,
            cwd=project_dir,
        )
        for name in (PARTIAL_PARSE_FILE, MANIFEST_FILE):
            os.replace(scratch_dir / name, target_dir / name)


def run_logged(command: list[str], log: TextIO, cwd: Path | None = None) -> None:
    """Run ``command`` with its output appended to ``log``; on failure raise with the log's tail."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if result.returncode != 0:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-4000:]
        raise RuntimeError(
            f"`{' '.join(command[:3])}` failed (exit {result.returncode}); see {log.name}\n{tail}"
        )
