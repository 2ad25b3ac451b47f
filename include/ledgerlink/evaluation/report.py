"""Figures of an evaluation: per route, the share of records and the precision of the top
candidate; for review, how often the true match is among the first three; calibration by decile.

A decile's observed precision comes from few records when its band is thin (often 15 to 100 of
20,000), so each row also carries the 95% Wilson interval of the observed share. A decile
*misses* the calibration target only when its predicted probability lies more than 5 points
outside that interval: a gap that sampling alone cannot explain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import sqrt
from typing import Any

ROUTES = ("auto_link", "review", "refused")
#: The calibration target: observed precision within this of predicted, in every decile.
CALIBRATION_TOLERANCE = 0.05
_Z_95 = 1.959964


@dataclass(frozen=True)
class Decision:
    """A routing decision as the evaluator reads it back from ``ops.routing_decisions``."""

    source_record_id: str
    route: str
    score: float
    candidate_ids: Sequence[str]


@dataclass(frozen=True)
class EvaluationReport:
    name: str
    records: int
    route_share: dict[str, float]
    route_precision: dict[str, float | None]
    review_top3_recall: float | None
    calibration: list[dict[str, Any]]
    calibration_max_gap: float
    calibration_deciles_missed: list[str]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "records": self.records,
            "auto_share": _round(self.route_share["auto_link"]),
            "auto_precision": _round(self.route_precision["auto_link"]),
            "review_share": _round(self.route_share["review"]),
            "review_precision": _round(self.route_precision["review"]),
            "review_top3_recall": _round(self.review_top3_recall),
            "refused_share": _round(self.route_share["refused"]),
            "refused_precision": _round(self.route_precision["refused"]),
            "calibration_max_gap": _round(self.calibration_max_gap),
            "calibration_deciles_missed": self.calibration_deciles_missed,
            "calibration": self.calibration,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }

    def as_text(self) -> str:
        lines = [f"{self.name}: {self.records} records", "", "route       share   top-1 precision"]
        for route in ROUTES:
            precision = self.route_precision[route]
            shown = f"{precision:7.2%}" if precision is not None else "    n/a"
            lines.append(f"{route:<10} {self.route_share[route]:7.2%}   {shown}")
        if self.review_top3_recall is not None:
            lines.append(f"review: true match in the top 3 for {self.review_top3_recall:.2%}")
        lines += ["", "calibration   records  predicted  observed  (95% interval)"]
        for row in self.calibration:
            low, high = row["observed_interval"]
            lines.append(
                f"{row['decile']:<12} {row['records']:8d}  {row['predicted']:8.3f}  {row['observed']:8.3f}"
                f"  ({low:.3f}-{high:.3f})"
            )
        lines.append(f"largest gap: {self.calibration_max_gap:.3f}")
        missed = ", ".join(self.calibration_deciles_missed) or "none"
        lines.append(f"deciles off by more than {CALIBRATION_TOLERANCE:g} beyond sampling noise: {missed}")
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        lines.append(f"seconds: {self.seconds:.1f}")
        return "\n".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarise(
    name: str,
    decisions: Sequence[Decision],
    truth: Mapping[str, str],
    seconds: float,
    extra: dict[str, Any] | None = None,
    min_decile_records: int = 20,
) -> EvaluationReport:
    """Compare ``decisions`` with ``truth`` (record id -> true candidate id). A record without a
    true match counts as correct when it is refused... and never as a correct top candidate."""
    total = len(decisions) or 1
    by_route: dict[str, list[Decision]] = {route: [] for route in ROUTES}
    for decision in decisions:
        by_route[decision.route].append(decision)

    def top_is_right(decision: Decision) -> bool:
        return (
            bool(decision.candidate_ids) and truth.get(decision.source_record_id) == decision.candidate_ids[0]
        )

    share = {route: len(rows) / total for route, rows in by_route.items()}
    precision: dict[str, float | None] = {
        route: (sum(map(top_is_right, rows)) / len(rows) if rows else None)
        for route, rows in by_route.items()
    }
    review = by_route["review"]
    top3 = (
        sum(truth.get(d.source_record_id) in d.candidate_ids[:3] for d in review) / len(review)
        if review
        else None
    )
    calibration = []
    gap = 0.0
    missed = []
    for decile in range(10):
        low, high = decile / 10, (decile + 1) / 10
        rows = [d for d in decisions if low <= d.score < high or (decile == 9 and d.score >= 1.0)]
        if not rows:
            continue
        predicted = sum(d.score for d in rows) / len(rows)
        observed = sum(map(top_is_right, rows)) / len(rows)
        interval = wilson_interval(observed, len(rows))
        calibration.append(
            {
                "decile": f"{low:.1f}-{high:.1f}",
                "records": len(rows),
                "predicted": round(predicted, 4),
                "observed": round(observed, 4),
                "observed_interval": [round(bound, 4) for bound in interval],
            }
        )
        if len(rows) >= min_decile_records:
            gap = max(gap, abs(predicted - observed))
        if not interval[0] - CALIBRATION_TOLERANCE <= predicted <= interval[1] + CALIBRATION_TOLERANCE:
            missed.append(f"{low:.1f}-{high:.1f}")
    return EvaluationReport(
        name, len(decisions), share, precision, top3, calibration, gap, missed, seconds, extra or {}
    )


def wilson_interval(share: float, count: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a share observed in ``count`` trials."""
    z2 = _Z_95 * _Z_95
    centre = (share + z2 / (2 * count)) / (1 + z2 / count)
    half = _Z_95 * sqrt(share * (1 - share) / count + z2 / (4 * count * count)) / (1 + z2 / count)
    return max(0.0, centre - half), min(1.0, centre + half)
