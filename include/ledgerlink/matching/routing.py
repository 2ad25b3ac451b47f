"""Routing: turn scores into decisions in ``ops.routing_decisions``, and for each auto-link an
outbox row in the same transaction, so a decision and its delivery never part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
from ledgerlink.matching.scorer import MODEL_VERSION, MatchPair, ScoredRecord, score_records
from ledgerlink.workspaces import Workspace, load_workspace

_UNDECIDED_PAIRS = """
    select f.workspace_id, f.source, f.source_record_id, f.source_payload_sha256,
           f.record_counterparty_name, f.record_counterparty_name_normalised, f.record_amount_minor,
           f.record_currency, f.record_occurred_on, f.record_reference,
           f.candidate_type, f.candidate_id, f.candidate_name, f.candidate_name_normalised,
           f.candidate_amount_minor, f.candidate_currency, f.candidate_entry_on, f.candidate_reference,
           f.amount_diff_minor, f.date_lag_days, f.is_currency_match, f.is_reference_match
    from marts.match_features as f
    left join ops.routing_decisions as d
        on d.workspace_id = f.workspace_id
        and d.source = f.source
        and d.source_record_id = f.source_record_id
        and d.source_payload_sha256 = f.source_payload_sha256
    where f.workspace_id = %s and d.decision_id is null
    order by f.source, f.source_record_id, f.candidate_id
"""


@dataclass(frozen=True)
class RoutedRecord:
    scored: ScoredRecord
    route: str


def route_for(score: float, workspace: Workspace) -> str:
    if Decimal(str(score)) >= workspace.auto_link_threshold:
        return "auto_link"
    if Decimal(str(score)) >= workspace.review_threshold:
        return "review"
    return "refused"


def _one_invoice_one_charge(conn: psycopg.Connection, workspace_id: str, routed: list[RoutedRecord]) -> None:
    """Two charges never auto-link to one invoice: the weaker claim goes to review."""
    taken = {
        row[0]
        for row in conn.execute(
            "select top_candidate_id from ops.routing_decisions"
            " where workspace_id = %s and route = 'auto_link' and top_candidate_type = 'invoice'",
            (workspace_id,),
        )
    }
    for index in sorted(range(len(routed)), key=lambda i: -routed[i].scored.score):
        record = routed[index]
        if record.route != "auto_link" or not record.scored.ranked:
            continue
        top = record.scored.ranked[0]
        if top.candidate_type != "invoice":
            continue
        if top.candidate_id in taken:
            record.scored.explanation["one_to_one"] = "invoice already claimed by another charge"
            routed[index] = RoutedRecord(record.scored, "review")
        else:
            taken.add(top.candidate_id)


def route_workspace(
    conn: psycopg.Connection, workspace_id: str, run_id: str, decided_at: datetime
) -> dict[str, int]:
    """Score and route every record of the workspace not yet decided for its current content.
    Rerunning over the same input changes nothing. Returns counts by route."""
    workspace = load_workspace(conn, workspace_id)
    with conn.transaction():
        with conn.cursor(row_factory=class_row(MatchPair)) as cursor:
            pairs = cursor.execute(_UNDECIDED_PAIRS, (workspace_id,)).fetchall()
        routed = [RoutedRecord(scored, route_for(scored.score, workspace)) for scored in score_records(pairs)]
        _one_invoice_one_charge(conn, workspace_id, routed)
        counts = {"auto_link": 0, "review": 0, "refused": 0}
        for record in routed:
            _write_decision(conn, workspace, record, run_id, decided_at)
            counts[record.route] += 1
    return counts


def _write_decision(
    conn: psycopg.Connection, workspace: Workspace, record: RoutedRecord, run_id: str, decided_at: datetime
) -> None:
    pair = record.scored.first_pair
    top = record.scored.ranked[0] if record.scored.ranked else None
    row = conn.execute(
        """
        insert into ops.routing_decisions (
            workspace_id, source, source_record_id, source_payload_sha256, route, score,
            auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
            candidates, explanation, model_version, decided_at, decided_by_run)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (workspace_id, source, source_record_id) do update set
            source_payload_sha256 = excluded.source_payload_sha256, route = excluded.route,
            score = excluded.score, auto_link_threshold = excluded.auto_link_threshold,
            review_threshold = excluded.review_threshold, top_candidate_type = excluded.top_candidate_type,
            top_candidate_id = excluded.top_candidate_id, candidates = excluded.candidates,
            explanation = excluded.explanation, model_version = excluded.model_version,
            decided_at = excluded.decided_at, decided_by_run = excluded.decided_by_run
        where ops.routing_decisions.source_payload_sha256 <> excluded.source_payload_sha256
        returning decision_id
        """,
        (
            pair.workspace_id,
            pair.source,
            pair.source_record_id,
            pair.source_payload_sha256,
            record.route,
            round(record.scored.score, 4),
            workspace.auto_link_threshold,
            workspace.review_threshold,
            top.candidate_type if top else None,
            top.candidate_id if top else None,
            Jsonb([candidate.as_json() for candidate in record.scored.ranked]),
            Jsonb(record.scored.explanation),
            MODEL_VERSION,
            decided_at,
            run_id,
        ),
    ).fetchone()
    if row is None or record.route != "auto_link" or top is None:
        return
    enqueue_document(
        conn,
        workspace,
        decision_id=row[0],
        record=DeliveredRecord(
            source=pair.source,
            source_record_id=pair.source_record_id,
            source_payload_sha256=pair.source_payload_sha256,
            counterparty_name=pair.record_counterparty_name,
            amount_minor=pair.record_amount_minor,
            currency=pair.record_currency,
            occurred_on=pair.record_occurred_on,
            reference=pair.record_reference,
        ),
        match=MatchedEntry(
            top.candidate_type, top.candidate_id, top.candidate_name, round(record.scored.score, 4)
        ),
        enqueued_at=decided_at,
    )
