"""The bank-to-ledger benchmark through the pipeline: origin rows play Square charges (the memo as
the customer's name), destination rows play open QuickBooks invoices (the memo as the customer),
all in pounds sterling. ``labels.csv`` is read here, after the decisions are made, and never
reaches the matcher."""

from __future__ import annotations

import csv
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledgerlink.evaluation.pipeline import (
    blocking_recall,
    build_scoring_models,
    land,
    new_run_id,
    prepare_warehouse,
    reset_workspace,
    route_and_read,
)
from ledgerlink.evaluation.report import EvaluationReport, summarise
from ledgerlink.evaluation.reviewer import relearn_from_reviewer
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import SourceRecord
from ledgerlink.workspaces import Workspace

WORKSPACE_ID = "bench-bank-to-ledger"
CURRENCY = "GBP"


def _rows(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows if limit is None else rows[:limit]


def _minor(amount: str) -> int:
    return int((Decimal(amount) * 100).to_integral_value())


def square_records(origin: list[dict[str, str]]) -> dict[str, list[SourceRecord]]:
    """One completed Square payment per origin row, with a customer named by its memo."""
    payments, customers = [], []
    for row in origin:
        customer_id = f"cust-{row['id']}"
        created_at = f"{row['transaction_date']}T12:00:00Z"
        customers.append(
            SourceRecord(customer_id, {"id": customer_id, "company_name": row["memo"], "version": 1}, None)
        )
        money = {"amount": _minor(row["amount"]), "currency": CURRENCY}
        payment = {
            "id": row["id"],
            "created_at": created_at,
            "updated_at": created_at,
            "amount_money": money,
            "total_money": money,
            "status": "COMPLETED",
            "location_id": "BENCH",
            "customer_id": customer_id,
        }
        payments.append(SourceRecord(row["id"], payment, None))
    return {"square_payments": payments, "square_customers": customers}


def quickbooks_records(destination: list[dict[str, str]]) -> dict[str, list[SourceRecord]]:
    """One open (unpaid) QuickBooks invoice per destination row, for a customer named by its memo."""
    invoices, customers = [], []
    for row in destination:
        customer_id = f"c-{row['id']}"
        customers.append(
            SourceRecord(customer_id, {"Id": customer_id, "DisplayName": row["memo"], "Active": True}, None)
        )
        amount = float(Decimal(row["amount"]))
        invoice = {
            "Id": row["id"],
            "TxnDate": row["transaction_date"],
            "CustomerRef": {"value": customer_id, "name": row["memo"]},
            "TotalAmt": amount,
            "Balance": amount,
            "CurrencyRef": {"value": CURRENCY, "name": "British Pound Sterling"},
        }
        invoices.append(SourceRecord(row["id"], invoice, None))
    return {"qbo_invoices": invoices, "qbo_customers": customers}


def evaluate_bank_to_ledger(
    data_dir: Path, limit: int | None = None, reviewer_labels: bool = False
) -> EvaluationReport:
    """Run the benchmark in ``data_dir`` (origin.csv, destination.csv, labels.csv) through landing,
    dbt, the scorer and routing, then score the decisions against the labels. ``limit`` keeps
    the first origin rows and their true destinations (a quick slice). With ``reviewer_labels``,
    then run the simulated reviewer protocol (:mod:`ledgerlink.evaluation.reviewer`) and add the
    held-out half's figures before and after the labels."""
    started = time.perf_counter()
    origin = _rows(data_dir / "origin.csv", limit)
    destination = _rows(data_dir / "destination.csv")
    settings, address = prepare_warehouse()
    workspace = Workspace(
        workspace_id=WORKSPACE_ID,
        display_name="Benchmark: bank-to-ledger",
        email_in_address="bench-bank-to-ledger@qbodocs.com",
        home_currency=CURRENCY,
        is_active=False,
    )
    run_id = new_run_id("bank-to-ledger")
    if limit is not None:
        # the slice's true destinations plus as many others, so the matcher still has to choose
        wanted = {
            row["destination_id"]
            for row in _labels(data_dir)
            if row["origin_id"] in {r["id"] for r in origin}
        }
        others = [row for row in destination if row["id"] not in wanted][: len(origin)]
        destination = [row for row in destination if row["id"] in wanted] + others
    with connect(address) as conn:
        reset_workspace(conn, workspace)
        landed = land(
            conn, WORKSPACE_ID, run_id, {**square_records(origin), **quickbooks_records(destination)}
        )
    landed_seconds = time.perf_counter() - started
    build_scoring_models(settings, address)
    built_seconds = time.perf_counter() - started
    with connect(address) as conn:
        scoring: dict[str, float] = {}
        decisions = route_and_read(conn, WORKSPACE_ID, run_id, scoring)
        seconds = time.perf_counter() - started
        # ground truth enters only now, after every decision is written
        truth = {row["origin_id"]: row["destination_id"] for row in _labels(data_dir)}
        truth = {
            record_id: truth[record_id] for record_id in (row["id"] for row in origin) if record_id in truth
        }
        extra: dict[str, Any] = blocking_recall(conn, WORKSPACE_ID, truth)
        if reviewer_labels:
            entries = {record: ("invoice", entry) for record, entry in truth.items()}
            extra["reviewer_labels"] = relearn_from_reviewer(
                conn, WORKSPACE_ID, "bank-to-ledger", decisions, entries
            )
    extra["landed"] = landed
    extra["stage_seconds"] = {
        "land": round(landed_seconds, 2),
        "dbt": round(built_seconds - landed_seconds, 2),
        "score_and_route": round(seconds - built_seconds, 2),
    }
    extra["scoring"] = scoring
    return summarise("bank-to-ledger", decisions, truth, seconds, extra)


def _labels(data_dir: Path) -> list[dict[str, str]]:
    return _rows(data_dir / "labels.csv")
