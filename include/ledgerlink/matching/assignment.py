"""One-to-one assignment of auto-links: within a window, two charges never land on one open
invoice, unless they are partial payments that together fit its balance.

The strongest claims are served first. A claim that no longer fits what is left of the invoice's
balance is not auto-linked: the record goes to review with its candidates kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledgerlink.matching.model import BALANCE_TOLERANCE


@dataclass(frozen=True, slots=True)
class Claim:
    """A record that would auto-link to a ledger entry. (Slots: a run holds one per auto-link of
    its whole history at once.)"""

    position: int  # the record's position in the caller's list
    probability: float
    candidate_type: str
    candidate_id: str
    amount_minor: int | None  # what the record pays
    balance_minor: int | None  # the entry's open balance when scored; None: no balance (vendors)


def assign(claims: Sequence[Claim], already_claimed_minor: Mapping[str, int | None]) -> dict[int, str]:
    """Serve ``claims`` strongest first; return, for each claim refused, why. Invoices are the only
    entries with a balance to respect. ``already_claimed_minor`` is what earlier links took from
    each invoice, auto-links and reviewers' accepts and pins alike (None: all of it)."""
    claimed: dict[str, int | None] = dict(already_claimed_minor)
    refused: dict[int, str] = {}
    for claim in sorted(claims, key=lambda c: (-c.probability, c.position)):
        if claim.candidate_type != "invoice":
            continue
        taken = claimed.get(claim.candidate_id, 0)
        if claim.balance_minor is None or claim.amount_minor is None:
            if claim.candidate_id in claimed:
                refused[claim.position] = "invoice already claimed by another record"
            else:
                claimed[claim.candidate_id] = None
            continue
        left = None if taken is None else claim.balance_minor - taken
        if left is None or left <= 0 or claim.amount_minor > left * (1 + BALANCE_TOLERANCE):
            refused[claim.position] = "invoice balance already claimed by another record"
            continue
        claimed[claim.candidate_id] = (taken or 0) + claim.amount_minor
    return refused
