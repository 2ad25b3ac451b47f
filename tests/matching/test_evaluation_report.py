"""The evaluator's figures: shares and top-1 precision per route, top-3 recall in review, and
calibration by decile."""

from __future__ import annotations

from ledgerlink.evaluation.report import Decision, summarise


def test_summary_counts_routes_precision_top3_and_calibration() -> None:
    truth = {"a": "x", "b": "y", "c": "z", "d": "w"}
    decisions = [
        Decision("a", "auto_link", 0.95, ["x", "q"]),
        Decision("b", "auto_link", 0.91, ["q", "y"]),
        Decision("c", "review", 0.6, ["q", "r", "z"]),
        Decision("d", "refused", 0.1, []),
    ]
    report = summarise("t", decisions, truth, 1.5, min_decile_records=1)
    figures = report.as_json()
    assert figures["auto_share"] == 0.5 and figures["auto_precision"] == 0.5
    assert figures["review_share"] == 0.25 and figures["review_top3_recall"] == 1.0
    assert figures["refused_share"] == 0.25
    assert figures["calibration_max_gap"] == 0.6  # the review decile: 0.6 predicted, 0 observed
    assert figures["seconds"] == 1.5
    assert "auto_link" in report.as_text()
