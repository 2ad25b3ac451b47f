"""Extraction against the sandbox over real HTTP, without Airflow: every record lands once, a
rerun lands nothing, a rewound marker re-reads and still lands nothing new."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.blobstore import BlobStore
from ledgerlink.cli.run import register_sandbox_workspace
from ledgerlink.extraction import ExtractionWindow, extract_qonto, extract_quickbooks, extract_square
from ledgerlink.sandbox.generator import generate_fixtures
from ledgerlink.sandbox.services import SandboxPorts, run_sandbox
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.sync_markers import read_marker, rewind_marker

WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox(warehouse, tmp_path_factory):  # noqa: ANN001
    fixtures = generate_fixtures(tmp_path_factory.mktemp("extraction") / "fixtures", seed=5)
    manifest = json.loads((fixtures / "manifest.json").read_text())
    manifest["workspace_id"] = "extraction-ws"
    with run_sandbox(
        fixtures, tmp_path_factory.mktemp("mailbox"), ports=SandboxPorts.ephemeral()
    ) as endpoints:
        endpoints_json = endpoints.as_json()
        with connect(warehouse) as conn:
            register_sandbox_workspace(conn, endpoints_json, manifest)
        yield endpoints_json, fixtures
    # the sandbox is gone: keep the DAG's per-workspace fan-out away from this workspace
    with connect(warehouse) as conn:
        conn.execute("update ops.workspaces set is_active = false where workspace_id = 'extraction-ws'")


def _extract_all(conn, endpoints, blobs, run_id):  # noqa: ANN001, ANN202
    window = ExtractionWindow(run_id=run_id, window_end=WINDOW_END)
    return {
        "qonto": extract_qonto(conn, "extraction-ws", endpoints["qonto"]["base_url"], window, blobs),
        "square": extract_square(conn, "extraction-ws", endpoints["square"]["base_url"], window),
        "quickbooks": extract_quickbooks(conn, "extraction-ws", endpoints["quickbooks"]["base_url"], window),
    }


def test_extraction_lands_everything_once_and_reruns_land_nothing(warehouse, sandbox, tmp_path) -> None:  # noqa: ANN001
    endpoints, fixtures = sandbox
    blobs = BlobStore(tmp_path / "blobs")
    invoices = json.loads((fixtures / "qonto" / "supplier_invoices.json").read_text())["supplier_invoices"]
    payments = json.loads((fixtures / "square" / "payments.json").read_text())["payments"]
    vendors = json.loads((fixtures / "quickbooks" / "Vendor.json").read_text())["QueryResponse"]["Vendor"]
    with connect(warehouse) as conn:
        first = _extract_all(conn, endpoints, blobs, "run-1")
        assert first["qonto"]["supplier_invoices"] == len(invoices)
        assert first["qonto"]["attachments"] == len({i["attachment_id"] for i in invoices})
        assert first["square"]["payments"] == len(payments)
        assert first["quickbooks"]["qbo_vendors"] == len(vendors)
        assert read_marker(conn, "extraction-ws", "square", "payments") == WINDOW_END

        second = _extract_all(conn, endpoints, blobs, "run-2")
        assert all(count == 0 for counts in second.values() for count in counts.values()), second

        for source, entity in [
            ("qonto", "supplier_invoices"),
            ("square", "payments"),
            ("quickbooks", "Invoice"),
        ]:
            rewind_marker(conn, "extraction-ws", source, entity, WINDOW_END - timedelta(days=3650))
        conn.commit()
        rewound = _extract_all(conn, endpoints, blobs, "run-3")
        assert all(count == 0 for counts in rewound.values() for count in counts.values()), rewound
        duplicated = conn.execute(
            "select count(*) from (select source_record_id from raw.square_payments"
            " where workspace_id = 'extraction-ws' group by 1 having count(*) > 1) as twice"
        ).fetchone()[0]
        assert duplicated == 0
