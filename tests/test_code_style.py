"""ruff (lint, including Airflow 3's AIR3 rules, and format) is clean on the whole repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledgerlink.settings import REPOSITORY_ROOT

RUFF = str(Path(sys.executable).parent / "ruff")


def test_ruff_lint_is_clean() -> None:
    result = subprocess.run([RUFF, "check", "."], cwd=REPOSITORY_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [RUFF, "format", "--check", "."], cwd=REPOSITORY_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_package() -> None:
    mypy = str(Path(sys.executable).parent / "mypy")
    result = subprocess.run([mypy], cwd=REPOSITORY_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
