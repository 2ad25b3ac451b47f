"""``ledgerlink sandbox``: generate fixture data, and serve it through the Qonto, Square and
QuickBooks sandboxes plus the email-in SMTP server."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from ledgerlink.settings import load_settings


@click.group()
def sandbox() -> None:
    """Local stand-ins for Qonto, Square, QuickBooks Online and its email-in address."""


def _seed_dir(seed: int) -> Path:
    return load_settings().fixtures_dir / f"seed-{seed}"


@sandbox.command()
@click.option("--seed", default=7, show_default=True, help="Seed: the same seed writes the same files.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Target folder (default: <state>/fixtures/seed-<seed>). A previous fixture folder is replaced.",
)
@click.option("--qonto-invoices", default=120, show_default=True, type=click.IntRange(min=0))
@click.option("--square-payments", default=150, show_default=True, type=click.IntRange(min=0))
@click.option("--customers", default=60, show_default=True, type=click.IntRange(min=4))
@click.option("--open-invoices", default=30, show_default=True, type=click.IntRange(min=0), help="Open invoices no charge pays.")  # fmt: skip
@click.option("--paid-invoices", default=30, show_default=True, type=click.IntRange(min=0))
@click.option("--invoiced-payments", default=None, type=click.IntRange(min=0), help="Charges that pay an invoice (default: about 83%); the rest are counter sales.")  # fmt: skip
@click.option("--figures", is_flag=True, help="Also print seconds, rows and rows per second (one JSON line on stderr).")  # fmt: skip
def generate(
    seed: int,
    out_dir: Path | None,
    qonto_invoices: int,
    square_payments: int,
    customers: int,
    open_invoices: int,
    paid_invoices: int,
    invoiced_payments: int | None,
    figures: bool,
) -> None:
    """Write a deterministic fixture directory and print its path."""
    import json

    from ledgerlink.sandbox.generator import measure_generation

    target = out_dir or _seed_dir(seed)
    try:
        generation = measure_generation(
            target,
            seed,
            qonto_invoices=qonto_invoices,
            square_payments=square_payments,
            customers=customers,
            open_invoices_without_charge=open_invoices,
            paid_invoices=paid_invoices,
            invoiced_payments=invoiced_payments,
        )
    except (FileExistsError, NotADirectoryError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if figures:
        line = {
            "seconds": round(generation.seconds, 2),
            "rows": generation.total_rows,
            "rows_per_second": round(generation.rows_per_second),
            "rows_by_file": generation.rows,
        }
        click.echo(json.dumps(line), err=True)
    click.echo(str(generation.out_dir.resolve()))


@sandbox.command()
@click.option(
    "--fixtures",
    "fixtures_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Serve this fixture directory.",
)
@click.option("--seed", type=int, default=None, help="Serve generated data for this seed (default 7).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--qonto-port", default=8701, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")  # fmt: skip
@click.option("--square-port", default=8702, show_default=True, type=click.IntRange(0, 65535))
@click.option("--quickbooks-port", default=8703, show_default=True, type=click.IntRange(0, 65535))
@click.option("--smtp-port", default=8725, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--mailbox",
    "mailbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where email-in stores received messages (default: <state>/mailbox).",
)
@click.option("--attachment-url-ttl", default=1800.0, show_default=True, help="Seconds a Qonto download URL lives.")  # fmt: skip
@click.option("--webhook-url", default=None, help="Square webhook notification URL reported to clients.")
@click.option(
    "--smtp-reply-delay-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Hold each email-in SMTP reply this long, as a server across the internet would (0: off).",
)
@click.option(
    "--qonto-rate-limits",
    default="off",
    show_default=True,
    help="Refuse Qonto API requests over these limits with 429, as Qonto does (its documented"
    " ones: 1000/10s,10000/10min).",
)
@click.option(
    "--qonto-retry-after/--no-qonto-retry-after",
    default=True,
    show_default=True,
    help="Whether a Qonto 429 carries Retry-After (unconfirmed for the real API).",
)
def serve(
    fixtures_dir: Path | None,
    seed: int | None,
    host: str,
    qonto_port: int,
    square_port: int,
    quickbooks_port: int,
    smtp_port: int,
    mailbox_dir: Path | None,
    attachment_url_ttl: float,
    webhook_url: str | None,
    smtp_reply_delay_ms: float,
    qonto_rate_limits: str,
    qonto_retry_after: bool,
) -> None:
    """Serve until Ctrl-C or SIGTERM. Once every server is up, print exactly one JSON line on
    stdout with base URLs, tokens and addresses; everything else goes to stderr."""
    from ledgerlink.sandbox.common import DEFAULT_WEBHOOK_NOTIFICATION_URL, SandboxOptions
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.sandbox.rate_limits import RateLimitGate
    from ledgerlink.sandbox.services import SandboxPorts, run_sandbox
    from ledgerlink.sources.pacing import parse_rate_limits

    try:
        qonto_limits = parse_rate_limits(qonto_rate_limits)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--qonto-rate-limits") from error

    if fixtures_dir is not None and seed is not None:
        raise click.UsageError("give --fixtures or --seed, not both")
    if fixtures_dir is None:
        seed = 7 if seed is None else seed
        fixtures_dir = _seed_dir(seed)
        if not (fixtures_dir / "manifest.json").exists():
            click.echo(f"generating fixtures for seed {seed} into {fixtures_dir}", err=True)
            generate_fixtures(fixtures_dir, seed)
    mailbox = mailbox_dir or load_settings().mailbox_dir
    options = SandboxOptions(
        attachment_url_ttl_seconds=attachment_url_ttl,
        webhook_notification_url=webhook_url or DEFAULT_WEBHOOK_NOTIFICATION_URL,
        email_in_reply_delay_seconds=smtp_reply_delay_ms / 1000,
        qonto_rate_limits=RateLimitGate(qonto_limits, retry_after=qonto_retry_after),
    )
    ports = SandboxPorts(qonto_port, square_port, quickbooks_port, smtp_port)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with run_sandbox(fixtures_dir, mailbox, host=host, ports=ports, options=options) as endpoints:
            sys.stdout.write(endpoints.json_line() + "\n")
            sys.stdout.flush()
            click.echo("sandbox running; Ctrl-C to stop", err=True)
            while not stop.wait(0.5):
                pass
    except OSError as error:
        raise click.ClickException(f"could not start the sandbox: {error}") from error
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    click.echo("sandbox stopped", err=True)
