"""Extraction: read each source for one workspace and land what it returns in ``raw.*``.

Each function is one transaction: the pages read, the attachments stored and the sync marker's
move commit together, so a crash leaves the marker where the landed data is. Reads start a
lookback window before the marker and are inclusive, so records committed late with an older
``updated_at`` are still seen; landing dedup makes the overlap harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from ledgerlink.blobstore import BlobStore
from ledgerlink.credentials import load_token
from ledgerlink.sources.qonto import QontoClient
from ledgerlink.sources.quickbooks import QuickBooksClient
from ledgerlink.sources.square import SquareClient
from ledgerlink.warehouse.landing import SourceRecord, land_records
from ledgerlink.warehouse.sync_markers import advance_marker, read_marker
from ledgerlink.workspaces import load_workspace

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=15)

QUICKBOOKS_ENTITIES = {
    "Vendor": "qbo_vendors",
    "Customer": "qbo_customers",
    "Invoice": "qbo_invoices",
    "Account": "qbo_accounts",
}


@dataclass(frozen=True)
class ExtractionWindow:
    """Which run reads, and the upper bound it reads to (the run's data interval end)."""

    run_id: str
    window_end: datetime


def _parse_timestamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _read_from(marker: datetime | None) -> datetime | None:
    return marker - LOOKBACK if marker is not None else None


def _records(rows: Iterable[dict[str, Any]], id_key: str, updated_at: Any) -> list[SourceRecord]:
    return [SourceRecord(str(row[id_key]), row, _parse_timestamp(updated_at(row))) for row in rows]


def extract_qonto(
    conn: psycopg.Connection, workspace_id: str, base_url: str, window: ExtractionWindow, blobs: BlobStore
) -> dict[str, int]:
    """Land supplier invoices changed since the marker, and download each new attachment at once
    (its URL expires after 30 minutes) into the blob store."""
    token = load_token(conn, workspace_id, "qonto")
    landed = {"supplier_invoices": 0, "attachments": 0}
    with conn.transaction(), QontoClient(base_url, token.access_token) as client:
        marker = read_marker(conn, workspace_id, "qonto", "supplier_invoices")
        for page in client.supplier_invoice_pages(_read_from(marker), window.window_end):
            records = _records(page, "id", lambda row: row.get("updated_at"))
            landed["supplier_invoices"] += land_records(
                conn, "qonto_supplier_invoices", workspace_id, window.run_id, records
            )
            attachment_ids = {row["attachment_id"] for row in page if row.get("attachment_id")}
            landed["attachments"] += _land_new_attachments(
                conn, client, workspace_id, attachment_ids, window, blobs
            )
        advance_marker(conn, workspace_id, "qonto", "supplier_invoices", window.window_end, window.run_id)
    return landed


def _land_new_attachments(
    conn: psycopg.Connection,
    client: QontoClient,
    workspace_id: str,
    attachment_ids: set[str],
    window: ExtractionWindow,
    blobs: BlobStore,
) -> int:
    if not attachment_ids:
        return 0
    already = {
        row[0]
        for row in conn.execute(
            "select source_record_id from raw.qonto_attachments"
            " where workspace_id = %s and source_record_id = any(%s)",
            (workspace_id, sorted(attachment_ids)),
        )
    }
    records = []
    for attachment_id in sorted(attachment_ids - already):
        attachment, content = client.download_attachment(attachment_id)
        blob_sha256 = blobs.put(content)
        # The download URL is a short-lived secret, not part of the record.
        payload = {key: value for key, value in attachment.items() if key != "url"}
        records.append(
            SourceRecord(
                attachment_id,
                payload,
                _parse_timestamp(attachment.get("created_at")),
                {"blob_sha256": blob_sha256},
            )
        )
    return land_records(conn, "qonto_attachments", workspace_id, window.run_id, records)


def extract_square(
    conn: psycopg.Connection, workspace_id: str, base_url: str, window: ExtractionWindow
) -> dict[str, int]:
    """Land Square payments and customers changed since their markers."""
    token = load_token(conn, workspace_id, "square")
    workspace = load_workspace(conn, workspace_id)
    landed = {"payments": 0, "customers": 0}
    with conn.transaction(), SquareClient(base_url, token.access_token) as client:
        marker = read_marker(conn, workspace_id, "square", "customers")
        for page in client.customer_pages(_read_from(marker), window.window_end):
            records = _records(page, "id", lambda row: row.get("updated_at"))
            landed["customers"] += land_records(
                conn, "square_customers", workspace_id, window.run_id, records
            )
        advance_marker(conn, workspace_id, "square", "customers", window.window_end, window.run_id)

        marker = read_marker(conn, workspace_id, "square", "payments")
        pages = client.payment_pages(_read_from(marker), window.window_end, workspace.square_location_id)
        for page in pages:
            records = _records(page, "id", lambda row: row.get("updated_at"))
            landed["payments"] += land_records(conn, "square_payments", workspace_id, window.run_id, records)
        advance_marker(conn, workspace_id, "square", "payments", window.window_end, window.run_id)
    return landed


def extract_quickbooks(
    conn: psycopg.Connection, workspace_id: str, base_url: str, window: ExtractionWindow
) -> dict[str, int]:
    """Land the QuickBooks ledger entities matching needs (read only)."""
    token = load_token(conn, workspace_id, "quickbooks")
    workspace = load_workspace(conn, workspace_id)
    if not workspace.quickbooks_realm_id:
        raise ValueError(f"workspace {workspace_id!r} has no QuickBooks realm id")
    landed: dict[str, int] = {}
    with (
        conn.transaction(),
        QuickBooksClient(base_url, token.access_token, workspace.quickbooks_realm_id) as client,
    ):
        for entity, table in QUICKBOOKS_ENTITIES.items():
            landed[table] = 0
            marker = read_marker(conn, workspace_id, "quickbooks", entity)
            for page in client.entity_pages(entity, _read_from(marker)):
                records = _records(page, "Id", lambda row: (row.get("MetaData") or {}).get("LastUpdatedTime"))
                landed[table] += land_records(conn, table, workspace_id, window.run_id, records)
            advance_marker(conn, workspace_id, "quickbooks", entity, window.window_end, window.run_id)
    return landed
