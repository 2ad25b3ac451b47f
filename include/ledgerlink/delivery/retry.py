"""Retry after fix: put one rejected (or given-up) delivery back in the outbox, once the cause is
fixed (a sender registered, a size limit raised, an attachment re-landed).

The row keeps its Message-ID and its source record, so the retry goes through the same send path
and the same crash-safe, idempotent rules as the first try; asking twice queues it once. Each
request is recorded among the row's attempts with who asked. The document takes the field mapping
in effect at the retry, so a mapping fixed since the rejection applies (it was never delivered)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.delivery.outbox import remap_document

RETRYABLE_STATES = ("rejected", "failed")


@dataclass(frozen=True)
class RetryRequest:
    """What a retry did: the outbox row, the source record it delivers, whether it was queued
    now (``False`` when it was not in a retryable state, e.g. already queued or sent)."""

    outbox_id: int
    workspace_id: str
    source: str
    source_record_id: str
    previous_status: str
    previous_reason: str | None
    queued: bool


class DeliveryNotFound(LookupError):
    pass


def retry_delivery(
    conn: psycopg.Connection,
    workspace_id: str,
    *,
    actor: str,
    outbox_id: int | None = None,
    source_record: str | None = None,
) -> RetryRequest:
    """Queue the delivery again, found by ``outbox_id`` or by ``source_record`` (``source:id``,
    the newest delivery of that record). Commits."""
    if (outbox_id is None) == (source_record is None):
        raise ValueError("give either outbox_id or source_record")
    source, _, record_id = (source_record or "").partition(":")
    with conn.transaction():
        row = conn.execute(
            """
            select outbox_id, source, source_record_id, status, rejected_reason, document, decision_id
            from ops.delivery_outbox
            where workspace_id = %(ws)s and status <> 'superseded'
                and (outbox_id = %(outbox_id)s or (source = %(source)s and source_record_id = %(record_id)s))
            order by outbox_id desc limit 1
            for update
            """,
            {"ws": workspace_id, "outbox_id": outbox_id, "source": source, "record_id": record_id},
        ).fetchone()
        if row is None:
            raise DeliveryNotFound(f"no delivery {outbox_id or source_record} in workspace {workspace_id}")
        found_id, found_source, found_record, status, reason, document, decision_id = row
        queued = status in RETRYABLE_STATES
        if queued:
            document = remap_document(conn, workspace_id, document, datetime.now(UTC))
            conn.execute(
                "update ops.delivery_outbox set status = 'pending', next_attempt_at = null, attempt_count = 0,"
                " document = %s, mapping_version = %s where outbox_id = %s",
                (Jsonb(document), document["mapping_version"], found_id),
            )
            conn.execute(
                "update ops.routing_decisions set mapping_version = %s where decision_id = %s",
                (document["mapping_version"], decision_id),
            )
            conn.execute(
                "insert into ops.delivery_attempts (outbox_id, attempted_at, attempted_by_run, outcome, detail,"
                " finished_at, smtp_phase) values (%s, now(), %s, 'retry_requested', %s, now(), 'retry')",
                (found_id, f"retry by {actor}", f"was {status}: {reason}"),
            )
    return RetryRequest(found_id, workspace_id, found_source, found_record, status, reason, queued)
