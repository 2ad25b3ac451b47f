"""A workspace with a handful of records: EM has next to nothing to learn from, so the shipped prior
carries the weights, and the workspace's own estimates take over as its records grow."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
from test_engine import generated_rows

from ledgerlink.matching.features import COMPARISONS, NAME
from ledgerlink.matching.model import PRIOR_ENTRIES, RandomPairShares
from ledgerlink.matching.prior import PRIORS, shipped_prior
from ledgerlink.matching.routing import route_for
from ledgerlink.matching.scorer import PairBatch, score_batch
from ledgerlink.workspaces import Workspace

# default thresholds: 0.85 to auto-link, 0.55 to review
WORKSPACE = Workspace(workspace_id="ws", display_name="W", email_in_address="w@qbodocs.com")

PAYMENTS = [
    ("sq-globex", "globex corporation", 9_900, date(2026, 10, 5)),
    ("sq-blue", "blue bottle coffee", 25_000, date(2026, 10, 5)),
    ("sq-initech", "initech", 8_000, date(2026, 9, 22)),
]
INVOICES = [
    ("2001", "globex corporation", 9_900, date(2026, 10, 1)),
    # near twins: same customer, same amount, a day apart
    ("1001", "blue bottle coffee", 25_000, date(2026, 10, 1)),
    ("1002", "blue bottle coffee", 25_000, date(2026, 10, 2)),
    ("1003", "initech", 8_000, date(2026, 9, 20)),
]


def _rows() -> list[tuple[Any, ...]]:
    rows = []
    for record_id, name, amount, on in PAYMENTS:
        for invoice_id, customer, balance, entry_on in INVOICES:
            rows.append(
                (
                    "ws", "square", record_id, f"sha-{record_id}", name, name, amount, "EUR", on, None,
                    "invoice", invoice_id, customer, customer, balance, "EUR", entry_on, None,
                    amount - balance, (on - entry_on).days, True, None, False,
                )
            )  # fmt: skip
    return rows


def test_three_records_at_default_thresholds_link_the_clear_match_and_review_the_twins() -> None:
    scored, models = score_batch(PairBatch.from_rows(_rows()), seed=1)
    by_id = {s.record.source_record_id: s for s in scored}
    globex, blue = by_id["sq-globex"], by_id["sq-blue"]
    assert globex.ranked[0].candidate_id == "2001" and globex.score >= 0.85
    assert route_for(globex, WORKSPACE) == "auto_link"
    assert route_for(by_id["sq-initech"], WORKSPACE) == "auto_link"
    # the twins split the probability: neither is sure enough to link, together they are worth a review
    assert {c.candidate_id for c in blue.ranked[:2]} == {"1001", "1002"}
    assert route_for(blue, WORKSPACE) == "review"
    # three records against the prior's ten: the prior still carries most of m
    assert models.by_candidate_type["invoice"].trained["prior_share_of_m"] > 0.75


def test_the_workspace_takes_over_from_the_prior_as_records_grow() -> None:
    rows, _ = generated_rows(seed=11, records=600)
    model = score_batch(PairBatch.from_rows(rows), seed=1)[1].by_candidate_type["invoice"]
    prior = shipped_prior("invoice")
    assert model.trained["prior_share_of_m"] < 0.07
    # the generator here never leaves an amount off by 10% or more for a true pair: the learned m
    # of that level falls well below the prior's
    assert model.m["amount"][1] < 0.5 * prior.m["amount"][1]
    # u comes mostly from the workspace: 600 records against the prior's weight in entries
    assert PRIOR_ENTRIES / (600 + PRIOR_ENTRIES) < 0.1
    assert not np.allclose(model.u["name"], prior.u["name"], atol=1e-3)


def test_the_shipped_prior_covers_every_comparison_level() -> None:
    for kind in PRIORS:
        prior = shipped_prior(kind)
        for comparison in COMPARISONS:
            assert len(prior.m[comparison.name]) == len(comparison.levels)
            assert (
                sum(prior.u[comparison.name]) == np.float64(1.0)
                or abs(sum(prior.u[comparison.name]) - 1) < 1e-9
            )
        bits = prior.level_bits()
        assert bits["name"][-1] > 8 and bits["amount"][-1] > 6 and bits["name"][1] < -5


def test_random_pairs_lose_the_true_pairs_they_hold_in_a_small_ledger() -> None:
    # ten vendors: a tenth of random pairs are a record with its own vendor, mostly exact names
    prior = shipped_prior("vendor")
    m = {c.name: np.full(len(c.levels), 1.0 / len(c.levels)) for c in COMPARISONS}
    u_true = {c.name: np.full(len(c.levels), 1.0 / len(c.levels)) for c in COMPARISONS}
    m["name"] = np.zeros(len(NAME.levels))
    m["name"][-1] = 1.0  # every true pair has an exact rare name
    u_true["name"] = np.zeros(len(NAME.levels))
    u_true["name"][1], u_true["name"][-1] = 0.99, 0.01
    rho = 0.1  # no records without a vendor, ten vendors
    shares = RandomPairShares({name: rho * m[name] + (1 - rho) * u_true[name] for name in m}, weight=1.0)
    u = shares.u(m, no_match_odds=0.0, ledger_entries=10, prior=prior)
    assert u["name"][-1] == pytest.approx(0.01, abs=1e-9)  # not the 0.109 random pairs show
    assert u["name"][1] == pytest.approx(0.99, abs=1e-9)
    # with a large ledger the correction vanishes: 1 pair in 20,000 is a true one
    big = shares.u(m, no_match_odds=0.0, ledger_entries=20_000, prior=prior)
    assert big["name"][-1] == pytest.approx(shares.shares["name"][-1], rel=1e-3)
