"""Every test session gets its own state folder and its own embedded PostgreSQL, so tests never
touch a developer's data. The shared environment (Airflow home, metadata database, dbt profile
variables) is set before any test imports Airflow."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerlink.settings import STATE_DIR_VARIABLE, Settings, load_settings
from ledgerlink.warehouse import ServerAddress, resolve_server

_SESSION_STATE: dict[str, Path] = {}


@pytest.hookimpl(tryfirst=True)  # before pytest's own tmp_path set-up reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    if STATE_DIR_VARIABLE in os.environ and os.environ.get("LEDGERLINK_TEST_KEEP_STATE"):
        return
    state_dir = Path(tempfile.mkdtemp(prefix="ledgerlink-test-"))
    _SESSION_STATE["state_dir"] = state_dir
    if config.option.basetemp is None:
        # tmp_path folders live in the session's own folder: pytest's shared default keeps only
        # the three newest sessions' folders, so concurrent sessions would delete each other's.
        config.option.basetemp = str(state_dir / "tmp")
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        # pytest-xdist's controller runs no test: its workers, each a session of its own, set up
        # their own state (and would inherit, and keep, whatever the controller set here)
        return
    os.environ[STATE_DIR_VARIABLE] = str(state_dir)
    os.environ.pop("LEDGERLINK_DATABASE_URL", None)
    from ledgerlink.cli.environment import airflow_environment

    settings = load_settings()
    os.environ.update(airflow_environment(settings, resolve_server(settings)))


def pytest_unconfigure(config: pytest.Config) -> None:
    state_dir = _SESSION_STATE.get("state_dir")
    if state_dir is None:
        return
    from ledgerlink.warehouse.embedded import stop_embedded_server

    stop_embedded_server(state_dir / "postgres")
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def warehouse(settings: Settings) -> ServerAddress:
    """The session's embedded warehouse, migrated."""
    from ledgerlink.warehouse import connect
    from ledgerlink.warehouse.migrations import migrate

    address = resolve_server(settings)
    with connect(address) as conn:
        migrate(conn)
    return address


@pytest.fixture(scope="session")
def prepared(settings: Settings) -> Iterator[tuple[Settings, ServerAddress]]:
    """Warehouse migrated, Airflow's metadata database migrated, dbt manifest built."""
    from ledgerlink.cli.setup import prepare

    yield prepare(settings)
