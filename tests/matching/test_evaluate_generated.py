"""The sandbox generator's data through landing, dbt, the scorer and routing (the DAG's code
path): every decision carries what the review queue shows (ranked candidates with scores, each
feature's contribution, the model version) and the figures come out per source."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ledgerlink.evaluation.generated import WORKSPACE_ID, evaluate_generated
from ledgerlink.matching.model import MODEL_FAMILY
from ledgerlink.warehouse import ServerAddress, connect


@pytest.mark.timeout(400)
def test_generated_data_is_routed_with_explanations_the_review_queue_can_show(
    warehouse: ServerAddress,
) -> None:
    figures: dict[str, Any] = evaluate_generated(seed=7)
    for source in ("qonto", "square"):
        by_source = figures["by_source"][source]
        assert by_source["records"] > 0
        assert {"auto_share", "auto_precision", "review_top3_recall", "calibration_max_gap"} <= set(by_source)
    assert figures["auto_precision"] is None or figures["auto_precision"] >= 0.9

    with connect(warehouse) as conn:
        rows = conn.execute(
            "select route, score::float8, candidates, explanation, model_version"
            " from ops.routing_decisions where workspace_id = %s",
            (WORKSPACE_ID,),
        ).fetchall()
        models = conn.execute(
            "select candidate_type, parameters from ops.match_models where workspace_id = %s", (WORKSPACE_ID,)
        ).fetchall()
        workspace_is_active = _is_active(conn)
        # the generator refunds about 3% of completed charges in full
        refunded = conn.execute(
            "select d.route, d.score::float8, d.explanation from ops.routing_decisions as d"
            " where d.workspace_id = %s and d.source = 'square' and exists ("
            " select from marts.match_features as f where f.workspace_id = d.workspace_id"
            " and f.source = d.source and f.source_record_id = d.source_record_id"
            " and f.record_is_fully_refunded)",
            (WORKSPACE_ID,),
        ).fetchall()
    assert not workspace_is_active  # the DAG's fan-out never picks the benchmark up
    assert len(rows) == figures["records"]
    with_candidates = [row for row in rows if row[2]]
    assert with_candidates
    for route, score, candidates, explanation, model_version in with_candidates:
        assert model_version.count(MODEL_FAMILY) >= 1
        assert candidates[0]["score"] == pytest.approx(score, abs=1e-3)
        assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
        assert {"candidate_type", "candidate_id", "candidate_name", "score"} <= set(candidates[0])
        assert set(explanation["contributions"]) >= {"name", "currency"}
        assert route in ("auto_link", "review", "refused")
    # a charge refunded in full is never auto-linked: a sure match waits for review with the reason
    assert refunded and all(route != "auto_link" for route, _, _ in refunded)
    held = [
        explanation for route, _, explanation in refunded if route == "review" and "refunded" in explanation
    ]
    assert held and all("refunded in full" in explanation["held_back"] for explanation in held)
    assert {kind for kind, _ in models} == {"vendor", "invoice"}
    assert all(parameters["version"].startswith(MODEL_FAMILY) for _, parameters in models)


def _is_active(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "select is_active from ops.workspaces where workspace_id = %s", (WORKSPACE_ID,)
    ).fetchone()
    return bool(row and row[0])
