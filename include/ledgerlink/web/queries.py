"""Every read the pages make, in one place: when a table or mart changes shape, this module is
the one to change. Each function takes the workspaces the user may see and never returns a row
of another; every value reaches SQL as a parameter.

What the pages read: ``marts.review_queue`` (the queue), ``intermediate.int_source_records_unioned``
(a record's fields, as the queue mart has them), ``intermediate.int_ledger_entries_unioned`` (the
ledger a reviewer searches),
``ops.routing_decisions``, ``ops.review_actions``, ``ops.delivery_outbox`` /
``ops.delivery_attempts``, ``ops.incidents``, ``ops.source_credentials``, ``ops.sync_markers``
and the raw tables of the sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row

from ledgerlink.matching.batch import LedgerEntry

QueueSort = Literal["score", "amount", "age"]
SortDirection = Literal["asc", "desc"]
QueueList = Literal["review", "refused"]

#: the raw table holding each source's records, version by version
RAW_RECORD_TABLES = {"qonto": "qonto_supplier_invoices", "square": "square_payments"}

# Sort keys end with the decision id, so the order is total and pages never overlap.
_QUEUE_ORDER = {
    ("score", "desc"): "q.score desc, q.decision_id desc",
    ("score", "asc"): "q.score asc, q.decision_id asc",
    ("amount", "desc"): "q.amount_minor desc nulls last, q.decision_id desc",
    ("amount", "asc"): "q.amount_minor asc nulls last, q.decision_id asc",
    ("age", "desc"): "q.occurred_on asc nulls last, q.decision_id asc",
    ("age", "asc"): "q.occurred_on desc nulls last, q.decision_id desc",
}


@dataclass(frozen=True)
class WorkspaceRef:
    workspace_id: str
    display_name: str


@dataclass(frozen=True)
class QueueItem:
    decision_id: int
    workspace_id: str
    source: str
    source_record_id: str
    score: Decimal
    top_candidate_type: str | None
    top_candidate_id: str | None
    top_candidate_name: str | None
    counterparty_name: str | None
    amount_minor: int | None
    currency: str | None
    occurred_on: date | None
    reference: str | None
    decided_at: datetime


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    total: int
    page: int
    page_size: int

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class Decision:
    """A routing decision with the record fields it was made on (None when the record changed
    since: the next run decides again)."""

    decision_id: int
    workspace_id: str
    source: str
    source_record_id: str
    source_payload_sha256: str
    route: str
    score: Decimal
    auto_link_threshold: Decimal
    review_threshold: Decimal
    top_candidate_type: str | None
    top_candidate_id: str | None
    candidates: list[dict[str, Any]]
    explanation: dict[str, Any]
    model_version: str
    decided_at: datetime
    decided_by_run: str
    counterparty_name: str | None
    amount_minor: int | None
    currency: str | None
    occurred_on: date | None
    reference: str | None


def member_workspaces(conn: psycopg.Connection, username: str) -> list[WorkspaceRef]:
    """The workspaces ``username`` is a member of, by name."""
    with conn.cursor(row_factory=class_row(WorkspaceRef)) as cursor:
        return cursor.execute(
            """
            select w.workspace_id, w.display_name
            from ops.workspace_members as m
            join ops.workspaces as w on w.workspace_id = m.workspace_id
            where m.username = %s
            order by w.display_name, w.workspace_id
            """,
            (username,),
        ).fetchall()


#: a queue item still waiting for a reviewer: its record is unchanged since the decision and
#: nobody acted on that content yet (``q`` is a ``marts.review_queue`` row)
_WAITING = sql.SQL(
    """
    not q.is_record_changed_since_decision
    and not exists (
        select from ops.review_actions as a
        where a.decision_id = q.decision_id
            and a.source_payload_sha256 = q.source_payload_sha256
    )
    """
)


#: the items of each list of the queue page (:class:`QueueItem` columns, filtered by the
#: parameters ``workspaces`` and ``source``): records waiting for review, without those a
#: reviewer already accepted, pinned or refused in their current content; and records the matcher
#: refused that no reviewer has linked since (they keep their candidates and wait for someone to
#: pin the right entry)
_QUEUE_ITEMS = {
    "review": sql.SQL(
        """
        select q.decision_id, q.workspace_id, q.source, q.source_record_id, q.score,
            q.top_candidate_type, q.top_candidate_id, q.top_candidate_name,
            q.counterparty_name, q.amount_minor, q.currency, q.occurred_on, q.reference,
            q.decided_at
        from marts.review_queue as q
        where q.workspace_id = any(%(workspaces)s)
            and (%(source)s::text is null or q.source = %(source)s)
            and {}
        """
    ).format(_WAITING),
    "refused": sql.SQL(
        """
        select d.decision_id, d.workspace_id, d.source, d.source_record_id, d.score,
            d.top_candidate_type, d.top_candidate_id, d.candidates -> 0 ->> 'candidate_name' as top_candidate_name,
            r.counterparty_name, r.amount_minor, r.currency, r.occurred_on, r.reference, d.decided_at
        from ops.routing_decisions as d
        left join intermediate.int_source_records_unioned as r
            on r.workspace_id = d.workspace_id and r.source = d.source
            and r.source_record_id = d.source_record_id and r.source_payload_sha256 = d.source_payload_sha256
        where d.route = 'refused' and d.workspace_id = any(%(workspaces)s)
            and (%(source)s::text is null or d.source = %(source)s)
            and not exists (
                select from ops.review_actions as a
                where a.decision_id = d.decision_id and a.source_payload_sha256 = d.source_payload_sha256
                    and a.action in ('accept', 'pin')
            )
        """
    ),
}


def queue_page(
    conn: psycopg.Connection,
    workspace_ids: Sequence[str],
    *,
    show: QueueList = "review",
    source: str | None,
    sort: QueueSort,
    direction: SortDirection,
    page: int,
    page_size: int,
) -> QueuePage:
    """One page of a list of the queue in these workspaces (``show``: the records waiting for
    review, or those the matcher refused), in the asked order, with the list's total."""
    items = _QUEUE_ITEMS[show]
    order = sql.SQL(_QUEUE_ORDER[(sort, direction)])  # one of the fixed strings above
    parameters = {
        "workspaces": list(workspace_ids),
        "source": source,
        "limit": page_size,
        "offset": (page - 1) * page_size,
    }
    total_row = conn.execute(sql.SQL("select count(*) from ({}) as q").format(items), parameters).fetchone()
    with conn.cursor(row_factory=class_row(QueueItem)) as cursor:
        found = cursor.execute(
            sql.SQL("select * from ({}) as q order by {} limit %(limit)s offset %(offset)s").format(
                items, order
            ),
            parameters,
        ).fetchall()
    return QueuePage(found, total_row[0] if total_row else 0, page, page_size)


def next_in_queue(
    conn: psycopg.Connection, workspace_ids: Sequence[str], after_decision_id: int
) -> int | None:
    """The next record waiting for review, by score, other than ``after_decision_id``."""
    page = queue_page(conn, workspace_ids, source=None, sort="score", direction="desc", page=1, page_size=2)
    return next((item.decision_id for item in page.items if item.decision_id != after_decision_id), None)


def decision(conn: psycopg.Connection, workspace_ids: Sequence[str], decision_id: int) -> Decision | None:
    """The decision, if it belongs to one of these workspaces, with its record's fields."""
    with conn.cursor(row_factory=class_row(Decision)) as cursor:
        return cursor.execute(
            """
            select d.decision_id, d.workspace_id, d.source, d.source_record_id, d.source_payload_sha256,
                d.route, d.score, d.auto_link_threshold, d.review_threshold, d.top_candidate_type,
                d.top_candidate_id, d.candidates, d.explanation, d.model_version, d.decided_at,
                d.decided_by_run, r.counterparty_name, r.amount_minor, r.currency, r.occurred_on, r.reference
            from ops.routing_decisions as d
            left join intermediate.int_source_records_unioned as r
                on r.workspace_id = d.workspace_id and r.source = d.source
                and r.source_record_id = d.source_record_id
                and r.source_payload_sha256 = d.source_payload_sha256
            where d.decision_id = %s and d.workspace_id = any(%s)
            """,
            (decision_id, list(workspace_ids)),
        ).fetchone()


def search_ledger(
    conn: psycopg.Connection, workspace_id: str, text: str, limit: int = 20
) -> list[LedgerEntry]:
    """Ledger entries whose name, reference or id contains ``text`` (case-insensitive)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with conn.cursor(row_factory=class_row(LedgerEntry)) as cursor:
        return cursor.execute(
            """
            select candidate_type, candidate_id, candidate_name, candidate_name_normalised, amount_minor,
                currency, entry_on, reference
            from intermediate.int_ledger_entries_unioned
            where workspace_id = %s
                and (candidate_name ilike %s or reference ilike %s or candidate_id = %s)
            order by candidate_type, candidate_name, candidate_id
            limit %s
            """,
            (workspace_id, pattern, pattern, text, limit),
        ).fetchall()


def review_actions(conn: psycopg.Connection, decision_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "select action, candidate_type, candidate_id, actor, acted_at, note, source_payload_sha256"
            " from ops.review_actions where decision_id = %s order by acted_at, action_id",
            (decision_id,),
        ).fetchall()


@dataclass(frozen=True)
class AuditTrail:
    landed_versions: list[dict[str, Any]]
    decision: dict[str, Any] | None
    #: every decision the matcher made on the record, oldest first, with model and mapping versions
    decision_history: list[dict[str, Any]]
    review_actions: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    attempts: list[dict[str, Any]]

    @property
    def postings(self) -> list[dict[str, Any]]:
        """The deliveries QuickBooks has posted (read back with the entry's id)."""
        return [delivery for delivery in self.deliveries if delivery["quickbooks_id"] is not None]


def audit_trail(
    conn: psycopg.Connection, workspace_id: str, source: str, source_record_id: str
) -> AuditTrail | None:
    """Everything that happened to one source record, oldest first; None for an unknown source."""
    table = RAW_RECORD_TABLES.get(source)
    if table is None:
        return None
    key = (workspace_id, source_record_id)
    with conn.cursor(row_factory=dict_row) as cursor:
        landed = cursor.execute(
            sql.SQL(
                "select payload, payload_sha256, source_updated_at, landed_at, landed_by_run"
                " from raw.{} where workspace_id = %s and source_record_id = %s order by landed_at, payload_sha256"
            ).format(sql.Identifier(table)),
            key,
        ).fetchall()
        decision_row = cursor.execute(
            "select decision_id, source_payload_sha256, route, score, top_candidate_type, top_candidate_id,"
            " candidates, explanation, model_version, mapping_version, decided_at, decided_by_run"
            " from ops.routing_decisions where workspace_id = %s and source = %s and source_record_id = %s",
            (workspace_id, source, source_record_id),
        ).fetchone()
        history = cursor.execute(
            "select decision_id, decided_at, source_payload_sha256, route, score, auto_link_threshold,"
            " review_threshold, top_candidate_type, top_candidate_id, model_version, mapping_version,"
            " decided_by_run from ops.routing_decision_history"
            " where workspace_id = %s and source = %s and source_record_id = %s order by decided_at",
            (workspace_id, source, source_record_id),
        ).fetchall()
        actions = cursor.execute(
            "select action, candidate_type, candidate_id, actor, acted_at, note, source_payload_sha256"
            " from ops.review_actions where workspace_id = %s and source = %s and source_record_id = %s"
            " order by acted_at, action_id",
            (workspace_id, source, source_record_id),
        ).fetchall()
        deliveries = cursor.execute(
            "select outbox_id, source_payload_sha256, message_id, recipient, status, attempt_count,"
            " last_error, rejected_reason, created_at, sent_at, posted_at, quickbooks_entity, quickbooks_id,"
            " mapping_version, is_possible_duplicate, needs_person, needs_person_reason,"
            " needs_person_resolved_by, needs_person_resolved_at, document from ops.delivery_outbox"
            " where workspace_id = %s and source = %s and source_record_id = %s order by created_at, outbox_id",
            (workspace_id, source, source_record_id),
        ).fetchall()
        attempts = cursor.execute(
            "select t.outbox_id, o.message_id, t.attempted_at, t.attempted_by_run, t.outcome, t.smtp_code,"
            " t.detail from ops.delivery_attempts as t join ops.delivery_outbox as o using (outbox_id)"
            " where o.workspace_id = %s and o.source = %s and o.source_record_id = %s"
            " order by t.attempted_at, t.attempt_id",
            (workspace_id, source, source_record_id),
        ).fetchall()
    return AuditTrail(landed, decision_row, history, actions, deliveries, attempts)


@dataclass(frozen=True)
class IntegrationStatus:
    connections: list[dict[str, Any]]
    open_incidents: list[dict[str, Any]]
    deliveries_by_state: list[dict[str, Any]]
    failed_deliveries: list[dict[str, Any]]
    #: records a source sent that could not be landed (``ops.rejected_records``, still open)
    rejected_records: list[dict[str, Any]]
    #: documents that may be in QuickBooks twice: resent after an unconfirmed DATA, or held back
    #: because they look like another record's
    possible_duplicates: list[dict[str, Any]]
    #: records changed after their document was delivered that nobody has acknowledged yet:
    #: QuickBooks needs a person
    needs_person: list[dict[str, Any]]

    @property
    def is_all_well(self) -> bool:
        return not (
            self.open_incidents
            or self.failed_deliveries
            or self.rejected_records
            or self.possible_duplicates
            or self.needs_person
            or any(connection["status"] != "connected" for connection in self.connections)
        )


def integration_status(conn: psycopg.Connection, workspace_ids: Sequence[str]) -> IntegrationStatus:
    """Connection health per workspace and source, open incidents, deliveries by state and
    everything that failed: failed or rejected deliveries with their reason, records a source
    sent that could not be landed, possible duplicates with their evidence and records changed
    after delivery."""
    workspaces = (list(workspace_ids),)
    with conn.cursor(row_factory=dict_row) as cursor:
        connections = cursor.execute(
            """
            select c.workspace_id, c.source, c.status, c.status_detail, c.updated_at, c.access_token_expires_at,
                (select max(m.marker_at) from ops.sync_markers as m
                 where m.workspace_id = c.workspace_id and m.source = c.source) as synced_until
            from ops.source_credentials as c
            where c.workspace_id = any(%s)
            order by c.workspace_id, c.source
            """,
            workspaces,
        ).fetchall()
        incidents = cursor.execute(
            "select incident_id, workspace_id, channel, kind, detail, opened_at, last_seen_at, occurrences,"
            " owner_notified_at from ops.incidents where workspace_id = any(%s) and resolved_at is null"
            " order by opened_at",
            workspaces,
        ).fetchall()
        by_state = cursor.execute(
            "select workspace_id, source, status, count(*) as documents from ops.delivery_outbox"
            " where workspace_id = any(%s) group by workspace_id, source, status"
            " order by workspace_id, source, status",
            workspaces,
        ).fetchall()
        failed = cursor.execute(
            """
            select o.outbox_id, o.workspace_id, o.source, o.source_record_id, o.message_id, o.recipient,
                o.status, o.attempt_count, coalesce(o.rejected_reason, o.last_error) as reason, o.created_at,
                o.mapping_version,
                (select max(t.attempted_at) from ops.delivery_attempts as t
                 where t.outbox_id = o.outbox_id) as last_attempt_at
            from ops.delivery_outbox as o
            where o.workspace_id = any(%s) and o.status in ('failed', 'rejected')
            order by o.created_at, o.outbox_id
            """,
            workspaces,
        ).fetchall()
        rejected_records = cursor.execute(
            "select rejection_id, workspace_id, source, entity, source_record_id, reason, rejected_at,"
            " rejected_by_run, attempts, left(raw_payload, 300) as raw_excerpt from ops.rejected_records"
            " where workspace_id = any(%s) and retry_state = 'open' order by rejected_at, rejection_id",
            workspaces,
        ).fetchall()
        resent = cursor.execute(
            """
            select o.workspace_id, o.source, o.source_record_id, o.message_id, o.status, o.sent_at,
                'resent after the email server did not confirm the first copy; both carry the same'
                || ' Message-ID, so look for two drafts in QuickBooks' as evidence,
                null::text as look_alike_of
            from ops.delivery_outbox as o
            where o.workspace_id = any(%s) and o.is_possible_duplicate and o.status <> 'superseded'
            order by o.created_at, o.outbox_id
            """,
            workspaces,
        ).fetchall()
        look_alikes = cursor.execute(
            """
            select d.workspace_id, d.source, d.source_record_id, null::text as message_id, d.route as status,
                null::timestamptz as sent_at,
                'same amount, currency and counterparty within a few days, with no reference to tell'
                || ' them apart; held for review' as evidence,
                d.explanation ->> 'look_alike_of' as look_alike_of
            from ops.routing_decisions as d
            where d.workspace_id = any(%s) and d.explanation ? 'look_alike_of'
                and not exists (
                    select from ops.review_actions as a
                    where a.decision_id = d.decision_id and a.source_payload_sha256 = d.source_payload_sha256
                )
            order by d.decided_at, d.decision_id
            """,
            workspaces,
        ).fetchall()
        needs_person = cursor.execute(
            "select outbox_id, workspace_id, source, source_record_id, message_id, needs_person_reason,"
            " created_at from ops.delivery_outbox where workspace_id = any(%s) and needs_person"
            " and needs_person_resolved_at is null and status <> 'superseded' order by created_at, outbox_id",
            workspaces,
        ).fetchall()
    return IntegrationStatus(
        connections, incidents, by_state, failed, rejected_records, resent + look_alikes, needs_person
    )


#: how long records have waited in the review queue, in days: (label, from, to)
QUEUE_AGE_BUCKETS = (
    ("under 1 day", 0, 1),
    ("1-3 days", 1, 3),
    ("3-7 days", 3, 7),
    ("1-4 weeks", 7, 28),
    ("over 4 weeks", 28, 100_000),
)


@dataclass(frozen=True)
class Dashboard:
    days: list[date]
    routes_by_day: dict[str, list[int]]
    failures_by_day: dict[str, list[int]]
    queue_size: int
    oldest_waiting_days: int | None
    queue_age_buckets: list[tuple[str, float | None]]
    #: (week starting, precision or None when nothing was measured, links measured)
    precision_by_week: list[tuple[str, float | None, int]]
    auto_links: int
    confirmed: int
    contradicted: int

    @property
    def precision(self) -> float | None:
        measured = self.confirmed + self.contradicted
        return self.confirmed / measured if measured else None


def dashboard(conn: psycopg.Connection, workspace_ids: Sequence[str], today: date, days: int) -> Dashboard:
    """The dashboard's figures over the last ``days`` days, read from the dbt marts
    (``reconciliation_status``, ``delivery_status``, ``review_queue``, ``auto_link_outcomes``)."""
    window = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    index = {day: position for position, day in enumerate(window)}
    parameters = {"workspaces": list(workspace_ids), "since": window[0]}
    routes: dict[str, list[int]] = {route: [0] * days for route in ("auto_link", "review", "refused")}
    for route, decided_on, count in conn.execute(
        "select route, decided_on, sum(record_count) from marts.reconciliation_status"
        " where workspace_id = any(%(workspaces)s) and decided_on >= %(since)s group by route, decided_on",
        parameters,
    ):
        if route in routes and decided_on in index:
            routes[route][index[decided_on]] += int(count)
    failures: dict[str, list[int]] = {state: [0] * days for state in ("rejected", "failed")}
    for state, created_on, count in conn.execute(
        "select delivery_state, (created_at at time zone 'UTC')::date, count(*) from marts.delivery_status"
        " where workspace_id = any(%(workspaces)s) and delivery_state in ('rejected', 'failed')"
        " and created_at >= %(since)s group by 1, 2",
        parameters,
    ):
        if created_on in index:
            failures[state][index[created_on]] += int(count)
    waiting = queue_page(
        conn, workspace_ids, source=None, sort="score", direction="desc", page=1, page_size=1
    ).total
    ages = conn.execute(
        sql.SQL(
            "select extract(epoch from (now() - q.decided_at)) / 86400 from marts.review_queue as q"
            " where q.workspace_id = any(%(workspaces)s) and {}"
        ).format(_WAITING),
        parameters,
    ).fetchall()
    waited = [float(row[0]) for row in ages]
    buckets: list[tuple[str, float | None]] = [
        (label, float(sum(1 for age in waited if low <= age < high)))
        for label, low, high in QUEUE_AGE_BUCKETS
    ]
    weeks = conn.execute(
        """
        select date_trunc('week', decided_on)::date as week, count(*) filter (where is_confirmed),
            count(*) filter (where is_contradicted), count(*)
        from marts.auto_link_outcomes
        where workspace_id = any(%(workspaces)s) and decided_on >= %(since)s
        group by 1 order by 1
        """,
        parameters,
    ).fetchall()
    precision_by_week = [
        (
            f"week of {week:%d %b}",
            confirmed / (confirmed + contradicted) if confirmed + contradicted else None,
            confirmed + contradicted,
        )
        for week, confirmed, contradicted, _links in weeks
    ]
    return Dashboard(
        window,
        routes,
        failures,
        waiting,
        int(max(waited)) if waited else None,
        buckets,
        precision_by_week,
        sum(int(row[3]) for row in weeks),
        sum(int(row[1]) for row in weeks),
        sum(int(row[2]) for row in weeks),
    )
