"""Past confirmed links as evidence: a reviewer who pinned an entry for a counterparty makes that
entry the strong favourite the next time the same name pays, and a record's own verdict never
counts as evidence for itself."""

from __future__ import annotations

from datetime import date, timedelta

from test_engine import _row, generated_rows

from ledgerlink.matching.routing import MIN_LEAD_BITS
from ledgerlink.matching.scorer import PairBatch, confirmed_links, prepare, score_batch

ON = date(2026, 3, 2)


def _batch() -> PairBatch:
    rows, _ = generated_rows(seed=8, records=300)
    # two charges from one customer, months apart, each against the same two look-alike invoices
    twins = [
        {"id": "inv-tw-a", "name": "zorglub traders", "amount": 12_000, "on": ON},
        {"id": "inv-tw-b", "name": "zorglub traders", "amount": 12_000, "on": ON},
    ]
    for record_id in ("pay-tw-1", "pay-tw-2"):
        payment = {
            "id": record_id,
            "name": "zorglub traders",
            "amount": 12_000,
            "on": ON + timedelta(days=2),
        }
        rows += [_row(payment, entry) for entry in twins]
    return PairBatch.from_rows(sorted(rows, key=lambda r: (r[2], r[11])))


def test_a_pinned_entry_is_strong_evidence_for_the_next_record_of_the_same_name() -> None:
    batch = _batch()
    before = {s.record.source_record_id: s for s in score_batch(batch, seed=1)[0]}
    assert before["pay-tw-2"].lead_bits is not None and before["pay-tw-2"].lead_bits < MIN_LEAD_BITS
    verdicts = {("square", "pay-tw-1"): "inv-tw-b"}
    after = {s.record.source_record_id: s for s in score_batch(batch, verdicts, seed=1)[0]}
    second = after["pay-tw-2"]
    assert second.ranked[0].candidate_id == "inv-tw-b"
    assert second.lead_bits is not None and second.lead_bits >= MIN_LEAD_BITS
    assert second.explanation["levels"]["confirmed_before"] == "this_entry"
    assert second.explanation["contributions"]["confirmed_before"] > 3
    # the pinned record itself learns from its label, not from its own link
    assert after["pay-tw-1"].explanation["levels"]["confirmed_before"] == "missing"


def test_no_verdicts_means_no_evidence_either_way() -> None:
    batch = _batch()
    assert confirmed_links(batch, {}) == {}
    levels = prepare(batch).levels.levels["confirmed_before"]
    assert int(levels.max()) == 0
