"""The sandbox generator's data through the pipeline: Qonto supplier invoices against QuickBooks
vendors, Square charges against open QuickBooks invoices, landed in ``raw.*`` exactly as the
sandbox APIs serve them. ``ground_truth.json`` is read here, after the decisions are made, and
never reaches the matcher."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerlink.evaluation.pipeline import (
    blocking_recall,
    build_scoring_models,
    land,
    new_run_id,
    prepare_warehouse,
    reset_workspace,
    route_and_read,
)
from ledgerlink.evaluation.report import Decision, summarise
from ledgerlink.evaluation.reviewer import TrueEntry, relearn_from_reviewer
from ledgerlink.settings import Settings
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.warehouse.landing import SourceRecord
from ledgerlink.workspaces import Workspace

if TYPE_CHECKING:
    from ledgerlink.sandbox.fixtures import Fixtures

WORKSPACE_ID = "bench-generated"
_QUICKBOOKS_TABLES = {"Vendor": "qbo_vendors", "Customer": "qbo_customers", "Invoice": "qbo_invoices"}


def _records(payloads: Iterable[dict[str, Any]], key: str = "id") -> list[SourceRecord]:
    return [SourceRecord(str(payload[key]), payload, None) for payload in payloads]


def land_fixtures(
    settings: Settings, address: ServerAddress, workspace: Workspace, run_id: str, fixtures: Fixtures
) -> None:
    """Reset ``workspace``, land the generator's ``fixtures`` in it as the sandbox APIs serve them,
    and build the scorer's input with dbt."""
    records = {
        "qonto_supplier_invoices": _records(fixtures.qonto_supplier_invoices),
        "square_payments": _records(fixtures.square_payments),
        "square_customers": _records(fixtures.square_customers),
        **{
            table: _records(fixtures.quickbooks.get(entity, []), "Id")
            for entity, table in _QUICKBOOKS_TABLES.items()
        },
    }
    with connect(address) as conn:
        reset_workspace(conn, workspace)
        land(conn, workspace.workspace_id, run_id, records)
    build_scoring_models(settings, address)


def evaluate_generated(seed: int, reviewer_labels: bool = False) -> dict[str, Any]:
    """Generate the sandbox's data for ``seed``, run it through landing, dbt, the scorer and
    routing, and compare the decisions with the generator's ground truth, per source. With
    ``reviewer_labels``, then run the simulated reviewer protocol
    (:mod:`ledgerlink.evaluation.reviewer`) and add the held-out half's figures before and after."""
    from ledgerlink.sandbox.fixtures import load_fixtures
    from ledgerlink.sandbox.generator import generate_fixtures

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ledgerlink-generated-") as folder:
        fixtures = load_fixtures(generate_fixtures(Path(folder) / "fixtures", seed))
    settings, address = prepare_warehouse()
    workspace = Workspace(
        workspace_id=WORKSPACE_ID,
        display_name=f"Benchmark: generated data, seed {seed}",
        email_in_address="bench-generated@qbodocs.com",
        home_currency=fixtures.manifest.get("home_currency", "EUR"),
        is_active=False,
    )
    run_id = new_run_id(f"generated-{seed}")
    land_fixtures(settings, address, workspace, run_id, fixtures)
    with connect(address) as conn:
        decisions = route_and_read(conn, WORKSPACE_ID, run_id)
        seconds = time.perf_counter() - started
        truth_by_source = {
            "qonto": {record: vendor for record, vendor in fixtures.ground_truth["qonto"].items() if vendor},
            "square": {
                record: truth["invoice_id"]
                for record, truth in fixtures.ground_truth["square"].items()
                if truth.get("invoice_id")
            },
        }
        recall = {
            source: blocking_recall(conn, WORKSPACE_ID, truth) for source, truth in truth_by_source.items()
        }
        relearned = None
        if reviewer_labels:
            entries: dict[str, TrueEntry] = {
                **{r: ("vendor", v) if v else None for r, v in fixtures.ground_truth["qonto"].items()},
                **{
                    r: ("invoice", t["invoice_id"]) if t.get("invoice_id") else None
                    for r, t in fixtures.ground_truth["square"].items()
                },
            }
            everything_truth = {**truth_by_source["qonto"], **truth_by_source["square"]}

            def measure(label: str, chosen: list[Decision]) -> dict[str, Any]:
                figures = summarise(label, chosen, everything_truth, 0.0).as_json()
                by_source = {}
                for source in ("qonto", "square"):
                    ids = fixtures.ground_truth[source]
                    rows = [d for d in chosen if d.source_record_id in ids]
                    by_source[source] = summarise(label, rows, truth_by_source[source], 0.0).as_json()
                return {**figures, "by_source": by_source}

            relearned = relearn_from_reviewer(
                conn, WORKSPACE_ID, f"generated-{seed}", decisions, entries, measure
            )
    by_source = {}
    for source, ids in (
        ("qonto", fixtures.ground_truth["qonto"]),
        ("square", fixtures.ground_truth["square"]),
    ):
        chosen = [decision for decision in decisions if decision.source_record_id in ids]
        report = summarise(f"generated-{source}", chosen, truth_by_source[source], seconds, recall[source])
        by_source[source] = report.as_json()
    everything = summarise(
        f"generated (seed {seed})",
        decisions,
        {**truth_by_source["qonto"], **truth_by_source["square"]},
        seconds,
        {"seed": seed},
    ).as_json()
    if relearned is not None:
        everything["reviewer_labels"] = relearned
    return {**everything, "by_source": by_source}
