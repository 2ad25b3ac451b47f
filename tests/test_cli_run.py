"""`ledgerlink run --json`, the README's main job, as a user runs it: a subprocess with its own
state folder (a second run lands and sends nothing)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from airflow_processes import isolated_environment, ledgerlink_executable

from ledgerlink.settings import REPOSITORY_ROOT

pytestmark = pytest.mark.slow


def test_run_prints_the_summary_and_a_second_run_changes_nothing(tmp_path) -> None:  # noqa: ANN001
    from ledgerlink.warehouse.embedded import stop_embedded_server

    state_dir = tmp_path / "state"
    environment = isolated_environment(state_dir)
    try:
        runs = []
        for _ in range(2):
            completed = subprocess.run(
                [ledgerlink_executable(), "run", "--json"],
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
