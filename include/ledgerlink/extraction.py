"""Extraction: read each source for one workspace and land what it returns in ``raw.*``.

Each entity's read commits in chunks: the pages read, the attachments stored, the records
quarantined and the sync marker's move commit together, so a crash leaves the marker where the
landed data is and the next run (or the task's retry) resumes from there. Sources that page oldest
change first (Qonto supplier invoices, Square payments) commit every ``chunk_records`` records
(default 50,000) with the marker at the newest change landed; the others, and any read smaller
than a chunk (a regular 15-minute window), commit once at the end with the marker at the window's
end. A first sync reads the last ``first_sync_history`` (default three years), not everything.
Reads start a lookback window before the marker and are inclusive, so records committed late with
an older ``updated_at`` are still seen; landing dedup on (workspace, id, content) makes the overlap
harmless.

Around that transaction (:func:`_guarded`):

* a connection marked ``needs_reauth`` is skipped without a call to the source;
* an access token about to expire is refreshed first (serialised per workspace, see
  :func:`ledgerlink.credentials.fresh_token`), and a refused token is refreshed once and retried;
* an authentication failure that survives that marks the connection ``needs_reauth``, opens one
  incident and notifies the owner once; the task itself succeeds, so Airflow does not crash-loop;
* a success resolves the source's open incidents.

Bad records do not stop a read: each goes to ``ops.rejected_records`` with its raw payload and the
reason, and the rest of the page lands. A response that is not JSON even after retries, or a
QuickBooks ``Fault``, is quarantined whole and that entity's marker stays put, so the next run
reads it again; other entities go on. Counts per entity (received = landed new + landed already +
rejected) go to ``ops.extraction_counts``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg

from ledgerlink.blobstore import BlobStore
from ledgerlink.credentials import (
    NEEDS_REAUTH,
    NotConnected,
    SourceToken,
    connection_status,
    fresh_token,
    mark_needs_reauth,
)
from ledgerlink.incidents import NEEDS_REAUTH as NEEDS_REAUTH_INCIDENT
from ledgerlink.incidents import notify_owner_once, open_incident, open_incidents, resolve_incidents
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sources import validation
from ledgerlink.sources.http import AuthenticationFailed, RetryPolicy, UnreadableResponse
from ledgerlink.sources.oauth import OAuthClient, refresher
from ledgerlink.sources.qonto import QontoClient
from ledgerlink.sources.quickbooks import QuickBooksClient
from ledgerlink.sources.square import SquareClient
from ledgerlink.warehouse.landing import (
    Lander,
    Rejection,
    SourceRecord,
    land_records,
    reject_records,
    resolve_rejections,
)
from ledgerlink.warehouse.sync_markers import advance_marker, read_marker
from ledgerlink.workspaces import load_workspace

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=15)
FIRST_SYNC_HISTORY = timedelta(days=3 * 365)
CHUNK_RECORDS = 50_000
PROGRESS_EVERY = 10_000  # records received between progress lines in the task log


@dataclass(frozen=True)
class QuickBooksEntity:
    table: str
    record_id: Callable[[dict[str, Any]], str]


def _qbo_id(row: dict[str, Any]) -> str:
    return str(row["Id"])


def _exchange_rate_id(row: dict[str, Any]) -> str:
    # ExchangeRate has no Id: a rate is one currency on one date.
    return f"{row.get('SourceCurrencyCode')}:{row.get('TargetCurrencyCode')}:{row.get('AsOfDate')}"


QUICKBOOKS_ENTITIES = {
    "Vendor": QuickBooksEntity("qbo_vendors", _qbo_id),
    "Customer": QuickBooksEntity("qbo_customers", _qbo_id),
    "Invoice": QuickBooksEntity("qbo_invoices", _qbo_id),
    "Account": QuickBooksEntity("qbo_accounts", _qbo_id),
    "TaxCode": QuickBooksEntity("qbo_tax_codes", _qbo_id),
    "ExchangeRate": QuickBooksEntity("qbo_exchange_rates", _exchange_rate_id),
    # read to find entries carrying ledgerlink's source ids (what email-in turned into books)
    "Bill": QuickBooksEntity("qbo_bills", _qbo_id),
    "Purchase": QuickBooksEntity("qbo_purchases", _qbo_id),
}


@dataclass(frozen=True)
class ExtractionWindow:
    """Which run reads, the upper bound it reads to (the run's data interval end), how far back a
    first sync reaches and how many records a committed chunk holds."""

    run_id: str
    window_end: datetime
    first_sync_history: timedelta = FIRST_SYNC_HISTORY
    chunk_records: int = CHUNK_RECORDS

    def __post_init__(self) -> None:
        if self.chunk_records < 1 or self.first_sync_history <= timedelta(0):
            raise ValueError("the first sync's history and the chunk size must both be positive")


@dataclass(frozen=True)
class SourceAccess:
    """How to reach one source: its API, its OAuth application (for refreshes), client limits,
    and where owner notices go when the connection breaks."""

    base_url: str
    oauth: OAuthClient | None = None
    notifier: SmtpEndpoint | None = None
    retry_policy: RetryPolicy | None = None
    client_options: dict[str, Any] = field(default_factory=dict)

    def client_kwargs(self) -> dict[str, Any]:
        extra = dict(self.client_options)
        if self.retry_policy is not None:
            extra["retry_policy"] = self.retry_policy
        return extra


@dataclass
class EntityCounts:
    received: int = 0
    landed_new: int = 0
    landed_already: int = 0
    rejected: int = 0
    unreadable_responses: int = 0


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _updated_at(row: dict[str, Any]) -> Any:
    return row.get("updated_at")


def _quickbooks_updated_at(row: dict[str, Any]) -> Any:
    return (row.get("MetaData") or {}).get("LastUpdatedTime")


@dataclass(frozen=True)
class _Entity:
    source: str
    entity: str
    table: str
    validator: validation.Validator
    record_id: Callable[[dict[str, Any]], str] = lambda row: str(row["id"])
    updated_at: Callable[[dict[str, Any]], Any] = _updated_at
    # Pages come oldest change first, so the newest change landed is a safe place to resume from.
    oldest_change_first: bool = False


def _land_page(
    conn: psycopg.Connection,
    workspace_id: str,
    run_id: str,
    spec: _Entity,
    page: list[Any],
    counts: EntityCounts,
    lander: Lander,
) -> list[dict[str, Any]]:
    """Hand the page's valid records to ``lander`` and quarantine the rest; return the valid
    records. Records land when the lander flushes (every few thousand, and at the chunk's end)."""
    accepted: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for item in page:
        reason = validation.rejection_reason(item, spec.validator)
        if reason is None:
            accepted.append(item)
            continue
        record_id = item.get("id", item.get("Id")) if isinstance(item, dict) else None
        rejections.append(
            Rejection(spec.entity, str(record_id) if record_id is not None else None, item, reason)
        )
    records = [
        SourceRecord(spec.record_id(row), row, _parse_timestamp(spec.updated_at(row))) for row in accepted
    ]
    lander.add(records)
    counts.received += len(page)
    counts.rejected += len(rejections)
    if rejections:
        # Land what came before first, so a record's later bad version stays open after its
        # earlier good one is resolved, as it would page by page.
        _flush(conn, workspace_id, spec, lander)
        reject_records(conn, workspace_id, spec.source, run_id, rejections)
        logger.warning(
            "workspace %s, %s %s: quarantined %d record(s): %s",
            workspace_id,
            spec.source,
            spec.entity,
            len(rejections),
            "; ".join(sorted({rejection.reason for rejection in rejections}))[:500],
        )
    return accepted


def _flush(conn: psycopg.Connection, workspace_id: str, spec: _Entity, lander: Lander) -> None:
    """Land what ``lander`` holds and close the open rejections of the records it landed."""
    lander.flush()
    resolve_rejections(conn, workspace_id, spec.source, spec.entity, lander.take_landed_ids())


def _land_since_marker(
    conn: psycopg.Connection,
    workspace_id: str,
    window: ExtractionWindow,
    spec: _Entity,
    pages: Callable[[datetime, datetime], Iterable[list[Any]]],
    *,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EntityCounts:
    """Read every page changed since the (source, entity) marker, less the lookback (on a first
    sync: since ``first_sync_history`` before the window's end), up to the window's end. Commit
    every ``chunk_records`` records when the pages come oldest change first, with the marker at the
    newest change landed; at the end, move the marker to the window's end unless a response could
    not be read (then it stays, and the next run reads that part again)."""
    counts = EntityCounts()
    lander = Lander(conn, spec.table, workspace_id, window.run_id)
    with conn.transaction():
        marker = read_marker(conn, workspace_id, spec.source, spec.entity)
    read_from = marker - LOOKBACK if marker is not None else window.window_end - window.first_sync_history
    remaining = iter(pages(read_from, window.window_end))
    finished = readable = False
    logged_at = 0
    while not finished:
        with conn.transaction():
            chunk_start, newest_change = counts.received, None
            try:
                for page in remaining:
                    accepted = _land_page(conn, workspace_id, window.run_id, spec, page, counts, lander)
                    if on_page is not None:
                        on_page(accepted)
                    for row in accepted:
                        changed_at = _parse_timestamp(spec.updated_at(row))
                        if changed_at is not None and (newest_change is None or changed_at > newest_change):
                            newest_change = changed_at
                    if counts.received - logged_at >= PROGRESS_EVERY:
                        logged_at = counts.received
                        _log_progress(workspace_id, spec, counts, newest_change)
                    if (
                        spec.oldest_change_first
                        and newest_change is not None
                        and counts.received - chunk_start >= window.chunk_records
                    ):
                        break  # commit this chunk; the next one goes on with the same read
                else:
                    finished = readable = True
            except UnreadableResponse as error:
                finished = True
                reason = f"unreadable response: {error}"
                reject_records(
                    conn,
                    workspace_id,
                    spec.source,
                    window.run_id,
                    [Rejection(spec.entity, None, error.raw_body, reason)],
                )
                counts.unreadable_responses += 1
                logger.error(
                    "workspace %s, %s %s: %s; marker kept", workspace_id, spec.source, spec.entity, reason
                )
            _flush(conn, workspace_id, spec, lander)  # the pages read before a bad response still land
            if not finished and newest_change is not None:
                advance_marker(conn, workspace_id, spec.source, spec.entity, newest_change, window.run_id)
            if readable:
                advance_marker(conn, workspace_id, spec.source, spec.entity, window.window_end, window.run_id)
                # The responses that could not be read before have now been read in full.
                conn.execute(
                    "update ops.rejected_records set retry_state = 'landed', resolved_at = now()"
                    " where workspace_id = %s and source = %s and entity = %s and retry_state = 'open'"
                    " and source_record_id is null and reason like 'unreadable response%%'",
                    (workspace_id, spec.source, spec.entity),
                )
            counts.landed_new = lander.landed_new
            counts.landed_already = counts.received - counts.rejected - counts.landed_new
            _record_counts(conn, workspace_id, spec, window.run_id, counts)
    return counts


def _unbounded_pages(
    pages: Callable[[datetime], Iterable[list[Any]]], read_from: datetime, _read_to: datetime
) -> Iterable[list[Any]]:
    return pages(read_from)


def _log_progress(workspace_id: str, spec: _Entity, counts: EntityCounts, newest: datetime | None) -> None:
    logger.info(
        "workspace %s, %s %s: %d received, %d landed new, %d rejected so far; newest change %s",
        workspace_id,
        spec.source,
        spec.entity,
        counts.received,
        counts.landed_new,
        counts.rejected,
        newest.isoformat() if newest else "unknown",
    )


def _record_counts(
    conn: psycopg.Connection, workspace_id: str, spec: _Entity, run_id: str, counts: EntityCounts
) -> None:
    conn.execute(
        """
        insert into ops.extraction_counts (workspace_id, source, entity, run_id, received, landed_new,
                                           landed_already, rejected, unreadable_responses)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (workspace_id, source, entity, run_id) do update set
            received = excluded.received, landed_new = excluded.landed_new,
            landed_already = excluded.landed_already, rejected = excluded.rejected,
            unreadable_responses = excluded.unreadable_responses, recorded_at = now()
        """,
        (
            workspace_id,
            spec.source,
            spec.entity,
            run_id,
            counts.received,
            counts.landed_new,
            counts.landed_already,
            counts.rejected,
            counts.unreadable_responses,
        ),
    )


def _summary(counts: dict[str, EntityCounts]) -> dict[str, int]:
    """``{entity: new rows, entity_rejected: n, ...}`` for the task's XCom and logs."""
    summary: dict[str, int] = {}
    for name, entity_counts in counts.items():
        summary[name] = entity_counts.landed_new
        if entity_counts.rejected:
            summary[f"{name}_rejected"] = entity_counts.rejected
        if entity_counts.unreadable_responses:
            summary[f"{name}_unreadable_responses"] = entity_counts.unreadable_responses
    return summary


def _guarded(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    access: SourceAccess,
    window: ExtractionWindow,
    read: Callable[[SourceToken], dict[str, int]],
) -> dict[str, int]:
    """Run ``read`` (which commits chunk by chunk) with the connection's health rules."""
    conn.commit()
    with conn.transaction():
        status = connection_status(conn, workspace_id, source)
    if status is None:
        raise NotConnected(f"workspace {workspace_id!r} has no {source} connection; run `ledgerlink connect`")
    if status == NEEDS_REAUTH:
        logger.warning("workspace %s: %s needs to be reconnected; not calling it", workspace_id, source)
        if access.notifier is not None:
            # An announcement that failed earlier (SMTP down) is tried again; a sent one never is.
            for incident in open_incidents(conn, workspace_id, source):
                if incident.owner_notified_at is None:
                    notify_owner_once(conn, incident, access.notifier)
        return {"skipped_needs_reauth": 1}
    refresh = refresher(source, access.oauth) if access.oauth is not None else None
    never = _never_refresh
    try:
        # Token lifetimes are wall-clock facts, not business time: compare with the real clock.
        token = fresh_token(conn, workspace_id, source, datetime.now(UTC), refresh or never)
        # ``read`` commits chunk by chunk; a refused token resumes from the last committed chunk.
        try:
            summary = read(token)
        except AuthenticationFailed:
            conn.rollback()
            if refresh is None or token.refresh_token is None:
                raise
            logger.warning("workspace %s: %s refused the access token; refreshing once", workspace_id, source)
            token = fresh_token(conn, workspace_id, source, datetime.now(UTC), refresh, force=True)
            summary = read(token)
    except AuthenticationFailed as error:
        _needs_reauth(conn, workspace_id, source, str(error), window.run_id, access.notifier)
        return {"needs_reauth": 1}
    with conn.transaction():
        if resolve_incidents(conn, workspace_id, source):
            logger.info("workspace %s: %s works again; incident resolved", workspace_id, source)
    return summary


def _never_refresh(refresh_token: str) -> Any:
    raise AuthenticationFailed("no OAuth application is configured to refresh this token")


def _needs_reauth(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    detail: str,
    run_id: str,
    notifier: SmtpEndpoint | None,
) -> None:
    logger.error(
        "workspace %s: %s refused ledgerlink's credentials; marked needs_reauth", workspace_id, source
    )
    with conn.transaction():
        mark_needs_reauth(conn, workspace_id, source, detail)
        incident = open_incident(
            conn,
            workspace_id,
            channel=source,
            kind=NEEDS_REAUTH_INCIDENT,
            detail=f"{source} refused the stored credentials ({detail[:200]})",
            run_id=run_id,
        )
    if notifier is not None:
        notify_owner_once(conn, incident, notifier)


def _entity_specs() -> dict[tuple[str, str], _Entity]:
    specs = [
        _Entity(
            "qonto",
            "supplier_invoices",
            "qonto_supplier_invoices",
            validation.qonto_supplier_invoice,
            oldest_change_first=True,
        ),
        _Entity("square", "customers", "square_customers", validation.square_customer),
        _Entity("square", "payments", "square_payments", validation.square_payment, oldest_change_first=True),
        _Entity("square", "refunds", "square_refunds", validation.square_refund, oldest_change_first=True),
        *(
            _Entity(
                "quickbooks",
                entity,
                target.table,
                validation.quickbooks_entity if entity != "ExchangeRate" else validation.quickbooks_rate,
                record_id=target.record_id,
                updated_at=_quickbooks_updated_at,
            )
            for entity, target in QUICKBOOKS_ENTITIES.items()
        ),
    ]
    return {(spec.source, spec.entity): spec for spec in specs}


def retry_rejections(conn: psycopg.Connection, workspace_id: str, run_id: str) -> dict[str, int]:
    """Retry the workspace's open record rejections (after a person fixed a raw payload, or
    ledgerlink learnt to read it): each that now passes validation lands and is closed; the
    rest stay open with one more attempt. Whole responses are retried by the next read instead."""
    specs = _entity_specs()
    outcome = {"landed": 0, "still_rejected": 0}
    with conn.transaction():
        rows = conn.execute(
            "select rejection_id, source, entity, raw_payload from ops.rejected_records"
            " where workspace_id = %s and retry_state = 'open' order by rejection_id for update skip locked",
            (workspace_id,),
        ).fetchall()
        for rejection_id, source, entity, raw_payload in rows:
            spec = specs.get((source, entity))
            if spec is None:
                continue
            try:
                record = json.loads(raw_payload)
            except ValueError:
                record = raw_payload
            reason = validation.rejection_reason(record, spec.validator)
            if reason is not None:
                conn.execute(
                    "update ops.rejected_records set attempts = attempts + 1, reason = %s, rejected_by_run = %s"
                    " where rejection_id = %s",
                    (reason, run_id, rejection_id),
                )
                outcome["still_rejected"] += 1
                continue
            landed = SourceRecord(spec.record_id(record), record, _parse_timestamp(spec.updated_at(record)))
            land_records(conn, spec.table, workspace_id, run_id, [landed])
            conn.execute(
                "update ops.rejected_records set retry_state = 'landed', resolved_at = now() where rejection_id = %s",
                (rejection_id,),
            )
            outcome["landed"] += 1
    return outcome


def _as_access(access: SourceAccess | str) -> SourceAccess:
    return access if isinstance(access, SourceAccess) else SourceAccess(base_url=access)


def extract_qonto(
    conn: psycopg.Connection,
    workspace_id: str,
    access: SourceAccess | str,
    window: ExtractionWindow,
    blobs: BlobStore,
) -> dict[str, int]:
    """Land supplier invoices changed since the marker, and download each new attachment at once
    (its URL expires after 30 minutes) into the blob store."""
    access = _as_access(access)
    spec = _entity_specs()[("qonto", "supplier_invoices")]

    def read(token: SourceToken) -> dict[str, int]:
        attachments = 0
        with QontoClient(access.base_url, token.access_token, **access.client_kwargs()) as client:

            def land_attachments(page: list[dict[str, Any]]) -> None:
                nonlocal attachments
                ids = {str(row["attachment_id"]) for row in page if isinstance(row.get("attachment_id"), str)}
                attachments += _land_new_attachments(conn, client, workspace_id, ids, window, blobs)

            counts = _land_since_marker(
                conn,
                workspace_id,
                window,
                spec,
                client.supplier_invoice_pages,
                on_page=land_attachments,
            )
        return {**_summary({"supplier_invoices": counts}), "attachments": attachments}

    return _guarded(conn, workspace_id, "qonto", access, window, read)


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
    for attachment_id, attachment, content in client.download_attachments(sorted(attachment_ids - already)):
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
    conn: psycopg.Connection, workspace_id: str, access: SourceAccess | str, window: ExtractionWindow
) -> dict[str, int]:
    """Process pending webhook events, then land Square customers, payments and refunds changed
    since their markers (polling catches any webhook that never arrived)."""
    from ledgerlink.webhooks.square import process_pending_events

    access = _as_access(access)
    with conn.transaction():
        location_id = load_workspace(conn, workspace_id).square_location_id
        process_pending_events(conn, workspace_id, window.run_id)
    customers_spec = _entity_specs()[("square", "customers")]
    payments_spec = _entity_specs()[("square", "payments")]
    refunds_spec = _entity_specs()[("square", "refunds")]

    def read(token: SourceToken) -> dict[str, int]:
        with conn.transaction():
            first_customer_sync = read_marker(conn, workspace_id, "square", "customers") is None
        with SquareClient(access.base_url, token.access_token, **access.client_kwargs()) as client:

            def customer_pages(read_from: datetime, read_to: datetime) -> Iterator[list[Any]]:
                # A first sync lists the whole directory, whatever the history window.
                return client.customer_pages(None if first_customer_sync else read_from, read_to)

            customers = _land_since_marker(conn, workspace_id, window, customers_spec, customer_pages)
            payments = _land_since_marker(
                conn,
                workspace_id,
                window,
                payments_spec,
                lambda read_from, read_to: client.payment_pages(read_from, read_to, location_id),
            )
            refunds = _land_since_marker(
                conn,
                workspace_id,
                window,
                refunds_spec,
                lambda read_from, read_to: client.refund_pages(read_from, read_to, location_id),
            )
        return _summary({"customers": customers, "payments": payments, "refunds": refunds})

    return _guarded(conn, workspace_id, "square", access, window, read)


def extract_quickbooks(
    conn: psycopg.Connection, workspace_id: str, access: SourceAccess | str, window: ExtractionWindow
) -> dict[str, int]:
    """Land the QuickBooks ledger entities matching needs (read only)."""
    access = _as_access(access)
    with conn.transaction():
        realm_id = load_workspace(conn, workspace_id).quickbooks_realm_id
    if not realm_id:
        raise NotConnected(
            f"workspace {workspace_id!r} has no QuickBooks realm id;"
            " set it with `ledgerlink workspace add … --quickbooks-realm-id`"
        )

    specs = _entity_specs()

    def read(token: SourceToken) -> dict[str, int]:
        counts: dict[str, EntityCounts] = {}
        with QuickBooksClient(
            access.base_url, token.access_token, realm_id, **access.client_kwargs()
        ) as client:
            for entity, target in QUICKBOOKS_ENTITIES.items():
                spec = specs[("quickbooks", entity)]
                counts[target.table] = _land_since_marker(
                    conn,
                    workspace_id,
                    window,
                    spec,
                    partial(_unbounded_pages, partial(client.entity_pages, entity)),
                )
        return _summary(counts)

    return _guarded(conn, workspace_id, "quickbooks", access, window, read)
