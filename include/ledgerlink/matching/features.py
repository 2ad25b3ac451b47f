"""Comparison levels for candidate pairs, computed column-wise with numpy and rapidfuzz.

dbt has already normalised names (legal forms, diacritics, case, punctuation, payment-type noise)
and computed the amount difference, date lag and currency and reference agreement. This module
adds what SQL does not serve well, name similarity weighted by token rarity, and buckets every
feature into the discrete levels the Fellegi-Sunter model in :mod:`ledgerlink.matching.model`
weighs. Level 0 of every comparison means "not comparable" (a value is missing) and carries no
evidence either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise, product, repeat
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

#: Tokens are compared on their first four characters, so a memo cut short ("WILLIAM KEMML")
#: still agrees with the full name, as the blocking keys in dbt do.
TOKEN_KEY_LENGTH = 4
MAX_TOKENS = 8
_CHUNK = 400_000
# the token counts names are grouped by when pairs of them are compared token by token
_TOKEN_WIDTHS = (2, 3, 4)


@dataclass(frozen=True)
class Comparison:
    """One feature's levels, best agreement last; level 0 is "missing"."""

    name: str
    levels: tuple[str, ...]


# A strong or exact agreement is split by how much information the shared tokens carry: two
# initials agree by chance far more often than a rare surname does.
NAME = Comparison(
    "name",
    (
        "missing",
        "different",
        "weak",
        "partial",
        "strong_common",
        "strong",
        "strong_rare",
        "exact_common",
        "exact_rare",
    ),
)
#: Bits of information (log2 of names over names with the token) the shared tokens must carry.
COMMON_BELOW_BITS = 10.0
#: The least name similarity (token sort ratio, 0..1) any level asks for.
SIMILAR_FROM = 0.8
RARE_FROM_BITS = 18.0
AMOUNT = Comparison(
    "amount",
    ("missing", "over_10pct", "within_10pct", "within_5pct", "within_2pct", "within_0_5pct", "exact"),
)
# Signed days from the ledger entry to the record (dbt's date_lag_days): negative when the
# ledger entry is dated after the payment. The model learns which side of zero is plausible.
DATE_EDGES = (-90, -45, -21, -6, -2, 0, 1, 3, 7, 21, 45, 90)
DATE = Comparison(
    "date_lag",
    ("missing", "before_90d", *(f"lag_{low}_{high - 1}" for low, high in pairwise(DATE_EDGES)), "after_90d"),
)
CURRENCY = Comparison("currency", ("missing", "different", "same"))
REFERENCE = Comparison("reference", ("missing", "different", "same"))
# Whether a reviewer accepted or pinned this candidate before for another record of the same
# counterparty name: "missing" when no reviewer ever did for that name.
CONFIRMED = Comparison("confirmed_before", ("missing", "other_entry", "this_entry"))
COMPARISONS = (NAME, AMOUNT, DATE, CURRENCY, REFERENCE, CONFIRMED)


@dataclass(frozen=True)
class PairColumns:
    """Candidate pairs as columns, one entry per pair."""

    record_names: Sequence[str | None]
    candidate_names: Sequence[str | None]
    amount_diff_minor: np.ndarray  # float, nan when unknown
    candidate_amount_minor: np.ndarray  # float, nan when unknown
    date_lag_days: np.ndarray  # float, nan when unknown
    is_currency_match: np.ndarray  # float 1/0, nan when unknown
    is_reference_match: np.ndarray  # float 1/0, nan when either side has no reference
    #: Optional: every name once (``names``) and each pair's record and candidate name as a position
    #: in it, so millions of pairs are never hashed as strings to find the distinct names.
    names: Sequence[str | None] | None = None
    record_name_code: np.ndarray | None = None
    candidate_name_code: np.ndarray | None = None
    #: float 1/0: a reviewer confirmed this entry / another entry for the record's counterparty
    #: name before; nan (or no column) when no reviewer ever confirmed one for that name
    is_confirmed_before: np.ndarray | None = None
    #: Optional: how rare each name token is, counted over more names than these pairs hold (all
    #: of a workspace's, when its pairs are compared a chunk at a time); by default, over theirs.
    token_rarity: TokenRarity | None = None


@dataclass(frozen=True)
class PairLevels:
    """The level of each comparison for each pair, plus the name features behind the name level."""

    levels: dict[str, np.ndarray]
    name_similarity: np.ndarray
    token_overlap: np.ndarray
    shared_name_bits: np.ndarray


class TokenRarity:
    """How much each name token key tells: log2 of the names over the names that have it."""

    def __init__(self, names: Iterable[str | None]) -> None:
        counts: dict[str, int] = {}
        distinct = set(names)
        for name in distinct:
            for key in set(_token_keys(name)):
                counts[key] = counts.get(key, 0) + 1
        self.documents = max(len(distinct), 1)
        self.vocabulary = {key: index for index, key in enumerate(sorted(counts))}
        frequency = np.array([counts[key] for key in sorted(counts)], dtype=float)
        self.bits = np.log2(self.documents / np.maximum(frequency, 1.0))

    def weights(self, name: str | None) -> list[tuple[int, float]]:
        return [
            (self.vocabulary[key], float(self.bits[self.vocabulary[key]]))
            for key in _token_keys(name)
            if key in self.vocabulary
        ][:MAX_TOKENS]

    def token_table(self, names: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`weights` of every name as two rows of :data:`MAX_TOKENS` columns: the token
        ids (-1 after the name's last) and their bits (0 after). Looked up over all the names'
        tokens at once, not name by name: a chunk holds tens of thousands of names."""
        texts = [name or "" for name in names]
        counts = np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=len(texts))
        # the names joined by spaces split into the same tokens, in the same order, in one call
        keys = [token[:TOKEN_KEY_LENGTH] for token in " ".join(texts).split()]
        ids = np.fromiter(map(self.vocabulary.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))
        row = np.repeat(np.arange(len(texts)), counts)
        known = ids >= 0
        ids, row = ids[known], row[known]
        # a token's column: how many known tokens of its name come before it
        column = np.arange(len(ids)) - np.searchsorted(row, row)
        kept = column < MAX_TOKENS
        ids, row, column = ids[kept], row[kept], column[kept]
        token_ids = np.full((len(names), MAX_TOKENS), -1, dtype=np.int32)
        token_weights = np.zeros((len(names), MAX_TOKENS), dtype=np.float32)
        token_ids[row, column] = ids
        token_weights[row, column] = self.bits[ids]
        return token_ids, token_weights


def factorise(values: Sequence[Hashable]) -> tuple[list[Any], np.ndarray]:
    """The distinct values in order of first appearance, and each value's position among them
    (np.unique sorts Python objects, which is slow on millions of pairs)."""
    positions: dict[Hashable, int] = {}
    codes = np.fromiter(
        (positions.setdefault(v, len(positions)) for v in values), dtype=np.int64, count=len(values)
    )
    return list(positions), codes


def _token_keys(name: str | None) -> list[str]:
    return [token[:TOKEN_KEY_LENGTH] for token in (name or "").split()]


def rarity_weighted_overlap(
    record_names: Sequence[str | None],
    candidate_names: Sequence[str | None],
    coded: tuple[Sequence[str | None], np.ndarray, np.ndarray] | None = None,
    rarity: TokenRarity | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the rarity-weighted Dice overlap of the two names' token keys, in 0..1 (shared
    rare tokens count for much, shared initials or common first names for little), and the bits
    of information the record's shared tokens carry. ``coded`` gives the names once and each
    pair's two names as positions, instead of the per-pair names. Token rarity is counted over
    the names given, unless ``rarity`` is."""
    if coded is None:
        unique, inverse = factorise([n or "" for n in (*record_names, *candidate_names)])
        left, right = inverse[: len(record_names)], inverse[len(record_names) :]
    else:
        unique, left, right = [n or "" for n in coded[0]], coded[1], coded[2]
    if rarity is None:
        rarity = TokenRarity(unique)
    token_ids, token_weights = rarity.token_table(unique)
    total = token_weights.sum(axis=1)
    overlap = np.zeros(len(left), dtype=np.float32)
    shared_bits = np.zeros(len(left), dtype=np.float32)
    # Every token of one name is compared with every token of the other. Most names have two to
    # four tokens, so pairs are compared in groups by the two names' token counts, each over only
    # as many token columns as it needs (a name's tokens fill its first columns). The other
    # name's empty columns hold -2, so they never equal this name's empty ones (-1).
    token_counts = (token_ids >= 0).sum(axis=1)
    widths = sorted({*_TOKEN_WIDTHS, MAX_TOKENS})
    # per pair, as one byte each: a handful of classes
    width_class = np.searchsorted(widths, token_counts).astype(np.int8)
    # Two names that share no token overlap by 0: only pairs whose token bits (one per token,
    # modulo 64) meet are compared token by token, most pairs being the other kind.
    held = held_bits(np.maximum(token_ids, 0), token_ids >= 0)
    meeting = np.flatnonzero(held[left] & held[right])
    class_a, class_b = width_class[left[meeting]], width_class[right[meeting]]
    other_ids = np.where(token_ids >= 0, token_ids, -2)
    for width_a, width_b in product(range(len(widths)), repeat=2):
        group = meeting[(class_a == width_a) & (class_b == width_b)]
        columns_a, columns_b = widths[width_a], widths[width_b]
        for start in range(0, len(group), _CHUNK):
            pairs = group[start : start + _CHUNK]
            a, b = left[pairs], right[pairs]
            ids_a, ids_b = token_ids[a, :columns_a], other_ids[b, :columns_b]
            equal = ids_a[:, :, None] == ids_b[:, None, :]
            shared_a = (token_weights[a, :columns_a] * equal.any(axis=2)).sum(axis=1)
            shared = shared_a + (token_weights[b, :columns_b] * equal.any(axis=1)).sum(axis=1)
            overlap[pairs] = shared / np.maximum(total[a] + total[b], 1e-9)
            shared_bits[pairs] = shared_a
    return overlap, shared_bits


def held_bits(ids: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per row, one 64-bit mask of the ids it holds (``present``), one bit per id modulo 64: two
    rows whose masks do not meet share no id, and a bit one row sets alone stands for at least one
    id only that row holds. ``ids`` broadcasts against ``present``."""
    bits = np.uint64(1) << (np.asarray(ids) % 64).astype(np.uint64)
    return np.bitwise_or.reduce(np.where(present, bits, np.uint64(0)), axis=1)


def _character_counts(names: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per name, how often each character occurs (spaces as token gaps, as token_sort_ratio joins
    the sorted tokens with one space), and its length so counted. Counted over all the names'
    characters at once (as one array of code points), not character by character."""
    joined = [" ".join((name or "").split()) for name in names]
    lengths = np.fromiter(map(len, joined), dtype=np.int64, count=len(joined))
    code_points = np.frombuffer("".join(joined).encode("utf-32-le"), dtype=np.uint32)
    characters, column = np.unique(code_points, return_inverse=True)
    row = np.repeat(np.arange(len(joined)), lengths)
    width = max(len(characters), 1)
    counts = np.bincount(row * width + column, minlength=len(joined) * width).reshape(len(joined), width)
    counts = counts.astype(np.int16)
    return counts, counts.sum(axis=1, dtype=np.int32)


def _name_similarity(
    pairs: PairColumns, coded: tuple[Sequence[str | None], np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """token_sort_ratio in 0..1 where it can reach :data:`SIMILAR_FROM`, 0 elsewhere (no level
    tells those apart). The Indel distance is at least the difference of the two names'
    character counts, which bounds the ratio from above without comparing the strings, so
    rapidfuzz only sees the pairs that may reach it."""
    if coded is None:
        names, left, right = None, None, None
        candidates = np.arange(len(pairs.record_names))
    else:
        names, left, right = coded
        # a name can stand at many positions (a record's and an entry's): count each one once
        distinct, name_code = factorise(names)
        counts, lengths = _character_counts(distinct)
        # Cheaper bounds first, each no more than the count distance: the difference of lengths,
        # and the characters one name holds and the other does not (one bit per character,
        # modulo 64, so a bit either name sets alone stands for at least one such character).
        # Most pairs fail them, and only the rest are counted character by character.
        held = held_bits(np.arange(counts.shape[1]), counts > 0)
        bound = np.zeros(len(left), dtype=bool)
        for start in range(0, len(left), _CHUNK):
            a, b = name_code[left[start : start + _CHUNK]], name_code[right[start : start + _CHUNK]]
            total = np.maximum(lengths[a] + lengths[b], 1)
            least = np.maximum(np.abs(lengths[a] - lengths[b]), np.bitwise_count(held[a] ^ held[b]))
            rest = np.flatnonzero(1.0 - least / total >= SIMILAR_FROM - 1e-6)
            a, b, total = a[rest], b[rest], total[rest]
            distance = np.abs(counts[a] - counts[b]).sum(axis=1, dtype=np.int32)
            bound[start + rest] = 1.0 - distance / total >= SIMILAR_FROM - 1e-6
        candidates = np.flatnonzero(bound)
    similarity = np.zeros(len(pairs.record_names), dtype=np.float32)
    if len(candidates):
        record_names = [n or "" for n in np.asarray(pairs.record_names, dtype=object)[candidates]]
        candidate_names = [n or "" for n in np.asarray(pairs.candidate_names, dtype=object)[candidates]]
        similarity[candidates] = (
            process.cpdist(
                record_names,
                candidate_names,
                scorer=fuzz.token_sort_ratio,
                score_cutoff=SIMILAR_FROM * 100,
                workers=-1,
            ).astype(np.float32)
            / 100.0
        )
    return similarity


def _levels(*levels: int) -> list[np.int8]:
    """Levels as int8, so ``np.select`` builds its per-pair result one byte a pair, not eight."""
    return [np.int8(level) for level in levels]


def compare(pairs: PairColumns) -> PairLevels:
    """Bucket every pair's features into comparison levels."""
    count = len(pairs.record_names)
    coded = None
    if (
        pairs.names is not None
        and pairs.record_name_code is not None
        and pairs.candidate_name_code is not None
    ):
        coded = (pairs.names, pairs.record_name_code, pairs.candidate_name_code)
        named = np.array([bool(n) for n in pairs.names], dtype=bool)
        has_names = named[pairs.record_name_code] & named[pairs.candidate_name_code]
    else:
        has_names = np.array(
            [bool(a) and bool(b) for a, b in zip(pairs.record_names, pairs.candidate_names, strict=True)],
            dtype=bool,
        )
    similarity = _name_similarity(pairs, coded) if count else np.zeros(0, dtype=np.float32)
    overlap, shared_bits = (
        rarity_weighted_overlap(pairs.record_names, pairs.candidate_names, coded, pairs.token_rarity)
        if count
        else (similarity, similarity)
    )
    is_exact = has_names & (similarity >= 1.0)
    is_strong = (overlap >= 0.7) | (similarity >= 0.95)
    name_level = np.select(
        [
            ~has_names,
            is_exact & (shared_bits >= RARE_FROM_BITS),
            is_exact,
            is_strong & (shared_bits >= RARE_FROM_BITS),
            is_strong & (shared_bits >= COMMON_BELOW_BITS),
            is_strong,
            overlap >= 0.45,
            (overlap >= 0.2) | (similarity >= SIMILAR_FROM),
        ],
        _levels(0, 8, 7, 6, 5, 4, 3, 2),
        default=np.int8(1),
    )

    relative = np.abs(pairs.amount_diff_minor) / np.maximum(np.abs(pairs.candidate_amount_minor), 1.0)
    amount_level = np.select(
        [
            np.isnan(relative),
            pairs.amount_diff_minor == 0,
            relative <= 0.005,
            relative <= 0.02,
            relative <= 0.05,
            relative <= 0.10,
        ],
        _levels(0, 6, 5, 4, 3, 2),
        default=np.int8(1),
    )

    lag = pairs.date_lag_days
    date_level = np.where(np.isnan(lag), 0, 1 + np.searchsorted(DATE_EDGES, np.nan_to_num(lag), side="right"))

    def agreement(flag: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(flag), 0, np.where(flag > 0, 2, 1))

    levels = {
        NAME.name: name_level.astype(np.int8),
        AMOUNT.name: amount_level.astype(np.int8),
        DATE.name: date_level.astype(np.int8),
        CURRENCY.name: agreement(pairs.is_currency_match).astype(np.int8),
        REFERENCE.name: agreement(pairs.is_reference_match).astype(np.int8),
        CONFIRMED.name: (
            np.zeros(count, dtype=np.int8)
            if pairs.is_confirmed_before is None
            else agreement(pairs.is_confirmed_before).astype(np.int8)
        ),
    }
    return PairLevels(levels, similarity, overlap, shared_bits)
