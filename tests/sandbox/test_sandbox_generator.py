"""The fixture generator: deterministic, shaped like the real APIs, with a known right answer for
every record and records meant for every route."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledgerlink.sandbox import generate_fixtures, load_fixtures

SMALL = {"qonto_invoices": 25, "square_payments": 30, "customers": 12, "open_invoices_without_charge": 5, "paid_invoices": 5}  # fmt: skip


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_writes_byte_identical_directories(tmp_path: Path) -> None:
    first = _digests(generate_fixtures(tmp_path / "a", 42, **SMALL))
    second = _digests(generate_fixtures(tmp_path / "b", 42, **SMALL))
    assert first == second
    # manifest and truth, 3 Square files, 4 QuickBooks files, the Qonto list, a PDF and a JSON per invoice
    assert len(first) == 2 + 3 + 4 + 1 + 2 * 25


def test_a_different_seed_writes_different_data(tmp_path: Path) -> None:
    first = _digests(generate_fixtures(tmp_path / "a", 42, **SMALL))
    other = _digests(generate_fixtures(tmp_path / "b", 43, **SMALL))
    assert first["manifest.json"] != other["manifest.json"]
    assert first["square/payments.json"] != other["square/payments.json"]


def test_regenerating_replaces_a_fixture_dir_but_refuses_other_folders(tmp_path: Path) -> None:
    target = generate_fixtures(tmp_path / "fx", 1, **SMALL)
    (target / "qonto" / "attachments" / "stale.pdf").write_bytes(b"old")
    generate_fixtures(target, 1, **SMALL)
    assert not (target / "qonto" / "attachments" / "stale.pdf").exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_fixtures(precious, 1, **SMALL)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_layout_and_manifest_follow_the_contract(
    read_fixture: Callable[[str], Any], fixtures_dir: Path
) -> None:
    manifest = read_fixture("manifest.json")
    assert manifest["workspace_id"] == "demo" and manifest["home_currency"] == "EUR"
    assert manifest["quickbooks_realm_id"].startswith("9341")
    assert manifest["square_location_id"].startswith("L")
    assert manifest["email_in_address"].endswith("@qbodocs.com")
    assert manifest["registered_sender"].startswith("ledgerlink@")
    assert set(manifest["access_tokens"]) == {"qonto", "square", "quickbooks"}
    listing = read_fixture("qonto/supplier_invoices.json")
    assert listing["meta"]["next_page"] is None
    assert listing["meta"]["total_count"] == len(listing["supplier_invoices"]) == 120
    for entity in ("Vendor", "Customer", "Invoice", "Account"):
        body = read_fixture(f"quickbooks/{entity}.json")
        assert body["QueryResponse"]["totalCount"] == len(body["QueryResponse"][entity]) > 0
    for invoice in listing["supplier_invoices"]:
        attachment = read_fixture(f"qonto/attachments/{invoice['attachment_id']}.json")["attachment"]
        pdf = (fixtures_dir / "qonto" / "attachments" / f"{invoice['attachment_id']}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and attachment["file_size"] == str(len(pdf))
        assert attachment["file_name"] == invoice["file_name"]


def test_attachment_pdf_shows_the_invoice(read_fixture: Callable[[str], Any], fixtures_dir: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    invoice = next(
        i for i in read_fixture("qonto/supplier_invoices.json")["supplier_invoices"] if i["invoice_number"]
    )
    pdf = (fixtures_dir / "qonto" / "attachments" / f"{invoice['attachment_id']}.pdf").read_bytes()
    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert invoice["invoice_number"] in text
    assert invoice["total_amount"]["value"] in text and invoice["total_amount"]["currency"] in text
    assert invoice["issue_date"] in text


def test_ground_truth_covers_every_record_and_points_into_the_ledger(fixtures_dir: Path) -> None:
    fixtures = load_fixtures(fixtures_dir)
    truth = fixtures.ground_truth
    vendor_ids = {v["Id"] for v in fixtures.quickbooks["Vendor"] if v["Active"]}
    invoices = {i["Id"]: i for i in fixtures.quickbooks["Invoice"]}
    customer_ids = {c["Id"] for c in fixtures.quickbooks["Customer"]}
    assert set(truth["qonto"]) == {i["id"] for i in fixtures.qonto_supplier_invoices}
    assert set(truth["square"]) == {p["id"] for p in fixtures.square_payments}
    assert {v for v in truth["qonto"].values() if v is not None} <= vendor_ids
    for payment_id, answer in truth["square"].items():
        if answer["invoice_id"] is not None:
            invoice = invoices[answer["invoice_id"]]
            assert invoice["Balance"] > 0, f"{payment_id} pays an invoice that is not open"
            assert invoice["CustomerRef"]["value"] == answer["customer_id"]
        assert answer["customer_id"] is None or answer["customer_id"] in customer_ids


def test_records_are_designed_for_every_route(fixtures_dir: Path) -> None:
    fixtures = load_fixtures(fixtures_dir)
    truth = fixtures.ground_truth
    invoices = fixtures.qonto_supplier_invoices
    vendors = {v["Id"]: v["DisplayName"] for v in fixtures.quickbooks["Vendor"]}
    exact = [
        i
        for i in invoices
        if truth["qonto"][i["id"]] and i["supplier_name"] == vendors[truth["qonto"][i["id"]]]
    ]
    unknown = [i for i in invoices if truth["qonto"][i["id"]] is None]
    assert len(exact) >= 10 and 10 <= len(unknown) <= 35
    assert any(i["supplier_name"] is None for i in invoices)
    assert any(i["status"] == "to_review" for i in invoices)
    assert {i["total_amount"]["currency"] for i in invoices} >= {"EUR", "GBP", "USD"}
    payments = fixtures.square_payments
    assert any("customer_id" not in p for p in payments)
    assert any(truth["square"][p["id"]]["invoice_id"] is None for p in payments)
    assert sum(truth["square"][p["id"]]["invoice_id"] is not None for p in payments) >= len(payments) * 0.7
    assert any(p.get("reference_id") for p in payments)
    assert {p["amount_money"]["currency"] for p in payments} >= {"EUR", "GBP"}
    assert all(isinstance(p["amount_money"]["amount"], int) for p in payments)
    assert any(i["Balance"] == 0 for i in fixtures.quickbooks["Invoice"])


def test_timestamps_come_from_the_seed_not_the_clock(fixtures_dir: Path) -> None:
    fixtures = load_fixtures(fixtures_dir)
    stamps = [i["updated_at"] for i in fixtures.qonto_supplier_invoices] + [
        p["created_at"] for p in fixtures.square_payments
    ]
    days = {date.fromisoformat(stamp[:10]) for stamp in stamps}
    assert min(days) >= date(2026, 1, 1) and max(days) <= date(2026, 10, 31)
    assert all(stamp.endswith("Z") for stamp in stamps)
