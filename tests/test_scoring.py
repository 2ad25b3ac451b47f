"""The first scorer: clean matches score high, ambiguity and missing evidence score lower,
records without candidates are refused, and the thresholds route."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from ledgerlink.delivery.outbox import message_id_for
from ledgerlink.matching.routing import route_for
from ledgerlink.matching.scorer import MatchPair, score_records
from ledgerlink.workspaces import Workspace

BASE = MatchPair(
    workspace_id="ws",
    source="square",
    source_record_id="pay-1",
    source_payload_sha256="ab" * 32,
    record_counterparty_name="Boulangerie Dupont",
    record_counterparty_name_normalised="boulangerie dupont",
    record_amount_minor=12050,
    record_currency="EUR",
    record_occurred_on=date(2026, 3, 5),
    record_reference="INV-1001",
    candidate_type="invoice",
    candidate_id="101",
    candidate_name="Boulangerie Dupont SARL",
    candidate_name_normalised="boulangerie dupont",
    candidate_amount_minor=12050,
    candidate_currency="EUR",
    candidate_entry_on=date(2026, 3, 1),
    candidate_reference="INV-1001",
    amount_diff_minor=0,
    date_lag_days=4,
    is_currency_match=True,
    is_reference_match=True,
)
WORKSPACE = Workspace(workspace_id="ws", display_name="W", email_in_address="w@qbodocs.com")


def test_a_clean_match_auto_links() -> None:
    [record] = score_records([BASE])
    assert record.score > 0.85
    assert route_for(record.score, WORKSPACE) == "auto_link"
    assert record.ranked[0].candidate_id == "101"
    assert set(record.explanation["contributions"]) == {
        "name_similarity",
        "amount_agreement",
        "date_agreement",
        "currency_match",
        "reference_match",
    }


def test_a_near_equal_runner_up_sends_the_record_to_review() -> None:
    twin = replace(BASE, candidate_id="102", is_reference_match=False, candidate_reference=None)
    clean_alone = score_records([replace(BASE, is_reference_match=False)])[0].score
    [record] = score_records([replace(BASE, is_reference_match=False), twin])
    assert record.score < clean_alone
    assert record.explanation["ambiguity_penalty"] > 0
    assert [c.candidate_id for c in record.ranked] == ["101", "102"]


def test_wrong_amount_and_name_score_low_and_no_candidate_is_refused() -> None:
    far = replace(
        BASE,
        candidate_name_normalised="garage martin",
        amount_diff_minor=9000,
        is_reference_match=False,
        date_lag_days=120,
    )
    lonely = replace(BASE, source_record_id="pay-2", candidate_type=None, candidate_id=None)
    scored = {r.first_pair.source_record_id: r for r in score_records([far, lonely])}
    assert route_for(scored["pay-1"].score, WORKSPACE) == "refused"
    assert scored["pay-2"].score == 0.0 and scored["pay-2"].ranked == []


def test_thresholds_are_per_workspace() -> None:
    strict = replace(WORKSPACE, auto_link_threshold=Decimal("0.99"), review_threshold=Decimal("0.5"))
    assert route_for(0.9, WORKSPACE) == "auto_link"
    assert route_for(0.9, strict) == "review"
    assert route_for(0.4, strict) == "refused"


def test_message_id_is_stable_and_safe() -> None:
    first = message_id_for("ws", "qonto", "a/b c\r\nBcc: x", "f" * 64)
    assert first == message_id_for("ws", "qonto", "a/b c\r\nBcc: x", "f" * 64)
    assert "\n" not in first and " " not in first and first.startswith("<") and first.endswith(">")
