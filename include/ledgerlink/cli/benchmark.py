"""``ledgerlink benchmark``: figures for the speed goals, printed, never asserted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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


def _report(
    as_json: bool,
    measure: Callable[[Progress], Any],
    as_text: Callable[[dict[str, Any]], Iterable[str]],
) -> None:
    """Run ``measure`` with progress bars on stderr, then print its figures on stdout: one JSON
    object with ``--json``, else the lines ``as_text`` makes of that same object."""
    with _progress() as progress:
        figures = measure(progress).as_json()
    if as_json:
        click.echo(json.dumps(figures))
        return
    for line in as_text(figures):
        click.echo(line)


def _history_option(default: int, what: str) -> Any:
    return click.option(
        "--history", type=click.IntRange(min=10), default=default, show_default=True, help=what
    )


_window_option = click.option(
    "--window",
    type=click.IntRange(min=1),
    default=1_000,
    show_default=True,
    help="New payments in the 15-minute window run after the history.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")


def _stage_lines(title: str, seconds: float, stages: dict[str, float]) -> Iterator[str]:
    yield f"{title}: {seconds:.1f} s"
    for stage, stage_seconds in stages.items():
        yield f"  {stage:<22} {stage_seconds:>8.1f} s"


def _peak_rss_line(figures: dict[str, Any]) -> str:
    return f"peak RSS of any process: {figures['peak_rss_bytes'] / 2**20:.0f} MiB"


@click.group()
def benchmark() -> None:
    """Measure ledgerlink's own code paths on generated data."""


@benchmark.command("landing")
@click.option("--rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--page-size", type=click.IntRange(min=1), default=100, show_default=True)
@_json_option
def landing(rows: int, page_size: int, as_json: bool) -> None:
    """Landing throughput (raw landing path, page by page) against a plain COPY of the same rows."""
    from ledgerlink.benchmarks.landing import measure_landing
    from ledgerlink.settings import load_settings
    from ledgerlink.warehouse import connect, resolve_server
    from ledgerlink.warehouse.migrations import migrate

    def measure(progress: Progress) -> Any:
        bar = progress.add_task("landing, then plain COPY", total=2 * rows)
        phase = [0]

        def on_rows(done: int) -> None:
            if done == rows:
                phase[0] = rows  # the landing phase is over; the COPY counts from here
            progress.update(bar, completed=min(phase[0] + done, 2 * rows))

        with connect(resolve_server(load_settings())) as conn:
            migrate(conn)
            return measure_landing(conn, rows, page_size, on_rows=on_rows)

    def as_text(figures: dict[str, Any]) -> Iterator[str]:
        yield (
            f"{figures['rows']:,} rows: landing {figures['landing_rows_per_second']:,} rows/s "
            f"({figures['landing_seconds']:.2f} s), plain COPY {figures['copy_rows_per_second']:,} rows/s "
            f"({figures['copy_seconds']:.2f} s); peak RSS {figures['peak_rss_bytes'] / 2**20:.0f} MiB"
        )

    _report(as_json, measure, as_text)


@benchmark.command("delivery")
@click.option("--documents", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option(
    "--render-processes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes rendering documents, per sender (0: in the sender's own process, its default).",
)
@click.option(
    "--senders",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parallel senders, each a process sending one shard of the outbox, as the DAG's mapped delivery tasks do.",
)
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=None,
    help="SMTP sessions each sender keeps open at once (default: LEDGERLINK_DELIVERY_SESSIONS, as the DAG's delivery tasks use).",
)
@click.option(
    "--smtp-reply-delay-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Hold each email-in reply this long, as QuickBooks across the internet would (0: a local server).",
)
@_json_option
def delivery(
    documents: int,
    render_processes: int,
    senders: int,
    sessions: int | None,
    smtp_reply_delay_ms: float,
    as_json: bool,
) -> None:
    """Documents per second through the email operator (rendering, crash-safe commits, SMTP) into
    the sandbox email-in."""
    from ledgerlink.benchmarks.delivery import measure_delivery
    from ledgerlink.delivery.shards import configured_sessions
    from ledgerlink.settings import load_settings
    from ledgerlink.warehouse import connect, resolve_server
    from ledgerlink.warehouse.migrations import migrate

    def measure(progress: Progress) -> Any:
        progress.add_task(
            f"queueing and delivering {documents:,} receipts with {senders} sender(s)", total=None
        )
        address = resolve_server(load_settings())
        with connect(address) as conn:
            migrate(conn)
        return measure_delivery(
            address,
            documents,
            render_processes,
            senders=senders,
            sessions=sessions or configured_sessions(),
            smtp_reply_delay_ms=smtp_reply_delay_ms,
        )

    def as_text(figures: dict[str, Any]) -> Iterator[str]:
        yield (
            f"{figures['sent']:,} of {figures['documents']:,} documents sent in "
            f"{figures['delivery_seconds']:.1f} s by {figures['senders']} sender(s) of "
            f"{figures['sessions']} SMTP session(s) each, email-in replies held "
            f"{figures['smtp_reply_delay_ms']:g} ms: {figures['documents_per_second']} documents/s"
        )

    _report(as_json, measure, as_text)


@benchmark.command("backfill")
@_history_option(1_000_000, "Square payments in the workspace's history (its first sync).")
@_window_option
@_json_option
def backfill(history: int, window: int, as_json: bool) -> None:
    """A first sync of a long history through the DAG, then one window of new records on top.
    Runs in a state folder of its own; your data is not touched."""
    from ledgerlink.benchmarks.backfill import run_backfill_benchmark

    def as_text(figures: dict[str, Any]) -> Iterator[str]:
        yield from _stage_lines(
            f"first sync of {history:,} payments", figures["backfill_seconds"], figures["backfill_stages"]
        )
        yield from _stage_lines(
            f"window of {window:,} new payments", figures["window_seconds"], figures["window_stages"]
        )
        yield _peak_rss_line(figures)

    _report(
        as_json,
        lambda progress: run_backfill_benchmark(history, window, on_stage=_stage_reporter(progress)),
        as_text,
    )


@benchmark.command("all")
@_history_option(
    1_000_000, "Square payments in the large history (with a tenth as many invoices and customers)."
)
@click.option(
    "--small-history",
    type=click.IntRange(min=10),
    default=10_000,
    show_default=True,
    help="Square payments in the small history the same window is measured on.",
)
@_window_option
@click.option("--landing-rows", type=click.IntRange(min=1), default=100_000, show_default=True)
@_json_option
def all_figures(history: int, small_history: int, window: int, landing_rows: int, as_json: bool) -> None:
    """Every figure of the scale goals in one run: landing against plain COPY, a first sync of a
    long history through the DAG with each stage's time, and a window on a long and a short
    history. Runs in state folders of its own; your data is not touched."""
    from ledgerlink.benchmarks.backfill import run_benchmark

    def as_text(figures: dict[str, Any]) -> Iterator[str]:
        yield (
            f"landing {figures['landing_rows_per_second']:,} rows/s against plain COPY "
            f"{figures['copy_rows_per_second']:,} rows/s ({figures['landing_rows']:,} rows)"
        )
        yield from _stage_lines(
            f"first sync of {history:,} payments", figures["backfill_seconds"], figures["backfill_stages"]
        )
        yield (
            f"window of {window:,}: {figures['window_seconds_1m_history']:.1f} s on {history:,} of history, "
            f"{figures['window_seconds_10k_history']:.1f} s on {small_history:,}"
        )
        yield _peak_rss_line(figures)

    _report(
        as_json,
        lambda progress: run_benchmark(
            history, small_history, window, landing_rows, on_stage=_stage_reporter(progress)
        ),
        as_text,
    )
