"""The outbox: one row per document to deliver, written in the same transaction as the decision
(or the review action) that calls for it, so a decision and its delivery never part. The email
operator (:mod:`ledgerlink.delivery.sender`) sends what is pending.

Every caller that wants a document delivered goes through :func:`enqueue_document`: the scorer
for auto-links, the review queue for accepted and pinned records. It is also the second line of
dedup:

- the same record content again (re-import, marker rewind, webhook replay) queues nothing;
- changed content of a record not yet delivered supersedes the queued row; of a record already
  delivered, it queues an update that references the original and is flagged for a person
  (QuickBooks cannot be edited by email);
- a distinct record that looks like one already queued (same counterparty, amount and currency,
  dates within three days, no reference on either) is not queued: its decision goes to review,
  and is queued when a reviewer accepts or pins it.

It stamps the mapping version in effect at ``enqueued_at`` on the outbox row and the decision,
and the conversion into the workspace's home currency when the record is in another one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.delivery.mappings import mapping_in_effect
from ledgerlink.money import currency_exponent, minor_to_decimal
from ledgerlink.workspaces import Workspace

#: How far apart two look-alike records' dates may be.
LOOK_ALIKE_DAYS = 3


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
    (the same record content is never queued twice; a look-alike goes to review instead)."""
    previous = conn.execute(
        """
        select outbox_id, source_payload_sha256, status from ops.delivery_outbox
        where workspace_id = %s and source = %s and source_record_id = %s and status <> 'superseded'
        order by outbox_id desc limit 1
        """,
        (workspace.workspace_id, record.source, record.source_record_id),
    ).fetchone()
    if previous is not None and previous[1] == record.source_payload_sha256:
        return False
    if previous is None and not _accepted_by_a_person(conn, decision_id):
        look_alike = _look_alike(conn, workspace.workspace_id, record)
        if look_alike is not None:
            _divert_to_review(conn, decision_id, look_alike)
            return False
    mapping = mapping_in_effect(conn, workspace.workspace_id, enqueued_at)
    document: dict[str, Any] = {
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
        "mapping_version": mapping.version,
        "conversion": _conversion(conn, workspace, record, enqueued_at),
    }
    document["fields"] = mapping.apply(_mapping_values(document))
    supersedes_id, needs_person = None, False
    if previous is not None:
        supersedes_id = previous[0]
        needs_person = previous[2] in ("sending", "sent", "posted")
        if not needs_person:
            conn.execute(
                "update ops.delivery_outbox set status = 'superseded' where outbox_id = %s", (supersedes_id,)
            )
    cursor = conn.execute(
        """
        insert into ops.delivery_outbox (decision_id, workspace_id, source, source_record_id,
            source_payload_sha256, message_id, recipient, document, created_at, mapping_version,
            supersedes_outbox_id, needs_person, needs_person_reason)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
            mapping.version,
            supersedes_id,
            needs_person,
            "the record changed after its document was delivered; QuickBooks cannot be edited by"
            " email, so check the entry drafted from the original"
            if needs_person
            else None,
        ),
    )
    conn.execute(
        "update ops.routing_decisions set mapping_version = %s where decision_id = %s",
        (mapping.version, decision_id),
    )
    return cursor.rowcount == 1


def remap_document(
    conn: psycopg.Connection, workspace_id: str, document: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """The queued document with the field mapping in effect at ``at`` applied and stamped: for a
    delivery retried after its mapping was fixed (it was never delivered, so no copy differs)."""
    mapping = mapping_in_effect(conn, workspace_id, at)
    return {
        **document,
        "mapping_version": mapping.version,
        "fields": mapping.apply(_mapping_values(document)),
    }


def _mapping_values(document: dict[str, Any]) -> dict[str, Any]:
    """What mapping expressions can read: the record and its matched entry, plain values only."""
    amount_minor, currency = document["amount_minor"], document["currency"]
    amount = str(minor_to_decimal(amount_minor, currency)) if amount_minor is not None and currency else None
    return {
        "counterparty": document["counterparty_name"],
        "amount": amount,
        "amount_minor": amount_minor,
        "currency": currency,
        "reference": document["reference"],
        "tax": None,
        "occurred_on": document["occurred_on"],
        "source": document["source"],
        "matched_type": document["matched_type"],
        "matched_id": document["matched_id"],
        "matched_name": document["matched_name"],
    }


def _conversion(
    conn: psycopg.Connection, workspace: Workspace, record: DeliveredRecord, at: datetime
) -> dict[str, Any] | None:
    """The amount in the home currency at the latest rate dated on or before ``at`` (the
    QuickBooks exchange rate or the workspace's rule, as stored in ``ops.exchange_rates``)."""
    if record.currency is None or record.amount_minor is None or record.currency == workspace.home_currency:
        return None
    row = conn.execute(
        """
        select rate, rate_date, rate_source from ops.exchange_rates
        where workspace_id = %s and source_currency = %s and target_currency = %s and rate_date <= %s
        order by rate_date desc limit 1
        """,
        (workspace.workspace_id, record.currency, workspace.home_currency, at.date()),
    ).fetchone()
    if row is None:
        return {"home_currency": workspace.home_currency, "missing_rate": True}
    rate, rate_date, rate_source = row
    converted = minor_to_decimal(record.amount_minor, record.currency) * rate
    converted_minor = int(converted.scaleb(currency_exponent(workspace.home_currency)).to_integral_value())
    return {
        "home_currency": workspace.home_currency,
        "converted_amount_minor": converted_minor,
        "rate": str(rate),
        "rate_date": rate_date.isoformat(),
        "rate_source": rate_source,
    }


def _look_alike(conn: psycopg.Connection, workspace_id: str, record: DeliveredRecord) -> str | None:
    """The source record id of a distinct queued record this one looks like, if any."""
    if record.reference or record.occurred_on is None or record.amount_minor is None:
        return None
    row = conn.execute(
        """
        select source_record_id from ops.delivery_outbox
        where workspace_id = %(ws)s and source = %(source)s and source_record_id <> %(record_id)s
            and status <> 'superseded'
            and (document ->> 'amount_minor')::bigint = %(amount)s
            and document ->> 'currency' = %(currency)s
            and coalesce(document ->> 'reference', '') = ''
            and regexp_replace(lower(coalesce(document ->> 'counterparty_name', '')), '[^a-z0-9]', '', 'g')
                = regexp_replace(lower(coalesce(%(name)s, '')), '[^a-z0-9]', '', 'g')
            and abs((document ->> 'occurred_on')::date - %(on)s::date) <= %(days)s
        order by outbox_id limit 1
        """,
        {
            "ws": workspace_id,
            "source": record.source,
            "record_id": record.source_record_id,
            "amount": record.amount_minor,
            "currency": record.currency,
            "name": record.counterparty_name,
            "on": record.occurred_on,
            "days": LOOK_ALIKE_DAYS,
        },
    ).fetchone()
    return None if row is None else str(row[0])


def _accepted_by_a_person(conn: psycopg.Connection, decision_id: int) -> bool:
    """A reviewer accepted or pinned this decision: a look-alike was already judged distinct."""
    row = conn.execute(
        "select exists (select 1 from ops.review_actions where decision_id = %s and action in ('accept', 'pin'))",
        (decision_id,),
    ).fetchone()
    return bool(row and row[0])


def _divert_to_review(conn: psycopg.Connection, decision_id: int, look_alike_of: str) -> None:
    conn.execute(
        """
        update ops.routing_decisions set route = 'review',
            explanation = explanation || jsonb_build_object('look_alike_of', %s::text)
        where decision_id = %s
        """,
        (look_alike_of, decision_id),
    )
