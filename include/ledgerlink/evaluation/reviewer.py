"""The simulated reviewer protocol: does what reviewers decide make the matcher better on records
they never saw?

The records are split in two halves by a hash of their id. After the first run, a simulated
reviewer who knows the ground truth works through the review queue and the refused list of one
half, through :func:`ledgerlink.review.take_review_action` as a person on the queue page would:
accept the top candidate when it is right, choose another ranked candidate when that one is,
pin the true entry when it is not ranked, refuse when the record has no true entry. The other
half's decisions are then forgotten and the pipeline decides them again, training on the
verdicts. Only the held-out half is compared, before and after the labels: the verdicts never
cover a record that is measured, and ground truth reaches the matcher only through them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from ledgerlink.evaluation.pipeline import new_run_id, route_and_read
from ledgerlink.evaluation.report import Decision, summarise
from ledgerlink.review import ReviewChoice, take_review_action

#: Who the simulated reviewer's actions are recorded as.
ACTOR = "simulated-reviewer"

#: (candidate type, candidate id) of a record's true entry, or None when it has none
TrueEntry = tuple[str, str] | None


def is_held_out(source_record_id: str) -> bool:
    """Half of the records, fixed by their id: measured, never reviewed."""
    return hashlib.sha256(source_record_id.encode()).digest()[0] % 2 == 1


def review_as_truth_says(
    conn: psycopg.Connection,
    workspace_id: str,
    truth: Mapping[str, TrueEntry],
    reviewed: Collection[str],
    acted_at: datetime,
) -> Counter[str]:
    """Act on every decision in review or refused whose record is in ``reviewed`` (and in
    ``truth``), as the ground truth says. Returns how many of each action were taken."""
    rows = conn.execute(
        "select decision_id, source_record_id, candidates from ops.routing_decisions"
        " where workspace_id = %s and route in ('review', 'refused') order by decision_id",
        (workspace_id,),
    ).fetchall()
    taken: Counter[str] = Counter()
    for decision_id, record_id, candidates in rows:
        if record_id not in reviewed or record_id not in truth:
            continue
        entry = truth[record_id]
        ranked = [(c["candidate_type"], c["candidate_id"]) for c in candidates]
        choice: ReviewChoice
        if entry is None:
            choice = "refuse"
        elif ranked and ranked[0] == entry:
            choice = "accept"
        elif entry in ranked:
            choice = "choose"
        else:
            choice = "pin"
        take_review_action(
            conn,
            workspace_id=workspace_id,
            decision_id=decision_id,
            choice=choice,
            actor=ACTOR,
            acted_at=acted_at,
            candidate_type=entry[0] if entry else None,
            candidate_id=entry[1] if entry else None,
        )
        taken[choice] += 1
    conn.commit()
    return taken


def forget_decisions(conn: psycopg.Connection, workspace_id: str, record_ids: Collection[str]) -> None:
    """Delete the decisions of ``record_ids`` and what they queued, so the next run decides those
    records afresh. Only ever called on a benchmark workspace."""
    params = {"ws": workspace_id, "ids": list(record_ids)}
    with conn.transaction():
        conn.execute(
            """
            delete from ops.delivery_attempts where outbox_id in (
                select outbox_id from ops.delivery_outbox where decision_id in (
                    select decision_id from ops.routing_decisions
                    where workspace_id = %(ws)s and source_record_id = any(%(ids)s)))
            """,
            params,
        )
        conn.execute(
            """
            delete from ops.delivery_outbox where decision_id in (
                select decision_id from ops.routing_decisions
                where workspace_id = %(ws)s and source_record_id = any(%(ids)s))
            """,
            params,
        )
        conn.execute(
            "delete from ops.routing_decisions where workspace_id = %(ws)s and source_record_id = any(%(ids)s)",
            params,
        )


def relearn_from_reviewer(
    conn: psycopg.Connection,
    workspace_id: str,
    name: str,
    decisions: list[Decision],
    truth: Mapping[str, TrueEntry],
    measure: Callable[[str, list[Decision]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the protocol after a first run whose ``decisions`` are given: review one half, decide
    the held-out half again, and return the held-out half's figures before and after the labels
    (by ``measure``, which by default compares the top candidate with ``truth``)."""
    if measure is None:
        top_truth = {record: entry[1] for record, entry in truth.items() if entry is not None}

        def measure(label: str, chosen: list[Decision]) -> dict[str, Any]:
            return summarise(label, chosen, top_truth, 0.0).as_json()

    held_out = {d.source_record_id for d in decisions if is_held_out(d.source_record_id)}
    reviewed = {d.source_record_id for d in decisions} - held_out
    before = [d for d in decisions if d.source_record_id in held_out]
    actions = review_as_truth_says(conn, workspace_id, truth, reviewed, datetime.now(UTC))
    forget_decisions(conn, workspace_id, held_out)
    again = route_and_read(conn, workspace_id, new_run_id(f"{name}-after-labels"))
    after = [d for d in again if d.source_record_id in held_out]
    return {
        "reviewed_records": len(reviewed),
        "actions": dict(sorted(actions.items())),
        "held_out_records": len(held_out),
        "held_out_before_labels": measure(f"{name} held-out half, before labels", before),
        "held_out_after_labels": measure(f"{name} held-out half, after labels", after),
    }
