"""Getting a machine ready: warehouse schema, Airflow's metadata database, the dbt manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from ledgerlink.cli.environment import airflow_environment
from ledgerlink.settings import Settings, load_settings
from ledgerlink.warehouse import ServerAddress, connect, resolve_server
from ledgerlink.warehouse.migrations import migrate


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
        # The profile and target as Cosmos names them (ledgerlink.orchestration.dbt): dbt keeps a
        # partial parse only for the same ones, so the first model task of each dbt task group
        # reuses this parse instead of parsing the whole project again.
        run_logged(
            [
                venv_executable("dbt"),
                "parse",
                "--project-dir",
                str(settings.dbt_project_dir),
                "--profile",
                "ledgerlink",
                "--target",
                "dev",
            ],
            log,
            cwd=settings.dbt_project_dir,
        )
    return settings, address


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
