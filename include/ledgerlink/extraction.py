"""Extraction: read each source for one workspace and land what it returns in ``raw.*``.

Each function is one transaction: the pages read, the attachments stored and the sync marker's
move commit together, so a crash leaves the marker where the landed data is. Reads start a
lookback window before the marker and are inclusive, so records committed late with an older
``updated_at`` are still seen; landing dedup makes the overlap harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
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


def _updated_at(row: dict[str, Any]) -> Any:
    return row.get("updated_at")


def _quickbooks_updated_at(row: dict[str, Any]) -> Any:
    return (row.get("MetaData") or {}).get("LastUpdatedTime")


def _land_since_marker(
    conn: psycopg.Connection,
    workspace_id: str,
    window: ExtractionWindow,
    marker_key: tuple[str, str],
    table: str,
    pages: Callable[[datetime | None], Iterable[list[dict[str, Any]]]],
    *,
    id_key: str = "id",
    updated_at: Callable[[dict[str, Any]], Any] = _updated_at,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> int:
    """Read every page changed since the (source, entity) marker, less the lookback; land each
    page in ``raw.<table>``; move the marker to the window's end. Returns the rows landed."""
    source, entity = marker_key
    marker = read_marker(conn, workspace_id, source, entity)
    landed = 0
    for page in pages(_read_from(marker)):
        records = [SourceRecord(str(row[id_key]), row, _parse_timestamp(updated_at(row))) for row in page]
        landed += land_records(conn, table, workspace_id, window.run_id, records)
        if on_page is not None:
            on_page(page)
    advance_marker(conn, workspace_id, source, entity, window.window_end, window.run_id)
    return landed


def extract_qonto(
    conn: psycopg.Connection, workspace_id: str, base_url: str, window: ExtractionWindow, blobs: BlobStore
) -> dict[str, int]:
    """Land supplier invoices changed since the marker, and download each new attachment at once
    (its URL expires after 30 minutes) into the blob store."""
    token = load_token(conn, workspace_id, "qonto")
    landed = {"supplier_invoices": 0, "attachments": 0}
    with conn.transaction(), QontoClient(base_url, token.access_token) as client:

        def land_attachments(page: list[dict[str, Any]]) -> None:
            attachment_ids = {row["attachment_id"] for row in page if row.get("attachment_id")}
            landed["attachments"] += _land_new_attachments(
                conn, client, workspace_id, attachment_ids, window, blobs
            )

        landed["supplier_invoices"] = _land_since_marker(
            conn,
            workspace_id,
            window,
            ("qonto", "supplier_invoices"),
            "qonto_supplier_invoices",
            lambda read_from: client.supplier_invoice_pages(read_from, window.window_end),
            on_page=land_attachments,
        )
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
    """Land Square customers and payments changed since their markers."""
    token = load_token(conn, workspace_id, "square")
    location_id = load_workspace(conn, workspace_id).square_location_id
    with conn.transaction(), SquareClient(base_url, token.access_token) as client:
        customers = _land_since_marker(
            conn,
            workspace_id,
            window,
            ("square", "customers"),
            "square_customers",
            lambda read_from: client.customer_pages(read_from, window.window_end),
        )
        payments = _land_since_marker(
            conn,
            workspace_id,
            window,
            ("square", "payments"),
            "square_payments",
            lambda read_from: client.payment_pages(read_from, window.window_end, location_id),
        )
    return {"customers": customers, "payments": payments}


def extract_quickbooks(
    conn: psycopg.Connection, workspace_id: str, base_url: str, window: ExtractionWindow
) -> dict[str, int]:
    """Land the QuickBooks ledger entities matching needs (read only)."""
    token = load_token(conn, workspace_id, "quickbooks")
    realm_id = load_workspace(conn, workspace_id).quickbooks_realm_id
    if not realm_id:
        raise ValueError(f"workspace {workspace_id!r} has no QuickBooks realm id")
    landed: dict[str, int] = {}
    with conn.transaction(), QuickBooksClient(base_url, token.access_token, realm_id) as client:
        for entity, table in QUICKBOOKS_ENTITIES.items():
            landed[table] = _land_since_marker(
                conn,
                workspace_id,
                window,
                ("quickbooks", entity),
                table,
                partial(client.entity_pages, entity),
                id_key="Id",
                updated_at=_quickbooks_updated_at,
            )
    return landed
