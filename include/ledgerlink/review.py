"""Review actions: what a person decides about a record the matcher was unsure of.

Each action is one row in ``ops.review_actions``, a label for the matcher. Accepting the top
candidate, choosing another ranked candidate or pinning an entry found in the ledger also moves
the decision to that entry and queues the document through
:func:`ledgerlink.delivery.outbox.enqueue_document`, in the same transaction, so the next run
delivers it. A refused record keeps its candidates and can be pinned later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
from ledgerlink.workspaces import load_workspace

#: accept the top candidate, choose another ranked one, pin an entry found in the ledger, refuse
ReviewChoice = Literal["accept", "choose", "pin", "refuse"]
# ops.review_actions keeps the label, not the way the reviewer found the entry: a chosen
# alternative is a pin on a ranked candidate, told apart by its note.
_STORED_ACTION = {"accept": "accept", "choose": "pin", "pin": "pin", "refuse": "refuse"}
_NOTE = {"choose": "chosen from the ranked candidates", "pin": "pinned from a ledger search"}


class ReviewRefused(ValueError):
    """The action cannot be taken; the message says why, in words for the reviewer."""


@dataclass(frozen=True)
class ReviewOutcome:
    action_id: int
    is_document_queued: bool


def take_review_action(
    conn: psycopg.Connection,
    *,
    workspace_id: str,
    decision_id: int,
    choice: ReviewChoice,
    actor: str,
    acted_at: datetime,
    candidate_type: str | None = None,
    candidate_id: str | None = None,
) -> ReviewOutcome:
    """Record the reviewer's action on the decision (of ``workspace_id``) and, for an accepted,
    chosen or pinned entry, move the decision to it and queue its document, all in one
    transaction. Raises :class:`ReviewRefused` when the action does not apply."""
    with conn.transaction():
        decision = _locked_decision(conn, workspace_id, decision_id)
        already = conn.execute(
            "select action from ops.review_actions where decision_id = %s and source_payload_sha256 = %s"
            " and action in ('accept', 'pin')",
            (decision_id, decision["source_payload_sha256"]),
        ).fetchone()
        if already is not None:
            raise ReviewRefused("this record was already linked by a reviewer")
        entry = _chosen_entry(conn, decision, choice, candidate_type, candidate_id)
        action_row = conn.execute(
            """
            insert into ops.review_actions (workspace_id, decision_id, source, source_record_id,
                source_payload_sha256, action, candidate_type, candidate_id, actor, acted_at, note)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            returning action_id
            """,
            (
                workspace_id,
                decision_id,
                decision["source"],
                decision["source_record_id"],
                decision["source_payload_sha256"],
                _STORED_ACTION[choice],
                entry.candidate_type if entry else None,
                entry.candidate_id if entry else None,
                actor,
                acted_at,
                _NOTE.get(choice),
            ),
        ).fetchone()
        assert action_row is not None
        if entry is None:
            return ReviewOutcome(action_row[0], is_document_queued=False)
        conn.execute(
            "update ops.routing_decisions set top_candidate_type = %s, top_candidate_id = %s"
            " where decision_id = %s",
            (entry.candidate_type, entry.candidate_id, decision_id),
        )
        queued = enqueue_document(
            conn,
            load_workspace(conn, workspace_id),
            decision_id=decision_id,
            record=_record_as_decided(conn, decision),
            match=entry,
            enqueued_at=acted_at,
        )
    return ReviewOutcome(action_row[0], is_document_queued=queued)


def _locked_decision(conn: psycopg.Connection, workspace_id: str, decision_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cursor:
        decision = cursor.execute(
            "select decision_id, source, source_record_id, source_payload_sha256, score, candidates"
            " from ops.routing_decisions where decision_id = %s and workspace_id = %s for update",
            (decision_id, workspace_id),
        ).fetchone()
    if decision is None:
        raise ReviewRefused("no such decision in this workspace")
    return decision


def _chosen_entry(
    conn: psycopg.Connection,
    decision: dict[str, Any],
    choice: ReviewChoice,
    candidate_type: str | None,
    candidate_id: str | None,
) -> MatchedEntry | None:
    candidates = decision["candidates"]
    if choice == "refuse":
        return None
    if choice == "accept":
        if not candidates:
            raise ReviewRefused("the record has no candidate to accept")
        top = candidates[0]
        return MatchedEntry(
            top["candidate_type"], top["candidate_id"], top.get("candidate_name"), top["score"]
        )
    if choice == "choose":
        for candidate in candidates:
            if (candidate["candidate_type"], candidate["candidate_id"]) == (candidate_type, candidate_id):
                return MatchedEntry(
                    candidate["candidate_type"],
                    candidate["candidate_id"],
                    candidate.get("candidate_name"),
                    candidate["score"],
                )
        raise ReviewRefused("that entry is not one of the record's candidates")
    row = conn.execute(
        "select candidate_name from intermediate.int_ledger_entries_unioned"
        " where workspace_id = (select workspace_id from ops.routing_decisions where decision_id = %s)"
        " and candidate_type = %s and candidate_id = %s",
        (decision["decision_id"], candidate_type, candidate_id),
    ).fetchone()
    if row is None or candidate_type is None or candidate_id is None:
        raise ReviewRefused("no such entry in this workspace's ledger")
    # a pinned entry is the reviewer's certainty, not the model's
    return MatchedEntry(candidate_type, candidate_id, row[0], 1.0)


def _record_as_decided(conn: psycopg.Connection, decision: dict[str, Any]) -> DeliveredRecord:
    """The record's fields in the content that was decided, as the review queue shows them."""
    row = conn.execute(
        """
        select counterparty_name, amount_minor, currency, occurred_on, reference
        from intermediate.int_source_records_unioned
        where workspace_id = (select workspace_id from ops.routing_decisions where decision_id = %s)
            and source = %s and source_record_id = %s and source_payload_sha256 = %s
        """,
        (
            decision["decision_id"],
            decision["source"],
            decision["source_record_id"],
            decision["source_payload_sha256"],
        ),
    ).fetchone()
    if row is None:
        raise ReviewRefused("the record changed since it was decided; the next run decides it again")
    return DeliveredRecord(
        source=decision["source"],
        source_record_id=decision["source_record_id"],
        source_payload_sha256=decision["source_payload_sha256"],
        counterparty_name=row[0],
        amount_minor=row[1],
        currency=row[2],
        occurred_on=row[3],
        reference=row[4],
    )
