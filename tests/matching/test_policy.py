"""Per-workspace auto-link policy: a maximum amount and a never-auto-link list send a sure match to
review, with the reason in its explanation; the settings round-trip through the CLI."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from click.testing import CliRunner

from ledgerlink.cli.main import cli
from ledgerlink.matching.batch import SourceRecord
from ledgerlink.matching.routing import route_for
from ledgerlink.matching.scorer import ScoredCandidate, ScoredRecord
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, load_workspace

WORKSPACE = Workspace(workspace_id="ws", display_name="W", email_in_address="w@qbodocs.com")


def _sure_match(amount_minor: int, counterparty: str = "Globex Corporation") -> ScoredRecord:
    record = SourceRecord(
        "ws",
        "qonto",
        "q-1",
        "sha",
        counterparty,
        counterparty.lower(),
        amount_minor,
        "EUR",
        date(2026, 10, 1),
        None,
    )
    top = ScoredCandidate("vendor", "56", "Globex Corp", 0.99, 14.0, None)
    runner_up = ScoredCandidate("vendor", "57", "Initech", 0.0, -9.0, None)
    return ScoredRecord(record, 0.99, [top, runner_up], 23.0, {})


def test_a_record_above_the_maximum_amount_waits_for_review_with_the_reason() -> None:
    capped = replace(WORKSPACE, max_auto_link_amount_minor=100_000)
    assert route_for(_sure_match(100_000), capped) == "auto_link"
    held = _sure_match(100_001)
    assert route_for(held, capped) == "review"
    assert "above the workspace's auto-link maximum of 100000" in held.explanation["policy"]
    assert route_for(_sure_match(10_000_000), WORKSPACE) == "auto_link"  # no maximum set


def test_a_charge_refunded_in_full_waits_for_review_with_the_reason() -> None:
    refunded = _sure_match(500)
    refunded = replace(refunded, record=replace(refunded.record, is_fully_refunded=True))
    assert route_for(refunded, WORKSPACE) == "review"
    assert "refunded in full" in refunded.explanation["refunded"]
    assert refunded.explanation["held_back"] == refunded.explanation["refunded"]
    assert route_for(_sure_match(500), WORKSPACE) == "auto_link"  # the same match, not refunded


def test_a_listed_vendor_never_auto_links_by_name_or_id_whatever_the_case() -> None:
    for listed in ("globex corp", "56", "GLOBEX CORPORATION"):
        held = _sure_match(500)
        assert route_for(held, replace(WORKSPACE, never_auto_link_vendors=(listed,))) == "review"
        assert "never-auto-link list" in held.explanation["policy"]
    assert (
        route_for(_sure_match(500), replace(WORKSPACE, never_auto_link_vendors=("Initech",))) == "auto_link"
    )


def test_policy_settings_round_trip_and_bad_ones_are_refused(warehouse) -> None:  # noqa: ANN001
    def invoke(*args: str):  # noqa: ANN202
        return CliRunner().invoke(cli, ["workspace", *args], catch_exceptions=False)

    common = ("add", "policy-ws", "--name", "Policy Co", "--email-in", "policy@qbodocs.com")
    try:
        added = invoke(
            *common,
            "--max-auto-link-amount-minor",
            "250000",
            "--never-auto-link-vendor",
            "Globex Corp",
            "--never-auto-link-vendor",
            "56",
        )
        assert added.exit_code == 0, added.output
        with connect(warehouse) as conn:
            saved = load_workspace(conn, "policy-ws")
        assert saved.max_auto_link_amount_minor == 250_000
        assert list(saved.never_auto_link_vendors) == ["Globex Corp", "56"]
        refused = invoke(*common, "--max-auto-link-amount-minor", "-1")
        assert refused.exit_code != 0
        blank = invoke(*common, "--never-auto-link-vendor", " ")
        assert blank.exit_code != 0 and "must not be empty" in blank.output
        with connect(warehouse) as conn:
            assert load_workspace(conn, "policy-ws").max_auto_link_amount_minor == 250_000
    finally:
        invoke("disable", "policy-ws")
