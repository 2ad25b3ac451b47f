"""The embedded default keeps its data across stops and restarts, and one setting switches the
warehouse and Airflow's metadata to an external PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ledgerlink.settings import AIRFLOW_DATABASE, Settings
from ledgerlink.warehouse import connect, resolve_server
from ledgerlink.warehouse.embedded import start_embedded_server, stop_embedded_server
from ledgerlink.warehouse.migrations import migrate


def test_embedded_server_keeps_data_across_stop_and_restart(tmp_path) -> None:  # noqa: ANN001
    settings = Settings(state_dir=tmp_path / "state", database_url=None)
    address = resolve_server(settings)
    with connect(address) as conn:
        migrate(conn)
        conn.execute(
            "insert into ops.workspaces (workspace_id, display_name, email_in_address)"
            " values ('kept', 'Kept Ltd', 'kept@qbodocs.com')"
        )
    assert resolve_server(settings) == address, "starting twice finds the same server"
    assert stop_embedded_server(settings.postgres_dir)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(address.conninfo(), connect_timeout=2)
    assert start_embedded_server(settings.postgres_dir)
    with connect(resolve_server(settings)) as conn:
        assert migrate(conn) == []
        names = conn.execute("select display_name from ops.workspaces").fetchall()
    assert names == [("Kept Ltd",)]
    databases = {
        row[0]
        for row in psycopg.connect(address.conninfo("postgres")).execute("select datname from pg_database")
    }
    assert AIRFLOW_DATABASE in databases, "Airflow's metadata database lives beside the warehouse"
    stop_embedded_server(settings.postgres_dir)


def _local_server_available() -> bool:
    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.mark.skipif(
    not _local_server_available(), reason="no PostgreSQL on 127.0.0.1:5432 (an extra, not required)"
)
def test_one_setting_points_everything_at_an_external_server(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from ledgerlink.cli.environment import airflow_environment

    for variable in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "LEDGERLINK_PGDATABASE", "LEDGERLINK_PGHOST"):
        monkeypatch.delenv(variable, raising=False)  # the session's own embedded settings

    database = f"ledgerlink_ext_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    settings = Settings(state_dir=tmp_path / "state", database_url=url)
    address = resolve_server(settings)
    try:
        assert (address.host, address.port, address.warehouse_database) == ("127.0.0.1", 5432, database)
        assert not settings.postgres_dir.exists(), "no embedded server is started"
        with connect(address) as conn:
            assert "001_raw_and_ops.sql" in migrate(conn)
        environment = airflow_environment(settings, address)
        assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5432/airflow")
        assert environment["LEDGERLINK_PGDATABASE"] == database
    finally:
        with psycopg.connect(address.conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{database}"')
