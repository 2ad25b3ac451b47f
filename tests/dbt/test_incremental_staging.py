"""Incremental staging: after a first build, a window re-stages only the records it landed (and
the payments whose customer changed), and what the incremental builds leave equals a full
refresh of the same raw data, down to the scorer's input.

Records land through the real landing path (COPY), on the module's own embedded warehouse.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt_cli import run_dbt

from ledgerlink.warehouse.landing import SourceRecord, land_records

WORKSPACE = "ws-incremental"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HISTORY_PAYMENTS = 120
CUSTOMERS = 12
#: The scorer's input and everything upstream of it.
SCORING_MODELS = ["--select", "path:models/staging", "path:models/intermediate", "path:models/marts/scoring"]
STAGING_TABLES = {
    "stg_square__payments": "payment_id",
    "stg_square__customers": "customer_id",
    "stg_square__refunds": "refund_id",
    "stg_qonto__supplier_invoices": "supplier_invoice_id",
    "stg_qonto__attachments": "attachment_id",
    "stg_quickbooks__invoices": "invoice_id",
    "stg_quickbooks__customers": "customer_id",
    "stg_quickbooks__vendors": "vendor_id",
    "stg_quickbooks__accounts": "account_id",
}


def _customer(index: int, company: str | None = None) -> SourceRecord:
    customer_id = f"cust-{index}"
    payload = {
        "id": customer_id,
        "company_name": company or f"Customer {index} Ltd",
        "given_name": "Ann",
        "version": 1 if company is None else 2,
        "updated_at": T0.isoformat(),
    }
    return SourceRecord(customer_id, payload, T0 if company is None else T0 + timedelta(days=1))


def _payment(index: int, status: str = "COMPLETED", updated_at: datetime = T0) -> SourceRecord:
    payment_id = f"pay-{index}"
    created = T0 - timedelta(days=index % 60)
    payload = {
        "id": payment_id,
        "status": status,
        "created_at": created.isoformat(),
        "updated_at": updated_at.isoformat(),
        "amount_money": {"amount": 1000 + index, "currency": "EUR"},
        "total_money": {"amount": 1000 + index, "currency": "EUR"},
        "customer_id": f"cust-{index % CUSTOMERS}",
        "location_id": "L1",
    }
    return SourceRecord(payment_id, payload, updated_at)


def _invoice(index: int, balance: float) -> SourceRecord:
    payload = {
        "Id": str(index),
        "DocNumber": f"INV-{index}",
        "TxnDate": (T0 - timedelta(days=index % 60 + 3)).date().isoformat(),
        "CustomerRef": {"value": f"qc-{index % CUSTOMERS}", "name": f"Customer {index % CUSTOMERS} Ltd"},
        "TotalAmt": (1000 + index) / 100,
        "Balance": balance,
        "CurrencyRef": {"value": "EUR"},
        "MetaData": {"LastUpdatedTime": T0.isoformat()},
    }
    return SourceRecord(str(index), payload, T0)


def _land(conn: psycopg.Connection, table: str, records: list[SourceRecord]) -> None:
    with conn.transaction():
        land_records(conn, table, WORKSPACE, "test-run", records)


def _rows_affected(work_dir: Path) -> dict[str, int]:
    results = json.loads((work_dir / "target" / "run_results.json").read_text(encoding="utf-8"))
    return {
        result["unique_id"].rsplit(".", 1)[-1]: result["adapter_response"].get("rows_affected")
        for result in results["results"]
        if result["unique_id"].startswith("model.")
    }


def _dbt(env: dict[str, str], work_dir: Path, *arguments: str) -> dict[str, int]:
    result = run_dbt("run", *arguments, env=env, work_dir=work_dir, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return _rows_affected(work_dir)


def _staged(conn: psycopg.Connection) -> dict[str, Any]:
    """Every staging table's rows and the scorer's input, without the build watermark."""
    contents: dict[str, Any] = {}
    for table, key in STAGING_TABLES.items():
        cursor = conn.execute(f"select * from staging.{table} order by workspace_id, {key}")  # noqa: S608
        columns = [column.name for column in cursor.description or []]
        contents[table] = [
            {name: value for name, value in zip(columns, row, strict=True) if name != "staged_snapshot_xmin"}
            for row in cursor.fetchall()
        ]
    # the scorer's input without its own build stamp (tests/dbt/test_incremental_matching.py)
    cursor = conn.execute("select * from marts.match_features order by match_pair_id")
    columns = [column.name for column in cursor.description or []]
    contents["match_features"] = [
        {name: value for name, value in zip(columns, row, strict=True) if name != "built_snapshot_xmin"}
        for row in cursor.fetchall()
    ]
    return contents


def _restaged(conn: psycopg.Connection, table: str, key: str, since: str) -> set[str]:
    rows = conn.execute(
        f"select {key} from staging.{table} where staged_snapshot_xmin > %s::xid8",  # noqa: S608
        (since,),
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.timeout(400)
def test_a_window_restages_only_what_it_landed_and_equals_a_full_refresh(
    warehouse: dict[str, str], tmp_path: Path
) -> None:
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        conn.execute(
            "insert into ops.workspaces (workspace_id, display_name, email_in_address) values (%s, %s, %s)",
            (WORKSPACE, WORKSPACE, "inc@qbodocs.com"),
        )
        _land(conn, "square_customers", [_customer(i) for i in range(CUSTOMERS)])
        _land(conn, "square_payments", [_payment(i, "APPROVED") for i in range(HISTORY_PAYMENTS)])
        _land(conn, "square_payments", [_payment(i, updated_at=T0 + timedelta(hours=1)) for i in range(60)])
        _land(conn, "qbo_invoices", [_invoice(i, (1000 + i) / 100) for i in range(HISTORY_PAYMENTS)])

    first = _dbt(warehouse, tmp_path / "first", *SCORING_MODELS)
    # the first build stages every record, each once, from every version landed
    assert first["stg_square__payments"] == HISTORY_PAYMENTS
    assert first["stg_square__customers"] == CUSTOMERS
    assert first["stg_quickbooks__invoices"] == HISTORY_PAYMENTS

    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        watermark = conn.execute(
            "select max(staged_snapshot_xmin)::text from staging.stg_square__payments"
        ).fetchone()
        assert watermark is not None
        # the window: 3 new payments; pay-70 completed; a late, older version of pay-5 (the
        # staged, newer one must stay); customer 4 renamed; invoice 7 paid
        _land(conn, "square_payments", [_payment(i) for i in range(500, 503)])
        _land(conn, "square_payments", [_payment(70, updated_at=T0 + timedelta(hours=2))])
        _land(conn, "square_payments", [_payment(5, "PENDING", updated_at=T0 - timedelta(hours=1))])
        _land(conn, "square_customers", [_customer(4, "Renamed Four SARL")])
        _land(conn, "qbo_invoices", [_invoice(7, 0.0)])
        # a version whose landing is still open while the next build runs: that build cannot see
        # it, the one after must stage it (its landed_at is older than anything that build staged)
        open_landing = psycopg.connect(warehouse["LEDGERLINK_CONNINFO"])
        land_records(open_landing, "square_payments", WORKSPACE, "test-run", [_payment(900)])

    second = _dbt(warehouse, tmp_path / "second", *SCORING_MODELS)
    customer_4_payments = {f"pay-{i}" for i in range(HISTORY_PAYMENTS) if i % CUSTOMERS == 4}
    window_payments = {"pay-500", "pay-501", "pay-502", "pay-70", "pay-5"}
    assert second["stg_square__payments"] == len(window_payments | customer_4_payments)
    assert second["stg_square__customers"] == 1
    assert second["stg_quickbooks__invoices"] == 1
    assert second["stg_qonto__supplier_invoices"] == 0
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        assert _restaged(conn, "stg_square__payments", "payment_id", watermark[0]) == (
            window_payments | customer_4_payments
        )
        statuses = dict(
            conn.execute(
                "select payment_id, payment_status from staging.stg_square__payments"
                " where payment_id in ('pay-5', 'pay-70', 'pay-500', 'pay-900')"
            ).fetchall()
        )
        assert statuses == {"pay-5": "COMPLETED", "pay-70": "COMPLETED", "pay-500": "COMPLETED"}
        names = conn.execute(
            "select record_counterparty_name from marts.match_features where source_record_id = 'pay-4'"
        ).fetchall()
        assert {name for (name,) in names} == {"Renamed Four SARL"}

    open_landing.commit()
    open_landing.close()
    third = _dbt(warehouse, tmp_path / "third", *SCORING_MODELS)
    assert third["stg_square__payments"] == 1
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        assert conn.execute(
            "select payment_status from staging.stg_square__payments where payment_id = 'pay-900'"
        ).fetchall() == [("COMPLETED",)]
        incremental = _staged(conn)

    _dbt(warehouse, tmp_path / "full", "--full-refresh", *SCORING_MODELS)
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        full_refresh = _staged(conn)
    assert incremental["stg_square__payments"], "nothing was staged"
    for name, rows in full_refresh.items():
        assert incremental[name] == rows, name


@pytest.mark.timeout(300)
def test_a_windows_data_tests_check_the_rows_its_build_wrote(
    warehouse: dict[str, str], tmp_path: Path
) -> None:
    """The data tests of an incremental model check the rows its last build wrote
    (macros/get_where_subquery.sql): a bad row the window wrote fails them, the history is not
    read again (a full refresh writes, and so tests, every row)."""
    not_null_test = ["--select", "not_null_stg_square__payments_source_payload_sha256"]
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
        conn.execute(
            "insert into ops.workspaces (workspace_id, display_name, email_in_address) values (%s, %s, %s)"
            " on conflict do nothing",
            (WORKSPACE, WORKSPACE, "inc@qbodocs.com"),
        )
        _land(conn, "square_payments", [_payment(i) for i in range(700, 703)])
    _dbt(warehouse, tmp_path / "window", "--select", "stg_square__payments")
    assert run_dbt("test", *not_null_test, env=warehouse, work_dir=tmp_path / "test").returncode == 0

    def planted(stamp: str, work_dir: str) -> int:
        with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"], autocommit=True) as conn:
            conn.execute(
                f"update staging.stg_square__payments set source_payload_sha256 = null, staged_snapshot_xmin = ({stamp})"  # noqa: S608
                " where payment_id = 'pay-700'"
            )
        result = run_dbt("test", *not_null_test, env=warehouse, work_dir=tmp_path / work_dir)
        return result.returncode

    # a null among the rows of the last build is caught; the same row stamped by an earlier
    # build is history, which a window's test does not read again
    newest = "select max(staged_snapshot_xmin) from staging.stg_square__payments"
    assert planted(newest, "newest") == 1
    assert planted("'1'::xid8", "earlier") == 0
