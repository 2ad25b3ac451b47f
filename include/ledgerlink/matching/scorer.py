"""Score candidate pairs from ``marts.match_features``: comparison levels (:mod:`.features`), a
Fellegi-Sunter model fitted by EM (:mod:`.model`), and per source record the calibrated
probability that its top candidate is the right one, with the lead over the runner-up and each
feature's contribution kept as the explanation a reviewer sees.

Everything is column-wise: pairs arrive as :class:`PairBatch` columns, never one object per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ledgerlink.matching.batch import PAIR_COLUMNS, LedgerEntry, PairBatch, SourceRecord
from ledgerlink.matching.features import COMPARISONS, PairColumns, PairLevels, compare
from ledgerlink.matching.model import CandidateSets, MatchModel, RecordLabel, fit, posterior
from ledgerlink.matching.prior import shipped_prior

TOP_CANDIDATES_KEPT = 5
#: Random record-entry pairs ``u`` is estimated from, per kind of ledger entry.
RANDOM_PAIRS = 200_000

__all__ = ["PAIR_COLUMNS", "PairBatch", "ScoredCandidate", "ScoredRecord", "SourceRecord", "score_batch"]


@dataclass(frozen=True)
class ScoredCandidate:
    candidate_type: str
    candidate_id: str
    candidate_name: str | None
    score: float
    match_weight: float
    amount_minor: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "candidate_type": self.candidate_type,
            "candidate_id": self.candidate_id,
            "candidate_name": self.candidate_name,
            "score": round(self.score, 4),
            "match_weight": round(self.match_weight, 2),
        }


@dataclass(frozen=True)
class ScoredRecord:
    """A source record with its ranked candidates; ``score`` is the probability that the first
    is the right one, ``lead_bits`` how much more weight it has than the runner-up."""

    record: SourceRecord
    score: float
    ranked: list[ScoredCandidate]
    lead_bits: float | None = None
    explanation: dict[str, Any] = field(default_factory=dict)


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _days(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v.toordinal() for v in values], dtype=float)


@dataclass(frozen=True)
class PreparedPairs:
    """A batch's pairs compared and grouped by record."""

    batch: PairBatch
    levels: PairLevels
    sets: CandidateSets
    candidate_type: np.ndarray  # per pair

    @property
    def records(self) -> list[SourceRecord]:
        return self.batch.records


def prepare(batch: PairBatch) -> PreparedPairs:
    record_names = np.array([r.counterparty_name_normalised for r in batch.records], dtype=object)
    entry_names = np.array([e.candidate_name_normalised for e in batch.entries], dtype=object)
    entry_amount = _floats([e.amount_minor for e in batch.entries])
    record_amount = _floats([r.amount_minor for r in batch.records])
    entry_type = np.array([e.candidate_type for e in batch.entries], dtype=object)
    columns = PairColumns(
        record_names=list(record_names[batch.record_index]),
        candidate_names=list(entry_names[batch.entry_index]),
        amount_diff_minor=batch.amount_diff_minor,
        candidate_amount_minor=entry_amount[batch.entry_index],
        date_lag_days=batch.date_lag_days,
        is_currency_match=batch.is_currency_match,
        is_reference_match=batch.is_reference_match,
    )
    candidate_type = entry_type[batch.entry_index]
    # only an open invoice has a balance that limits what can be matched to it
    is_invoice = candidate_type == "invoice"
    sets = CandidateSets.from_record_index(
        batch.record_index,
        batch.entry_index,
        np.where(is_invoice, record_amount[batch.record_index], np.nan),
        np.where(is_invoice, entry_amount[batch.entry_index], np.nan),
    )
    return PreparedPairs(batch, compare(columns), sets, candidate_type)


def labels_for(
    prepared: PreparedPairs, verdicts: Mapping[tuple[str, str], str | None]
) -> dict[int, RecordLabel]:
    """Reviewer verdicts ((source, record id) -> the right candidate id, or None when no candidate
    is) as labels on the prepared records. A verdict naming an entry blocking did not offer is
    left out: the model cannot learn from a pair it never compares."""
    batch = prepared.batch
    labels: dict[int, RecordLabel] = {}
    for index, record in enumerate(batch.records):
        key = (record.source, record.source_record_id)
        if key not in verdicts:
            continue
        start = int(np.searchsorted(batch.record_index, index, side="left"))
        stop = int(np.searchsorted(batch.record_index, index, side="right"))
        if start == stop:
            continue
        chosen = verdicts[key]
        if chosen is None:
            labels[index] = RecordLabel(None)
            continue
        for pair in range(start, stop):
            if batch.entries[int(batch.entry_index[pair])].candidate_id == chosen:
                labels[index] = RecordLabel(pair)
                break
    return labels


@dataclass(frozen=True)
class TrainedModels:
    """One model per kind of ledger entry: vendors (names only) and invoices (amounts and dates too)."""

    by_candidate_type: dict[str, MatchModel]

    @property
    def version(self) -> str:
        return "+".join(f"{kind}:{model.version}" for kind, model in sorted(self.by_candidate_type.items()))


def train(
    prepared: PreparedPairs,
    labels: Mapping[int, RecordLabel] | None = None,
    seed: int = 0,
) -> TrainedModels:
    """Fit one model per candidate type: ``u`` from random record-entry pairs, ``m`` by EM, refined
    by ``labels`` where there are any. Same batch, labels and seed give the same models."""
    labels = labels or {}
    models = {}
    types = prepared.candidate_type
    rng = np.random.default_rng(seed)
    for kind in sorted(set(types.tolist())):
        subset = _subset(prepared, types == kind)
        kind_labels = _relabel(labels, subset)
        ledger_entries = len(np.unique(subset.sets.candidate_index))
        random_levels = compare(random_pairs(prepared, subset, rng))
        models[kind] = fit(
            subset.levels,
            subset.sets,
            random_levels,
            ledger_entries,
            kind_labels,
            seed=seed,
            prior=shipped_prior(kind),
        )
    return TrainedModels(models)


def random_pairs(
    prepared: PreparedPairs,
    subset: _Subset,
    rng: np.random.Generator,
    count: int = RANDOM_PAIRS,
) -> PairColumns:
    """Records paired with ledger entries at random (each record and each entry equally likely):
    what the features look like between a record and an entry that is not its own. References
    agree here only when equal but for case (random pairs almost never share one)."""
    batch = prepared.batch
    record_positions = batch.record_index[subset.pairs[subset.sets.starts]]
    entry_positions = np.unique(batch.entry_index[subset.pairs])
    records = [batch.records[int(i)] for i in record_positions[rng.integers(0, len(record_positions), count)]]
    entries = [batch.entries[int(i)] for i in entry_positions[rng.integers(0, len(entry_positions), count)]]

    def agree(a: str | None, b: str | None) -> float:
        return np.nan if a is None or b is None else float(a.lower() == b.lower())

    entry_amount = _floats([e.amount_minor for e in entries])
    return PairColumns(
        record_names=[r.counterparty_name_normalised for r in records],
        candidate_names=[e.candidate_name_normalised for e in entries],
        amount_diff_minor=_floats([r.amount_minor for r in records]) - entry_amount,
        candidate_amount_minor=entry_amount,
        date_lag_days=_days([r.occurred_on for r in records]) - _days([e.entry_on for e in entries]),
        is_currency_match=np.array(
            [agree(r.currency, e.currency) for r, e in zip(records, entries, strict=True)], dtype=float
        ),
        is_reference_match=np.array(
            [agree(r.reference, e.reference) for r, e in zip(records, entries, strict=True)], dtype=float
        ),
    )


@dataclass(frozen=True)
class _Subset:
    levels: PairLevels
    sets: CandidateSets
    records: np.ndarray  # subset record position -> prepared record position
    pairs: np.ndarray  # subset pair position -> prepared pair position


def _subset(prepared: PreparedPairs, mask: np.ndarray) -> _Subset:
    pairs = np.flatnonzero(mask)
    record_of_pair = prepared.sets.record_index[pairs]
    records, local = np.unique(record_of_pair, return_inverse=True)
    sets = prepared.sets
    levels = prepared.levels
    return _Subset(
        PairLevels(
            {name: level[pairs] for name, level in levels.levels.items()},
            levels.name_similarity[pairs],
            levels.token_overlap[pairs],
            levels.shared_name_bits[pairs],
        ),
        CandidateSets.from_record_index(
            local, sets.candidate_index[pairs], sets.record_amount[pairs], sets.candidate_balance[pairs]
        ),
        records,
        pairs,
    )


def _relabel(labels: Mapping[int, RecordLabel], subset: _Subset) -> dict[int, RecordLabel]:
    local_record = {int(r): i for i, r in enumerate(subset.records)}
    local_pair = {int(p): i for i, p in enumerate(subset.pairs)}
    relabelled = {}
    for record, label in labels.items():
        if record not in local_record:
            continue
        if label.pair_index is None:
            relabelled[local_record[record]] = RecordLabel(None)
        elif label.pair_index in local_pair:
            relabelled[local_record[record]] = RecordLabel(local_pair[label.pair_index])
    return relabelled


def score(prepared: PreparedPairs, models: TrainedModels) -> list[ScoredRecord]:
    """Every record of the batch, scored: records without candidates score 0."""
    batch = prepared.batch
    types = prepared.candidate_type
    count = len(prepared.sets.record_index)
    probability = np.zeros(count)
    weight = np.zeros(count)
    contributions = {name: np.zeros(count) for name in (cmp.name for cmp in COMPARISONS)}
    for kind, model in models.by_candidate_type.items():
        subset = _subset(prepared, types == kind)
        if not len(subset.pairs):
            continue
        parts = model.contributions(subset.levels)
        raw_weight = np.sum(np.stack(list(parts.values())), axis=0)
        p, adjusted = posterior(model, subset.sets, raw_weight)
        probability[subset.pairs] = p
        weight[subset.pairs] = adjusted
        for name, values in parts.items():
            contributions[name][subset.pairs] = values
    level_names = {cmp.name: cmp.levels for cmp in COMPARISONS}

    order = np.lexsort((-probability, prepared.sets.record_index))
    sorted_records = prepared.sets.record_index[order]
    bounds = np.searchsorted(sorted_records, np.arange(len(prepared.records) + 1))
    scored = []
    for index, record in enumerate(prepared.records):
        ranked_pairs = order[bounds[index] : bounds[index + 1]]
        if not len(ranked_pairs):
            scored.append(ScoredRecord(record, 0.0, [], None, {"reason": "no candidate in the ledger"}))
            continue
        ranked = []
        for pair in ranked_pairs[:TOP_CANDIDATES_KEPT]:
            entry: LedgerEntry = batch.entries[int(batch.entry_index[pair])]
            ranked.append(
                ScoredCandidate(
                    entry.candidate_type,
                    entry.candidate_id,
                    entry.candidate_name,
                    float(probability[pair]),
                    float(weight[pair]),
                    entry.amount_minor,
                )
            )
        top = ranked_pairs[0]
        lead = float(weight[top] - weight[ranked_pairs[1]]) if len(ranked_pairs) > 1 else None
        explanation = {
            "contributions": {name: round(float(values[top]), 3) for name, values in contributions.items()},
            "levels": {
                name: level_names[name][int(prepared.levels.levels[name][top])] for name in level_names
            },
            "match_weight": round(float(weight[top]), 3),
            "name_similarity": round(float(prepared.levels.name_similarity[top]), 3),
            "token_overlap": round(float(prepared.levels.token_overlap[top]), 3),
            "no_match_probability": round(float(1.0 - probability[ranked_pairs].sum()), 4),
            "lead_bits": None if lead is None else round(lead, 2),
            "candidates_compared": int(len(ranked_pairs)),
        }
        scored.append(ScoredRecord(record, float(probability[top]), ranked, lead, explanation))
    return scored


def score_batch(
    batch: PairBatch, verdicts: Mapping[tuple[str, str], str | None] | None = None, seed: int = 0
) -> tuple[list[ScoredRecord], TrainedModels]:
    """Train on the batch (unsupervised, refined by reviewer ``verdicts``) and score it."""
    prepared = prepare(batch)
    models = train(prepared, labels_for(prepared, verdicts or {}), seed)
    return score(prepared, models), models
