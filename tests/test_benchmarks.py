"""Benchmarks at smoke scale: they run the real code, print their figures and leave the warehouse
as they found it. Speed goals are read from their output, never asserted."""

from __future__ import annotations

import json
import subprocess

import pytest
from airflow_processes import isolated_environment, ledgerlink_executable
from click.testing import CliRunner

from ledgerlink.cli.main import cli
from ledgerlink.settings import REPOSITORY_ROOT
from ledgerlink.warehouse import connect


def test_landing_benchmark_prints_both_rates_and_leaves_nothing_behind(warehouse, capsys) -> None:  # noqa: ANN001
    result = CliRunner().invoke(
        cli, ["benchmark", "landing", "--rows", "1500", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["rows"] == 1500
    for key in ("landing_rows_per_second", "copy_rows_per_second", "peak_rss_bytes"):
        assert figures[key] > 0
    with capsys.disabled():
        print(f"\nlanding benchmark (smoke scale): {result.stdout.strip()}")
    with connect(warehouse) as conn:
        left = conn.execute(
            "select count(*) from raw.square_payments where workspace_id = 'benchmark-landing'"
        )
        assert left.fetchone()[0] == 0


def test_landing_benchmark_without_json_prints_one_readable_line(warehouse) -> None:  # noqa: ANN001
    result = CliRunner().invoke(cli, ["benchmark", "landing", "--rows", "300"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("300 rows: landing ")
    assert "rows/s" in lines[0] and "plain COPY" in lines[0] and "MiB" in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # four DAG runs: about 5 minutes on a quiet machine, 22 under load
def test_benchmark_at_smoke_scale_prints_every_figure(tmp_path, capsys) -> None:  # noqa: ANN001
    completed = subprocess.run(
        [
            ledgerlink_executable(),
            "benchmark",
            "all",
            "--history",
            "120",
            "--small-history",
            "40",
            "--window",
            "25",
            "--landing-rows",
            "1000",
            "--json",
        ],  # fmt: skip
        cwd=REPOSITORY_ROOT,
        env=isolated_environment(tmp_path / "state"),
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\nbenchmark (smoke scale): {json.dumps(figures)}")
    stages = {"extract", "dbt_match_features", "score_and_route", "deliver_documents", "dbt_reporting_marts"}
    assert set(figures["backfill_stages"]) == stages
    assert set(figures["window_stages_1m_history"]) == stages
    assert set(figures["window_stages_10k_history"]) == stages
    # each task's own seconds, so a window's time can be told apart: Airflow's start in the first
    # task, dbt's build, its tests, the scorer
    for key in ("window_task_seconds_1m_history", "window_task_seconds_10k_history"):
        assert {
            "prepare_warehouse",
            "dbt_match_features.dbt_producer_watcher",
            "dbt_match_features.dbt_project_test",
            "score_and_route",
        } <= set(figures[key]), key
    assert (figures["history"], figures["small_history"], figures["window"]) == (120, 40, 25)
    for key in ("backfill_seconds", "window_seconds_1m_history", "window_seconds_10k_history",
                "landing_rows_per_second", "copy_rows_per_second"):  # fmt: skip
        assert figures[key] > 0, key
    assert figures["landing_rows"] == 1000
    assert figures["peak_rss_bytes"] == max(item["peak_rss_bytes"] for item in figures["largest_processes"])
    assert "first sync of 120 payments" in completed.stderr, "the stages show as progress"
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir()), (
        "the benchmark must leave the caller's state folder alone"
    )
