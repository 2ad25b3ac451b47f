"""The coded, filtered name comparison gives exactly the levels of the plain one: rapidfuzz is
skipped only where character counts prove the similarity cannot reach any level."""

from __future__ import annotations

import random

import numpy as np
from rapidfuzz import fuzz

from ledgerlink.matching.features import SIMILAR_FROM, PairColumns, compare

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
