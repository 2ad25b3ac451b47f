"""ledgerlink's long jobs as a user runs them, each a subprocess with its own state folder:
`ledgerlink run --json`, the README's main job (a second run lands and sends nothing), and the
benchmark (landing, backfill and windows) at smoke scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_processes import isolated_environment

from ledgerlink.settings import REPOSITORY_ROOT

pytestmark = pytest.mark.slow

LEDGERLINK = str(Path(sys.executable).parent / "ledgerlink")


def test_run_prints_the_summary_and_a_second_run_changes_nothing(tmp_path) -> None:  # noqa: ANN001
    from ledgerlink.warehouse.embedded import stop_embedded_server

    state_dir = tmp_path / "state"
    environment = isolated_environment(state_dir)
    try:
        runs = []
        for _ in range(2):
            completed = subprocess.run(
                [LEDGERLINK, "run", "--json"],
                cwd=REPOSITORY_ROOT,
                env=environment,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert completed.returncode == 0, completed.stderr[-4000:]
            runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    finally:
        stop_embedded_server(state_dir / "postgres")

    first, second = runs
    assert set(first) >= {"landed", "decisions", "emails_sent", "mailbox"}
    assert set(first["landed"]) == {"qonto", "square", "quickbooks"}
    assert all(count > 0 for count in first["landed"].values())
    assert all(first["decisions"][route] > 0 for route in ("auto_link", "review", "refused"))
    mailbox = Path(first["mailbox"])
    assert mailbox.is_relative_to(state_dir)
    assert first["emails_sent"] == first["decisions"]["auto_link"] == len(list(mailbox.glob("*.eml")))
    assert second["landed"] == {"qonto": 0, "square": 0, "quickbooks": 0}
    assert second["decisions"] == first["decisions"]
    assert second["emails_sent"] == 0
    assert len(list(mailbox.glob("*.eml"))) == first["emails_sent"]
    # `ledgerlink prepare` parses the project with the profile and target the model tasks name,
    # so the first model task of each task group can reuse that parse. (Another state's prepare
    # in the same checkout, on its own server, may still leave a parse for another profile.)
    run_logs = "".join(log.read_text() for log in (state_dir / "logs").glob("run-*.log"))
    assert "Partial parse is enabled" in run_logs
    assert (
        "Unable to do partial parsing because config vars, config profile, or config target" not in run_logs
    )


@pytest.mark.timeout(1800)  # four DAG runs: about 5 minutes on a quiet machine, 22 under load
def test_benchmark_at_smoke_scale_prints_every_figure(tmp_path, capsys) -> None:  # noqa: ANN001
    completed = subprocess.run(
        [
            LEDGERLINK,
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
