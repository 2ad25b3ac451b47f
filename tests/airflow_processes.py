"""Airflow's own processes for tests that need more than one in-process DAG run: a state folder of
their own (embedded PostgreSQL, Airflow metadata, dbt manifest), the sandbox's workspace in it,
and long-running processes (api-server, scheduler, Celery workers, Redis) started in their own
process groups and stopped on the way out, failed or not.

The session's warehouse and Airflow home are never touched: every command gets an environment
without the session's Airflow, dbt and ledgerlink settings, pointed at the test's state folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from ledgerlink.credentials import KEYS_VARIABLE
from ledgerlink.settings import STATE_DIR_VARIABLE, Settings
from ledgerlink.warehouse import ServerAddress, connect, resolve_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ledgerlink_executable() -> str:
    from ledgerlink.cli.setup import venv_executable

    return venv_executable("ledgerlink")


def isolated_environment(state_dir: Path) -> dict[str, str]:
    """This process's environment without the session's Airflow, dbt and ledgerlink settings (they
    would win over the ones ``ledgerlink`` derives), pointed at ``state_dir``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "DBT_", "LEDGERLINK_"))
    }
    environment[STATE_DIR_VARIABLE] = str(state_dir)
    return environment


@contextlib.contextmanager
def background(name: str, command: list[str], environment: dict[str, str], logs: Path) -> Iterator[None]:
    """Run ``command`` in its own process group for the block, its output in ``logs/<name>.log``;
    stop the group (the process and every task process it forked) on the way out, politely first."""
    with (logs / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # a forked task process may outlive its parent: the group goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_http(url: str, what: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not answer {url} in {timeout}s:\n{log.read_text()[-4000:]}")


@dataclass
class IsolatedState:
    """A prepared state folder of its own, and the environment that points ``ledgerlink`` at it.
    ``environment`` grows as processes are started (the api-server's address, connections)."""

    root: Path
    logs: Path
    environment: dict[str, str]
    address: ServerAddress
    fernet_keys: str
    stack: contextlib.ExitStack = field(repr=False)

    def register_sandbox(
        self, fixtures: Path, mailbox: Path, address: ServerAddress | None = None
    ) -> dict[str, Any]:
        """Start a sandbox over ``fixtures`` for the rest of the block and register its workspace,
        with tokens this state's processes can decrypt, in ``address`` (default: this state's
        warehouse). Returns the sandbox's endpoints as JSON."""
        from ledgerlink.cli.run import register_sandbox_workspace
        from ledgerlink.sandbox.services import SandboxPorts, run_sandbox

        manifest = json.loads((fixtures / "manifest.json").read_text())
        endpoints = self.stack.enter_context(run_sandbox(fixtures, mailbox, ports=SandboxPorts.ephemeral()))
        sandbox = endpoints.as_json()
        with connect(address or self.address) as conn, pytest.MonkeyPatch.context() as patch:
            patch.setenv(KEYS_VARIABLE, self.fernet_keys)
            register_sandbox_workspace(conn, sandbox, manifest)
        return sandbox

    def airflow(self, *arguments: str) -> None:
        """One ``airflow`` command through ``ledgerlink airflow``, its output in ``logs/airflow.log``."""
        log = self.logs / "airflow.log"
        with log.open("ab") as out:
            out.write(f"$ airflow {' '.join(arguments)}\n".encode())
            out.flush()
            result = subprocess.run(
                [ledgerlink_executable(), "airflow", *arguments],
                env=self.environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        assert result.returncode == 0, f"`airflow {' '.join(arguments)}` failed:\n{log.read_text()[-4000:]}"

    def start(self, name: str, command: list[str], environment: dict[str, str] | None = None) -> None:
        """Run ``command`` in the background until the block ends (see ``background``)."""
        self.stack.enter_context(background(name, command, environment or self.environment, self.logs))

    def start_execution_api(self) -> None:
        """An api-server serving the Execution API that executors' task processes report to, and
        the environment variables that point them at it. Returns once it answers."""
        port = free_port()
        self.environment |= {
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        }
        command = [ledgerlink_executable(), "airflow", "api-server", "--apps", "execution"]
        command += ["--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
        self.start("api-server", command)
        wait_for_http(
            f"http://127.0.0.1:{port}/execution/health", "the api-server", self.logs / "api-server.log"
        )


@contextlib.contextmanager
def isolated_state(root: Path) -> Iterator[IsolatedState]:
    """``ledgerlink prepare`` in ``root/state`` (logs in ``root/logs``); its embedded server and
    every process started through the state stop when the block ends."""
    from ledgerlink.warehouse.embedded import stop_embedded_server

    state_dir, logs = root / "state", root / "logs"
    logs.mkdir(parents=True)
    # the tokens registered from this process must decrypt in the isolated state's processes
    fernet_keys = Fernet.generate_key().decode()
    environment = isolated_environment(state_dir) | {KEYS_VARIABLE: fernet_keys}
    with contextlib.ExitStack() as stack:
        stack.callback(stop_embedded_server, state_dir / "postgres")
        with (logs / "prepare.log").open("ab") as out:
            subprocess.run(
                [ledgerlink_executable(), "prepare"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )
        address = resolve_server(Settings(state_dir=state_dir, database_url=None))
        yield IsolatedState(root, logs, environment, address, fernet_keys, stack)
