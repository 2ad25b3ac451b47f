"""The coded, filtered name comparison gives exactly the levels of the plain one: rapidfuzz is
skipped only where character counts prove the similarity cannot reach any level."""

from __future__ import annotations

import random

import numpy as np
from rapidfuzz import fuzz

from ledgerlink.matching.features import (
    SIMILAR_FROM,
    PairColumns,
    TokenRarity,
    compare,
    rarity_weighted_overlap,
)

WORDS = ["dupont", "dupond", "martin", "bernard", "zoë", "sa", "ltd", "j", "m", "kemml", "kemmler", "acme"]


def test_coded_names_give_the_same_levels_and_the_exact_similarity_where_it_matters() -> None:
    rng = random.Random(4)
    names: list[str | None] = [None, ""]
    names += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    left = np.array([rng.randrange(len(names)) for _ in range(20_000)])
    right = np.array([rng.randrange(len(names)) for _ in range(20_000)])
    nan = np.full(len(left), np.nan)
    record_names, candidate_names = [names[i] for i in left], [names[i] for i in right]
    plain = compare(PairColumns(record_names, candidate_names, nan, nan, nan, nan, nan))
    coded = compare(PairColumns(record_names, candidate_names, nan, nan, nan, nan, nan, names, left, right))
    for name, levels in plain.levels.items():
        assert np.array_equal(levels, coded.levels[name]), name
    exact = np.array(
        [
            fuzz.token_sort_ratio(a or "", b or "") / 100
            for a, b in zip(record_names, candidate_names, strict=True)
        ]
    )
    similar = exact >= SIMILAR_FROM
    assert similar.sum() > 500 and (~similar).sum() > 500
    assert np.allclose(coded.name_similarity[similar], exact[similar], atol=1e-4)
    assert np.all(coded.name_similarity[~similar] == 0)


def test_token_overlap_equals_the_pair_by_pair_dice_overlap_of_rarity_weights() -> None:
    """Pairs whose token masks do not meet are left at 0 without comparing their tokens: with a
    vocabulary of more tokens than mask bits, the overlap and the record's shared bits are still
    those of comparing every pair's tokens one by one."""
    rng = random.Random(11)
    words = [f"{rng.choice('bcdfgklmprst')}{rng.choice('aeiou')}{index:03d}x" for index in range(150)]
    names: list[str | None] = [
        None,
        "",
        *(" ".join(rng.sample(words, rng.randint(1, 5))) for _ in range(400)),
    ]
    rarity = TokenRarity(names)
    assert len(rarity.vocabulary) > 64
    left = [rng.randrange(len(names)) for _ in range(20_000)]
    right = [rng.randrange(len(names)) for _ in range(20_000)]
    overlap, shared_bits = rarity_weighted_overlap(
        [names[i] for i in left], [names[i] for i in right], rarity=rarity
    )
    expected_overlap, expected_bits = [], []
    for a, b in zip(left, right, strict=True):
        tokens_a, tokens_b = rarity.weights(names[a]), rarity.weights(names[b])
        ids_a, ids_b = {token for token, _ in tokens_a}, {token for token, _ in tokens_b}
        shared_a = sum(weight for token, weight in tokens_a if token in ids_b)
        shared_b = sum(weight for token, weight in tokens_b if token in ids_a)
        total = sum(weight for _, weight in tokens_a) + sum(weight for _, weight in tokens_b)
        expected_overlap.append((shared_a + shared_b) / max(total, 1e-9))
        expected_bits.append(shared_a)
    expected = np.array(expected_overlap)
    assert (expected > 0).sum() > 500 and (expected == 0).sum() > 500
    assert np.allclose(overlap, expected, atol=1e-5)
    assert np.allclose(shared_bits, np.array(expected_bits), atol=1e-3)
    assert np.all(overlap[expected == 0] == 0)
