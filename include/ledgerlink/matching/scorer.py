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
from ledgerlink.matching.features import COMPARISONS, PairColumns, PairLevels, TokenRarity, compare
from ledgerlink.matching.model import (
    BalancedBatch,
    CandidateSets,
    EntryBalance,
    MatchModel,
    RecordLabel,
    fit,
    look_alike_bits,
    posterior,
)
from ledgerlink.matching.prior import shipped_prior

TOP_CANDIDATES_KEPT = 5
#: The explanation's name for the record-level look-alike term (:func:`model.look_alike_bits`):
#: how much rarer (positive) or commoner (negative) the record's name is at its top candidate's
#: name level than ``u`` assumes. The same for every candidate of the record.
LOOK_ALIKES = "name_look_alikes"
#: The explanation's name for what an open invoice's balance takes off a candidate's weight when
#: other records are likely to claim it too (:func:`model.posterior`): 0 or negative. For a full
#: payment, that is how strongly other records claim the invoice in full.
BALANCE = "invoice_balance"
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
    #: what the record pays in this entry's currency (converted at the workspace's exchange rate
    #: when the currencies differ and dbt had a rate); None when either amount is unknown
    record_amount_minor: int | None = None

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


#: counterparty name (normalised) -> entry id -> the records a reviewer confirmed it for
ConfirmedLinks = Mapping[str, Mapping[str, frozenset[tuple[str, str]]]]


@dataclass(frozen=True)
class PreparedPairs:
    """A batch's pairs compared and grouped by record."""

    batch: PairBatch
    levels: PairLevels
    sets: CandidateSets
    candidate_type: np.ndarray  # per pair
    links: ConfirmedLinks
    #: token rarity counted over more names than the batch's (None: over the batch's own)
    rarity: TokenRarity | None = None

    @property
    def records(self) -> list[SourceRecord]:
        return self.batch.records


def confirmed_links(batch: PairBatch, verdicts: Mapping[tuple[str, str], str | None]) -> ConfirmedLinks:
    """What reviewers accepted or pinned, by the counterparty name of the record they did it for:
    the same name paying the same entry again is strong evidence."""
    links: dict[str, dict[str, set[tuple[str, str]]]] = {}
    for record in batch.records:
        key = (record.source, record.source_record_id)
        chosen = verdicts.get(key)
        if chosen is not None and record.counterparty_name_normalised:
            links.setdefault(record.counterparty_name_normalised, {}).setdefault(chosen, set()).add(key)
    return {
        name: {entry: frozenset(keys) for entry, keys in by_entry.items()} for name, by_entry in links.items()
    }


def _confirmed_before(
    batch: PairBatch, record_positions: np.ndarray, entry_positions: np.ndarray, links: ConfirmedLinks
) -> np.ndarray | None:
    """Per pair: 1 when a reviewer confirmed this entry for another record of the same name, 0 when
    they confirmed only other entries for that name, nan when no reviewer did (a record's own
    verdict never counts for itself)."""
    if not links:
        return None
    flags = np.full(len(record_positions), np.nan)
    names = [r.counterparty_name_normalised for r in batch.records]
    for pair in np.flatnonzero(np.array([names[i] in links for i in record_positions.tolist()], dtype=bool)):
        record = batch.records[int(record_positions[pair])]
        key = (record.source, record.source_record_id)
        by_entry = links[names[int(record_positions[pair])] or ""]
        others = {entry for entry, keys in by_entry.items() if keys - {key}}
        if others:
            flags[pair] = float(batch.entries[int(entry_positions[pair])].candidate_id in others)
    return flags


def prepare(
    batch: PairBatch, links: ConfirmedLinks | None = None, rarity: TokenRarity | None = None
) -> PreparedPairs:
    """Compare the batch's pairs and group them by record. ``links`` and ``rarity``, when given,
    are the workspace's, so a chunk of its records compares as it would among all of them."""
    record_names = np.array([r.counterparty_name_normalised for r in batch.records], dtype=object)
    entry_names = np.array([e.candidate_name_normalised for e in batch.entries], dtype=object)
    entry_amount = _floats([e.amount_minor for e in batch.entries])
    record_amount = _floats([r.amount_minor for r in batch.records])
    entry_type = np.array([e.candidate_type for e in batch.entries], dtype=object)
    columns = PairColumns(
        record_names=record_names[batch.record_index],
        candidate_names=entry_names[batch.entry_index],
        amount_diff_minor=batch.amount_diff_minor,
        candidate_amount_minor=entry_amount[batch.entry_index],
        date_lag_days=batch.date_lag_days,
        is_currency_match=batch.is_currency_match,
        is_reference_match=batch.is_reference_match,
        names=[*record_names, *entry_names],
        record_name_code=batch.record_index,
        candidate_name_code=len(record_names) + batch.entry_index,
        is_confirmed_before=_confirmed_before(batch, batch.record_index, batch.entry_index, links or {}),
        token_rarity=rarity,
    )
    candidate_type = entry_type[batch.entry_index]
    # only an open invoice has a balance that limits what can be matched to it
    is_invoice = candidate_type == "invoice"
    # what the record claims from an invoice, in the invoice's currency (dbt's amount difference
    # is taken after converting a foreign-currency record)
    claims = np.where(
        np.isnan(batch.amount_diff_minor),
        record_amount[batch.record_index],
        entry_amount[batch.entry_index] + batch.amount_diff_minor,
    )
    # a charge refunded in full pays nothing off the invoice: it is no rival of the charge that does
    refunded = np.array([r.is_fully_refunded for r in batch.records], dtype=bool)
    claims = np.where(refunded[batch.record_index], 0.0, claims)
    sets = CandidateSets.from_record_index(
        batch.record_index,
        batch.entry_index,
        np.where(is_invoice, claims, np.nan),
        np.where(is_invoice, entry_amount[batch.entry_index], np.nan),
        batch.record_positions,
    )
    return PreparedPairs(batch, compare(columns), sets, candidate_type, links or {}, rarity)


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
    ledger_entries: Mapping[str, int] | None = None,
) -> TrainedModels:
    """Fit one model per candidate type: ``u`` from random record-entry pairs, ``m`` by EM, refined
    by ``labels`` where there are any. Same batch, labels and seed give the same models.
    ``ledger_entries``, when given, counts each type's entries among all the workspace's pairs,
    of which the batch is a sample (by default, the batch's own)."""
    labels = labels or {}
    models = {}
    types = prepared.candidate_type
    rng = np.random.default_rng(seed)
    for kind in sorted(set(types.tolist())):
        subset = _subset(prepared, types == kind)
        kind_labels = _relabel(labels, subset)
        entries = (ledger_entries or {}).get(kind) or len(np.unique(subset.sets.candidate_index))
        random_levels = compare(random_pairs(prepared, subset, rng))
        models[kind] = fit(
            subset.levels,
            subset.sets,
            random_levels,
            entries,
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
    chosen_records = record_positions[rng.integers(0, len(record_positions), count)]
    chosen_entries = entry_positions[rng.integers(0, len(entry_positions), count)]
    # each distinct record and entry is looked at once; the pairs are positions into them
    record_names = np.array([r.counterparty_name_normalised for r in batch.records], dtype=object)
    entry_names = np.array([e.candidate_name_normalised for e in batch.entries], dtype=object)
    record_days = _days([r.occurred_on for r in batch.records])
    entry_days = _days([e.entry_on for e in batch.entries])
    entry_amount = _floats([e.amount_minor for e in batch.entries])
    record_amount = _floats([r.amount_minor for r in batch.records])
    record_currency, record_currency_code = _codes([r.currency for r in batch.records])
    _, entry_currency_code = _codes([e.currency for e in batch.entries], record_currency)
    record_reference, record_reference_code = _codes([_lower(r.reference) for r in batch.records])
    _, entry_reference_code = _codes([_lower(e.reference) for e in batch.entries], record_reference)

    def agree(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.where((left < 0) | (right < 0), np.nan, (left == right).astype(float))

    return PairColumns(
        record_names=record_names[chosen_records],
        candidate_names=entry_names[chosen_entries],
        amount_diff_minor=record_amount[chosen_records] - entry_amount[chosen_entries],
        candidate_amount_minor=entry_amount[chosen_entries],
        date_lag_days=record_days[chosen_records] - entry_days[chosen_entries],
        is_currency_match=agree(record_currency_code[chosen_records], entry_currency_code[chosen_entries]),
        is_reference_match=agree(record_reference_code[chosen_records], entry_reference_code[chosen_entries]),
        names=[*record_names, *entry_names],
        record_name_code=chosen_records,
        candidate_name_code=len(record_names) + chosen_entries,
        is_confirmed_before=_confirmed_before(batch, chosen_records, chosen_entries, prepared.links),
        token_rarity=prepared.rarity,
    )


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _codes(
    values: list[str | None], known: dict[str, int] | None = None
) -> tuple[dict[str, int], np.ndarray]:
    """Each value as a code shared with ``known`` (-1 for None), so equality is a comparison of ints."""
    table = dict(known or {})
    codes = np.array([-1 if v is None else table.setdefault(v, len(table)) for v in values], dtype=np.int64)
    return table, codes


@dataclass(frozen=True)
class _Subset:
    levels: PairLevels
    sets: CandidateSets
    records: np.ndarray  # subset record position -> prepared record position
    pairs: np.ndarray  # subset pair position -> prepared pair position


def _subset(prepared: PreparedPairs, mask: np.ndarray) -> _Subset:
    pairs = np.flatnonzero(mask)
    record_of_pair = prepared.sets.record_index[pairs]
    # pairs are ordered by record: a record's local position counts the records before it
    first_of_record = np.ones(len(pairs), dtype=bool)
    first_of_record[1:] = record_of_pair[1:] != record_of_pair[:-1]
    records, local = record_of_pair[first_of_record], np.cumsum(first_of_record) - 1
    del record_of_pair, first_of_record
    sets = prepared.sets
    levels = prepared.levels

    def take(values: np.ndarray) -> np.ndarray:
        # every pair (one kind of entry, the common case): the columns themselves, not copies
        return values if len(pairs) == len(mask) else values[pairs]

    return _Subset(
        PairLevels(
            {name: take(level) for name, level in levels.levels.items()},
            take(levels.name_similarity),
            take(levels.token_overlap),
            take(levels.shared_name_bits),
        ),
        CandidateSets.from_record_index(
            local,
            take(sets.candidate_index),
            take(sets.record_amount),
            take(sets.candidate_balance),
            records if sets.record_positions is None else sets.record_positions[records],
        ),
        records,
        pairs,
    )


def _relabel(labels: Mapping[int, RecordLabel], subset: _Subset) -> dict[int, RecordLabel]:
    relabelled = {}
    for record, label in labels.items():
        local_record = _position(subset.records, record)
        if local_record is None:
            continue
        if label.pair_index is None:
            relabelled[local_record] = RecordLabel(None)
        elif (local_pair := _position(subset.pairs, label.pair_index)) is not None:
            relabelled[local_record] = RecordLabel(local_pair)
    return relabelled


def _position(ascending: np.ndarray, value: int) -> int | None:
    """Where ``value`` stands in ``ascending``, or None when it is not there (no dict of millions
    of pairs built to look up a few labelled ones)."""
    at = int(np.searchsorted(ascending, value))
    return at if at < len(ascending) and int(ascending[at]) == value else None


def balancing_batches(prepared: PreparedPairs, models: TrainedModels) -> list[BalancedBatch]:
    """Per kind of ledger entry, the batch's pairs as :func:`~.model.balanced_scale` balances
    them, with the batch's entries' positions among the workspace's (``batch.entry_positions``)."""
    batches = []
    for kind, model in models.by_candidate_type.items():
        subset = _subset(prepared, prepared.candidate_type == kind)
        if len(subset.pairs) and not np.isnan(subset.sets.candidate_balance).all():
            # the weights score() gives posterior: the pair weights plus the record's look-alike term
            weights = _match_weight(model, subset.levels)
            weights = (
                weights
                + look_alike_bits(model, subset.levels, subset.sets, weights)[subset.sets.record_index]
            )
            batches.append((model, subset.sets, weights, prepared.batch.entry_positions))
    return batches


def score(
    prepared: PreparedPairs, models: TrainedModels, scale: EntryBalance | None = None
) -> list[ScoredRecord]:
    """Every record of the batch, scored: records without candidates score 0. ``scale``, when
    given, is the balancing of entries' balances worked out across all the workspace's records
    (per entry of the batch); by default it is worked out among the batch's."""
    batch = prepared.batch
    types = prepared.candidate_type
    count = len(prepared.sets.record_index)
    probability = np.zeros(count)
    weight = np.zeros(count)
    # each record's look-alike term (model.look_alike_bits) and, per pair, what the invoice's
    # balance took off (model.posterior): each is explained as its own part of the match weight
    look_alikes = np.zeros(len(prepared.records))  # per record
    balance = np.zeros(count, dtype=np.float32)
    for kind, model in models.by_candidate_type.items():
        subset = _subset(prepared, types == kind)
        if not len(subset.pairs):
            continue
        weights = _match_weight(model, subset.levels)
        record_bits = look_alike_bits(model, subset.levels, subset.sets, weights)
        p, adjusted = posterior(model, subset.sets, weights, record_bits=record_bits, scale=scale)
        probability[subset.pairs] = p
        weight[subset.pairs] = adjusted
        look_alikes[subset.records] = record_bits
        balance[subset.pairs] = adjusted - weights - record_bits[subset.sets.record_index]
        del subset, p, adjusted, weights  # before the next kind's subset is taken
    level_names = {cmp.name: cmp.levels for cmp in COMPARISONS}

    # by record, then most probable first: probabilities lie in 0..1, so one float key does both
    # (a two-key lexsort of millions of pairs takes several times longer). The key holds the
    # record's position among all records read, so a chunk ranks as it would among them all.
    positions = prepared.sets.record_index
    if batch.record_positions is not None:
        positions = batch.record_positions[positions]
    order = np.argsort(positions * 2.0 - probability, kind="stable")
    sorted_records = prepared.sets.record_index[order]
    bounds = np.searchsorted(sorted_records, np.arange(len(prepared.records) + 1))
    sizes = np.diff(bounds)
    has_pairs = sizes > 0
    # per record, as Python values gathered column-wise: the loop below touches no numpy scalar
    first = (
        np.where(has_pairs, order[np.minimum(bounds[:-1], len(order) - 1)], 0) if len(order) else bounds[:-1]
    )
    second = order[np.minimum(bounds[:-1] + 1, len(order) - 1)] if len(order) else bounds[:-1]
    claimed = np.bincount(prepared.sets.record_index, weights=probability, minlength=len(prepared.records))
    top_columns = {
        "probability": probability[first].tolist(),
        "weight": np.round(weight[first], 3).tolist(),
        "lead": np.round(weight[first] - weight[second], 2).tolist(),
        "lead_exact": (weight[first] - weight[second]).tolist(),
        "similarity": np.round(prepared.levels.name_similarity[first].astype(float), 3).tolist(),
        "overlap": np.round(prepared.levels.token_overlap[first].astype(float), 3).tolist(),
        "none": np.round(1.0 - np.where(has_pairs, claimed, 0.0), 4).tolist(),
    }
    top_contributions = {
        name: np.round(values, 3).tolist()
        for name, values in {
            **_contributions(prepared, models, first),
            LOOK_ALIKES: np.where(has_pairs, look_alikes, 0.0),
            BALANCE: balance[first].astype(float),
        }.items()
    }
    top_levels = {
        name: [level_names[name][level] for level in prepared.levels.levels[name][first].tolist()]
        for name in level_names
    }
    kept = [
        order[bounds[i] : bounds[i] + min(int(sizes[i]), TOP_CANDIDATES_KEPT)].tolist()
        for i in range(len(sizes))
    ]
    kept_flat = [pair for pairs in kept for pair in pairs]
    kept_probability = dict(zip(kept_flat, probability[kept_flat].tolist(), strict=True))
    kept_weight = dict(zip(kept_flat, weight[kept_flat].tolist(), strict=True))
    kept_entry = dict(zip(kept_flat, batch.entry_index[kept_flat].tolist(), strict=True))
    kept_claim = dict(zip(kept_flat, prepared.sets.record_amount[kept_flat].tolist(), strict=True))
    scored = []
    for index, record in enumerate(prepared.records):
        if not has_pairs[index]:
            scored.append(ScoredRecord(record, 0.0, [], None, {"reason": "no candidate in the ledger"}))
            continue
        ranked = []
        for pair in kept[index]:
            entry: LedgerEntry = batch.entries[kept_entry[pair]]
            ranked.append(
                ScoredCandidate(
                    entry.candidate_type,
                    entry.candidate_id,
                    entry.candidate_name,
                    kept_probability[pair],
                    kept_weight[pair],
                    entry.amount_minor,
                    None if np.isnan(kept_claim[pair]) else round(kept_claim[pair]),
                )
            )
        lead = top_columns["lead_exact"][index] if sizes[index] > 1 else None
        explanation = {
            "contributions": {name: values[index] for name, values in top_contributions.items()},
            "levels": {name: values[index] for name, values in top_levels.items()},
            "match_weight": top_columns["weight"][index],
            # 0 below features.SIMILAR_FROM: no level tells such names apart
            "name_similarity": top_columns["similarity"][index],
            "token_overlap": top_columns["overlap"][index],
            "no_match_probability": top_columns["none"][index],
            "lead_bits": None if lead is None else top_columns["lead"][index],
            "candidates_compared": int(sizes[index]),
        }
        scored.append(ScoredRecord(record, top_columns["probability"][index], ranked, lead, explanation))
    return scored


def _match_weight(model: MatchModel, levels: PairLevels) -> np.ndarray:
    """:meth:`MatchModel.match_weight`, the same sum in the same order, added up one comparison
    at a time: never every comparison's bits for every pair at once."""
    total = np.zeros(len(levels.name_similarity))
    for index, (name, bits) in enumerate(model.level_bits().items()):
        if index == 0:
            total = bits[levels.levels[name]]
        else:
            total += bits[levels.levels[name]]
    return total


def _contributions(
    prepared: PreparedPairs, models: TrainedModels, pairs: np.ndarray
) -> dict[str, np.ndarray]:
    """Each feature's match weight in bits for the given pairs only (each record's top one), by
    the model of each pair's kind of entry; 0 for a kind without a model."""
    kinds = prepared.candidate_type[pairs]
    values = {comparison.name: np.zeros(len(pairs)) for comparison in COMPARISONS}
    for kind, model in models.by_candidate_type.items():
        mine = kinds == kind
        for name, bits in model.level_bits().items():
            values[name][mine] = bits[prepared.levels.levels[name][pairs[mine]]]
    return values


def score_batch(
    batch: PairBatch, verdicts: Mapping[tuple[str, str], str | None] | None = None, seed: int = 0
) -> tuple[list[ScoredRecord], TrainedModels]:
    """Train on the batch (unsupervised, refined by reviewer ``verdicts``) and score it."""
    prepared = prepare(batch, confirmed_links(batch, verdicts or {}))
    models = train(prepared, labels_for(prepared, verdicts or {}), seed)
    return score(prepared, models), models
