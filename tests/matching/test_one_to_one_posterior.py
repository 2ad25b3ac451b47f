"""The one-to-one constraint inside the posterior: an open invoice pays one record in full, so a
record's claim on it is weighed against the other records' full claims on it. A runner-up that
another record surely takes then no longer splits the probability of a record's top candidate,
while partial payments that together fit an invoice's balance are both left likely."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ledgerlink.matching.model import CandidateSets, EntryBalance, posterior
from ledgerlink.matching.prior import shipped_prior

LEDGER_ENTRIES = 1_000


def _posterior(
    records: list[int], entries: list[int], weights: list[float], amounts: list[float], balances: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    model = replace(shipped_prior("invoice"), ledger_entries=LEDGER_ENTRIES)
    sets = CandidateSets.from_record_index(
        np.array(records), np.array(entries), np.array(amounts, dtype=float), np.array(balances, dtype=float)
    )
    return posterior(model, sets, np.array(weights, dtype=float))


def test_a_runner_up_another_record_surely_takes_no_longer_splits_the_top_candidate() -> None:
    # record 0: its own invoice (entry 0) and, half a bit behind, entry 1, which record 1 pays
    # exactly (its only candidate, 8 bits stronger); every payment is the whole invoice
    probability, adjusted = _posterior(
        records=[0, 0, 1],
        entries=[0, 1, 1],
        weights=[14.0, 13.5, 22.0],
        amounts=[100.0] * 3,
        balances=[100.0] * 3,
    )
    # entry 1 can pay only one of them: record 1's claim stands, record 0's all but goes
    assert probability[0] > 0.95
    assert probability[1] < 0.01
    assert probability[2] > 0.99
    # so record 0's top candidate now leads its runner-up by far more than the half bit the pair
    # weights give it (the runner-up gate of routing reads this lead)
    assert adjusted[0] - adjusted[1] > 8.0


def test_two_full_payments_cannot_both_be_likely_matches_of_one_invoice() -> None:
    probability, _ = _posterior(
        records=[0, 1], entries=[0, 0], weights=[16.0, 16.0], amounts=[100.0, 100.0], balances=[100.0, 100.0]
    )
    assert probability[0] == probability[1]
    assert probability.sum() < 1.05


def test_partial_payments_that_fit_the_balance_are_both_likely() -> None:
    probability, _ = _posterior(
        records=[0, 1], entries=[0, 0], weights=[16.0, 16.0], amounts=[50.0, 50.0], balances=[100.0, 100.0]
    )
    assert probability.min() > 0.95


def test_an_invoices_strongest_claim_is_not_weighed_against_its_own_odds_as_summed() -> None:
    # record 0 alone claims entry 0 in full; the entry's claims were summed a round ago, when
    # record 0's odds on it were 5,000 (they are not quite that now): nothing but its own claim
    # is on the entry, so nothing should take from it
    model = replace(shipped_prior("invoice"), ledger_entries=LEDGER_ENTRIES)
    sets = CandidateSets.from_record_index(
        np.array([0, 0]), np.array([0, 1]), np.array([100.0, 100.0]), np.array([100.0, 500.0])
    )
    weights = np.array([22.0, 5.0])
    alone, _ = posterior(model, sets, weights, scale=EntryBalance.none(2))
    summed = EntryBalance(
        np.zeros(2),
        np.array([5_000.0, 0.0]),
        np.array([[5_000.0, 0.0], [0.0, 0.0]]),
        np.array([[0, -1], [-1, -1]]),
    )
    balanced, adjusted = posterior(model, sets, weights, scale=summed)
    assert balanced[0] == alone[0]
    assert adjusted[0] == 22.0
    # another record's claim of the same size (record 1's), summed alongside, does count against it
    shared = EntryBalance(
        np.zeros(2),
        np.array([10_000.0, 0.0]),
        np.array([[5_000.0, 5_000.0], [0.0, 0.0]]),
        np.array([[1, 0], [-1, -1]]),
    )
    contested, contested_adjusted = posterior(model, sets, weights, scale=shared)
    assert contested[0] < alone[0]
    assert contested_adjusted[0] == pytest.approx(22.0 - np.log2(1.0 + 5_000.0))
