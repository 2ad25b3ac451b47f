"""The whole pipeline through real Airflow, the embedded warehouse, the sandbox APIs over HTTP
and a real SMTP server: what lands, what is decided, what is emailed, and that a rerun does
nothing twice."""

from __future__ import annotations

import email
import io
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import psycopg
import pytest
from pypdf import PdfReader

from ledgerlink.warehouse import connect

pytestmark = pytest.mark.slow

SEED = 11
RAW_KEY_BY_FILE = {
    "qonto_supplier_invoices": ("qonto/supplier_invoices.json", "supplier_invoices", "id"),
    "square_payments": ("square/payments.json", "payments", "id"),
    "square_customers": ("square/customers.json", "customers", "id"),
    "qbo_vendors": ("quickbooks/Vendor.json", "Vendor", "Id"),
    "qbo_customers": ("quickbooks/Customer.json", "Customer", "Id"),
    "qbo_invoices": ("quickbooks/Invoice.json", "Invoice", "Id"),
    "qbo_accounts": ("quickbooks/Account.json", "Account", "Id"),
}


def _fixture_ids(fixtures: Path, table: str) -> set[str]:
    path, key, id_field = RAW_KEY_BY_FILE[table]
    body = json.loads((fixtures / path).read_text())
    rows = body["QueryResponse"][key] if "QueryResponse" in body else body[key]
    return {str(row[id_field]) for row in rows}


def _mailbox_messages(mailbox: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=default_policy)  # type: ignore[misc]
        for path in sorted(mailbox.iterdir())
        if path.is_file() and path.suffix == ".eml"
    ]


def _table_counts(conn: psycopg.Connection) -> dict[str, int]:
    tables = [f"raw.{table}" for table in RAW_KEY_BY_FILE] + [
        "raw.qonto_attachments",
        "ops.routing_decisions",
        "ops.delivery_outbox",
        "ops.delivery_attempts",
    ]
    return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in tables}  # noqa: S608


@pytest.fixture(scope="module")
def pipeline(prepared, tmp_path_factory):  # noqa: ANN001
    """Two runs of ledgerlink_reconcile against one sandbox, with the state after each."""
    import os

    from ledgerlink.cli.run import register_sandbox_workspace, run_dag_once, sandbox_connections
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.sandbox.services import run_sandbox

    settings, address = prepared
    fixtures = generate_fixtures(tmp_path_factory.mktemp("fixtures") / "seed", seed=SEED)
    mailbox = tmp_path_factory.mktemp("mailbox")
    manifest = json.loads((fixtures / "manifest.json").read_text())
    with run_sandbox(fixtures, mailbox) as endpoints:
        sandbox = endpoints.as_json()
        with connect(address) as conn:
            register_sandbox_workspace(conn, sandbox, manifest)
        os.environ.update(sandbox_connections(sandbox))
        first_run = run_dag_once(settings, address, datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
        with connect(address) as conn:
            after_first = _table_counts(conn)
        messages_after_first = _mailbox_messages(mailbox)
        second_run = run_dag_once(settings, address, datetime(2026, 11, 20, 12, 15, tzinfo=UTC))
        with connect(address) as conn:
            after_second = _table_counts(conn)
        messages_after_second = _mailbox_messages(mailbox)
    return {
        "address": address,
        "fixtures": fixtures,
        "workspace_id": manifest["workspace_id"],
        "runs": (first_run, second_run),
        "counts": (after_first, after_second),
        "messages": (messages_after_first, messages_after_second),
    }


def test_every_generated_record_lands_in_raw_exactly_once(pipeline) -> None:  # noqa: ANN001
    with connect(pipeline["address"]) as conn:
        for table in RAW_KEY_BY_FILE:
            expected = _fixture_ids(pipeline["fixtures"], table)
            rows = conn.execute(
                f"select source_record_id from raw.{table} where workspace_id = %s",  # noqa: S608
                (pipeline["workspace_id"],),
            ).fetchall()
            landed = [row[0] for row in rows]
            assert len(landed) == len(set(landed)), f"raw.{table} holds a record twice"
            assert set(landed) == expected, f"raw.{table} differs from the sandbox's records"


def test_every_attachment_is_stored_by_content(pipeline, settings) -> None:  # noqa: ANN001
    from ledgerlink.blobstore import BlobStore

    blobs = BlobStore(settings.blob_dir)
    with connect(pipeline["address"]) as conn:
        rows = conn.execute(
            "select source_record_id, blob_sha256 from raw.qonto_attachments where workspace_id = %s",
            (pipeline["workspace_id"],),
        ).fetchall()
    assert rows
    for attachment_id, blob_sha256 in rows:
        original = (pipeline["fixtures"] / "qonto" / "attachments" / f"{attachment_id}.pdf").read_bytes()
        assert blobs.get(blob_sha256) == original


def test_every_record_gets_exactly_one_routing_decision(pipeline) -> None:  # noqa: ANN001
    fixtures = pipeline["fixtures"]
    expected = {("qonto", i) for i in _fixture_ids(fixtures, "qonto_supplier_invoices")} | {
        ("square", i) for i in _fixture_ids(fixtures, "square_payments")
    }
    with connect(pipeline["address"]) as conn:
        decided = conn.execute(
            "select source, source_record_id, route from ops.routing_decisions where workspace_id = %s",
            (pipeline["workspace_id"],),
        ).fetchall()
    assert len(decided) == len({(s, r) for s, r, _ in decided})
    assert {(s, r) for s, r, _ in decided} == expected
    routes = {route for _, _, route in decided}
    assert routes == {"auto_link", "review", "refused"}, "the sandbox data should reach every route"


def test_each_auto_link_is_emailed_once_with_its_document(pipeline) -> None:  # noqa: ANN001
    messages, _ = pipeline["messages"]
    with connect(pipeline["address"]) as conn:
        auto_linked = {
            f"{source}:{record_id}"
            for source, record_id in conn.execute(
                "select source, source_record_id from ops.routing_decisions"
                " where route = 'auto_link' and workspace_id = %s",
                (pipeline["workspace_id"],),
            )
        }
        attachment_of = dict(
            conn.execute(
                "select source_record_id, payload ->> 'attachment_id' from raw.qonto_supplier_invoices"
                " where workspace_id = %s",
                (pipeline["workspace_id"],),
            ).fetchall()
        )
    by_record: dict[str, list[EmailMessage]] = {}
    for message in messages:
        by_record.setdefault(str(message["X-Ledgerlink-Source-Record"]), []).append(message)
    assert set(by_record) == auto_linked
    for source_ref, received in by_record.items():
        assert len(received) == 1, f"{source_ref} was emailed {len(received)} times"
        message = received[0]
        assert source_ref in str(message["Subject"])
        attachments = list(message.iter_attachments())
        assert len(attachments) == 1
        content = attachments[0].get_content()
        source, record_id = source_ref.split(":", 1)
        if source == "qonto":
            # a cover page naming the source record, then the supplier's own pages, untouched
            original = pipeline["fixtures"] / "qonto" / "attachments" / f"{attachment_of[record_id]}.pdf"
            delivered = PdfReader(io.BytesIO(content))
            assert f"qonto:{record_id}" in delivered.pages[0].extract_text()
            original_pages = [page.extract_text() for page in PdfReader(original).pages]
            assert [page.extract_text() for page in delivered.pages[1:]] == original_pages
        else:
            text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
            assert f"square:{record_id}" in text


def test_second_run_sends_nothing_and_adds_no_row(pipeline) -> None:  # noqa: ANN001
    first_counts, second_counts = pipeline["counts"]
    first_messages, second_messages = pipeline["messages"]
    assert first_counts == second_counts
    assert len(second_messages) == len(first_messages)
    assert pipeline["runs"][0] != pipeline["runs"][1]


def test_review_queue_mart_lists_review_records_with_alternatives(pipeline) -> None:  # noqa: ANN001
    with connect(pipeline["address"]) as conn:
        workspace = (pipeline["workspace_id"],)
        in_review = conn.execute(
            "select count(*) from ops.routing_decisions where route = 'review' and workspace_id = %s",
            workspace,
        ).fetchone()[0]
        queue = conn.execute(
            "select source_record_id, candidates from marts.review_queue where workspace_id = %s", workspace
        ).fetchall()
        status = conn.execute(
            "select sum(record_count) from marts.reconciliation_status where workspace_id = %s", workspace
        ).fetchone()[0]
        decided = conn.execute(
            "select count(*) from ops.routing_decisions where workspace_id = %s", workspace
        ).fetchone()[0]
    assert len(queue) == in_review > 0
    assert all(isinstance(candidates, list) and candidates for _, candidates in queue)
    assert status == decided
