"""``ledgerlink benchmark``: figures for the speed goals, printed, never asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


@contextmanager
def _progress() -> Iterator[Progress]:
    """Progress on stderr, so ``--json`` output on stdout stays one clean object."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield progress
        for task in progress.tasks:  # the last stage has ended too
            if task.total is None:
                progress.update(task.id, total=1, completed=1)


def _stage_reporter(progress: Progress) -> Any:
    """A callback that ends the previous stage's line and starts one for the next."""
    current: list[Any] = []

    def on_stage(stage: str) -> None:
        if current:
            progress.update(current[0], total=1, completed=1)
        current[:] = [progress.add_task(stage, total=None)]

    return on_stage


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

    with connect(resolve_server(load_settings())) as conn, _progress() as progress:
        migrate(conn)
        bar = progress.add_task("landing, then plain COPY", total=2 * rows)
        phase = [0]

        def on_rows(done: int) -> None:
            if done == rows:
                phase[0] = rows  # the landing phase is over; the COPY counts from here
            progress.update(bar, completed=min(phase[0] + done, 2 * rows))

        figures = measure_landing(conn, rows, page_size, on_rows=on_rows)
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

    with _progress() as progress:
        figures = run_backfill_benchmark(history, window, on_stage=_stage_reporter(progress))
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


@benchmark.command("all")
@click.option(
    "--history",
    type=click.IntRange(min=10),
    default=1_000_000,
    show_default=True,
    help="Square payments in the large history (with a tenth as many invoices and customers).",
)
@click.option(
    "--small-history",
    type=click.IntRange(min=10),
    default=10_000,
    show_default=True,
    help="Square payments in the small history the same window is measured on.",
)
@click.option("--window", type=click.IntRange(min=1), default=1_000, show_default=True)
@click.option("--landing-rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def all_figures(history: int, small_history: int, window: int, landing_rows: int, as_json: bool) -> None:
    """Every figure of the scale goals in one run: landing against plain COPY, a first sync of a
    long history through the DAG with each stage's time, and a window on a long and a short
    history. Runs in state folders of its own; your data is not touched."""
    from ledgerlink.benchmarks.backfill import run_benchmark

    with _progress() as progress:
        figures = run_benchmark(
            history, small_history, window, landing_rows, on_stage=_stage_reporter(progress)
        ).as_json()
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(
        f"landing {figures['landing_rows_per_second']:,} rows/s against plain COPY "
        f"{figures['copy_rows_per_second']:,} rows/s ({figures['landing_rows']:,} rows)"
    )
    click.echo(f"first sync of {history:,} payments: {figures['backfill_seconds']:.1f} s")
    for stage, seconds in figures["backfill_stages"].items():
        click.echo(f"  {stage:<22} {seconds:>8.1f} s")
    click.echo(
        f"window of {window:,}: {figures['window_seconds_1m_history']:.1f} s on {history:,} of history, "
        f"{figures['window_seconds_10k_history']:.1f} s on {small_history:,}"
    )
    click.echo(f"peak RSS of any process: {figures['peak_rss_bytes'] / 2**20:.0f} MiB")
