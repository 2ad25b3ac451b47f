"""The record-level look-alike term: ``u`` of a name level is an average over records, but a rare
name has almost no look-alikes among the ledger's entries and a name with a common word has many.
The same candidate (same name level, amount and lag) must therefore be likelier the right one
for the rare name, while the order of each record's candidates stays as the pair weights have it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_engine import generated_rows

from ledgerlink.matching.features import COMPARISONS, PairLevels
from ledgerlink.matching.model import CandidateSets, look_alike_bits, posterior
from ledgerlink.matching.prior import shipped_prior
from ledgerlink.matching.scorer import BALANCE, LOOK_ALIKES, PairBatch, score_batch

LEDGER_ENTRIES = 2_000
LOOK_ALIKES_OF_THE_COMMON_NAME = 60


def _level(comparison_levels: tuple[str, ...], name: str) -> int:
    return comparison_levels.index(name)


def _pairs(look_alikes: int) -> list[dict[str, str]]:
    """One record's candidates: the partial-name candidate with a close amount and a lag of a day
    or two, a decoy with a different name and the exact amount, and ``look_alikes`` entries whose
    names agree as partly but whose amounts and dates are far off."""
    candidate = {"name": "partial", "amount": "within_5pct", "date_lag": "lag_1_2"}
    decoy = {"name": "different", "amount": "exact", "date_lag": "lag_21_44"}
    look_alike = {"name": "partial", "amount": "over_10pct", "date_lag": "lag_45_89"}
    return [candidate, decoy, *([look_alike] * look_alikes)]


def _levels(pairs: list[dict[str, str]]) -> PairLevels:
    levels = {}
    for comparison in COMPARISONS:
        chosen = [pair.get(comparison.name) for pair in pairs]
        levels[comparison.name] = np.array(
            [_level(comparison.levels, level) if level else 0 for level in chosen], dtype=np.int8
        )
    ones = np.ones(len(pairs), dtype=np.float32)
    # the shared token is selective: blocking keyed on it, so the candidates show its look-alikes
    return PairLevels(levels, 0.5 * ones, 0.5 * ones, 14.0 * ones)


def test_a_rare_name_is_surer_of_the_same_partial_candidate_than_a_common_one() -> None:
    # a ledger where an average name has about 20 partial look-alikes (u * N)
    model = replace(shipped_prior("invoice"), ledger_entries=LEDGER_ENTRIES)
    rare, common = _pairs(0), _pairs(LOOK_ALIKES_OF_THE_COMMON_NAME)
    pairs = [*rare, *common]
    record_index = np.array([0] * len(rare) + [1] * len(common))
    nan = np.full(len(pairs), np.nan)
    sets = CandidateSets.from_record_index(record_index, np.arange(len(pairs)), nan, nan)
    levels = _levels(pairs)
    weights = model.match_weight(levels)
    the_candidate = {0: 0, 1: len(rare)}  # each record's partial-name candidate

    record_bits = look_alike_bits(model, levels, sets, weights)
    with_term, adjusted = posterior(model, sets, weights, record_bits=record_bits)
    without_term, _ = posterior(model, sets, weights)

    # without the term both records are equally sure: the look-alikes are far off in amount and date
    assert without_term[the_candidate[0]] == pytest.approx(without_term[the_candidate[1]], abs=0.01)
    # with it, the rare name's candidate is likelier right, the common name's less
    assert record_bits[0] > 0 > record_bits[1]
    assert with_term[the_candidate[0]] > without_term[the_candidate[0]] + 0.05
    assert with_term[the_candidate[1]] < without_term[the_candidate[1]] - 0.05
    # the order of each record's candidates, and the lead over the runner-up, are the pair weights'
    for record in (0, 1):
        mine = np.flatnonzero(record_index == record)
        assert list(np.argsort(-with_term[mine], kind="stable")) == list(
            np.argsort(-weights[mine], kind="stable")
        )
        assert np.allclose(np.diff(adjusted[mine]), np.diff(weights[mine]))


def test_a_name_without_agreement_gets_no_look_alike_term() -> None:
    model = shipped_prior("invoice")
    pairs = [{"name": "different", "amount": "exact", "date_lag": "lag_1_2"}] * 3
    sets = CandidateSets.from_record_index(
        np.zeros(3, dtype=int), np.arange(3), np.full(3, np.nan), np.full(3, np.nan)
    )
    levels = _levels(pairs)
    assert look_alike_bits(model, levels, sets, model.match_weight(levels)).tolist() == [0.0]


def test_every_explanation_adds_up_to_the_match_weight_it_shows() -> None:
    rows, _ = generated_rows(seed=13, records=300)
    scored, _ = score_batch(PairBatch.from_rows(rows), seed=1)
    explained = [s.explanation for s in scored if s.ranked]
    assert {LOOK_ALIKES, BALANCE} <= set(explained[0]["contributions"])
    for explanation in explained:
        assert sum(explanation["contributions"].values()) == pytest.approx(
            explanation["match_weight"], abs=0.01
        )
    assert any(e["contributions"][LOOK_ALIKES] != 0 for e in explained)
