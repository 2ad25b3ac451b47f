"""Running the dbt CLI from tests: the repository's dbt project and profiles, with a target and
log folder of the test's own, so concurrent tests never share dbt's artefacts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPOSITORY / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def run_dbt(
    command: str, *arguments: str, env: Mapping[str, str], work_dir: Path, timeout: float = 110
) -> subprocess.CompletedProcess[str]:
    """``dbt <command> <arguments>`` on the project, with ``env`` (dbt's connection variables);
    output captured, never raising on dbt's own failure: callers assert on the return code."""
    return subprocess.run(
        [
            str(DBT),
            command,
            *arguments,
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(work_dir / "target"),
            "--log-path",
            str(work_dir / "logs"),
        ],
        cwd=REPOSITORY,
        env={**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
