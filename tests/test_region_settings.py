"""Storage regions as configuration: the zero-configuration default, region URLs, the
``--region`` setting of ``ledgerlink workspace`` (validated, fixed once created, copied into the
region's own database) and the dbt profile of each region.

The regions here are databases of their own on the session's server, which is enough for the
settings; ``test_storage_regions.py`` runs the pipeline over separate servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from ledgerlink.cli.main import cli
from ledgerlink.warehouse import ServerAddress, connect, connect_region
from ledgerlink.warehouse.regions import (
    DEFAULT_REGION,
    UnknownRegion,
    configured_regions,
    connect_for_workspace,
    migrate_every_region,
    region_dbt_environment,
)
from ledgerlink.workspaces import load_workspace


def _invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["workspace", *args], catch_exceptions=False)


def _region_url(address: ServerAddress, database: str) -> str:
    return f"postgresql://{address.user}@/{database}?host={quote(address.host, safe='')}&port={address.port}"


@pytest.fixture
def two_regions(warehouse, monkeypatch, tmp_path):  # noqa: ANN001
    for name in ("eu", "us"):
        monkeypatch.setenv(
            f"LEDGERLINK_REGION_{name.upper()}_URL", _region_url(warehouse, f"settings_{name}")
        )
        monkeypatch.setenv(f"LEDGERLINK_REGION_{name.upper()}_BLOB_DIR", str(tmp_path / name))
    migrate_every_region()
    return warehouse


def test_without_configuration_there_is_one_default_region_in_the_configuration_database(settings) -> None:  # noqa: ANN001
    regions = configured_regions(settings, environ={})
    assert list(regions) == [DEFAULT_REGION]
    assert regions[DEFAULT_REGION].shares_configuration_database
    assert regions[DEFAULT_REGION].blob_dir == settings.blob_dir


def test_region_urls_configure_the_regions_and_replace_the_default(settings) -> None:  # noqa: ANN001
    environ = {
        "LEDGERLINK_REGION_US_URL": "postgresql://u:secret@us-db:5433/books",
        "LEDGERLINK_REGION_EU_WEST_URL": "postgresql://e@eu-db/books",
        "LEDGERLINK_REGION_EU_WEST_BLOB_DIR": "/srv/blobs-eu",
        "LEDGERLINK_REGION_EMPTY_URL": "",
    }
    regions = configured_regions(settings, environ=environ)
    assert list(regions) == ["eu_west", "us"]
    assert regions["eu_west"].blob_dir == Path("/srv/blobs-eu")
    assert regions["us"].blob_dir == settings.state_dir / "regions" / "us" / "blobs"


def test_each_region_gets_its_own_dbt_profile_variables_with_the_password_kept_secret(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LEDGERLINK_REGION_US_URL", "postgresql://u:secret@us-db:5433/books")
    variables = region_dbt_environment()
    assert variables["LEDGERLINK_PGHOST_US"] == "us-db"
    assert variables["LEDGERLINK_PGPORT_US"] == "5433"
    assert variables["LEDGERLINK_PGDATABASE_US"] == "books"
    assert variables["DBT_ENV_SECRET_LEDGERLINK_PGPASSWORD_US"] == "secret"
    assert "secret" not in {value for name, value in variables.items() if "SECRET" not in name}


def test_an_unknown_region_is_refused_with_the_configured_ones(warehouse) -> None:  # noqa: ANN001
    result = _invoke("add", "region-mars", "--name", "M", "--email-in", "m@qbodocs.com", "--region", "mars")
    assert result.exit_code != 0
    assert "unknown 'mars'; configured regions: default" in result.output
    with connect(warehouse) as conn, pytest.raises(LookupError):
        load_workspace(conn, "region-mars")


def test_a_workspace_lives_in_its_region_and_cannot_move(two_regions) -> None:  # noqa: ANN001
    needs_region = _invoke("add", "region-ws", "--name", "R", "--email-in", "r@qbodocs.com")
    assert needs_region.exit_code != 0
    assert "--region is required: configured regions: eu, us" in needs_region.output

    added = _invoke("add", "region-ws", "--name", "R", "--email-in", "r@qbodocs.com", "--region", "eu")
    assert added.exit_code == 0, added.output
    try:
        with connect(two_regions) as conn:
            assert load_workspace(conn, "region-ws").storage_region == "eu"
        with connect_region("eu") as conn:
            assert load_workspace(conn, "region-ws").display_name == "R"  # the region's own copy
        with connect_region("us") as conn, pytest.raises(LookupError):
            load_workspace(conn, "region-ws")
        with connect_for_workspace("region-ws") as conn:
            assert conn.info.dbname == "settings_eu"

        # settings change without --region: it stays where it is, and the copy follows
        renamed = _invoke("add", "region-ws", "--name", "Renamed", "--email-in", "r@qbodocs.com")
        assert renamed.exit_code == 0, renamed.output
        with connect_region("eu") as conn:
            assert load_workspace(conn, "region-ws").display_name == "Renamed"

        moved = _invoke("add", "region-ws", "--name", "R", "--email-in", "r@qbodocs.com", "--region", "us")
        assert moved.exit_code != 0
        assert "moving a workspace to another region ('us') is not supported" in moved.output
        with connect(two_regions) as conn:
            assert load_workspace(conn, "region-ws").storage_region == "eu"

        assert _invoke("disable", "region-ws").exit_code == 0
        with connect_region("eu") as conn:
            assert load_workspace(conn, "region-ws").is_active is False
        assert " eu " in _invoke("list").output
    finally:
        _invoke("disable", "region-ws")


def test_a_workspace_whose_region_is_no_longer_configured_is_refused_clearly(
    two_regions, monkeypatch
) -> None:  # noqa: ANN001
    assert (
        _invoke(
            "add", "region-gone", "--name", "G", "--email-in", "g@qbodocs.com", "--region", "us"
        ).exit_code
        == 0
    )
    try:
        monkeypatch.delenv("LEDGERLINK_REGION_US_URL")
        with pytest.raises(
            UnknownRegion, match="'region-gone': unknown storage region 'us'; configured regions: eu"
        ):
            connect_for_workspace("region-gone")
    finally:
        monkeypatch.setenv("LEDGERLINK_REGION_US_URL", _region_url(two_regions, "settings_us"))
        _invoke("disable", "region-gone")


def test_dbt_connects_to_the_region_it_is_told_to_build(two_regions, settings, monkeypatch) -> None:  # noqa: ANN001
    for name, value in region_dbt_environment().items():
        monkeypatch.setenv(name, value)
    dbt = str(Path(sys.executable).parent / "dbt")
    for region, database in (("eu", "settings_eu"), ("", two_regions.warehouse_database)):
        monkeypatch.setenv("LEDGERLINK_DBT_REGION", region)
        debug = subprocess.run(
            [dbt, "debug", "--project-dir", str(settings.dbt_project_dir)],
            capture_output=True,
            text=True,
            cwd=settings.dbt_project_dir,
            check=False,
        )
        assert debug.returncode == 0, debug.stdout[-2000:]
        assert f"database: {database}" in debug.stdout
    monkeypatch.setenv("LEDGERLINK_DBT_REGION", "mars")  # no variables: fail, never build another db
    failed = subprocess.run(
        [dbt, "debug", "--project-dir", str(settings.dbt_project_dir)],
        capture_output=True,
        text=True,
        cwd=settings.dbt_project_dir,
        check=False,
    )
    assert failed.returncode != 0
    assert "LEDGERLINK_PGHOST_MARS" in failed.stdout
