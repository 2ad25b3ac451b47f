"""The simulated reviewer protocol on the sandbox generator's data, through landing, dbt, the
scorer, routing and the review actions a person takes on the queue page: a reviewer works through
half the records the matcher was unsure of, and the other half, which no reviewer saw, is decided
again with the verdicts to learn from."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerlink.evaluation.generated import WORKSPACE_ID, evaluate_generated
from ledgerlink.evaluation.reviewer import ACTOR, is_held_out
from ledgerlink.warehouse import ServerAddress, connect


def _linked_right(figures: dict[str, Any]) -> float:
    """Records whose top candidate was auto-linked and right."""
    return figures["records"] * figures["auto_share"] * (figures["auto_precision"] or 0.0)


@pytest.mark.timeout(600)
def test_reviewer_labels_link_more_held_out_records_right(warehouse: ServerAddress) -> None:
    figures = evaluate_generated(seed=7, reviewer_labels=True)
    protocol = figures["reviewer_labels"]
    before, after = protocol["held_out_before_labels"], protocol["held_out_after_labels"]

    # the verdicts come from the queue's own review actions, on the reviewed half only
    with connect(warehouse) as conn:
        actions = conn.execute(
            "select source_record_id, action, actor from ops.review_actions where workspace_id = %s",
            (WORKSPACE_ID,),
        ).fetchall()
        redecided = conn.execute(
            "select count(*) from ops.routing_decisions where workspace_id = %s and decided_by_run like %s",
            (WORKSPACE_ID, "%after-labels%"),
        ).fetchone()
    assert len(actions) == sum(protocol["actions"].values()) > 10
    assert {action for _, action, _ in actions} >= {"accept", "refuse"}
    assert all(actor == ACTOR and not is_held_out(record) for record, _, actor in actions)
    # every held-out record, and only those, was decided again
    assert redecided is not None and redecided[0] == protocol["held_out_records"] == before["records"]

    # more held-out records are linked right without a person, and still almost never wrongly
    assert _linked_right(after) >= _linked_right(before) + 2
    assert after["auto_precision"] >= 0.98
    assert after["review_top3_recall"] >= before["review_top3_recall"]
