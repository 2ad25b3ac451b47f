"""The dbt tests' warehouse: one embedded PostgreSQL per test module, in a temporary state
folder, so the tests never touch a developer's warehouse."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An embedded warehouse in a temporary state folder, migrated; yields dbt's environment."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        state_dir = tmp_path_factory.mktemp("state")
        monkeypatch.setenv("LEDGERLINK_STATE_DIR", str(state_dir))
        monkeypatch.delenv("LEDGERLINK_DATABASE_URL", raising=False)

        from ledgerlink.settings import load_settings
        from ledgerlink.warehouse import connect, resolve_server
        from ledgerlink.warehouse.database import dbt_environment
        from ledgerlink.warehouse.embedded import stop_embedded_server
        from ledgerlink.warehouse.migrations import migrate

        address = resolve_server()
        try:
            with connect(address) as conn:
                migrate(conn)
            yield {**os.environ, **dbt_environment(address), "LEDGERLINK_CONNINFO": address.conninfo()}
        finally:
            stop_embedded_server(load_settings().postgres_dir)
