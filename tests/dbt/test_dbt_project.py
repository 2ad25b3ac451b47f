"""The dbt project builds on a real (embedded) warehouse and gives the scorer every source record
with the right candidates; its SQL lints clean.

One embedded PostgreSQL per module, in a temporary state folder, so the tests never touch a
developer's warehouse. Both tests together stay well under two minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from dbt_cli import run_dbt
from psycopg.types.json import Jsonb

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

WORKSPACE = "ws-bakery"
OTHER_WORKSPACE = "ws-other"
LANDED = datetime(2025, 3, 12, 6, 0, tzinfo=UTC)


def _sha(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _land(
    conn: psycopg.Connection,
    table: str,
    workspace_id: str,
    payload: dict[str, Any],
    record_id: str,
    updated_at: datetime | None = None,
    landed_at: datetime = LANDED,
    **extra: str,
) -> str:
    sha = _sha(payload)
    columns = [
        "workspace_id",
        "source_record_id",
        "payload",
        "payload_sha256",
        "source_updated_at",
        "landed_at",
    ]
    values: list[Any] = [workspace_id, record_id, Jsonb(payload), sha, updated_at, landed_at]
    columns += [*extra, "landed_by_run"]
    values += [*extra.values(), "test-run"]
    conn.execute(
        f"insert into raw.{table} ({', '.join(columns)}) values ({', '.join(['%s'] * len(values))})",  # noqa: S608
        values,
    )
    return sha


def _qonto_invoice(invoice_id: str, supplier_name: str | None, value: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "status": fields.pop("status", "awaiting_payment"),
        "supplier_name": supplier_name,
        "invoice_number": fields.pop("invoice_number", None),
        "total_amount": {"value": value, "currency": "EUR"},
        "issue_date": fields.pop("issue_date", "2025-03-01"),
        "attachment_id": f"att-{invoice_id}",
        "file_name": f"{invoice_id}.pdf",
        "created_at": "2025-03-01T09:00:00.000Z",
        "updated_at": fields.pop("updated_at", "2025-03-01T09:00:00.000Z"),
        "has_duplicates": False,
        "is_credit_note": False,
        **fields,
    }


def _square_payment(payment_id: str, amount: int, created_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": payment_id,
        "created_at": created_at,
        "updated_at": created_at,
        "amount_money": {"amount": amount, "currency": "EUR"},
        "total_money": {"amount": amount, "currency": "EUR"},
        "status": fields.pop("status", "COMPLETED"),
        "location_id": "L1",
        **fields,
    }


def _qbo_invoice(
    invoice_id: str, doc_number: str, customer: str, total: float, balance: float, txn_date: str
) -> dict[str, Any]:
    return {
        "Id": invoice_id,
        "DocNumber": doc_number,
        "TxnDate": txn_date,
        "DueDate": txn_date,
        "CustomerRef": {"value": f"c-{customer[:4].lower()}", "name": customer},
        "TotalAmt": total,
        "Balance": balance,
        "CurrencyRef": {"value": "EUR", "name": "Euro"},
        "MetaData": {"LastUpdatedTime": "2025-03-02T10:00:00-08:00"},
    }


def _seed(conn: psycopg.Connection) -> dict[str, str]:
    """A small, realistic world; returns the payload hashes the assertions need."""
    for workspace_id in (WORKSPACE, OTHER_WORKSPACE):
        conn.execute(
            "insert into ops.workspaces (workspace_id, display_name, email_in_address) values (%s, %s, %s)",
            (workspace_id, workspace_id, f"{workspace_id}@qbodocs.com"),
        )
    hashes: dict[str, str] = {}

    # Qonto: q-dupont changed after its first landing (OCR fixed the name and the amount)
    _land(
        conn,
        "qonto_supplier_invoices",
        WORKSPACE,
        _qonto_invoice("q-dupont", "BOULANGERIE DUPON", "100.00"),
        "q-dupont",
        updated_at=datetime(2025, 3, 1, 9, tzinfo=UTC),
        landed_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
    )
    hashes["q-dupont"] = _land(
        conn,
        "qonto_supplier_invoices",
        WORKSPACE,
        _qonto_invoice("q-dupont", "BOULANGERIE DUPONT", "120.50", updated_at="2025-03-02T09:00:00.000Z"),
        "q-dupont",
        updated_at=datetime(2025, 3, 2, 9, tzinfo=UTC),
    )
    # NFD spelling on the invoice, NFC in the ledger
    _land(
        conn,
        "qonto_supplier_invoices",
        WORKSPACE,
        _qonto_invoice("q-martin", "E\u0301lectricite\u0301 Martin", "980.00", invoice_number="F-2025-11"),
        "q-martin",
    )
    _land(conn, "qonto_supplier_invoices", WORKSPACE, _qonto_invoice("q-unread", None, "42.00"), "q-unread")
    _land(
        conn,
        "qonto_attachments",
        WORKSPACE,
        {
            "id": "att-q-dupont",
            "file_name": "q-dupont.pdf",
            "file_size": "52110",
            "file_content_type": "application/pdf",
        },
        "att-q-dupont",
        blob_sha256="ab" * 32,
    )

    # QuickBooks vendors; the other workspace has a namesake that must never be offered
    vendors: list[tuple[str, dict[str, Any]]] = [
        (WORKSPACE, {"Id": "56", "DisplayName": "Boulangerie Dupont SARL", "Active": True}),
        (WORKSPACE, {"Id": "57", "DisplayName": "Électricité Martin SAS", "Active": True}),
        (WORKSPACE, {"Id": "58", "DisplayName": "Dupont Old Bakery Ltd", "Active": False}),
        (WORKSPACE, {"Id": "59", "DisplayName": "Globex Corporation", "Active": True}),
        (OTHER_WORKSPACE, {"Id": "56", "DisplayName": "Boulangerie Dupont", "Active": True}),
    ]
    for workspace_id, vendor in vendors:
        vendor |= {
            "CurrencyRef": {"value": "EUR"},
            "MetaData": {"LastUpdatedTime": "2025-01-05T10:00:00-08:00"},
        }
        _land(conn, "qbo_vendors", workspace_id, vendor, str(vendor["Id"]))
    _land(
        conn,
        "qbo_customers",
        WORKSPACE,
        {
            "Id": "c-blue",
            "DisplayName": "Blue Bottle Coffee",
            "CompanyName": "Blue Bottle Coffee Inc",
            "Active": True,
        },
        "c-blue",
    )
    _land(conn, "qbo_accounts", WORKSPACE, {"Id": "1", "Name": "Checking", "AccountType": "Bank"}, "1")

    # QuickBooks invoices: one open for Blue Bottle, one already paid, one open for Initech
    invoices = [
        _qbo_invoice("1001", "1001", "Blue Bottle Coffee", 250.0, 250.0, "2025-03-01"),
        _qbo_invoice("1002", "1002", "Blue Bottle Coffee", 250.0, 0, "2025-02-01"),
        _qbo_invoice("1003", "1003", "Initech", 80.0, 80.0, "2025-02-20"),
    ]
    for invoice in invoices:
        _land(conn, "qbo_invoices", WORKSPACE, invoice, invoice["Id"])

    # Square: a named charge with the invoice number as reference, an anonymous one that only
    # the amount can place, one that matches nothing, and a canceled one
    _land(
        conn,
        "square_customers",
        WORKSPACE,
        {"id": "sq-cust-1", "company_name": "Blue Bottle Coffee, Inc.", "given_name": "Ann", "version": 1},
        "sq-cust-1",
    )
    payments = [
        _square_payment(
            "p-blue", 25000, "2025-03-05T15:04:00Z", customer_id="sq-cust-1", reference_id="#1001"
        ),
        _square_payment("p-anonymous", 8000, "2025-02-25T11:00:00Z"),
        _square_payment("p-nothing", 99999, "2025-03-05T11:00:00Z"),
        _square_payment("p-canceled", 8000, "2025-02-25T12:00:00Z", status="CANCELED"),
    ]
    for payment in payments:
        hashes[payment["id"]] = _land(conn, "square_payments", WORKSPACE, payment, payment["id"])

    # decisions the scorer would have made, so the reporting marts have rows
    decided_at = datetime(2025, 3, 12, 7, 0, tzinfo=UTC)
    decisions = [
        ("square", "p-blue", hashes["p-blue"], "auto_link", 0.93, "invoice", "1001"),
        ("qonto", "q-dupont", hashes["q-dupont"], "review", 0.71, "vendor", "56"),
        ("square", "p-nothing", hashes["p-nothing"], "refused", 0.0, None, None),
    ]
    decision_ids: dict[str, int] = {}
    for source, record_id, sha, route, score, candidate_type, candidate_id in decisions:
        ranked = [(candidate_id, score), ("other", 0.2)] if candidate_id else []
        candidates = [
            {
                "candidate_type": candidate_type,
                "candidate_id": ranked_id,
                "candidate_name": ranked_id,
                "score": s,
            }
            for ranked_id, s in ranked
        ]
        row = conn.execute(
            """
            insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
                route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
                candidates, explanation, model_version, decided_at, decided_by_run)
            values (%s, %s, %s, %s, %s, %s, 0.85, 0.55, %s, %s, %s, '{}', 'test-model', %s, 'test-run')
            returning decision_id
            """,
            (
                WORKSPACE,
                source,
                record_id,
                sha,
                route,
                score,
                candidate_type,
                candidate_id,
                Jsonb(candidates),
                decided_at,
            ),
        ).fetchone()
        assert row is not None
        decision_ids[record_id] = row[0]
    conn.execute(
        """
        insert into ops.delivery_outbox (decision_id, workspace_id, source, source_record_id,
            source_payload_sha256, message_id, recipient, document, status, created_at, sent_at)
        values (%s, %s, 'square', 'p-blue', %s, '<p-blue@ledgerlink.invalid>', 'x@qbodocs.com', '{}', 'sent', %s, %s)
        """,
        (decision_ids["p-blue"], WORKSPACE, hashes["p-blue"], decided_at, decided_at),
    )
    return hashes


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_dbt_build_gives_the_scorer_every_record_with_its_candidates(
    warehouse: dict[str, str], tmp_path: Path
) -> None:
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"]) as conn:
        hashes = _seed(conn)

    build = run_dbt("build", env=warehouse, work_dir=tmp_path)
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-2000:]
    assert "ERROR=0" in build.stdout

    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"]) as conn:
        rows = conn.execute(
            "select source_record_id, source_payload_sha256, record_amount_minor, candidate_type, candidate_id,"
            " is_reference_match, amount_diff_minor, date_lag_days, workspace_id"
            " from marts.match_features order by source_record_id, candidate_id"
        ).fetchall()
        review_queue = conn.execute(
            "select source_record_id, score, top_candidate_id, jsonb_array_length(candidates), amount_minor"
            " from marts.review_queue"
        ).fetchall()
        # each intermediate table is analysed as it is built, not when autovacuum gets to it:
        # blocking's index searches, planned without statistics, took minutes instead of seconds
        analysed = dict(
            conn.execute(
                "select relname, last_analyze is not null from pg_stat_user_tables"
                " where schemaname = 'intermediate'"
            ).fetchall()
        )
        status = conn.execute(
            "select source, route, record_count, sent_count, pending_count, failed_count"
            " from marts.reconciliation_status order by source, route"
        ).fetchall()

    candidates: dict[str, set[str | None]] = {}
    for record_id, _sha, _amount, _type, candidate_id, *_ in rows:
        candidates.setdefault(record_id, set()).add(candidate_id)
    by_pair = {(row[0], row[4]): row for row in rows}

    # every source record, even those without any candidate (canceled, unnamed, unmatched)
    assert set(candidates) == {
        "q-dupont",
        "q-martin",
        "q-unread",
        "p-blue",
        "p-anonymous",
        "p-nothing",
        "p-canceled",
    }
    assert candidates["q-unread"] == {None}
    assert candidates["p-nothing"] == {None}
    assert candidates["p-canceled"] == {None}
    # the clean cases find their entry: names across OCR case, legal forms and NFD/NFC, or amount
    assert candidates["q-dupont"] == {"56"}  # not the inactive "Dupont Old Bakery", not the other workspace's
    assert candidates["q-martin"] == {"57"}
    assert candidates["p-blue"] == {"1001"}  # the paid invoice 1002 is no candidate
    assert candidates["p-anonymous"] == {"1003"}
    assert {row[8] for row in rows} == {WORKSPACE}
    # only the latest version of a changed record
    assert {row[1] for row in rows if row[0] == "q-dupont"} == {hashes["q-dupont"]}
    assert by_pair[("q-dupont", "56")][2] == 12050
    # features of the named Square charge against its invoice
    blue = by_pair[("p-blue", "1001")]
    assert (blue[3], blue[5], blue[6], blue[7]) == ("invoice", True, 0, 4)

    assert {"int_ledger_entries_unioned", "int_source_records_unioned"} <= set(analysed)
    assert all(analysed.values()), analysed
    assert review_queue == [("q-dupont", Decimal("0.71"), "56", 2, 12050)]
    assert status == [
        ("qonto", "review", 1, 0, 0, 0),
        ("square", "auto_link", 1, 1, 0, 0),
        ("square", "refused", 1, 0, 0, 0),
    ]


def test_sqlfluff_finds_nothing_in_the_models(warehouse: dict[str, str], tmp_path: Path) -> None:
    # the dbt templater compiles the project, which needs a reachable warehouse
    env = {**warehouse, "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    lint = _run([str(BIN / "sqlfluff"), "lint", "dbt_project/models"], env)
    assert lint.returncode == 0, lint.stdout[-6000:] + lint.stderr[-2000:]


def test_dbt_parse_builds_a_manifest_without_a_warehouse(tmp_path: Path) -> None:
    # Cosmos renders the DAG from a manifest built ahead of time, where no warehouse may exist
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("LEDGERLINK_PG", "DBT_ENV_"))
    }
    parse = run_dbt("parse", env={**env, "LEDGERLINK_PGHOST": "/nonexistent"}, work_dir=tmp_path, timeout=600)
    assert parse.returncode == 0, parse.stdout[-4000:] + parse.stderr[-2000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    match_features = manifest["nodes"]["model.ledgerlink.match_features"]
    assert match_features["schema"] == "marts"
    assert match_features["config"]["contract"]["enforced"] is True


def test_every_mart_and_mart_column_is_documented(warehouse: dict[str, str], tmp_path: Path) -> None:
    # the marts as built (zero rows: --empty), against what their yml says of them
    built = run_dbt("run", "--empty", "--select", "+path:models/marts", env=warehouse, work_dir=tmp_path)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    marts = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }
    with psycopg.connect(warehouse["LEDGERLINK_CONNINFO"]) as conn:
        built_columns: dict[str, set[str]] = {}
        for table, column in conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'marts'"
        ):
            built_columns.setdefault(table, set()).add(column)
    assert set(marts) <= set(built_columns)
    undocumented = {
        f"{name}.{column}"
        for name, node in marts.items()
        for column in built_columns[name]
        if not node["columns"].get(column, {}).get("description", "").strip()
    }
    assert not undocumented, (
        f"mart columns without a description in their _*__models.yml: {sorted(undocumented)}"
    )
    assert all(node["description"].strip() for node in marts.values())
    exposed = {
        dependency
        for exposure in manifest["exposures"].values()
        for dependency in exposure["depends_on"]["nodes"]
    }
    assert {
        f"model.ledgerlink.{name}" for name in ("review_queue", "reconciliation_status", "auto_link_outcomes")
    } <= exposed
