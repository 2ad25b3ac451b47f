"""Reading a fixture directory: a generated one's listings stay on disk and are read record by
record, a hand-written one is read whole, and both give the same records."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from ledgerlink.benchmarks.backfill import _append_new_payments
from ledgerlink.sandbox import generate_fixtures, load_fixtures
from ledgerlink.sandbox.fixtures import RecordFile, write_json

SMALL = {"qonto_invoices": 8, "square_payments": 12, "customers": 6, "open_invoices_without_charge": 3, "paid_invoices": 3}  # fmt: skip
LISTINGS = {
    "square/payments.json": ("payments",),
    "square/customers.json": ("customers",),
    "qonto/supplier_invoices.json": ("supplier_invoices",),
    "quickbooks/Invoice.json": ("QueryResponse", "Invoice"),
}


def _listing(root: Path, relative: str) -> list[dict[str, object]]:
    document = json.loads((root / relative).read_text(encoding="utf-8"))
    for key in LISTINGS[relative]:
        document = document[key]
    return list(document)


def test_generated_listings_stay_on_disk_and_read_as_the_file_says(tmp_path: Path) -> None:
    root = generate_fixtures(tmp_path / "fixtures", 11, **SMALL)
    fixtures = load_fixtures(root)
    loaded = {
        "square/payments.json": fixtures.square_payments,
        "square/customers.json": fixtures.square_customers,
        "qonto/supplier_invoices.json": fixtures.qonto_supplier_invoices,
        "quickbooks/Invoice.json": fixtures.quickbooks["Invoice"],
    }
    for relative, records in loaded.items():
        assert isinstance(records, RecordFile), relative
        expected = _listing(root, relative)
        assert list(records) == expected and records == expected
        assert records[-1] == expected[-1] and records[1:3] == expected[1:3]
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    assert dict(fixtures.ground_truth) == truth
    attachment_id = fixtures.qonto_supplier_invoices[0]["attachment_id"]
    assert fixtures.qonto_attachments[attachment_id]["id"] == attachment_id
    assert "missing" not in fixtures.qonto_attachments


def test_a_hand_written_fixture_folder_reads_the_same_records(tmp_path: Path) -> None:
    root = generate_fixtures(tmp_path / "fixtures", 11, **SMALL)
    by_hand = tmp_path / "by-hand"
    shutil.copytree(root, by_hand)
    for relative in LISTINGS:  # pretty-printed, as a person writes them: one field a line
        write_json(by_hand / relative, json.loads((root / relative).read_text(encoding="utf-8")))
    generated, written = load_fixtures(root), load_fixtures(by_hand)
    assert isinstance(written.square_payments, list)
    assert list(written.square_payments) == list(generated.square_payments)
    assert list(written.quickbooks["Invoice"]) == list(generated.quickbooks["Invoice"])
    assert list(written.qonto_supplier_invoices) == list(generated.qonto_supplier_invoices)


def test_the_benchmark_appends_new_payments_after_the_history(tmp_path: Path) -> None:
    root = generate_fixtures(tmp_path / "fixtures", 11, **SMALL)
    payments_file = root / "square" / "payments.json"
    history = _listing(root, "square/payments.json")
    _append_new_payments(payments_file, 15, datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    payments = _listing(root, "square/payments.json")
    assert payments[: len(history)] == history
    added = payments[len(history) :]
    assert len(added) == 15
    assert len({payment["id"] for payment in payments}) == len(history) + 15
    assert {payment["created_at"] for payment in added} == {"2026-11-01T00:05:00.000Z"}
    copied = min(len(history), len(added))  # copies of the history's first payments, in order
    assert [p["amount_money"] for p in added[:copied]] == [p["amount_money"] for p in history[:copied]]
    # still in the generator's layout, so the sandbox keeps it on disk
    assert isinstance(load_fixtures(root).square_payments, RecordFile)


def test_loaded_fixtures_stay_readable_after_their_folder_is_removed(tmp_path: Path) -> None:
    # the evaluation generates into a temporary folder, loads, and reads after the folder is gone
    root = generate_fixtures(tmp_path / "fixtures", 11, **SMALL)
    payments = _listing(root, "square/payments.json")
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    fixtures = load_fixtures(root)
    shutil.rmtree(root)
    assert fixtures.square_payments == payments
    assert dict(fixtures.ground_truth) == truth
