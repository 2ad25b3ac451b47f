"""The outbox: one row per document to deliver, written in the same transaction as the decision
(or the review action) that calls for it, so a decision and its delivery never part. The email
operator (:mod:`ledgerlink.delivery.sender`) sends what is pending.

Every caller that wants a document delivered goes through :func:`enqueue_documents` (or
:func:`enqueue_document` for one): the scorer for auto-links, in one batch per run, the review
queue for accepted and pinned records. A batch behaves as its documents queued one after another,
in a fixed number of statements. It is also the second line of dedup:

- the same record content again (re-import, marker rewind, webhook replay) queues nothing;
- changed content of a record not yet delivered supersedes the queued row; of a record already
  delivered, it queues an update that references the original and is flagged for a person
  (QuickBooks cannot be edited by email);
- a distinct record that looks like one already queued, before or earlier in the same batch
  (same counterparty, amount and currency, dates within three days, no reference on either) is
  not queued: its decision goes to review, and is queued when a reviewer accepts or pins it.

It stamps the mapping version in effect at ``enqueued_at`` on the outbox row and the decision,
and the conversion into the workspace's home currency when the record is in another one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.delivery.mappings import FieldMapping, mapping_in_effect
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


@dataclass(frozen=True)
class DocumentRequest:
    """One document to queue: the decision that calls for it, its record and the matched entry."""

    decision_id: int
    record: DeliveredRecord
    match: MatchedEntry


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
    [queued] = enqueue_documents(conn, workspace, [DocumentRequest(decision_id, record, match)], enqueued_at)
    return queued


def enqueue_documents(
    conn: psycopg.Connection,
    workspace: Workspace,
    requests: Sequence[DocumentRequest],
    enqueued_at: datetime,
) -> list[bool]:
    """Queue each request's document as :func:`enqueue_document` would, one after the other in
    the given order (so a look-alike of a record queued earlier in the batch goes to review, and
    a record's later content supersedes its earlier one), in a fixed number of statements however
    many requests there are. Returns, per request, whether a row was added."""
    if not requests:
        return []
    workspace_id = workspace.workspace_id
    outbox = _Outbox.read(conn, workspace_id, requests)
    mapping = mapping_in_effect(conn, workspace_id, enqueued_at)
    rates = _rates_in_effect(conn, workspace, {r.record.currency for r in requests}, enqueued_at.date())
    diverted: list[tuple[int, str]] = []
    stamped: list[int] = []
    documents: dict[int, dict[str, Any]] = {}  # by request position, for the rows added
    added: dict[int, _OutboxRow] = {}
    revived: dict[int, _OutboxRow] = {}  # stored superseded rows whose content came back
    for index, request in enumerate(requests):
        record, name_key = request.record, outbox.name_keys[index]
        previous = outbox.latest(record)
        if previous is not None and previous.payload_sha256 == record.source_payload_sha256:
            continue
        if previous is None and request.decision_id not in outbox.accepted_decisions:
            look_alike = outbox.look_alike(record, name_key)
            if look_alike is not None:
                diverted.append((request.decision_id, look_alike.source_record_id))
                continue
        needs_person = previous is not None and previous.status in ("sending", "sent", "posted")
        if previous is not None and not needs_person:
            outbox.supersede(previous)
        stamped.append(request.decision_id)
        row = outbox.add(workspace_id, request.decision_id, record, name_key, previous, needs_person)
        if row is not None:
            (added if row.outbox_id is None else revived)[index] = row
            conversion = _conversion(workspace.home_currency, record, rates.get(record.currency or ""))
            documents[index] = _document(request, mapping, conversion)
    _divert_to_review(conn, diverted)
    _supersede(conn, outbox.superseded)
    inserted = _insert(conn, workspace, requests, added, documents, mapping.version, enqueued_at)
    _revive(conn, revived, documents, mapping.version, enqueued_at)
    if stamped:
        conn.execute(
            "update ops.routing_decisions set mapping_version = %s where decision_id = any(%s)",
            (mapping.version, stamped),
        )
    return [
        index in revived or (index in added and added[index].outbox_id in inserted)
        for index in range(len(requests))
    ]


def _document(
    request: DocumentRequest, mapping: FieldMapping, conversion: dict[str, Any] | None
) -> dict[str, Any]:
    record, match = request.record, request.match
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
        "conversion": conversion,
    }
    document["fields"] = mapping.apply(_mapping_values(document))
    return document


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
    home_currency: str, record: DeliveredRecord, rate: tuple[Decimal, date, str] | None
) -> dict[str, Any] | None:
    """The amount in the home currency at ``rate``, the latest dated on or before the queueing
    (the QuickBooks exchange rate or the workspace's rule, as stored in ``ops.exchange_rates``)."""
    if record.currency is None or record.amount_minor is None or record.currency == home_currency:
        return None
    if rate is None:
        return {"home_currency": home_currency, "missing_rate": True}
    value, rate_date, rate_source = rate
    converted = minor_to_decimal(record.amount_minor, record.currency) * value
    converted_minor = int(converted.scaleb(currency_exponent(home_currency)).to_integral_value())
    return {
        "home_currency": home_currency,
        "converted_amount_minor": converted_minor,
        "rate": str(value),
        "rate_date": rate_date.isoformat(),
        "rate_source": rate_source,
    }


def _rates_in_effect(
    conn: psycopg.Connection, workspace: Workspace, currencies: set[str | None], on: date
) -> dict[str, tuple[Decimal, date, str]]:
    """Per foreign currency, the latest rate into the home currency dated on or before ``on``."""
    foreign = sorted(c for c in currencies if c is not None and c != workspace.home_currency)
    if not foreign:
        return {}
    rows = conn.execute(
        """
        select distinct on (source_currency) source_currency, rate, rate_date, rate_source
        from ops.exchange_rates
        where workspace_id = %s and target_currency = %s and source_currency = any(%s) and rate_date <= %s
        order by source_currency, rate_date desc
        """,
        (workspace.workspace_id, workspace.home_currency, foreign, on),
    ).fetchall()
    return {currency: (rate, rate_date, rate_source) for currency, rate, rate_date, rate_source in rows}


# The look-alike comparison of counterparty names: case and everything but letters and digits
# ignored. It runs in SQL for the batch and the stored rows alike, so both sides fold case the
# same way (the database's lower(), not Python's).
_NAME_KEY = "regexp_replace(lower(coalesce({}, '')), '[^a-z0-9]', '', 'g')"
_NAME_KEYS = f"""
    select {_NAME_KEY.format("name")} from unnest(%s::text[]) with ordinality as n (name, position)
    order by position
"""  # noqa: S608 - a constant


@dataclass(eq=False)
class _OutboxRow:
    """An outbox row as far as queueing decides: stored, or added by this batch (``outbox_id``
    is given when it is inserted)."""

    outbox_id: int | None
    source_record_id: str
    payload_sha256: str
    status: str
    occurred_on: date | None
    decision_id: int | None = None
    supersedes: _OutboxRow | None = None
    needs_person: bool = False


class _Outbox:
    """What a batch of requests needs to know of the workspace's outbox, read in a fixed number
    of queries, and kept up to date as the batch is planned one request after another."""

    def __init__(self, name_keys: list[str]) -> None:
        self.name_keys = name_keys  # per request, its counterparty name as look-alikes compare it
        self.accepted_decisions: set[int] = set()  # a reviewer accepted or pinned them
        # by (source, record id): the record's rows, oldest first
        self.by_record: dict[tuple[str, str], list[_OutboxRow]] = {}
        # by (source, amount, currency, name): rows without a reference, oldest first
        self.look_alikes: dict[tuple[str, int, str, str], list[_OutboxRow]] = {}
        self.contents: set[tuple[str, str, str]] = set()  # (source, record id, payload hash) taken
        self.message_ids: set[str] = set()
        self.superseded: list[_OutboxRow] = []  # stored rows this batch supersedes

    @classmethod
    def read(
        cls, conn: psycopg.Connection, workspace_id: str, requests: Sequence[DocumentRequest]
    ) -> _Outbox:
        records = [request.record for request in requests]
        name_keys = [
            str(row[0])
            for row in conn.execute(
                _NAME_KEYS,
                ([record.counterparty_name for record in records],),
            )
        ]
        outbox = cls(name_keys)
        outbox.accepted_decisions = {
            row[0]
            for row in conn.execute(
                "select distinct decision_id from ops.review_actions"
                " where decision_id = any(%s) and action in ('accept', 'pin')",
                ([request.decision_id for request in requests],),
            )
        }
        stored: dict[int, _OutboxRow] = {}
        # every row of the batch's records, superseded ones too: their content is taken
        for outbox_id, source, record_id, sha, status, message_id in conn.execute(
            """
            select o.outbox_id, o.source, o.source_record_id, o.source_payload_sha256, o.status, o.message_id
            from ops.delivery_outbox as o
            inner join (select distinct * from unnest(%s::text[], %s::text[])) as r (source, source_record_id)
                on o.source = r.source and o.source_record_id = r.source_record_id
            where o.workspace_id = %s
            order by o.outbox_id
            """,
            ([r.source for r in records], [r.source_record_id for r in records], workspace_id),
        ):
            row = stored.setdefault(outbox_id, _OutboxRow(outbox_id, record_id, sha, status, None))
            outbox.by_record.setdefault((source, record_id), []).append(row)
            outbox.contents.add((source, record_id, sha))
            outbox.message_ids.add(message_id)
        message_ids = [
            message_id_for(workspace_id, r.source, r.source_record_id, r.source_payload_sha256)
            for r in records
        ]
        outbox.message_ids.update(
            row[0]
            for row in conn.execute(
                "select message_id from ops.delivery_outbox where message_id = any(%s)", (message_ids,)
            )
        )
        groups = list(
            {
                group
                for record, name_key in zip(records, name_keys, strict=True)
                if (group := outbox.look_alike_group(record, name_key)) is not None
            }
        )
        if groups:
            # the index of migration 012 serves the join on source, amount and currency
            for (
                outbox_id,
                source,
                record_id,
                sha,
                status,
                occurred_on,
                amount,
                currency,
                name_key,
            ) in conn.execute(
                f"""
                select o.outbox_id, o.source, o.source_record_id, o.source_payload_sha256, o.status,
                       (o.document ->> 'occurred_on')::date, g.amount_minor, g.currency, g.name_key
                from unnest(%s::text[], %s::bigint[], %s::text[], %s::text[])
                    as g (source, amount_minor, currency, name_key)
                inner join ops.delivery_outbox as o
                    on o.workspace_id = %s and o.source = g.source
                    and (o.document ->> 'amount_minor')::bigint = g.amount_minor
                    and o.document ->> 'currency' = g.currency
                    and {_NAME_KEY.format("o.document ->> 'counterparty_name'")} = g.name_key
                where o.status <> 'superseded' and coalesce(o.document ->> 'reference', '') = ''
                    and o.document ->> 'occurred_on' is not null
                order by o.outbox_id
                """,  # noqa: S608 - a constant expression
                (*(list(column) for column in zip(*groups, strict=True)), workspace_id),
            ):
                row = stored.setdefault(outbox_id, _OutboxRow(outbox_id, record_id, sha, status, occurred_on))
                row.occurred_on = occurred_on
                outbox.look_alikes.setdefault((source, amount, currency, name_key), []).append(row)
        return outbox

    @staticmethod
    def look_alike_group(record: DeliveredRecord, name_key: str) -> tuple[str, int, str, str] | None:
        """Where the record's look-alikes are kept; None when it can have none (it has a
        reference, or no date, amount or currency to compare)."""
        if (
            record.reference
            or record.occurred_on is None
            or record.amount_minor is None
            or record.currency is None
        ):
            return None
        return (record.source, record.amount_minor, record.currency, name_key)

    def latest(self, record: DeliveredRecord) -> _OutboxRow | None:
        """The record's latest row that is not superseded."""
        rows = self.by_record.get((record.source, record.source_record_id), [])
        return next((row for row in reversed(rows) if row.status != "superseded"), None)

    def look_alike(self, record: DeliveredRecord, name_key: str) -> _OutboxRow | None:
        """The first queued row of a distinct record this one looks like, if any."""
        group = self.look_alike_group(record, name_key)
        if group is None or record.occurred_on is None:
            return None
        for row in self.look_alikes.get(group, []):
            if (
                row.status != "superseded"
                and row.source_record_id != record.source_record_id
                and row.occurred_on is not None
                and abs((row.occurred_on - record.occurred_on).days) <= LOOK_ALIKE_DAYS
            ):
                return row
        return None

    def supersede(self, row: _OutboxRow) -> None:
        row.status = "superseded"
        if row.outbox_id is not None:
            self.superseded.append(row)

    def add(
        self,
        workspace_id: str,
        decision_id: int,
        record: DeliveredRecord,
        name_key: str,
        previous: _OutboxRow | None,
        needs_person: bool,
    ) -> _OutboxRow | None:
        """The row the record's content adds, or None when that content (or its Message-ID) is
        already in the outbox: the insert would do nothing. Content that a later version
        superseded before it was sent, and that has now come back (v1, v2, then v1 again), is
        the stored row made pending again: its Message-ID is taken, and nothing was sent."""
        content = (record.source, record.source_record_id, record.source_payload_sha256)
        message_id = message_id_for(workspace_id, *content)
        if content in self.contents or message_id in self.message_ids:
            return self._revive(record, decision_id)
        row = _OutboxRow(
            None,
            record.source_record_id,
            record.source_payload_sha256,
            "pending",
            record.occurred_on,
            decision_id,
            previous,
            needs_person,
        )
        self.contents.add(content)
        self.message_ids.add(message_id)
        self.by_record.setdefault((record.source, record.source_record_id), []).append(row)
        group = self.look_alike_group(record, name_key)
        if group is not None:
            self.look_alikes.setdefault(group, []).append(row)
        return row

    def _revive(self, record: DeliveredRecord, decision_id: int) -> _OutboxRow | None:
        """The record's stored row with this content, when a later version superseded it."""
        rows = self.by_record.get((record.source, record.source_record_id), [])
        row = next(
            (
                row
                for row in rows
                if row.payload_sha256 == record.source_payload_sha256
                and row.status == "superseded"
                and row.outbox_id is not None
            ),
            None,
        )
        if row is None:
            return None
        row.status, row.decision_id = "pending", decision_id
        if row in self.superseded:
            self.superseded.remove(row)
        return row


_NEEDS_PERSON_REASON = (
    "the record changed after its document was delivered; QuickBooks cannot be edited by email,"
    " so check the entry drafted from the original"
)


def _insert(
    conn: psycopg.Connection,
    workspace: Workspace,
    requests: Sequence[DocumentRequest],
    added: dict[int, _OutboxRow],
    documents: dict[int, dict[str, Any]],
    mapping_version: int,
    enqueued_at: datetime,
) -> set[int]:
    """Insert the added rows in one statement, in request order; return the ids inserted. Their
    ids are drawn first, so a row can name an earlier one of the batch it supersedes. Text and
    documents go as binary arrays: the text form escapes every element, several times slower."""
    if not added:
        return set()
    ids = [
        int(row[0])
        for row in conn.execute(
            "select nextval(pg_get_serial_sequence('ops.delivery_outbox', 'outbox_id')) as outbox_id"
            " from generate_series(1, %s) order by outbox_id",
            (len(added),),
        )
    ]
    positions = sorted(added)
    for outbox_id, index in zip(ids, positions, strict=True):
        added[index].outbox_id = outbox_id
    records = [requests[index].record for index in positions]
    rows = [added[index] for index in positions]
    cursor = conn.execute(
        """
        insert into ops.delivery_outbox (outbox_id, decision_id, workspace_id, source, source_record_id,
            source_payload_sha256, message_id, recipient, document, created_at, mapping_version,
            supersedes_outbox_id, needs_person, needs_person_reason, status)
        overriding system value
        select r.outbox_id, r.decision_id, %(workspace_id)s, r.source, r.source_record_id,
            r.source_payload_sha256, r.message_id, %(recipient)s, r.document, %(at)s, %(mapping_version)s,
            r.supersedes_outbox_id, r.needs_person, case when r.needs_person then %(reason)s end, r.status
        from unnest(%(outbox_id)s::bigint[], %(decision_id)s::bigint[], %(source)b::text[],
            %(source_record_id)b::text[], %(sha)b::text[], %(message_id)b::text[], %(document)b::jsonb[],
            %(supersedes)s::bigint[], %(needs_person)s::boolean[], %(status)b::text[])
            as r (outbox_id, decision_id, source, source_record_id, source_payload_sha256, message_id,
                document, supersedes_outbox_id, needs_person, status)
        order by r.outbox_id
        on conflict do nothing
        returning outbox_id
        """,
        {
            "workspace_id": workspace.workspace_id,
            "recipient": workspace.email_in_address,
            "at": enqueued_at,
            "mapping_version": mapping_version,
            "reason": _NEEDS_PERSON_REASON,
            "outbox_id": ids,
            "decision_id": [row.decision_id for row in rows],
            "source": [record.source for record in records],
            "source_record_id": [record.source_record_id for record in records],
            "sha": [record.source_payload_sha256 for record in records],
            "message_id": [
                message_id_for(
                    workspace.workspace_id,
                    record.source,
                    record.source_record_id,
                    record.source_payload_sha256,
                )
                for record in records
            ],
            "document": [Jsonb(documents[index]) for index in positions],
            "supersedes": [row.supersedes.outbox_id if row.supersedes else None for row in rows],
            "needs_person": [row.needs_person for row in rows],
            "status": [row.status for row in rows],
        },
    )
    return {int(row[0]) for row in cursor.fetchall()}


def _revive(
    conn: psycopg.Connection,
    rows: dict[int, _OutboxRow],
    documents: dict[int, dict[str, Any]],
    mapping_version: int,
    enqueued_at: datetime,
) -> None:
    """Make superseded rows pending again with their decision's document (see ``_Outbox.add``);
    the row keeps what it superseded when it was first queued, so no chain of rows loops."""
    if not rows:
        return
    positions = sorted(rows)
    conn.execute(
        """
        update ops.delivery_outbox as o set status = 'pending', decision_id = r.decision_id,
            document = r.document, mapping_version = %(mapping_version)s, created_at = %(at)s,
            next_attempt_at = null
        from unnest(%(outbox_id)s::bigint[], %(decision_id)s::bigint[], %(document)b::jsonb[])
            as r (outbox_id, decision_id, document)
        where o.outbox_id = r.outbox_id and o.status = 'superseded'
        """,
        {
            "mapping_version": mapping_version,
            "at": enqueued_at,
            "outbox_id": [rows[index].outbox_id for index in positions],
            "decision_id": [rows[index].decision_id for index in positions],
            "document": [Jsonb(documents[index]) for index in positions],
        },
    )


def _supersede(conn: psycopg.Connection, rows: Sequence[_OutboxRow]) -> None:
    if rows:
        conn.execute(
            "update ops.delivery_outbox set status = 'superseded' where outbox_id = any(%s)",
            ([row.outbox_id for row in rows],),
        )


def _divert_to_review(conn: psycopg.Connection, diverted: Sequence[tuple[int, str]]) -> None:
    """Send each decision to review, naming the queued record it looks like."""
    if diverted:
        conn.execute(
            """
            update ops.routing_decisions as d set route = 'review',
                explanation = d.explanation || jsonb_build_object('look_alike_of', v.look_alike_of)
            from unnest(%s::bigint[], %s::text[]) as v (decision_id, look_alike_of)
            where d.decision_id = v.decision_id
            """,
            ([decision_id for decision_id, _ in diverted], [record_id for _, record_id in diverted]),
        )
