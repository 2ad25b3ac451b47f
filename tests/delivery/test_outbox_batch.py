"""Queueing many documents at once (the scorer's auto-links of a run) behaves as queueing them
one after another: look-alikes within the batch and of rows queued before go to review, a
changed record supersedes or flags its earlier document, rates and the mapping version apply."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from delivery_rig import MATCH, decide, new_workspace, outbox_rows, square_record, upsert_decision

from ledgerlink.delivery.mappings import save_mapping_version
from ledgerlink.delivery.outbox import DeliveredRecord, DocumentRequest, enqueue_document, enqueue_documents
from ledgerlink.delivery.rates import save_conversion_rule
from ledgerlink.workspaces import Workspace

AT = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


def _requests(
    conn: psycopg.Connection, workspace: Workspace, records: list[DeliveredRecord]
) -> list[DocumentRequest]:
    return [
        DocumentRequest(upsert_decision(conn, workspace, record, AT), record, MATCH) for record in records
    ]


def _decisions(conn: psycopg.Connection, workspace: Workspace) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "select source_record_id, route, explanation ->> 'look_alike_of', mapping_version"
        " from ops.routing_decisions where workspace_id = %s",
        (workspace.workspace_id,),
    ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_a_batch_sends_look_alikes_of_each_other_and_of_queued_rows_to_review(
    conn: psycopg.Connection,
) -> None:
    workspace = new_workspace(conn)
    decide(conn, workspace, square_record("A0", reference=None), AT)
    batch = [
        # the queued A0 again under another id, the name spelt differently, two days later
        square_record(
            "B1", reference=None, counterparty_name="BOULANGERIE  marchand", occurred_on=date(2026, 3, 16)
        ),
        square_record("B2", reference=None, amount_minor=9900),
        # B2's twin, queued earlier in this same batch
        square_record("B3", reference=None, amount_minor=9900, occurred_on=date(2026, 3, 15)),
        # within three days of B3 only, which is not queued: nothing queued looks like it
        square_record("B4", reference=None, amount_minor=9900, occurred_on=date(2026, 3, 18)),
        # like A0 but with a reference of its own: a distinct payment
        square_record("B5"),
        # like A0 but in another currency
        square_record("B6", reference=None, currency="USD"),
    ]
    queued = enqueue_documents(conn, workspace, _requests(conn, workspace, batch), AT)

    assert queued == [False, True, False, True, True, True]
    assert [row["source_record_id"] for row in outbox_rows(conn, workspace.workspace_id)] == [
        "A0",
        "B2",
        "B4",
        "B5",
        "B6",
    ]
    decisions = _decisions(conn, workspace)
    assert decisions["B1"] == ("review", "A0", None)
    assert decisions["B3"] == ("review", "B2", None)
    for record_id in ("B2", "B4", "B5", "B6"):
        assert decisions[record_id] == ("auto_link", None, 0)


def test_a_batch_that_reverts_a_record_to_its_queued_content_keeps_one_pending_row(
    conn: psycopg.Connection,
) -> None:
    workspace = new_workspace(conn)
    decide(conn, workspace, square_record("R1"), AT)
    batch = [square_record("R1", version="v2", amount_minor=4300), square_record("R1")]
    assert enqueue_documents(conn, workspace, _requests(conn, workspace, batch), AT) == [True, True]
    rows = outbox_rows(conn, workspace.workspace_id)
    assert [(row["status"], row["document"]["amount_minor"]) for row in rows] == [
        ("pending", 4250),
        ("superseded", 4300),
    ]


def _outbox_as_seen(conn: psycopg.Connection, workspace: Workspace) -> list[tuple[Any, ...]]:
    """The workspace's outbox without what differs between two workspaces (ids, addresses)."""
    rows = outbox_rows(conn, workspace.workspace_id)
    record_of = {row["outbox_id"]: (row["source_record_id"], row["source_payload_sha256"]) for row in rows}
    return [
        (
            row["source_record_id"],
            row["source_payload_sha256"],
            row["status"],
            row["document"],
            row["mapping_version"],
            record_of.get(row["supersedes_outbox_id"]),
            row["needs_person"],
            row["needs_person_reason"],
        )
        for row in rows
    ]


def _history_state(conn: psycopg.Connection, workspace: Workspace) -> None:
    """A workspace's outbox before the run: one queued record, one delivered, one queued with a
    reference, a USD rate and mapping version 1."""
    save_conversion_rule(conn, workspace.workspace_id, "USD", "EUR", Decimal("0.9200"), date(2026, 3, 13))
    save_mapping_version(
        conn, workspace.workspace_id, {"computed": {"memo": "counterparty ~ ' / ' ~ matched_id"}}, AT, "ana"
    )
    for record in (
        square_record("Q1", reference=None),
        square_record("S1", reference=None, amount_minor=777),
        square_record("R1"),
    ):
        decide(conn, workspace, record, AT)
    conn.execute(
        "update ops.delivery_outbox set status = 'sent' where workspace_id = %s and source_record_id = 'S1'",
        (workspace.workspace_id,),
    )


def test_a_batch_queues_exactly_what_one_at_a_time_queues(conn: psycopg.Connection) -> None:
    records = [
        square_record("R1"),  # the same content again: nothing
        square_record("Q1", version="v2", reference=None, amount_minor=4300),  # supersedes the queued row
        square_record("S1", version="v2", reference=None, amount_minor=778),  # delivered: a flagged update
        # like Q1's first content, which the line above superseded: nothing queued looks like it
        square_record("N1", reference=None, counterparty_name="boulangerie MARCHAND"),
        square_record("N2", reference=None, amount_minor=4300, occurred_on=date(2026, 3, 12)),  # like Q1 v2
        square_record("N3", reference=None, amount_minor=4300, occurred_on=date(2026, 3, 9)),  # like N2 only
        square_record("F1", currency="USD", amount_minor=10000),  # converted at the rule's rate
        square_record("F2", currency="GBP", amount_minor=500),  # no rate on record
        square_record("D1", reference=None, amount_minor=1234),  # queued, then changed in the same batch
        square_record("D1", version="v2", reference=None, amount_minor=1235),
        square_record("P1", reference=None, amount_minor=1235, occurred_on=date(2026, 3, 15)),  # like D1 v2
    ]
    results = {}
    for mode in ("one at a time", "batch"):
        workspace = new_workspace(conn)
        _history_state(conn, workspace)
        requests = _requests(conn, workspace, records)
        # a reviewer already judged P1 distinct: its look-alike does not hold it back
        conn.execute(
            "insert into ops.review_actions (workspace_id, decision_id, source, source_record_id,"
            " source_payload_sha256, action, candidate_type, candidate_id, actor)"
            " values (%s, %s, 'square', 'P1', %s, 'accept', 'invoice', '1042', 'ana')",
            (workspace.workspace_id, requests[-1].decision_id, records[-1].source_payload_sha256),
        )
        if mode == "batch":
            queued = enqueue_documents(conn, workspace, requests, AT)
        else:
            queued = [
                enqueue_document(
                    conn,
                    workspace,
                    decision_id=r.decision_id,
                    record=r.record,
                    match=r.match,
                    enqueued_at=AT,
                )
                for r in requests
            ]
        results[mode] = (queued, _outbox_as_seen(conn, workspace), _decisions(conn, workspace))

    assert results["batch"] == results["one at a time"]
    queued, outbox, decisions = results["batch"]
    assert queued == [False, True, True, True, False, True, True, True, True, True, True]
    assert decisions["N2"][:2] == ("review", "Q1")
    assert decisions["N1"][:2] == decisions["N3"][:2] == decisions["P1"][:2] == ("auto_link", None)
    assert [row[2] for row in outbox if row[0] == "Q1"] == ["superseded", "pending"]
    [update] = [row for row in outbox if row[0] == "S1" and row[2] == "pending"]
    assert update[5][0] == "S1" and update[6] is True
    assert [row[2] for row in outbox if row[0] == "D1"] == ["superseded", "pending"]
    f1 = next(row for row in outbox if row[0] == "F1")
    assert f1[3]["conversion"]["converted_amount_minor"] == 9200 and f1[4] == 1
    assert f1[3]["fields"]["memo"] == "Boulangerie Marchand / 1042"
    assert next(row for row in outbox if row[0] == "F2")[3]["conversion"]["missing_rate"] is True


def test_an_empty_batch_queues_nothing(conn: psycopg.Connection) -> None:
    workspace = new_workspace(conn)
    assert enqueue_documents(conn, workspace, [], AT) == []
    assert outbox_rows(conn, workspace.workspace_id) == []


def test_a_record_twice_in_a_batch_with_the_same_content_is_queued_once(conn: psycopg.Connection) -> None:
    workspace = new_workspace(conn)
    record = square_record("T1")
    [request] = _requests(conn, workspace, [record])
    assert enqueue_documents(conn, workspace, [request, replace(request)], AT) == [True, False]
    assert len(outbox_rows(conn, workspace.workspace_id)) == 1
