"""The fixture generator: deterministic, shaped like the real APIs, with a known right answer for
every record and records meant for every route."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledgerlink.sandbox import generate_fixtures, load_fixtures
from ledgerlink.sandbox.names import ABBREVIATIONS, LEGAL_FORM_VARIANTS, strip_diacritics

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
    # manifest and truth, 4 Square files, 4 QuickBooks files, the Qonto list, a PDF and a JSON per
    # invoice (the 25 planned and the duplicate submissions added on top)
    duplicates = len(json.loads((tmp_path / "a" / "ground_truth.json").read_text())["qonto_duplicates"])
    assert duplicates >= 1
    assert len(first) == 2 + 4 + 4 + 1 + 2 * (25 + duplicates)


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
    duplicates = len(read_fixture("ground_truth.json")["qonto_duplicates"])
    assert listing["meta"]["total_count"] == len(listing["supplier_invoices"]) == 120 + duplicates
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


def test_generated_data_has_the_realism_the_issue_lists(tmp_path: Path) -> None:
    sizes = {"qonto_invoices": 60, "square_payments": 200, "customers": 30, "open_invoices_without_charge": 5, "paid_invoices": 5}  # fmt: skip
    fixtures = load_fixtures(generate_fixtures(tmp_path / "fx", 11, **sizes))
    truth = fixtures.ground_truth
    vendors = [v["DisplayName"] for v in fixtures.quickbooks["Vendor"]]
    companies = [c.get("CompanyName") or "" for c in fixtures.quickbooks["Customer"]]
    suppliers = [i["supplier_name"] or "" for i in fixtures.qonto_supplier_invoices]
    # Legal forms, in the ledger and (spelt differently) on the documents.
    for form in ("SAS", "SARL", "GmbH", "Ltd", "Inc"):
        assert any(name.endswith(f" {form}") for name in vendors), form
    spellings = {variant for variants in LEGAL_FORM_VARIANTS.values() for variant in variants}
    assert any(name.split()[-1] in spellings and name not in vendors for name in suppliers if name)
    assert any(name.split()[-1] in {"SAS", "SARL", "GmbH", "Ltd", "Inc", "LLC"} for name in companies if name)
    ledger_names = set(vendors)
    # Noise: a name with a digit standing for a letter (OCR), an upper-cased one, one with
    # diacritics stripped from a ledger name that has them, and an abbreviation from the list.
    assert any(
        re.search(r"[A-Za-z][0-9]|[0-9][A-Za-z]", name) for name in suppliers if name not in ledger_names
    )
    assert any(name.isupper() and len(name) > 5 for name in suppliers)
    stripped = {strip_diacritics(name).casefold() for name in vendors if strip_diacritics(name) != name}
    assert any(name.casefold() in stripped for name in suppliers)
    assert any(short in name for name in suppliers for short in ABBREVIATIONS.values())
    # Several currencies on both sides.
    assert {p["amount_money"]["currency"] for p in fixtures.square_payments} >= {"EUR", "GBP"}
    assert len({i["total_amount"]["currency"] for i in fixtures.qonto_supplier_invoices}) >= 3
    # Partial payments: a charge below the open balance of the invoice it pays; invoices part paid.
    invoices = {i["Id"]: i for i in fixtures.quickbooks["Invoice"]}
    payments = {p["id"]: p for p in fixtures.square_payments}
    assert any(
        answer["invoice_id"]
        and payments[payment_id]["amount_money"]["amount"]
        <= round(invoices[answer["invoice_id"]]["Balance"] * 50)
        for payment_id, answer in truth["square"].items()
    )
    assert any(0 < i["Balance"] < i["TotalAmt"] for i in invoices.values())
    # Refunds, full and partial, each pointing at its payment, which shows the refunded amount.
    assert fixtures.square_refunds
    for refund in fixtures.square_refunds:
        payment = payments[refund["payment_id"]]
        assert refund["id"] in payment["refund_ids"]
        assert 0 < refund["amount_money"]["amount"] <= payment["amount_money"]["amount"]
        assert payment["refunded_money"]["currency"] == refund["amount_money"]["currency"]
    # Duplicate submissions on both sides: same amount and customer or supplier, a new id.
    assert truth["square_duplicates"] and truth["qonto_duplicates"]
    for copy_id, original_id in truth["square_duplicates"].items():
        copy, original = payments[copy_id], payments[original_id]
        assert copy["amount_money"] == original["amount_money"] and copy.get("customer_id") == original.get(
            "customer_id"
        )
        assert truth["square"][copy_id]["invoice_id"] is None
    qonto = {i["id"]: i for i in fixtures.qonto_supplier_invoices}
    for copy_id, original_id in truth["qonto_duplicates"].items():
        assert qonto[copy_id]["total_amount"] == qonto[original_id]["total_amount"]
        assert qonto[copy_id]["has_duplicates"] and qonto[original_id]["has_duplicates"]
        assert qonto[copy_id]["attachment_id"] != qonto[original_id]["attachment_id"]
    # Charges without a customer, and many records sharing one amount.
    assert any("customer_id" not in p for p in fixtures.square_payments)
    amounts = Counter(
        (p["amount_money"]["amount"], p["amount_money"]["currency"]) for p in fixtures.square_payments
    )
    assert amounts.most_common(1)[0][1] >= 3


def test_scale_options_keep_the_ledger_small_and_names_unique(tmp_path: Path) -> None:
    fixtures = load_fixtures(
        generate_fixtures(
            tmp_path / "fx",
            4,
            square_payments=600,
            invoiced_payments=60,
            customers=900,  # past half of the distinct first and last name pairs
            qonto_invoices=0,
            open_invoices_without_charge=0,
            paid_invoices=0,
        )
    )
    invoiced = [a for a in fixtures.ground_truth["square"].values() if a["invoice_id"]]
    assert 55 <= len(invoiced) <= 70  # the twins of "noisy" charges add a few invoices
    names = [c["DisplayName"] for c in fixtures.quickbooks["Customer"]]
    assert len(names) == len(set(names)) == 902  # and the two merged "(deleted)" ones
