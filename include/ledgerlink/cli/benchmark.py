"""``ledgerlink benchmark``: figures for the speed goals, printed, never asserted."""

from __future__ import annotations

import json

import click


@click.group()
def benchmark() -> None:
    """Measure ledgerlink's own code paths on generated data."""


@benchmark.command("landing")
@click.option("--rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--page-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def landing(rows: int, page_size: int, as_json: bool) -> None:
    """Landing throughput (raw landing path, page by page) against a plain COPY of the same rows."""
    from ledgerlink.benchmarks.landing import measure_landing
    from ledgerlink.settings import load_settings
    from ledgerlink.warehouse import connect, resolve_server
    from ledgerlink.warehouse.migrations import migrate

    with connect(resolve_server(load_settings())) as conn:
        migrate(conn)
        figures = measure_landing(conn, rows, page_size)
    if as_json:
        click.echo(json.dumps(figures.as_json()))
        return
    click.echo(
        f"{figures.rows:,} rows: landing {figures.landing_rows_per_second:,} rows/s "
        f"({figures.landing_seconds:.2f} s), plain COPY {figures.copy_rows_per_second:,} rows/s "
        f"({figures.copy_seconds:.2f} s); peak RSS {figures.peak_rss_bytes / 2**20:.0f} MiB"
    )


@benchmark.command("backfill")
@click.option(
    "--history",
    type=click.IntRange(min=10),
    default=1_000_000,
    show_default=True,
    help="Square payments in the workspace's history (its first sync).",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=1_000,
    show_default=True,
    help="New payments in the 15-minute window run after it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def backfill(history: int, window: int, as_json: bool) -> None:
    """A first sync of a long history through the DAG, then one window of new records on top.
    Runs in a state folder of its own; your data is not touched."""
    from ledgerlink.benchmarks.backfill import run_backfill_benchmark

    figures = run_backfill_benchmark(history, window)
    if as_json:
        click.echo(json.dumps(figures.as_json()))
        return
    click.echo(f"first sync of {history:,} payments: {figures.backfill.seconds:.1f} s")
    for stage, seconds in figures.backfill.stages.items():
        click.echo(f"  {stage:<22} {seconds:>8.1f} s")
    click.echo(f"window of {window:,} new payments: {figures.window_run.seconds:.1f} s")
    for stage, seconds in figures.window_run.stages.items():
        click.echo(f"  {stage:<22} {seconds:>8.1f} s")
    click.echo(f"peak RSS of any process: {figures.peak_rss_bytes / 2**20:.0f} MiB")
