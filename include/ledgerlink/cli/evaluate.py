"""``ledgerlink evaluate``: labelled benchmarks run through the pipeline's own code path."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def evaluate() -> None:
    """Measure the matcher on labelled data (landing, dbt, scorer and routing, as the DAG runs them)."""


@evaluate.command("bank-to-ledger")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with origin.csv, destination.csv and labels.csv.",
)
@click.option("--limit", type=int, default=None, help="Only the first N origin rows (a quick slice).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option(
    "--reviewer-labels",
    is_flag=True,
    help="Then let a simulated reviewer label half the records and measure the other half again.",
)
def bank_to_ledger(data_dir: Path, limit: int | None, as_json: bool, reviewer_labels: bool) -> None:
    """Origin rows as Square charges against destination rows as open QuickBooks invoices."""
    from ledgerlink.evaluation import evaluate_bank_to_ledger

    try:
        report = evaluate_bank_to_ledger(data_dir, limit, reviewer_labels)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(report.as_json()) if as_json else report.as_text())


@evaluate.command("generated")
@click.option("--seed", type=int, default=7, show_default=True, help="The sandbox generator's seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option(
    "--reviewer-labels",
    is_flag=True,
    help="Then let a simulated reviewer label half the records and measure the other half again.",
)
def generated(seed: int, as_json: bool, reviewer_labels: bool) -> None:
    """The sandbox generator's data: Qonto invoices against vendors, Square charges against invoices."""
    from ledgerlink.evaluation.generated import evaluate_generated

    try:
        figures = evaluate_generated(seed, reviewer_labels)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(figures) if as_json else json.dumps(figures, indent=2))
