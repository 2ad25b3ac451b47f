"""The outbox: one row per document to deliver, written in the same transaction as the decision
(or the review action) that calls for it, so a decision and its delivery never part. The email
operator (:mod:`ledgerlink.delivery.sender`) sends what is pending.

Every caller that wants a document delivered goes through :func:`enqueue_document`: the scorer
for auto-links, the review queue for accepted and pinned records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.workspaces import Workspace


@dataclass(frozen=True)
class DeliveredRecord:
    """The source record a document is about, as the warehouse last saw it."""

    source: str
    source_record_id: str
    source_payload_sha256: str
    counterparty_name: str | None
    amount_minor: int | None
    currency: str | None
    occurred_on: date | None
    reference: str | None


@dataclass(frozen=True)
class MatchedEntry:
    """The QuickBooks entry the record was linked to, and how sure the link is."""

    candidate_type: str
    candidate_id: str
    candidate_name: str | None
    score: float


def message_id_for(workspace_id: str, source: str, source_record_id: str, payload_sha256: str) -> str:
    """A stable Message-ID: the same record content always gets the same one."""
    local = re.sub(
        r"[^A-Za-z0-9.-]", "-", f"{workspace_id}.{source}.{source_record_id}.{payload_sha256[:16]}"
    )
    return f"<{local}@ledgerlink.invalid>"


def enqueue_document(
    conn: psycopg.Connection,
    workspace: Workspace,
    *,
    decision_id: int,
    record: DeliveredRecord,
    match: MatchedEntry,
    enqueued_at: datetime,
) -> bool:
    """Queue the record's document for the workspace's email-in; return whether a row was added
    (the same record content is never queued twice)."""
    document = {
        "source": record.source,
        "source_record_id": record.source_record_id,
        "counterparty_name": record.counterparty_name,
        "amount_minor": record.amount_minor,
        "currency": record.currency,
        "occurred_on": record.occurred_on.isoformat() if record.occurred_on else None,
        "reference": record.reference,
        "matched_type": match.candidate_type,
        "matched_id": match.candidate_id,
        "matched_name": match.candidate_name,
        "score": match.score,
    }
    cursor = conn.execute(
        """
        insert into ops.delivery_outbox (decision_id, workspace_id, source, source_record_id,
            source_payload_sha256, message_id, recipient, document, created_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict do nothing
        """,
        (
            decision_id,
            workspace.workspace_id,
            record.source,
            record.source_record_id,
            record.source_payload_sha256,
            message_id_for(
                workspace.workspace_id, record.source, record.source_record_id, record.source_payload_sha256
            ),
            workspace.email_in_address,
            Jsonb(document),
            enqueued_at,
        ),
    )
    return cursor.rowcount == 1
