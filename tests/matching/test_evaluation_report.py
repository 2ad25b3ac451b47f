"""The evaluator's figures: shares and top-1 precision per route, top-3 recall in review, and
calibration by decile."""

from __future__ import annotations

from ledgerlink.evaluation.report import Decision, summarise, wilson_interval


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


def test_a_decile_misses_calibration_only_beyond_its_sampling_noise() -> None:
    # 100 records predicted 0.95 of which half are right: far beyond noise
    truth = {f"s{i}": "x" for i in range(100)}
    sure = [Decision(f"s{i}", "auto_link", 0.95, ["x" if i % 2 else "q"]) for i in range(100)]
    # one record predicted 0.6 and wrong: a gap of 0.6, but one record says little
    truth["t"] = "x"
    thin = [Decision("t", "review", 0.6, ["q"])]
    figures = summarise("t", sure + thin, truth, 1.0).as_json()
    assert figures["calibration_deciles_missed"] == ["0.9-1.0"]
    rows = {row["decile"]: row for row in figures["calibration"]}
    assert rows["0.6-0.7"]["observed_interval"] == [0.0, 0.7935]
    low, high = wilson_interval(0.5, 100)
    assert round(low, 3) == 0.404 and round(high, 3) == 0.596
