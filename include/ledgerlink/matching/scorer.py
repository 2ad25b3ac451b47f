"""A first honest scorer: a weighted sum of name similarity (rapidfuzz), amount, date lag,
currency and reference agreement, with a penalty when the runner-up is close.

Each feature's contribution is kept, so a reviewer sees why a record scored as it did.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

MODEL_VERSION = "weighted-sum-v1"
TOP_CANDIDATES_KEPT = 5
#: A runner-up closer than this to the top candidate makes the match ambiguous.
AMBIGUITY_MARGIN = 0.10
AMOUNT_TOLERANCE = 0.05  # relative difference at which the amount stops counting
PAYMENT_LAG_DAYS = 60  # a payment this long after the invoice date no longer counts as timely

# Weights per candidate type: vendors carry no amount or date, invoices do.
WEIGHTS: dict[str, dict[str, float]] = {
    "vendor": {"name_similarity": 0.9, "currency_match": 0.1},
    "invoice": {
        "name_similarity": 0.40,
        "amount_agreement": 0.30,
        "date_agreement": 0.15,
        "currency_match": 0.05,
        "reference_match": 0.10,
    },
}


@dataclass(frozen=True)
class MatchPair:
    """One row of ``marts.match_features``; candidate fields are None when blocking found none."""

    workspace_id: str
    source: str
    source_record_id: str
    source_payload_sha256: str
    record_counterparty_name: str | None
    record_counterparty_name_normalised: str | None
    record_amount_minor: int | None
    record_currency: str | None
    record_occurred_on: date | None
    record_reference: str | None
    candidate_type: str | None
    candidate_id: str | None
    candidate_name: str | None
    candidate_name_normalised: str | None
    candidate_amount_minor: int | None
    candidate_currency: str | None
    candidate_entry_on: date | None
    candidate_reference: str | None
    amount_diff_minor: int | None
    date_lag_days: int | None
    is_currency_match: bool | None
    is_reference_match: bool | None


@dataclass(frozen=True)
class ScoredCandidate:
    candidate_type: str
    candidate_id: str
    candidate_name: str | None
    score: float
    contributions: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "candidate_type": self.candidate_type,
            "candidate_id": self.candidate_id,
            "candidate_name": self.candidate_name,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class ScoredRecord:
    """A source record with its ranked candidates and the score of the top one."""

    first_pair: MatchPair
    score: float
    ranked: list[ScoredCandidate]
    explanation: dict[str, Any] = field(default_factory=dict)


def _name_similarity(pairs: Sequence[MatchPair]) -> np.ndarray:
    records = [pair.record_counterparty_name_normalised or "" for pair in pairs]
    candidates = [pair.candidate_name_normalised or "" for pair in pairs]
    similarity = process.cpdist(records, candidates, scorer=fuzz.token_set_ratio, workers=-1) / 100.0
    missing = np.array([not a or not b for a, b in zip(records, candidates, strict=True)])
    return np.where(missing, 0.0, similarity)


def _amount_agreement(pairs: Sequence[MatchPair]) -> np.ndarray:
    diff = np.array(
        [abs(p.amount_diff_minor) if p.amount_diff_minor is not None else -1 for p in pairs], float
    )
    base = np.array([max(abs(p.candidate_amount_minor or 0), 1) for p in pairs], float)
    agreement = np.clip(1.0 - (diff / base) / AMOUNT_TOLERANCE, 0.0, 1.0)
    return np.where(diff < 0, 0.0, agreement)


def _date_agreement(pairs: Sequence[MatchPair]) -> np.ndarray:
    # One-sided: a payment comes after its invoice; a few days early is tolerated (back-dated invoices).
    lag = np.array([p.date_lag_days if p.date_lag_days is not None else 10_000 for p in pairs], float)
    timely = np.clip(1.0 - lag / PAYMENT_LAG_DAYS, 0.0, 1.0)
    return np.where(lag < -3, 0.0, np.where(lag < 0, 0.8, timely))


def _pair_contributions(pairs: Sequence[MatchPair]) -> list[dict[str, float]]:
    features = {
        "name_similarity": _name_similarity(pairs),
        "amount_agreement": _amount_agreement(pairs),
        "date_agreement": _date_agreement(pairs),
        "currency_match": np.array([1.0 if p.is_currency_match else 0.0 for p in pairs]),
        "reference_match": np.array([1.0 if p.is_reference_match else 0.0 for p in pairs]),
    }
    contributions = []
    for index, pair in enumerate(pairs):
        weights = WEIGHTS.get(pair.candidate_type or "", {})
        contributions.append(
            {name: weight * float(features[name][index]) for name, weight in weights.items()}
        )
    return contributions


def score_records(pairs: Sequence[MatchPair]) -> list[ScoredRecord]:
    """Score every pair and gather them per source record, best candidate first. A record whose
    only row has no candidate scores 0."""
    contributions = _pair_contributions(pairs)
    by_record: dict[tuple[str, str, str], list[tuple[MatchPair, ScoredCandidate]]] = defaultdict(list)
    for pair, parts in zip(pairs, contributions, strict=True):
        key = (pair.workspace_id, pair.source, pair.source_record_id)
        by_record.setdefault(key, [])
        if pair.candidate_id is not None and pair.candidate_type is not None:
            candidate = ScoredCandidate(
                pair.candidate_type, pair.candidate_id, pair.candidate_name, sum(parts.values()), parts
            )
            by_record[key].append((pair, candidate))
    first_pair = {(p.workspace_id, p.source, p.source_record_id): p for p in reversed(pairs)}

    scored = []
    for key, entries in by_record.items():
        ranked = sorted((candidate for _, candidate in entries), key=lambda c: (-c.score, c.candidate_id))
        if not ranked:
            scored.append(ScoredRecord(first_pair[key], 0.0, [], {"reason": "no candidate in the ledger"}))
            continue
        top = ranked[0]
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        penalty = max(0.0, AMBIGUITY_MARGIN - (top.score - runner_up))
        explanation = {
            "contributions": {name: round(value, 4) for name, value in top.contributions.items()},
            "ambiguity_penalty": round(penalty, 4),
            "runner_up_score": round(runner_up, 4),
        }
        score = float(np.clip(top.score - penalty, 0.0, 1.0))
        scored.append(ScoredRecord(first_pair[key], score, ranked[:TOP_CANDIDATES_KEPT], explanation))
    return scored
