"""A Fellegi-Sunter match model: ``u`` from random pairs, ``m`` by EM over whole candidate sets.

Each source record has at most one true entry in the ledger. The model says how likely each
comparison level is for the true entry (``m``) and for a random ledger entry (``u``, estimated
from random record-entry pairs, as Splink does, so that the features are independent among
non-matches). A pair's match weight is the sum over comparisons of ``log2(m / u)``; with a prior
that spreads a record's entry uniformly over the ``N`` ledger entries, a record's blocked
candidates compete for it:

    P(candidate j is the record's entry) = 2^w_j / (sum_k 2^w_k + N * no_match_odds)

Entries blocking left out are taken to weigh nothing. Because the candidates share one
denominator, a near-equal runner-up takes probability away from the top candidate. EM
alternates between that posterior (E) and re-estimating ``m`` and ``no_match_odds`` from it (M);
reviewer labels clamp the posterior of the records they cover, so labels refine what EM learned.

A workspace with a handful of records cannot teach EM much: ``u`` from "random" pairs among three
records and three entries is a third true matches, so ``u`` is close to ``m`` and every candidate
weighs nothing. Every estimate is therefore shrunk toward a shipped prior
(:mod:`ledgerlink.matching.prior`) by pseudo-counts, so the workspace's own data takes over as
its records grow: ``u`` with the weight of :data:`PRIOR_ENTRIES` ledger entries, ``m`` and the
no-match odds with that of :data:`PRIOR_RECORDS` records. Random pairs also hold true pairs, one
in ``N`` of those whose record has an entry; ``u`` is taken without them
(:class:`RandomPairShares`), so the prior no longer has to make up for them and weighs little: a
120-record vendor workspace is mostly its own.

On the ledger side, an open invoice can take only as much as its balance. A payment of more than
half of what it can take (a full payment) excludes every other such payment: a record's full
claim on an invoice is weighed against the other records' full claims on it, by belief
propagation over that one-to-one constraint (:class:`EntryBalance`, ``rivals``), so a runner-up
another record surely takes no longer shares a record's probability. Partial payments are
balanced so the expected amount claimed from an invoice never exceeds its balance (a few rounds
of Sinkhorn scaling with an upper bound). Two full payments cannot both be likely matches of one
invoice; two partial payments that fit its balance can.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ledgerlink.matching.features import AMOUNT, COMPARISONS, NAME, PairLevels

#: v3: a record-level look-alike term (look_alike_bits) moves the no-match odds of each record.
#: v4: full claims on one open invoice are weighed against each other (belief propagation over
#: the one-to-one constraint, EntryBalance.rivals) instead of sharing its balance.
#: v5: the two strongest full claims on an invoice leave themselves out of its rivals as they were
#: summed, not as their odds are now (EntryBalance.strongest): stale odds no longer count against
#: their own record.
MODEL_FAMILY = "fellegi-sunter-em-v5"
#: Records EM learns from; all labelled records are always among them.
EM_SAMPLE_RECORDS = 8_000
EM_ITERATIONS = 30
#: Fees and FX: an invoice can take this much more than its balance.
BALANCE_TOLERANCE = 0.10
_BALANCING_ROUNDS = 8
#: How many ledger entries / source records the shipped prior counts for against the workspace's own.
PRIOR_ENTRIES = 15.0
PRIOR_RECORDS = 10.0
#: The look-alike count's gamma prior (:func:`look_alike_bits`): worth this many records' counts.
LOOK_ALIKE_PSEUDO_COUNT = 4.0
#: Name levels from "weak" up show a record's look-alikes among its candidates.
LOOK_ALIKE_FROM_LEVEL = 2
#: Shared name tokens carrying fewer bits than this are too common for blocking to key on
#: (``blocking_max_candidates_per_key`` entries of a ledger of tens of thousands).
SELECTIVE_FROM_BITS = 8.0
#: Comparisons whose levels are ordered from least to most agreement.
ORDERED = (NAME, AMOUNT)


@dataclass(frozen=True)
class RecordLabel:
    """A reviewer's verdict on a record: the index of the right pair, or None when no candidate is."""

    pair_index: int | None


@dataclass(frozen=True)
class CandidateSets:
    """Pairs grouped by source record: pairs of one record are contiguous and ``starts`` gives
    where each record's pairs begin."""

    record_index: np.ndarray  # per pair
    starts: np.ndarray  # per record
    candidate_index: np.ndarray  # per pair: which ledger entry, for the balance constraint
    record_amount: np.ndarray  # per pair: the record's amount (nan when unknown)
    candidate_balance: np.ndarray  # per pair: the entry's open balance (nan: no balance to respect)
    #: per record: its position among all the workspace's records, for the balance between records
    #: (None: its position here)
    record_positions: np.ndarray | None = None

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.record_index)))

    def record_keys(self) -> np.ndarray:
        """Per pair: its record's position among all the workspace's records."""
        if self.record_positions is None:
            return self.record_index
        return self.record_positions[self.record_index]

    @classmethod
    def from_record_index(
        cls,
        record_index: np.ndarray,
        candidate_index: np.ndarray,
        record_amount: np.ndarray,
        candidate_balance: np.ndarray,
        record_positions: np.ndarray | None = None,
    ) -> CandidateSets:
        if len(record_index) and np.any(np.diff(record_index) < 0):
            raise ValueError("pairs must be ordered by record")
        starts = (
            np.flatnonzero(np.r_[True, np.diff(record_index) != 0]) if len(record_index) else np.zeros(0, int)
        )
        return cls(record_index, starts, candidate_index, record_amount, candidate_balance, record_positions)


@dataclass(frozen=True)
class MatchModel:
    """Per comparison, the probability of each level among true (``m``) and other (``u``) pairs."""

    m: dict[str, list[float]]
    u: dict[str, list[float]]
    no_match_odds: float
    ledger_entries: int
    trained: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        digest = hashlib.sha256(json.dumps(self.parameters(), sort_keys=True).encode()).hexdigest()
        return f"{MODEL_FAMILY}-{digest[:12]}"

    def parameters(self) -> dict[str, Any]:
        return {
            "m": {name: [round(p, 8) for p in values] for name, values in self.m.items()},
            "u": {name: [round(p, 8) for p in values] for name, values in self.u.items()},
            "no_match_odds": round(self.no_match_odds, 12),
            "ledger_entries": self.ledger_entries,
        }

    def as_json(self) -> dict[str, Any]:
        return {"family": MODEL_FAMILY, "version": self.version, **self.parameters(), "trained": self.trained}

    def level_bits(self) -> dict[str, np.ndarray]:
        """log2(m/u) per comparison level; the "missing" level weighs nothing."""
        bits = {}
        for comparison in COMPARISONS:
            m, u = np.array(self.m[comparison.name]), np.array(self.u[comparison.name])
            with np.errstate(divide="ignore"):
                weights = np.where((m > 0) & (u > 0), np.log2(m / np.where(u > 0, u, 1.0)), 0.0)
            weights[0] = 0.0
            bits[comparison.name] = weights
        return bits

    def contributions(self, levels: PairLevels) -> dict[str, np.ndarray]:
        """Each feature's match weight in bits, per pair; their sum is the pair's match weight."""
        bits = self.level_bits()
        return {name: bits[name][levels.levels[name]] for name in bits}

    def match_weight(self, levels: PairLevels) -> np.ndarray:
        parts = self.contributions(levels)
        return np.sum(np.stack(list(parts.values())), axis=0) if parts else np.zeros(0)


@dataclass(frozen=True)
class RandomPairShares:
    """How often each comparison level occurs among random record-entry pairs, and how much that
    counts against the prior's ``u`` (``min(records, entries)`` against :data:`PRIOR_ENTRIES`:
    random pairs are only as varied as the records and entries they are drawn from)."""

    shares: dict[str, np.ndarray]
    weight: float

    @classmethod
    def observe(
        cls, random_levels: PairLevels, ledger_entries: int, distinct_records: int
    ) -> RandomPairShares:
        seen = min(distinct_records, ledger_entries)
        shares = {}
        for comparison in COMPARISONS:
            observed = np.bincount(
                random_levels.levels[comparison.name], minlength=len(comparison.levels)
            ).astype(float)
            shares[comparison.name] = observed / max(observed.sum(), 1.0)
        return cls(shares, seen / (seen + PRIOR_ENTRIES))

    def u(
        self, m: Mapping[str, Sequence[float]], no_match_odds: float, ledger_entries: int, prior: MatchModel
    ) -> dict[str, list[float]]:
        """``u`` without the true matches random pairs hold: a record with an entry among the
        ``N`` has it drawn with probability 1/N, so a share ``rho = P(match) / N`` of random pairs
        are true pairs, distributed as ``m``, and ``share = rho * m + (1 - rho) * u``. In a
        ledger of 40 vendors that share is 2%, as many as the exact-name pairs among all others:
        left in, it makes an exact name look common and weigh little."""
        rho = (1.0 / (1.0 + no_match_odds)) / max(ledger_entries, 1)
        u = {}
        for comparison in COMPARISONS:
            share = self.shares[comparison.name]
            cleaned = np.maximum(share - rho * np.asarray(m[comparison.name]), 0.0) / max(1.0 - rho, 1e-9)
            cleaned = cleaned / max(cleaned.sum(), 1e-12)
            mixed = self.weight * cleaned + (1.0 - self.weight) * np.asarray(prior.u[comparison.name])
            u[comparison.name] = list(mixed / mixed.sum())
        return u


def initial_model(
    random_levels: PairLevels, ledger_entries: int, prior: MatchModel, distinct_records: int
) -> MatchModel:
    """A deterministic start for EM: ``u`` as observed among random pairs (less the true pairs
    among them, by the prior's ``m``), shrunk toward the prior's, and ``m`` and the no-match odds
    as the prior has them."""
    shares = RandomPairShares.observe(random_levels, ledger_entries, distinct_records)
    u = shares.u(prior.m, prior.no_match_odds, ledger_entries, prior)
    return MatchModel(dict(prior.m), u, prior.no_match_odds, ledger_entries)


@dataclass(frozen=True)
class EntryBalance:
    """What other records' claims on each ledger entry do to a record's claim on it, per entry
    (see :func:`balanced_scale`): ``scale`` scales down the weight of every claim on an open
    invoice claimed beyond its balance (natural log, 0 or negative); ``rivals`` is the summed odds
    of the records that claim the entry in full (:func:`exclusive_claims`), which a full claim
    must see off: only one of them can be paid by it. ``strongest`` holds the two largest of those
    odds (per entry, largest first) and ``strongest_record`` the records that claim them (their
    positions among all records, -1: none).

    A record leaves its own claim out of ``rivals``. The sum was taken a round ago, when its odds
    were a little different: the strongest claim, often a thousand times the others together, takes
    out the odds it had then (``strongest``), not those it has now, else a change of a few percent
    in them is left over as a rival of its own that outweighs every other one. The runner-up does
    the same, so two claims alike are weighed alike."""

    scale: np.ndarray
    rivals: np.ndarray
    strongest: np.ndarray
    strongest_record: np.ndarray

    @classmethod
    def none(cls, entries: int) -> EntryBalance:
        return cls(
            np.zeros(entries),
            np.zeros(entries),
            np.zeros((entries, 2)),
            np.full((entries, 2), -1, dtype=np.int64),
        )

    def at(self, positions: np.ndarray) -> EntryBalance:
        """The balance of the entries at ``positions`` (a batch's entries among all)."""
        return EntryBalance(
            self.scale[positions],
            self.rivals[positions],
            self.strongest[positions],
            self.strongest_record[positions],
        )


#: A record's odds on an entry count against its rivals up to this (beyond, the rival is beaten
#: anyway, and odds of 2^40 would swamp the float sums of the others' odds).
_MAX_CLAIM_ODDS = 1e6
#: Rounds a record takes to leave its own claim out of an entry's rivals (see :func:`posterior`).
_OWN_CLAIM_ROUNDS = 3


def exclusive_claims(sets: CandidateSets) -> np.ndarray:
    """Per pair: whether the record claims more than half of what the open invoice can take (its
    balance with the fee and FX tolerance). Two such claims cannot both be paid by it: a full
    payment excludes every other full payment. Partial payments that together fit the balance are
    left to the balancing of expected amounts (``EntryBalance.scale``)."""
    capacity = sets.candidate_balance * (1.0 + BALANCE_TOLERANCE)
    with np.errstate(invalid="ignore"):
        return (capacity > 0) & (sets.record_amount * 2.0 > capacity)


def posterior(
    model: MatchModel,
    sets: CandidateSets,
    weights: np.ndarray,
    balance_rounds: int = _BALANCING_ROUNDS,
    record_bits: np.ndarray | None = None,
    scale: EntryBalance | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The probability that each pair is its record's entry, and the match weights (bits) after
    balancing: an entry claimed beyond its balance scales down the weight of every claim on it,
    and a full claim on an entry that other records claim in full is weighed against them.
    ``record_bits`` (per record, :func:`look_alike_bits`) is added to every pair of its record:
    it moves the record's probability of having no entry, never the order of its candidates.
    ``scale``, when given, is the balancing already worked out (per entry; see
    :func:`balanced_scale`, which must have seen the same weights), and no round is run here."""
    if record_bits is not None and len(weights):
        weights = weights + record_bits[sets.record_index]
    if scale is None:
        candidates = int(sets.candidate_index.max()) + 1 if len(sets.candidate_index) else 0
        scale = balanced_scale(lambda: [(model, sets, weights, None)], candidates, balance_rounds)
    probability, adjusted, _ = _claims(model, sets, weights, scale)
    return probability, adjusted


def _claims(
    model: MatchModel, sets: CandidateSets, weights: np.ndarray, balance: EntryBalance
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`posterior`'s probabilities and weights, and per pair the odds the record puts on
    the entry before the entry's rivals are weighed (what it adds to the entry's ``rivals``; 0
    where the claim is not exclusive).

    Only one record can be paid in full by an entry, so a record's claim on it counts only in
    the event that no rival's does: its weight is divided by ``1 + others``, the summed odds of the
    rivals' claims. This is one step of belief propagation over the one-to-one constraint (the
    entry's message to the record), and the record's own odds are taken out of the entry's sum
    first: the entry's two strongest claims take out what they were summed as
    (``EntryBalance.strongest``); any other claim, small beside them, takes out its odds now.
    Those odds depend on the other candidates' messages, so a record takes them out in a few
    rounds of its own. Without it, a runner-up another record surely takes kept a share of the
    probability, and records with one went to review at 0.6 to 0.9 yet were right 80 to 95%
    of the time."""
    log_none = np.full(len(sets.starts), np.log(max(model.ledger_entries * model.no_match_odds, 1e-300)))
    exclusive = exclusive_claims(sets)
    adjusted = weights * np.log(2.0) + np.where(exclusive, 0.0, balance.scale[sets.candidate_index])
    rivals = np.where(exclusive, balance.rivals[sets.candidate_index], 0.0)
    # the strongest claims' rivals are the others' odds as summed, whatever their own are now
    keys, entries = sets.record_keys(), sets.candidate_index
    slot = np.where(balance.strongest_record[entries, 0] == keys, 0, 1)
    strongest = exclusive & (balance.strongest_record[entries, slot] == keys)
    rivals = np.where(strongest, np.maximum(rivals - balance.strongest[entries, slot], 0.0), rivals)
    own = np.zeros(len(weights))
    message = np.zeros(len(weights))  # log of the entry's message, 0 or negative
    probability = _row_softmax(adjusted, sets, log_none) if len(weights) else np.zeros(0)
    if rivals.any():
        for _ in range(_OWN_CLAIM_ROUNDS):
            message = -np.log1p(np.maximum(rivals - np.where(strongest, 0.0, own), 0.0))
            probability = _row_softmax(adjusted + message, sets, log_none)
            own = _own_odds(probability, message, exclusive)
    else:
        own = _own_odds(probability, message, exclusive)
    adjusted = adjusted + message
    return probability, adjusted / np.log(2.0), own


def _own_odds(probability: np.ndarray, message: np.ndarray, exclusive: np.ndarray) -> np.ndarray:
    """A record's odds on each entry with the entry's own message taken out: p / (1 - p) / message."""
    with np.errstate(divide="ignore", over="ignore"):
        odds = probability / np.maximum(1.0 - probability, 1e-12) * np.exp(-message)
    return np.where(exclusive, np.minimum(odds, _MAX_CLAIM_ODDS), 0.0)


#: One batch of pairs for :func:`balanced_scale`: the model, the pairs, their match weights, and
#: each of the batch's entries' position among all entries (None: the batch's own positions).
BalancedBatch = tuple[MatchModel, CandidateSets, np.ndarray, np.ndarray | None]


def balanced_scale(
    batches: Callable[[], Iterable[BalancedBatch]], candidates: int, rounds: int = _BALANCING_ROUNDS
) -> EntryBalance:
    """Per entry (of ``candidates``), what other records' claims do to a claim on it
    (:class:`EntryBalance`), in a few rounds over every pair. ``scale``: Sinkhorn scaling with an
    upper bound, so the expected amount claimed from an invoice never exceeds its balance.
    ``rivals``: the summed odds of the full claims on it (:func:`exclusive_claims`), belief
    propagation's messages over the one-to-one constraint. ``batches()`` yields every pair once,
    one batch at a time, and is called again for each round, so the pairs can be read a batch at a
    time. What each entry is claimed is summed pair by pair in the order the batches give them, so
    pairs cut into batches in order get the very same balance as in one (but for which of three or
    more equal full claims on an entry are kept as its two strongest)."""
    balance = EntryBalance.none(candidates)
    for _ in range(rounds):
        claimed, capacity_sum, pairs = np.zeros(candidates), np.zeros(candidates), np.zeros(candidates, int)
        rivals = np.zeros(candidates)
        strongest, strongest_record = np.zeros((candidates, 2)), np.full((candidates, 2), -1, dtype=np.int64)
        for model, sets, weights, positions in batches():
            claims = sets.record_amount
            capacity = sets.candidate_balance * (1.0 + BALANCE_TOLERANCE)
            constrained = ~np.isnan(claims) & ~np.isnan(capacity) & (capacity > 0)
            if not constrained.any():
                continue
            entry_balance = balance if positions is None else balance.at(positions)
            probability, _, own = _claims(model, sets, weights, entry_balance)
            exclusive = exclusive_claims(sets)
            partial = constrained & ~exclusive
            entries = sets.candidate_index if positions is None else positions[sets.candidate_index]
            # unbuffered and in pair order, as one bincount over every pair would add them
            np.add.at(claimed, entries[partial], (probability * claims)[partial])
            np.add.at(capacity_sum, entries[partial], capacity[partial])
            np.add.at(pairs, entries[partial], 1)
            np.add.at(rivals, entries[exclusive], own[exclusive])
            _keep_strongest(
                strongest, strongest_record, entries[exclusive], own[exclusive], sets.record_keys()[exclusive]
            )
        if not pairs.any() and not rivals.any():
            break
        limit = capacity_sum / np.maximum(pairs, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(claimed > 0, np.log(limit / claimed), 0.0)
        scale = np.minimum(0.0, balance.scale + np.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0))
        balance = EntryBalance(scale, rivals, strongest, strongest_record)
    return balance


def _keep_strongest(
    strongest: np.ndarray, records: np.ndarray, entries: np.ndarray, odds: np.ndarray, keys: np.ndarray
) -> None:
    """Fold claims (``odds`` of the records ``keys`` on ``entries``) into each entry's two
    strongest (``strongest`` and ``records``, per entry largest first), in place. Claims come
    a batch at a time; among equal odds, which stand may depend on how they were cut."""
    for _ in range(2):
        best = np.full(len(strongest), -np.inf)
        taken = (keys == records[entries, 0]) | (keys == records[entries, 1])
        np.maximum.at(best, entries[~taken], odds[~taken])
        winner = ~taken & (odds >= best[entries])
        best_record = np.full(len(strongest), -1, dtype=np.int64)
        best_record[entries[winner]] = keys[winner]
        # the entry's best new claim displaces the runner-up or both
        first = best >= strongest[:, 0]
        second = ~first & (best >= strongest[:, 1])
        strongest[first, 1], records[first, 1] = strongest[first, 0], records[first, 0]
        strongest[first, 0], records[first, 0] = best[first], best_record[first]
        strongest[second, 1], records[second, 1] = best[second], best_record[second]


def look_alike_bits(
    model: MatchModel,
    levels: PairLevels,
    sets: CandidateSets,
    weights: np.ndarray,
) -> np.ndarray:
    """Per record, how much more (or less) its best candidate's name agreement tells than ``u``
    says: ``u`` of a name level is an average over records, but a rare name has almost no
    look-alikes at a level among the ledger's entries and a name with a common word has hundreds.
    The record's own look-alikes are its other candidates at its best candidate's name level
    (blocking offers every entry that shares a selective name token), shrunk toward the average
    count ``u * N`` by :data:`LOOK_ALIKE_PSEUDO_COUNT` (a Poisson count with a gamma prior):

        bits = log2(u * N / expected_look_alikes)

    Positive for a name with fewer look-alikes than the average record's, negative for more. It
    is a record-level term: the same for all of a record's candidates, so their order and the
    lead over the runner-up stay as the pair weights have them. Zero where candidates do not
    show the look-alikes: names that do not agree at all, or agree only on tokens too common for
    blocking to key on (fewer than :data:`SELECTIVE_FROM_BITS` bits)."""
    records = len(sets.starts)
    bits = np.zeros(records)
    if not records:
        return bits
    name_level = levels.levels[NAME.name]
    # each record's best candidate by match weight (the first, among equals)
    best_weight = np.maximum.reduceat(weights, sets.starts)
    is_best = np.flatnonzero(weights >= best_weight[sets.record_index])
    best = is_best[np.r_[True, np.diff(sets.record_index[is_best]) != 0]]
    best_level = name_level[best].astype(np.int64)
    # per record, how many of its candidates stand at its best candidate's name level
    same_level = np.bincount(
        sets.record_index, weights=(name_level == best_level[sets.record_index]), minlength=records
    )
    look_alikes = np.maximum(same_level - 1.0, 0.0)  # besides the best candidate itself
    average = np.asarray(model.u[NAME.name])[best_level] * max(model.ledger_entries, 1)
    expected = (look_alikes + LOOK_ALIKE_PSEUDO_COUNT) / (
        1.0 + LOOK_ALIKE_PSEUDO_COUNT / np.maximum(average, 1e-9)
    )
    shown = (best_level >= LOOK_ALIKE_FROM_LEVEL) & (levels.shared_name_bits[best] >= SELECTIVE_FROM_BITS)
    bits[shown] = np.log2(average[shown] / expected[shown])
    return bits


def _row_softmax(log_weight: np.ndarray, sets: CandidateSets, log_none: np.ndarray) -> np.ndarray:
    top = np.maximum(np.maximum.reduceat(log_weight, sets.starts), log_none)
    exp = np.exp(log_weight - top[sets.record_index])
    total = np.add.reduceat(exp, sets.starts) + np.exp(log_none - top)
    return exp / total[sets.record_index]


def fit(
    levels: PairLevels,
    sets: CandidateSets,
    random_levels: PairLevels,
    ledger_entries: int,
    labels: Mapping[int, RecordLabel] | None = None,
    seed: int = 0,
    sample_records: int = EM_SAMPLE_RECORDS,
    iterations: int = EM_ITERATIONS,
    prior: MatchModel | None = None,
) -> MatchModel:
    """Estimate ``u`` from ``random_levels`` (random record-entry pairs) and ``m`` by EM on a seeded
    sample of records (every labelled record included), both shrunk toward ``prior`` (the shipped
    one by default). ``labels`` maps a record's position in ``sets`` to its verdict. Same data,
    labels and seed give the same model."""
    if prior is None:
        from ledgerlink.matching.prior import shipped_prior

        prior = shipped_prior("invoice")
    labels = labels or {}
    records = len(sets.starts)
    rng = np.random.default_rng(seed)
    labelled = np.array(sorted(labels), dtype=int)
    unlabelled = np.setdiff1d(np.arange(records), labelled)
    take = max(sample_records - len(labelled), 0)
    chosen = np.sort(np.r_[labelled, rng.permutation(unlabelled)[:take]]).astype(int)
    in_sample = np.zeros(records, dtype=bool)
    in_sample[chosen] = True
    pair_mask = in_sample[sets.record_index]
    sample_levels = PairLevels(
        {name: level[pair_mask] for name, level in levels.levels.items()},
        levels.name_similarity[pair_mask],
        levels.token_overlap[pair_mask],
        levels.shared_name_bits[pair_mask],
    )
    position = np.cumsum(in_sample) - 1  # record -> its index in the sample
    sample_sets = CandidateSets.from_record_index(
        position[sets.record_index[pair_mask]],
        sets.candidate_index[pair_mask],
        sets.record_amount[pair_mask],
        sets.candidate_balance[pair_mask],
    )
    clamp_pairs, clamp_values = _clamped(labels, sets, pair_mask)
    clamped_records = np.array([position[record] for record in labels], dtype=int)
    refused = np.array([position[r] for r, label in labels.items() if label.pair_index is None], dtype=int)

    shares = RandomPairShares.observe(random_levels, ledger_entries, records)
    model = initial_model(random_levels, ledger_entries, prior, records)
    for _ in range(iterations):
        weights = model.match_weight(sample_levels)
        # EM sees a sample, so the balance between records is not enforced while learning
        # without the look-alike term (look_alike_bits): learning with it (tried on bank-to-ledger's
        # dev half) shifted m and the no-match odds so that review top-3 fell from 93% to 83%
        responsibility, _ = posterior(model, sample_sets, weights, balance_rounds=0)
        responsibility[clamp_pairs] = clamp_values
        model = _maximise(sample_levels, sample_sets, responsibility, clamped_records, refused, model, prior)
        model = replace(model, u=shares.u(model.m, model.no_match_odds, ledger_entries, prior))
    return MatchModel(
        model.m,
        model.u,
        model.no_match_odds,
        model.ledger_entries,
        trained={
            "seed": seed,
            "records": int(len(chosen)),
            "pairs": int(pair_mask.sum()),
            "labels": len(labels),
            "iterations": iterations,
            "random_pairs": len(random_levels.name_similarity),
            "prior_share_of_m": round(PRIOR_RECORDS / (PRIOR_RECORDS + len(chosen)), 4),
        },
    )


def _clamped(
    labels: Mapping[int, RecordLabel], sets: CandidateSets, pair_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pair positions (in the sample) whose responsibility labels fix, and the fixed values."""
    positions, values = [], []
    sample_position = np.cumsum(pair_mask) - 1
    sizes = sets.sizes
    for record, label in labels.items():
        start = int(sets.starts[record])
        for pair in range(start, start + int(sizes[record])):
            positions.append(sample_position[pair])
            values.append(1.0 if label.pair_index == pair else 0.0)
    return np.array(positions, dtype=int), np.array(values, dtype=float)


def monotone(m: np.ndarray, u: np.ndarray) -> list[float]:
    """``m`` adjusted so that log2(m/u) never falls as agreement rises (pooling adjacent levels
    that break the order, weighted by their ``m``): with few records EM can otherwise learn that
    an exactly equal name counts for less than a near one."""
    blocks: list[tuple[float, float, list[int]]] = []  # (weighted bits, weight, levels)
    for level in range(1, len(m)):
        weight = max(float(m[level]), 1e-12)
        bits = float(np.log2(max(m[level], 1e-300) / max(u[level], 1e-300)))
        blocks.append((bits * weight, weight, [level]))
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            later, earlier = blocks.pop(), blocks.pop()
            blocks.append((earlier[0] + later[0], earlier[1] + later[1], earlier[2] + later[2]))
    adjusted = m.astype(float).copy()
    for total, weight, members in blocks:
        for level in members:
            adjusted[level] = u[level] * 2.0 ** (total / weight)
    return list(adjusted / adjusted.sum())


def _maximise(
    levels: PairLevels,
    sets: CandidateSets,
    responsibility: np.ndarray,
    clamped_records: np.ndarray,
    refused: np.ndarray,
    previous: MatchModel,
    prior: MatchModel,
) -> MatchModel:
    m = {}
    for comparison in COMPARISONS:
        level = levels.levels[comparison.name]
        count = len(comparison.levels)
        # the prior's records count as pseudo-records: a few records move m only a little
        true_mass = np.bincount(level, weights=responsibility, minlength=count) + PRIOR_RECORDS * np.array(
            prior.m[comparison.name]
        )
        m[comparison.name] = list(true_mass / true_mass.sum())
        if comparison in ORDERED:
            m[comparison.name] = monotone(np.array(m[comparison.name]), np.array(previous.u[comparison.name]))
    # the odds that a record's entry is not among its candidates at all
    matched = np.add.reduceat(responsibility, sets.starts) if len(sets.starts) else np.zeros(0)
    if len(clamped_records):
        matched = matched.copy()
        matched[refused] = 0.0
    none = np.clip(1.0 - matched, 1e-6, 1.0)
    prior_share = prior.no_match_odds / (1.0 + prior.no_match_odds)
    prior_none = (float(none.sum()) + PRIOR_RECORDS * prior_share) / (len(none) + PRIOR_RECORDS)
    no_match_odds = prior_none / max(1.0 - prior_none, 1e-6)
    return MatchModel(m, previous.u, no_match_odds, previous.ledger_entries)


__all__ = [
    "NAME",
    "CandidateSets",
    "MatchModel",
    "RecordLabel",
    "balanced_scale",
    "EntryBalance",
    "exclusive_claims",
    "fit",
    "initial_model",
    "look_alike_bits",
    "posterior",
]
