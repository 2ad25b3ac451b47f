"""Routing a score: the workspace's thresholds decide the route, a runner-up too close to the top
candidate holds an auto-link back, and delivery's message id is stable."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from ledgerlink.delivery.outbox import message_id_for
from ledgerlink.matching.routing import MIN_LEAD_BITS, route_for
from ledgerlink.matching.scorer import ScoredCandidate, ScoredRecord, SourceRecord
from ledgerlink.workspaces import Workspace

WORKSPACE = Workspace(workspace_id="ws", display_name="W", email_in_address="w@qbodocs.com")
RECORD = SourceRecord(
    "ws", "square", "pay-1", "ab" * 32, "Boulangerie Dupont", "boulangerie dupont", 12050, "EUR", None, None
)


def scored(probability: float, lead_bits: float | None = 10.0) -> ScoredRecord:
    top = ScoredCandidate("invoice", "101", "Boulangerie Dupont", probability, 12.0, 12050)
    return ScoredRecord(RECORD, probability, [top], lead_bits, {})


def test_thresholds_are_per_workspace() -> None:
    strict = replace(WORKSPACE, auto_link_threshold=Decimal("0.99"), review_threshold=Decimal("0.5"))
    assert route_for(scored(0.9), WORKSPACE) == "auto_link"
    assert route_for(scored(0.6), WORKSPACE) == "review"
    assert route_for(scored(0.9), strict) == "review"
    assert route_for(scored(0.4), strict) == "refused"


def test_a_close_runner_up_holds_an_auto_link_back_for_review() -> None:
    close = scored(0.95, lead_bits=MIN_LEAD_BITS - 0.5)
    assert route_for(close, WORKSPACE) == "review"
    assert "runner-up" in close.explanation["held_back"]
    assert route_for(scored(0.95, lead_bits=None), WORKSPACE) == "auto_link"  # no runner-up at all


def test_message_id_is_stable_and_safe() -> None:
    first = message_id_for("ws", "qonto", "a/b c\r\nBcc: x", "f" * 64)
    assert first == message_id_for("ws", "qonto", "a/b c\r\nBcc: x", "f" * 64)
    assert "\n" not in first and " " not in first and first.startswith("<") and first.endswith(">")
