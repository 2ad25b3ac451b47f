"""One-to-one assignment: two charges never both auto-link to one invoice, unless they are
partial payments that together fit its balance; the stronger claim is served first."""

from __future__ import annotations

from ledgerlink.matching.assignment import Claim, assign


def claim(
    position: int, probability: float, amount: int, balance: int = 10_000, entry: str = "inv-1"
) -> Claim:
    return Claim(position, probability, "invoice", entry, amount, balance)


def test_two_full_payments_never_share_an_invoice_and_the_stronger_wins() -> None:
    refused = assign([claim(0, 0.90, 10_000), claim(1, 0.97, 10_000)], {})
    assert refused == {0: "invoice balance already claimed by another record"}


def test_partial_payments_that_fit_the_balance_both_link() -> None:
    assert assign([claim(0, 0.9, 4_000), claim(1, 0.95, 6_000)], {}) == {}
    # of three that do not fit together, the weakest claim is the one that waits for review
    assert set(assign([claim(0, 0.9, 4_000), claim(1, 0.95, 6_000), claim(2, 0.92, 3_000)], {})) == {0}


def test_fees_are_tolerated_and_earlier_auto_links_count() -> None:
    assert assign([claim(0, 0.9, 10_400)], {}) == {}  # within the tolerance for fees and FX
    assert set(assign([claim(0, 0.9, 6_000)], {"inv-1": 5_000})) == {0}
    assert set(assign([claim(0, 0.9, 100)], {"inv-1": None})) == {0}  # taken, amount unknown
    assert assign([claim(0, 0.9, 100, entry="inv-2")], {"inv-1": None}) == {}


def test_vendors_take_any_number_of_records() -> None:
    vendor_claims = [Claim(i, 0.9, "vendor", "v-1", 500, None) for i in range(3)]
    assert assign(vendor_claims, {}) == {}
