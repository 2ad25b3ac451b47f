"""The shipped prior the match model shrinks toward: what ``m``, ``u`` and the no-match odds look
like in a ledger of some size, so that a workspace with three records still weighs an exact name
and amount as strong evidence and a different name as evidence against.

The numbers are set by hand, in the range EM learns without labels on the sandbox generator's
data and on bank-to-ledger (and never from either's ground truth): a true pair mostly agrees on
name, amount and a lag of days; a random pair mostly does not. They are floored at :data:`FLOOR`
so no level is impossible. :func:`prior_table` prints a fitted model in this form, to refresh them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ledgerlink.matching.features import COMPARISONS
from ledgerlink.matching.model import MatchModel

#: The smallest probability a level keeps, so the workspace's data can always move it.
FLOOR = 1e-4

# comparison -> level -> probability, per kind of ledger entry
PRIORS: dict[str, dict[str, Any]] = {
    "invoice": {
        "m": {
            "name": {
                "missing": 0.01,
                "different": 0.01,
                "weak": 0.02,
                "partial": 0.04,
                "strong_common": 0.05,
                "strong": 0.1,
                "strong_rare": 0.15,
                "exact_common": 0.2,
                "exact_rare": 0.42,
            },
            "amount": {
                "missing": 0.01,
                "over_10pct": 0.01,
                "within_10pct": 0.02,
                "within_5pct": 0.04,
                "within_2pct": 0.08,
                "within_0_5pct": 0.14,
                "exact": 0.7,
            },
            "date_lag": {
                "missing": 0.01,
                "before_90d": 0.001,
                "lag_-90_-46": 0.001,
                "lag_-45_-22": 0.002,
                "lag_-21_-7": 0.005,
                "lag_-6_-3": 0.02,
                "lag_-2_-1": 0.05,
                "lag_0_0": 0.2,
                "lag_1_2": 0.3,
                "lag_3_6": 0.25,
                "lag_7_20": 0.12,
                "lag_21_44": 0.03,
                "lag_45_89": 0.005,
                "after_90d": 0.001,
            },
            "currency": {"missing": 0.01, "different": 0.01, "same": 0.98},
            "reference": {"missing": 0.9, "different": 0.03, "same": 0.07},
            "confirmed_before": {"missing": 0.95, "other_entry": 0.005, "this_entry": 0.045},
        },
        "u": {
            "name": {
                "missing": 0.01,
                "different": 0.93,
                "weak": 0.04,
                "partial": 0.01,
                "strong_common": 0.005,
                "strong": 0.002,
                "strong_rare": 0.0005,
                "exact_common": 0.001,
                "exact_rare": 0.0002,
            },
            "amount": {
                "missing": 0.01,
                "over_10pct": 0.85,
                "within_10pct": 0.06,
                "within_5pct": 0.04,
                "within_2pct": 0.025,
                "within_0_5pct": 0.01,
                "exact": 0.003,
            },
            "date_lag": {
                "missing": 0.01,
                "before_90d": 0.3,
                "lag_-90_-46": 0.1,
                "lag_-45_-22": 0.05,
                "lag_-21_-7": 0.04,
                "lag_-6_-3": 0.01,
                "lag_-2_-1": 0.005,
                "lag_0_0": 0.003,
                "lag_1_2": 0.005,
                "lag_3_6": 0.01,
                "lag_7_20": 0.04,
                "lag_21_44": 0.05,
                "lag_45_89": 0.1,
                "after_90d": 0.3,
            },
            "currency": {"missing": 0.01, "different": 0.1, "same": 0.89},
            "reference": {"missing": 0.9, "different": 0.0999, "same": 0.0001},
            "confirmed_before": {"missing": 0.95, "other_entry": 0.0499, "this_entry": 0.0001},
        },
        "no_match_odds": 0.1,
    },
}
# A vendor has no amount, date or reference of its own: those levels are "missing" and weigh
# nothing, so the vendor prior differs only in what names look like.
PRIORS["vendor"] = PRIORS["invoice"]


def _normalised(levels: dict[str, float], names: tuple[str, ...]) -> list[float]:
    missing = set(names) - set(levels)
    if missing or set(levels) - set(names):
        raise ValueError(f"the shipped prior does not match the comparison levels {names}: {sorted(missing)}")
    values = np.maximum(np.array([levels[name] for name in names], dtype=float), FLOOR)
    return list(values / values.sum())


@cache
def shipped_prior(candidate_type: str) -> MatchModel:
    """The prior for a kind of ledger entry (the invoice prior for a kind without its own)."""
    table = PRIORS.get(candidate_type, PRIORS["invoice"])
    m = {c.name: _normalised(table["m"][c.name], c.levels) for c in COMPARISONS}
    u = {c.name: _normalised(table["u"][c.name], c.levels) for c in COMPARISONS}
    return MatchModel(m, u, float(table["no_match_odds"]), 0, trained={"prior": "shipped"})


def prior_table(model: MatchModel) -> dict[str, Any]:
    """A fitted model in the form of :data:`PRIORS`, rounded, to refresh the shipped prior."""
    return {
        "m": {
            c.name: dict(zip(c.levels, (round(p, 4) for p in model.m[c.name]), strict=True))
            for c in COMPARISONS
        },
        "u": {
            c.name: dict(zip(c.levels, (round(p, 5) for p in model.u[c.name]), strict=True))
            for c in COMPARISONS
        },
        "no_match_odds": round(model.no_match_odds, 5),
    }
