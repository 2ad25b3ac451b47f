"""Incremental matching: after a first build, a window re-blocks and re-features only the records
it touched (new records, and the records a changed ledger entry, a reviewer's link or a new
exchange rate bears on), and what the incremental builds leave equals a full refresh of the same
data in every matching model and in the scorer's input.

Records land through the real landing path (COPY), on the module's own embedded warehouse. The
name-key cap is lowered to 3 so a rename can make a key selective with a handful of vendors.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt_cli import run_dbt

from ledgerlink.warehouse.landing import SourceRecord, land_records

WORKSPACE = "ws-incremental-matching"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PAYMENTS = 60
CUSTOMERS = 12
SCORING_MODELS = ["--select", "path:models/staging", "path:models/intermediate", "path:models/marts/scoring"]
KEY_CAP = ["--vars", json.dumps({"blocking_max_candidates_per_key": 3})]
#: Every model the window builds incrementally (or rebuilds with kept stamps), with its row key.
MATCHING_TABLES = {
    "intermediate.int_source_records_unioned": "workspace_id, source, source_record_id",
    "intermediate.int_source_records_rematched": "workspace_id, source, source_record_id",
    "intermediate.int_ledger_name_keys_counted": "workspace_id, candidate_type, name_key",
    "intermediate.int_match_candidates_blocked": "workspace_id, source, source_record_id, candidate_id",
    "intermediate.int_match_features_computed": "workspace_id, source, source_record_id, candidate_id",
    "marts.match_features": "match_pair_id",
}
#: The build stamps, which differ between an incremental and a full build by design.
STAMPS = {"built_snapshot_xmin", "rematched_snapshot_xmin", "selectivity_changed_snapshot_xmin"}
#: The models keyed on the record whose rows a build rewrites for the records it rematched.
REBUILT_PER_RECORD = [
    "intermediate.int_match_candidates_blocked",
    "intermediate.int_match_features_computed",
    "marts.match_features",
]


def _amount(index: int) -> int:
    """Amounts 20% apart, so each payment is within blocking's reach on amount (5%, or 15% for an
    invoice named with its initials, as "Customer 1" and "Customer 10" are) of its own invoice only."""
    return round(1000 * 1.2 ** (index % 60))


def _payment(index: int, currency: str = "EUR", amount: int | None = None) -> SourceRecord:
    payment_id = f"pay-{index}"
    payload = {
        "id": payment_id,
        "status": "COMPLETED",
        "created_at": (T0 - timedelta(days=index % 60)).isoformat(),
        "updated_at": T0.isoformat(),
        "amount_money": {"amount": amount or _amount(index), "currency": currency},
        "customer_id": f"cust-{index % CUSTOMERS}",
        "location_id": "L1",
    }
    return SourceRecord(payment_id, payload, T0)


def _square_customer(index: int) -> SourceRecord:
    payload = {"id": f"cust-{index}", "company_name": f"Customer {index} Ltd", "updated_at": T0.isoformat()}
    return SourceRecord(f"cust-{index}", payload, T0)


def _invoice(index: int, balance: int, customer_name: str | None = None, version: int = 0) -> SourceRecord:
    customer_ref: dict[str, str] = {"value": f"qc-{index % CUSTOMERS}"}
    if customer_name is not None:
        customer_ref["name"] = customer_name
    payload = {
        "Id": str(index),
        "DocNumber": f"INV-{index}",
        "TxnDate": (T0 - timedelta(days=index % 60 + 3)).date().isoformat(),
        "CustomerRef": customer_ref,
        "TotalAmt": _amount(index) / 100,
        "Balance": balance / 100,
        "CurrencyRef": {"value": "EUR"},
        "MetaData": {"LastUpdatedTime": (T0 + timedelta(hours=version)).isoformat()},
    }
    return SourceRecord(str(index), payload, T0 + timedelta(hours=version))


def _quickbooks_customer(index: int, name: str, version: int = 0) -> SourceRecord:
    updated = T0 + timedelta(hours=version)
    payload = {"Id": f"qc-{index}", "DisplayName": name, "MetaData": {"LastUpdatedTime": updated.isoformat()}}
    return SourceRecord(f"qc-{index}", payload, updated)


def _vendor(vendor_id: str, name: str, version: int = 0) -> SourceRecord:
    updated = T0 + timedelta(hours=version)
    payload = {"Id": vendor_id, "DisplayName": name, "MetaData": {"LastUpdatedTime": updated.isoformat()}}
    return SourceRecord(vendor_id, payload, updated)


def _supplier_invoice(invoice_id: str, supplier_name: str) -> SourceRecord:
    payload = {
        "id": invoice_id,
        "status": "awaiting_payment",
        "supplier_name": supplier_name,
        "total_amount": {"value": "120.00", "currency": "EUR"},
        "issue_date": "2026-02-20",
        "attachment_id": f"att-{invoice_id}",
        "updated_at": T0.isoformat(),
    }
    return SourceRecord(invoice_id, payload, T0)


def _land(conn: psycopg.Connection, table: str, records: list[SourceRecord]) -> None:
    with conn.transaction():
        land_records(conn, table, WORKSPACE, "test-run", records)


def _dbt(env: dict[str, str], work_dir: Path, *arguments: str) -> None:
    result = run_dbt("run", *arguments, *KEY_CAP, env=env, work_dir=work_dir, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _contents(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every matching table's rows in key order, without the build stamps."""
    contents = {}
    for table, key in MATCHING_TABLES.items():
        cursor = conn.execute(f"select * from {table} order by {key}")  # noqa: S608
        columns = [column.name for column in cursor.description or []]
        contents[table] = [
            {name: value for name, value in zip(columns, row, strict=True) if name not in STAMPS}
            for row in cursor.fetchall()
        ]
    return contents


def _rebuilt_records(conn: psycopg.Connection, table: str, since: str) -> set[str]:
    """The records with a row the builds after ``since`` wrote."""
    rows = conn.execute(
        f"select distinct source_record_id from {table} where built_snapshot_xmin > %s::xid8",  # noqa: S608
        (since,),
    ).fetchall()
    return {row[0] for row in rows}


def _rematched(conn: psycopg.Connection, since: str) -> set[str]:
    rows = conn.execute(
        "select source_record_id from intermediate.int_source_records_rematched"
        " where rematched_snapshot_xmin > %s::xid8",
        (since,),
    ).fetchall()
    return {row[0] for row in rows}


def _candidates(conn: psycopg.Connection, record_id: str) -> set[str]:
    rows = conn.execute(
        "select candidate_id from marts.match_features where source_record_id = %s", (record_id,)
    ).fetchall()
    return {row[0] for row in rows}


def _watermark(conn: psycopg.Connection) -> str:
    row = conn.execute("select max(built_snapshot_xmin)::text from marts.match_features").fetchone()
    assert row is not None
    return str(row[0])


def _record_link(conn: psycopg.Connection, record_id: str, vendor_id: str) -> None:
    """A reviewer pins ``vendor_id`` for the Qonto record, as the review page records it."""
    decision = conn.execute(
        """
        insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
            route, score, auto_link_threshold, review_threshold, candidates, explanation, model_version,
            decided_at, decided_by_run)
        select workspace_id, source, source_record_id, source_payload_sha256, 'refused', 0.1, 0.85, 0.55,
            '[]', '{}', 'test', %s, 'test-run'
        from intermediate.int_source_records_unioned where source_record_id = %s
        returning decision_id, source_payload_sha256
        """,
        (T0, record_id),
    ).fetchone()
    assert decision is not None
    conn.execute(
        """
        insert into ops.review_actions (workspace_id, decision_id, source, source_record_id,
            source_payload_sha256, action, candidate_type, candidate_id, actor, acted_at)
        values (%s, %s, 'qonto', %s, %s, 'pin', 'vendor', %s, 'reviewer', %s)
        """,
        (WORKSPACE, decision[0], record_id, decision[1], vendor_id, T0 + timedelta(days=1)),
    )


@pytest.mark.timeout(900)
def test_a_window_rematches_only_the_records_it_touched_and_equals_a_full_refresh(
    warehouse: dict[str, str], tmp_path: Path
) -> None:
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        conn.execute(
            "insert into ops.workspaces (workspace_id, display_name, email_in_address) values (%s, %s, %s)",
            (WORKSPACE, WORKSPACE, "inc-matching@qbodocs.com"),
        )
        _land(conn, "square_customers", [_square_customer(i) for i in range(CUSTOMERS)])
        _land(conn, "square_payments", [_payment(i) for i in range(PAYMENTS)])
        _land(conn, "square_payments", [_payment(777, "USD", 1100)])
        # invoice 11 carries no customer name: the ledger names it after its QuickBooks customer
        _land(
            conn,
            "qbo_invoices",
            [_invoice(i, _amount(i), f"Customer {i % CUSTOMERS} Ltd") for i in range(PAYMENTS)],
        )
        _land(conn, "qbo_invoices", [_invoice(PAYMENTS + 11, _amount(11))])
        _land(conn, "qbo_customers", [_quickbooks_customer(11, "Customer 11 Ltd")])
        # "supp" is held by four vendors, over the cap of 3: it narrows nothing yet
        _land(
            conn,
            "qbo_vendors",
            [
                _vendor("v-alpha", "Supplier Alpha"),
                _vendor("v-beta", "Supplier Beta"),
                _vendor("v-gamma", "Supplier Gamma"),
                _vendor("v-delta", "Supplier Delta"),
                _vendor("v-odd", "Northwind Traders"),
            ],
        )
        _land(
            conn,
            "qonto_supplier_invoices",
            [
                _supplier_invoice("q-alpha", "Supplier Alpha SAS"),
                _supplier_invoice("q-delta", "Supplier Delta SAS"),
                _supplier_invoice("q-epsilon", "Supplier Epsilon"),
                _supplier_invoice("q-zephyr", "Zephyr Cleaning SARL"),
                _supplier_invoice("q-nw-1", "NW Trd"),
                _supplier_invoice("q-nw-2", "NW Trd"),
            ],
        )

    _dbt(warehouse, tmp_path / "first", *SCORING_MODELS)
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        total_pairs = conn.execute("select count(*) from marts.match_features").fetchone()
        assert total_pairs is not None
        assert _candidates(conn, "q-epsilon") == {None}, "'supp' is over the cap: no candidate yet"
        assert "7" in _candidates(conn, "pay-7")
        assert _candidates(conn, "q-nw-2") == {None}
        before_window = _watermark(conn)

        # the window
        _land(conn, "square_payments", [_payment(i) for i in range(500, 503)])
        _land(conn, "qbo_vendors", [_vendor("v-zephyr", "Zephyr Cleaning")])  # a new vendor
        # a rename: "supp" drops to three vendors and becomes selective
        _land(conn, "qbo_vendors", [_vendor("v-delta", "Quantum Works", version=1)])
        _land(conn, "qbo_invoices", [_invoice(7, 0, "Customer 7 Ltd", version=1)])  # paid: closed
        _land(conn, "qbo_invoices", [_invoice(900, _amount(3) + 10, "Customer 3 Ltd")])  # a new open invoice
        # a new invoice 10% over payment 5, for the same customer: only blocking's initials key reaches it
        _land(conn, "qbo_invoices", [_invoice(905, round(_amount(5) * 1.1), "Customer 5 Ltd")])
        _land(conn, "qbo_customers", [_quickbooks_customer(11, "Renamed Eleven SA", version=1)])
        _record_link(conn, "q-nw-1", "v-odd")
        conn.execute(
            "insert into ops.exchange_rates (workspace_id, source_currency, target_currency, rate, rate_date,"
            " rate_source) values (%s, 'USD', 'EUR', %s, %s, 'quickbooks')",
            (WORKSPACE, Decimal("0.91"), date(2026, 1, 1)),
        )

    _dbt(warehouse, tmp_path / "second", *SCORING_MODELS)
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        rematched = _rematched(conn, before_window)
        # what the window must reach: the new payments, the records of the closed and the new
        # invoices, the supplier records of the renamed vendor and of the key it made selective,
        # the new vendor's record, both records of the reviewed name, the dollar payment
        must_rematch = {"pay-500", "pay-501", "pay-502", "pay-7", "pay-3", "pay-5", "q-delta", "q-epsilon"}
        must_rematch |= {"q-alpha"}
        must_rematch |= {"q-zephyr", "q-nw-1", "q-nw-2", "pay-777"}
        assert must_rematch <= rematched
        assert len(rematched) < (PAYMENTS + 7) / 2, rematched
        for table in REBUILT_PER_RECORD:
            assert _rebuilt_records(conn, table, before_window) <= rematched, table
        rewritten = conn.execute(
            "select count(*) from marts.match_features where built_snapshot_xmin > %s::xid8", (before_window,)
        ).fetchone()
        assert rewritten is not None
        assert rewritten[0] < total_pairs[0] / 2
        # what a user sees of it
        assert "7" not in _candidates(conn, "pay-7"), "a paid invoice lingers"
        assert "905" in _candidates(conn, "pay-5"), "a new invoice named alike, 10% off, is missed"
        assert _candidates(conn, "q-zephyr") == {"v-zephyr"}
        assert _candidates(conn, "q-epsilon") == {"v-alpha", "v-beta", "v-gamma"}
        assert "v-delta" not in _candidates(conn, "q-delta")
        assert "v-odd" in _candidates(conn, "q-nw-2"), (
            "the reviewer's link reaches the next record of the name"
        )
        after_window = _watermark(conn)

    # a window with nothing in it rebuilds nothing
    _dbt(warehouse, tmp_path / "idle", *SCORING_MODELS)
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        assert _rematched(conn, after_window) == set()
        for table in REBUILT_PER_RECORD:
            assert _rebuilt_records(conn, table, after_window) == set(), table
        incremental = _contents(conn)

    _dbt(warehouse, tmp_path / "full", "--full-refresh", *SCORING_MODELS)
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        full_refresh = _contents(conn)
    assert incremental["marts.match_features"], "nothing was built"
    for table, rows in full_refresh.items():
        assert incremental[table] == rows, table
