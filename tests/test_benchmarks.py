"""Benchmarks at smoke scale: they run the real code, print their figures and leave the warehouse
as they found it. Speed goals are read from their output, never asserted."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ledgerlink.cli.main import cli
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
