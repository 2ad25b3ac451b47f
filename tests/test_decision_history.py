"""Every decision is kept (migration 010): when a record changes and the matcher decides again,
the current decision is overwritten but the history keeps both, each with its model version; the
mapping version stamped when the document is queued lands on the decision it belongs to; a
reviewer's move of the current decision leaves the matcher's decision in the history as it was."""

from __future__ import annotations

from datetime import UTC, datetime

from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.workspaces import Workspace, save_workspace

_UPSERT = """
    insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256, route,
        score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id, candidates,
        explanation, model_version, decided_at, decided_by_run)
    values ('history-ws', 'square', 'pay-1', %s, %s, %s, 0.9, 0.5, 'invoice', %s, '[]', '{}', %s, %s, %s)
    on conflict (workspace_id, source, source_record_id) do update set
        source_payload_sha256 = excluded.source_payload_sha256, route = excluded.route, score = excluded.score,
        top_candidate_id = excluded.top_candidate_id, model_version = excluded.model_version,
        decided_at = excluded.decided_at, decided_by_run = excluded.decided_by_run
    returning decision_id
"""


def test_a_changed_record_keeps_every_decision(warehouse: ServerAddress) -> None:
    with connect(warehouse) as conn:
        save_workspace(conn, Workspace("history-ws", "History Co", "h@qbodocs.com", is_active=False))
        first_at, second_at = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        row = conn.execute(_UPSERT, ("sha-1", "review", 0.7, "1001", "model-a", first_at, "run-1")).fetchone()
        assert row is not None
        decision_id = row[0]
        # the first decision's document is queued with mapping version 3
        conn.execute(
            "insert into ops.delivery_outbox (workspace_id, decision_id, source, source_record_id,"
            " source_payload_sha256, message_id, recipient, document, created_at, mapping_version)"
            " values ('history-ws', %s, 'square', 'pay-1', 'sha-1', '<m1@ledgerlink>', 'h@qbodocs.com', '{}',"
            " %s, 3)",
            (decision_id, first_at),
        )
        conn.execute(
            "update ops.routing_decisions set mapping_version = 3 where decision_id = %s", (decision_id,)
        )
        conn.execute(_UPSERT, ("sha-2", "auto_link", 0.97, "1002", "model-b", second_at, "run-2"))
        # a reviewer's pin moves the current decision, not the matcher's history
        conn.execute(
            "update ops.routing_decisions set top_candidate_id = '1003' where decision_id = %s",
            (decision_id,),
        )
        history = conn.execute(
            "select source_payload_sha256, route, top_candidate_id, model_version, mapping_version, decided_by_run"
            " from ops.routing_decision_history where decision_id = %s order by decided_at",
            (decision_id,),
        ).fetchall()
        current = conn.execute(
            "select source_payload_sha256, top_candidate_id from ops.routing_decisions where decision_id = %s",
            (decision_id,),
        ).fetchone()
        conn.rollback()
    assert history == [
        ("sha-1", "review", "1001", "model-a", 3, "run-1"),
        ("sha-2", "auto_link", "1002", "model-b", None, "run-2"),
    ]
    assert current == ("sha-2", "1003")
