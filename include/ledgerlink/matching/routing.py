"""Routing: train the workspace's match model, score its undecided records, turn the scores into
decisions in ``ops.routing_decisions`` and, for each auto-link, an outbox row in the same
transaction, so a decision and its delivery never part.

A record auto-links only when four things hold: the probability that its top candidate is right
reaches the workspace's auto-link threshold, the top candidate leads the runner-up by at least
:data:`MIN_LEAD_BITS`, neither a refund in full nor the workspace's policy holds it back, and the
one-to-one assignment gives it the entry. Otherwise it waits in
review (at or above the review threshold, or when a gate held it back) or is refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.delivery.outbox import DeliveredRecord, DocumentRequest, MatchedEntry, enqueue_documents
from ledgerlink.matching.assignment import Claim, assign
from ledgerlink.matching.scorer import (
    PAIR_COLUMNS,
    PairBatch,
    ScoredRecord,
    TrainedModels,
    confirmed_links,
    labels_for,
    prepare,
    score,
    train,
)
from ledgerlink.workspaces import Workspace, load_workspace

#: Two candidates whose match weights differ by less than this are too close to call without a
#: person, whatever the probability says (2^3: the top one is 8 times as likely).
MIN_LEAD_BITS = 3.0
#: A reviewer sees this many candidates first: when they are likely together, the record is worth
#: a review even if no single one is.
REVIEW_CANDIDATES = 3
#: Candidates this close in match weight are twins: their comparison levels are the same, nothing
#: in the data tells them apart. (Within 1 bit on bank-to-ledger, the records this sends to review
#: have their true entry in the top three only a third of the time; equal weights do not.)
TWIN_BITS = 0.05
#: EM samples records with this seed, so a rerun over the same data trains the same model.
TRAINING_SEED = 20_240_601
#: The steps of scoring and routing a workspace, in order: read the pairs, compare them, train the
#: models, score the records, write the decisions, queue the auto-links' documents. ``timings``
#: gets ``<step>_seconds`` for each as it ends.
ROUTING_STEPS = ("read", "compare", "train", "score", "decide", "queue")

# Undecided records (new, or changed since their decision) to route, and records a reviewer
# labelled, to learn from.
_PAIRS = f"""
    select {", ".join(f"f.{name}" for name in PAIR_COLUMNS)}
    from marts.match_features as f
    left join ops.routing_decisions as d
        on d.workspace_id = f.workspace_id
        and d.source = f.source
        and d.source_record_id = f.source_record_id
        and d.source_payload_sha256 = f.source_payload_sha256
    where f.workspace_id = %(workspace_id)s
        and (d.decision_id is null
            or (f.source, f.source_record_id) in (
                select source, source_record_id from ops.review_actions where workspace_id = %(workspace_id)s))
"""  # noqa: S608 - fixed column names
_DECIDED = """
    select source, source_record_id, source_payload_sha256
    from ops.routing_decisions
    where workspace_id = %s
"""

# A reviewer's latest word on a record: accept and pin name the right entry, refuse says none is.
_VERDICTS = """
    select distinct on (source, source_record_id) source, source_record_id, action, candidate_id
    from ops.review_actions
    where workspace_id = %s
    order by source, source_record_id, acted_at desc, action_id desc
"""

# What earlier auto-links already took from each open invoice.
# Invoices already linked: by an auto-link, or by a reviewer's accept or pin of the record's
# current content (which moved the decision's top candidate to the reviewer's entry, leaving its
# route at review). A reviewer's link takes the whole invoice: the claimed amount was worked out
# for the scorer's candidate, which the reviewer may have replaced.
_CLAIMED = """
    select d.top_candidate_id, sum((d.explanation ->> 'claimed_amount_minor')::bigint),
           bool_and(d.route = 'auto_link' and d.explanation ? 'claimed_amount_minor')
    from ops.routing_decisions as d
    where d.workspace_id = %s and d.top_candidate_type = 'invoice'
        and (d.route = 'auto_link' or exists (
            select from ops.review_actions as a
            where a.decision_id = d.decision_id and a.source_payload_sha256 = d.source_payload_sha256
                and a.action in ('accept', 'pin')))
    group by d.top_candidate_id
"""


@dataclass(frozen=True)
class RoutedRecord:
    scored: ScoredRecord
    route: str


def route_for(scored: ScoredRecord, workspace: Workspace) -> str:
    """The route a score earns at the workspace's thresholds, before the one-to-one assignment."""
    probability = Decimal(str(round(scored.score, 4)))
    if probability >= workspace.auto_link_threshold:
        if scored.lead_bits is not None and scored.lead_bits < MIN_LEAD_BITS:
            scored.explanation["held_back"] = f"runner-up within {MIN_LEAD_BITS:g} bits of the top candidate"
            return "review"
        if scored.record.is_fully_refunded:
            refunded = "the charge was refunded in full: a person decides whether to book it"
            scored.explanation["held_back"] = refunded
            scored.explanation["refunded"] = refunded
            return "review"
        if reason := policy_hold(scored, workspace):
            scored.explanation["held_back"] = reason
            scored.explanation["policy"] = reason
            return "review"
        return "auto_link"
    if probability >= workspace.review_threshold:
        return "review"
    # near twins split the probability between them: neither reaches the review threshold, yet a
    # person can tell which is right
    twins = [
        c
        for c in scored.ranked[:REVIEW_CANDIDATES]
        if scored.ranked[0].match_weight - c.match_weight < TWIN_BITS
    ]
    shared = Decimal(str(round(sum(c.score for c in twins), 4)))
    if len(twins) > 1 and shared >= workspace.review_threshold:
        scored.explanation["review_reason"] = (
            f"{len(twins)} near-equal candidates share a probability of {shared}"
        )
        return "review"
    return "refused"


def policy_hold(scored: ScoredRecord, workspace: Workspace) -> str | None:
    """Why the workspace's policy keeps this record from auto-linking, or None when it does not."""
    amount = scored.record.amount_minor
    limit = workspace.max_auto_link_amount_minor
    if limit is not None and amount is not None and abs(amount) > limit:
        return f"amount {amount} is above the workspace's auto-link maximum of {limit} (minor units)"
    listed = {name.strip().casefold() for name in workspace.never_auto_link_vendors}
    top = scored.ranked[0] if scored.ranked else None
    names = [scored.record.counterparty_name, *((top.candidate_id, top.candidate_name) if top else ())]
    for name in names:
        if name and name.strip().casefold() in listed:
            return f"{name} is on the workspace's never-auto-link list"
    return None


def score_workspace(
    conn: psycopg.Connection,
    workspace_id: str,
    seed: int = TRAINING_SEED,
    timings: dict[str, float] | None = None,
) -> tuple[list[ScoredRecord], TrainedModels]:
    """Train on the workspace's undecided and labelled records and score the undecided ones.
    ``timings``, when given, receives the seconds each step took and the pairs scored."""
    clock = _Clock(timings)
    batch = PairBatch.from_warehouse(conn, _PAIRS, {"workspace_id": workspace_id})
    verdicts = {
        (source, record_id): (candidate_id if action in ("accept", "pin") else None)
        for source, record_id, action, candidate_id in conn.execute(_VERDICTS, (workspace_id,))
    }
    clock.lap("read")
    prepared = prepare(batch, confirmed_links(batch, verdicts))
    clock.lap("compare")
    models = train(prepared, labels_for(prepared, verdicts), seed)
    clock.lap("train")
    decided = set(conn.execute(_DECIDED, (workspace_id,)).fetchall())
    scored = [
        s
        for s in score(prepared, models)
        if (s.record.source, s.record.source_record_id, s.record.source_payload_sha256) not in decided
    ]
    clock.lap("score")
    if timings is not None:
        timings["pairs"] = len(batch)
        compare_and_score = timings["compare_seconds"] + timings["score_seconds"]
        timings["pairs_per_second"] = round(len(batch) / max(compare_and_score, 1e-9))
    return scored, models


class _Clock:
    """Notes the seconds since the last lap as ``<step>_seconds``, one of :data:`ROUTING_STEPS`."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, step: str) -> None:
        assert step in ROUTING_STEPS, step
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[f"{step}_seconds"] = round(now - self.last, 3)
        self.last = now


def route_workspace(
    conn: psycopg.Connection,
    workspace_id: str,
    run_id: str,
    decided_at: datetime,
    timings: dict[str, float] | None = None,
) -> dict[str, int]:
    """Score and route every record of the workspace not yet decided for its current content.
    Rerunning over the same input changes nothing. Returns counts by route; ``timings``, when
    given, receives where the time went."""
    workspace = load_workspace(conn, workspace_id)
    with conn.transaction():
        scored, models = score_workspace(conn, workspace_id, timings=timings)
        clock = _Clock(timings)
        _save_models(conn, workspace_id, models, run_id, decided_at)
        routed = _assign_one_to_one(
            conn, workspace_id, [RoutedRecord(s, route_for(s, workspace)) for s in scored]
        )
        decision_ids = _write_decisions(conn, workspace, routed, models.version, run_id, decided_at)
        clock.lap("decide")
        _queue_auto_links(conn, workspace, routed, decision_ids, decided_at)
        clock.lap("queue")
    counts = {"auto_link": 0, "review": 0, "refused": 0}
    for record in routed:
        counts[record.route] += 1
    return counts


def claimed_invoices(conn: psycopg.Connection, workspace_id: str) -> dict[str, int | None]:
    """The workspace's invoices already linked, with the amount claimed against each (None: the
    whole invoice), which the one-to-one assignment of the next records respects."""
    return {
        candidate_id: (int(amount) if amount is not None and complete else None)
        for candidate_id, amount, complete in conn.execute(_CLAIMED, (workspace_id,))
    }


def _assign_one_to_one(
    conn: psycopg.Connection, workspace_id: str, routed: Sequence[RoutedRecord]
) -> list[RoutedRecord]:
    already = claimed_invoices(conn, workspace_id)
    claims = [
        Claim(
            index,
            record.scored.score,
            record.scored.ranked[0].candidate_type,
            record.scored.ranked[0].candidate_id,
            _claimed_amount(record.scored),
            record.scored.ranked[0].amount_minor,
        )
        for index, record in enumerate(routed)
        if record.route == "auto_link" and record.scored.ranked
    ]
    refused = assign(claims, already)
    result = []
    for index, record in enumerate(routed):
        if index in refused:
            record.scored.explanation["one_to_one"] = refused[index]
            result.append(RoutedRecord(record.scored, "review"))
        else:
            result.append(record)
    return result


def _claimed_amount(scored: ScoredRecord) -> int | None:
    """What the record takes from its top candidate's balance, in the candidate's currency."""
    top = scored.ranked[0]
    return top.record_amount_minor if top.record_amount_minor is not None else scored.record.amount_minor


def _save_models(
    conn: psycopg.Connection, workspace_id: str, models: TrainedModels, run_id: str, trained_at: datetime
) -> None:
    for candidate_type, model in models.by_candidate_type.items():
        conn.execute(
            """
            insert into ops.match_models (workspace_id, candidate_type, model_version, parameters,
                trained_at, trained_by_run)
            values (%s, %s, %s, %s, %s, %s)
            on conflict (workspace_id, candidate_type, model_version) do nothing
            """,
            (workspace_id, candidate_type, model.version, Jsonb(model.as_json()), trained_at, run_id),
        )


# Every decision in one statement: a record decided before for the same content keeps its
# decision (and returns no row). Text and JSON go as binary arrays: the text form escapes every
# element, several times slower.
_UPSERT_DECISIONS = """
    insert into ops.routing_decisions (
        workspace_id, source, source_record_id, source_payload_sha256, route, score,
        auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
        candidates, explanation, model_version, decided_at, decided_by_run)
    select %(workspace_id)s, d.source, d.source_record_id, d.source_payload_sha256, d.route, d.score,
        %(auto_link_threshold)s, %(review_threshold)s, d.top_candidate_type, d.top_candidate_id,
        d.candidates, d.explanation, %(model_version)s, %(decided_at)s, %(run_id)s
    from unnest(%(source)b::text[], %(source_record_id)b::text[], %(source_payload_sha256)b::text[],
        %(route)b::text[], %(score)s::float8[], %(top_candidate_type)b::text[], %(top_candidate_id)b::text[],
        %(candidates)b::jsonb[], %(explanation)b::jsonb[])
        with ordinality as d (source, source_record_id, source_payload_sha256, route, score,
            top_candidate_type, top_candidate_id, candidates, explanation, position)
    order by d.position
    on conflict (workspace_id, source, source_record_id) do update set
        source_payload_sha256 = excluded.source_payload_sha256, route = excluded.route,
        score = excluded.score, auto_link_threshold = excluded.auto_link_threshold,
        review_threshold = excluded.review_threshold, top_candidate_type = excluded.top_candidate_type,
        top_candidate_id = excluded.top_candidate_id, candidates = excluded.candidates,
        explanation = excluded.explanation, model_version = excluded.model_version,
        decided_at = excluded.decided_at, decided_by_run = excluded.decided_by_run
    where ops.routing_decisions.source_payload_sha256 <> excluded.source_payload_sha256
    returning source, source_record_id, decision_id
"""


def _write_decisions(
    conn: psycopg.Connection,
    workspace: Workspace,
    routed: Sequence[RoutedRecord],
    model_version: str,
    run_id: str,
    decided_at: datetime,
) -> list[int | None]:
    """Upsert every decision in one statement; return each one's decision id, None where the
    record's decision for the same content stands."""
    if not routed:
        return []
    rows = [_decision_row(record) for record in routed]
    columns = list(zip(*rows, strict=True))
    written = {
        (source, record_id): decision_id
        for source, record_id, decision_id in conn.execute(
            _UPSERT_DECISIONS,
            {
                "workspace_id": workspace.workspace_id,
                "auto_link_threshold": workspace.auto_link_threshold,
                "review_threshold": workspace.review_threshold,
                "model_version": model_version,
                "decided_at": decided_at,
                "run_id": run_id,
                **{name: list(values) for name, values in zip(_DECISION_COLUMNS, columns, strict=True)},
            },
        )
    }
    return [written.get((r.scored.record.source, r.scored.record.source_record_id)) for r in routed]


def _queue_auto_links(
    conn: psycopg.Connection,
    workspace: Workspace,
    routed: Sequence[RoutedRecord],
    decision_ids: Sequence[int | None],
    decided_at: datetime,
) -> None:
    """Queue the document of every auto-link decided in this run, in one batch."""
    requests = []
    for record, decision_id in zip(routed, decision_ids, strict=True):
        top = record.scored.ranked[0] if record.scored.ranked else None
        if decision_id is None or record.route != "auto_link" or top is None:
            continue
        source = record.scored.record
        requests.append(
            DocumentRequest(
                decision_id,
                DeliveredRecord(
                    source=source.source,
                    source_record_id=source.source_record_id,
                    source_payload_sha256=source.source_payload_sha256,
                    counterparty_name=source.counterparty_name,
                    amount_minor=source.amount_minor,
                    currency=source.currency,
                    occurred_on=source.occurred_on,
                    reference=source.reference,
                ),
                MatchedEntry(
                    top.candidate_type, top.candidate_id, top.candidate_name, round(record.scored.score, 4)
                ),
            )
        )
    enqueue_documents(conn, workspace, requests, decided_at)


_DECISION_COLUMNS = (
    "source",
    "source_record_id",
    "source_payload_sha256",
    "route",
    "score",
    "top_candidate_type",
    "top_candidate_id",
    "candidates",
    "explanation",
)


def _decision_row(routed: RoutedRecord) -> tuple[object, ...]:
    """The record's values of :data:`_DECISION_COLUMNS`."""
    scored = routed.scored
    record = scored.record
    top = scored.ranked[0] if scored.ranked else None
    explanation = dict(scored.explanation)
    if routed.route == "auto_link" and top is not None and top.candidate_type == "invoice":
        # what this auto-link takes from the invoice's balance, for the next run's assignment
        explanation["claimed_amount_minor"] = _claimed_amount(scored)
    return (
        record.source,
        record.source_record_id,
        record.source_payload_sha256,
        routed.route,
        round(scored.score, 4),
        top.candidate_type if top else None,
        top.candidate_id if top else None,
        Jsonb([candidate.as_json() for candidate in scored.ranked]),
        Jsonb(explanation),
    )
