"""Routing: train the workspace's match model, score its undecided records, turn the scores into
decisions in ``ops.routing_decisions`` and, for each auto-link, an outbox row in the same
transaction, so a decision and its delivery never part.

A record auto-links only when four things hold: the probability that its top candidate is right
reaches the workspace's auto-link threshold, the top candidate leads the runner-up by at least
:data:`MIN_LEAD_BITS`, neither a refund in full nor the workspace's policy holds it back, and the
one-to-one assignment gives it the entry. Otherwise it waits in
review (at or above the review threshold, or when a gate held it back) or is refused.

**Chunks.** A workspace's history can hold millions of candidate pairs, so the records are read,
compared, scored and written a chunk of whole records at a time (in record key order), and memory
follows the chunk and the training sample, not the history. A run's decisions are the same
whatever the chunk size, because whatever ties records together is worked out over all of them
first:

- the models are trained once, on a seeded sample (:func:`training_sample`), before any chunk;
- token rarity and reviewers' links, which the name comparison uses, are counted over every
  record and entry of the run;
- the balancing of invoices' claims (:func:`~ledgerlink.matching.model.balanced_scale`) sums
  every chunk's claims before any record is scored;
- the one-to-one assignment sees every chunk's auto-links at once: it serves the most probable
  claim first, and between equal ones the record first in key order, so a chunk never takes an
  invoice from a stronger claim in a later chunk. Only then are the decisions written.

Between these passes each chunk's comparisons and routed records wait in a temporary folder,
or in memory when the run holds no more records than the training sample (:class:`_Spill`).
The whole run is one transaction, as before.

**Statistics.** Later chunks look up what earlier ones wrote, in tables the run's own
transaction is filling, so the run analyses them itself as they grow
(:class:`_WrittenTableStatistics`): without it, a first sync of 100,000 payments spent minutes on
each chunk from the tenth of 23 on.
"""

from __future__ import annotations

import copyreg
import gc
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.delivery.outbox import DeliveredRecord, DocumentRequest, MatchedEntry, enqueue_documents
from ledgerlink.matching.assignment import Claim, assign
from ledgerlink.matching.batch import LedgerEntry, SourceRecord, StagedPairs
from ledgerlink.matching.features import TokenRarity
from ledgerlink.matching.model import BalancedBatch, balanced_scale
from ledgerlink.matching.scorer import (
    PAIR_COLUMNS,
    ConfirmedLinks,
    ScoredCandidate,
    ScoredRecord,
    TrainedModels,
    balancing_batches,
    confirmed_links,
    labels_for,
    prepare,
    score,
    train,
)
from ledgerlink.workspaces import Workspace, load_workspace

#: Two candidates whose match weights differ by less than this are too close to call without a
#: person, whatever the probability says (2^3: the top one is 8 times as likely).
MIN_LEAD_BITS = 3.0
#: A reviewer sees this many candidates first: when they are likely together, the record is worth
#: a review even if no single one is.
REVIEW_CANDIDATES = 3
#: Candidates this close in match weight are twins: their comparison levels are the same, nothing
#: in the data tells them apart. (Within 1 bit on bank-to-ledger, the records this sends to review
#: have their true entry in the top three only a third of the time; equal weights do not.)
TWIN_BITS = 0.05
#: EM samples records with this seed, so a rerun over the same data trains the same model.
TRAINING_SEED = 20_240_601
#: The most records the models are trained on: every labelled record, then others drawn with the
#: seed. A workspace with no more records than this trains on all of them, so its models are
#: what training on one batch of everything gives. (About 100 candidate pairs a record, at about
#: 180 bytes a pair while compared, make this the largest part of scoring's memory.)
TRAINING_RECORDS = 25_000
#: Records compared, scored and routed at a time: scoring's memory follows this and the training
#: sample, not the workspace's history.
CHUNK_RECORDS = 5_000
#: The steps of scoring and routing a workspace: stage the pairs and read each chunk, train the
#: models on a sample, compare each chunk, balance the invoices' claims over all chunks, score and
#: route each chunk, write each chunk's decisions, queue its auto-links' documents. ``timings``
#: gets ``<step>_seconds`` for each, added up over the chunks, and ``<step>_chunks`` as they go.
ROUTING_STEPS = ("read", "train", "compare", "balance", "score", "decide", "queue")

# Undecided records (new, or changed since their decision) to route, and records a reviewer
# labelled, to learn from. The records are found first, from the unioned records (one row each;
# match_features holds one per candidate, about a hundred per record at 100k records), and their
# pairs are then read through match_features' record index: a window reads its own records'
# pairs, where reading every pair of the history took 7 s at 100k records (70 at 1M). The final
# filter is the pairs' own: match_features is built from the unioned records in the same dbt run.
_PAIRS = f"""
    with labelled_records as (
        select source, source_record_id from ops.review_actions where workspace_id = %(workspace_id)s
    ),

    records as materialized (
        select r.source, r.source_record_id
        from intermediate.int_source_records_unioned as r
        where r.workspace_id = %(workspace_id)s
            and not exists (
                select from ops.routing_decisions as d
                where d.workspace_id = r.workspace_id
                    and d.source = r.source
                    and d.source_record_id = r.source_record_id
                    and d.source_payload_sha256 = r.source_payload_sha256)
        union
        select source, source_record_id from labelled_records
    )

    select {", ".join(f"f.{name}" for name in PAIR_COLUMNS)}
    from records
    inner join marts.match_features as f
        on f.workspace_id = %(workspace_id)s
        and f.source = records.source
        and f.source_record_id = records.source_record_id
    left join ops.routing_decisions as d
        on d.workspace_id = f.workspace_id
        and d.source = f.source
        and d.source_record_id = f.source_record_id
        and d.source_payload_sha256 = f.source_payload_sha256
    where d.decision_id is null or (f.source, f.source_record_id) in (select * from labelled_records)
"""  # noqa: S608 - fixed column names
# Staged records (``r``) decided before for the same content: labelled, so read to learn from.
_IS_DECIDED = """
    exists (select from ops.routing_decisions as d
            where d.workspace_id = %(workspace_id)s and d.source = r.source
                and d.source_record_id = r.source_record_id
                and d.source_payload_sha256 = r.source_payload_sha256)
"""
# Staged records (``r``) a reviewer gave a verdict on.
_IS_LABELLED = """
    exists (select from ops.review_actions as a
            where a.workspace_id = %(workspace_id)s and a.source = r.source
                and a.source_record_id = r.source_record_id)
"""

# A reviewer's latest word on a record: accept and pin name the right entry, refuse says none is.
_VERDICTS = """
    select distinct on (source, source_record_id) source, source_record_id, action, candidate_id
    from ops.review_actions
    where workspace_id = %s
    order by source, source_record_id, acted_at desc, action_id desc
"""

# What earlier auto-links already took from each open invoice.
# Invoices already linked: by an auto-link, or by a reviewer's accept or pin of the record's
# current content (which moved the decision's top candidate to the reviewer's entry, leaving its
# route at review). A reviewer's link takes the whole invoice: the claimed amount was worked out
# for the scorer's candidate, which the reviewer may have replaced.
_CLAIMED = """
    select d.top_candidate_id, sum((d.explanation ->> 'claimed_amount_minor')::bigint),
           bool_and(d.route = 'auto_link' and d.explanation ? 'claimed_amount_minor')
    from ops.routing_decisions as d
    where d.workspace_id = %s and d.top_candidate_type = 'invoice'
        and (d.route = 'auto_link' or exists (
            select from ops.review_actions as a
            where a.decision_id = d.decision_id and a.source_payload_sha256 = d.source_payload_sha256
                and a.action in ('accept', 'pin')))
    group by d.top_candidate_id
"""


@dataclass(frozen=True)
class RoutedRecord:
    scored: ScoredRecord
    route: str


def route_for(scored: ScoredRecord, workspace: Workspace) -> str:
    """The route a score earns at the workspace's thresholds, before the one-to-one assignment."""
    probability = Decimal(str(round(scored.score, 4)))
    if probability >= workspace.auto_link_threshold:
        if scored.lead_bits is not None and scored.lead_bits < MIN_LEAD_BITS:
            scored.explanation["held_back"] = f"runner-up within {MIN_LEAD_BITS:g} bits of the top candidate"
            return "review"
        if scored.record.is_fully_refunded:
            refunded = "the charge was refunded in full: a person decides whether to book it"
            scored.explanation["held_back"] = refunded
            scored.explanation["refunded"] = refunded
            return "review"
        if reason := policy_hold(scored, workspace):
            scored.explanation["held_back"] = reason
            scored.explanation["policy"] = reason
            return "review"
        return "auto_link"
    if probability >= workspace.review_threshold:
        return "review"
    # near twins split the probability between them: neither reaches the review threshold, yet a
    # person can tell which is right
    twins = [
        c
        for c in scored.ranked[:REVIEW_CANDIDATES]
        if scored.ranked[0].match_weight - c.match_weight < TWIN_BITS
    ]
    shared = Decimal(str(round(sum(c.score for c in twins), 4)))
    if len(twins) > 1 and shared >= workspace.review_threshold:
        scored.explanation["review_reason"] = (
            f"{len(twins)} near-equal candidates share a probability of {shared}"
        )
        return "review"
    return "refused"


def policy_hold(scored: ScoredRecord, workspace: Workspace) -> str | None:
    """Why the workspace's policy keeps this record from auto-linking, or None when it does not."""
    amount = scored.record.amount_minor
    limit = workspace.max_auto_link_amount_minor
    if limit is not None and amount is not None and abs(amount) > limit:
        return f"amount {amount} is above the workspace's auto-link maximum of {limit} (minor units)"
    listed = {name.strip().casefold() for name in workspace.never_auto_link_vendors}
    top = scored.ranked[0] if scored.ranked else None
    names = [scored.record.counterparty_name, *((top.candidate_id, top.candidate_name) if top else ())]
    for name in names:
        if name and name.strip().casefold() in listed:
            return f"{name} is on the workspace's never-auto-link list"
    return None


def route_workspace(
    conn: psycopg.Connection,
    workspace_id: str,
    run_id: str,
    decided_at: datetime,
    timings: dict[str, float] | None = None,
    chunk_records: int = CHUNK_RECORDS,
    training_records: int = TRAINING_RECORDS,
    seed: int = TRAINING_SEED,
) -> dict[str, int]:
    """Score and route every record of the workspace not yet decided for its current content,
    ``chunk_records`` records at a time, in one transaction: rerunning over the same input changes
    nothing. The decisions do not depend on ``chunk_records`` (see the module's notes on chunks).
    Returns counts by route; ``timings``, when given, receives where the time went and, as it
    goes, how many chunks each step has done (:func:`routing_progress` tells it)."""
    if chunk_records < 1 or training_records < 1:
        raise ValueError(
            f"chunk_records and training_records must be at least 1: {chunk_records}, {training_records}"
        )
    workspace = load_workspace(conn, workspace_id)
    clock = _Clock(timings)
    counts = {"auto_link": 0, "review": 0, "refused": 0}
    with (
        _cycle_collector_paused(),
        conn.transaction(),
        StagedPairs(conn, _PAIRS, {"workspace_id": workspace_id}) as pairs,
        tempfile.TemporaryDirectory(prefix="ledgerlink-scoring-") as folder,
    ):
        spill = _Spill(
            None if _keeps_chunks_in_memory(pairs.record_count, training_records) else Path(folder)
        )
        chunks = [
            (first, min(first + chunk_records, pairs.record_count))
            for first in range(0, pairs.record_count, chunk_records)
        ]
        clock.note(chunks=len(chunks), records=pairs.record_count, pairs=pairs.pair_count)
        clock.lap("read")
        models, links, rarity = _train(conn, workspace_id, pairs, seed, training_records)
        _save_models(conn, workspace_id, models, run_id, decided_at)
        clock.lap("train")

        # 1. compare each chunk once; keep it, and what the balancing needs, on disk
        for index, (first, stop) in enumerate(chunks):
            batch = pairs.batch(first, stop)
            clock.lap("read")
            prepared = prepare(batch, links, rarity)
            spill.dump("prepared", index, prepared)
            spill.dump("balancing", index, balancing_batches(prepared, models))
            del batch, prepared
            clock.lap("compare", chunk=True)

        # 2. balance invoices' claims over every chunk's records, as over one batch
        def balancing() -> Iterator[BalancedBatch]:
            for index in range(len(chunks)):
                yield from spill.load("balancing", index)

        scale = balanced_scale(balancing, pairs.entry_count)
        for index in range(len(chunks)):
            spill.discard("balancing", index)
        clock.lap("balance", chunk=True)

        # 3. score and route each chunk; keep only the auto-links' claims for the assignment
        decided = np.zeros(pairs.record_count, dtype=bool)
        decided[pairs.positions_where(_IS_DECIDED, {"workspace_id": workspace_id})] = True
        claims: list[Claim] = []
        routed_before = 0
        for index, (first, stop) in enumerate(chunks):
            prepared = spill.load("prepared", index)
            entry_scale = scale.at(prepared.batch.entry_positions)
            routed = [
                RoutedRecord(scored, route_for(scored, workspace))
                for scored, is_decided in zip(
                    score(prepared, models, entry_scale), decided[first:stop], strict=True
                )
                if not is_decided
            ]
            claims.extend(_claims(routed, routed_before))
            routed_before += len(routed)
            spill.dump("routed", index, routed)
            spill.discard("prepared", index)
            del prepared, routed
            clock.lap("score", chunk=True)

        # 4. one-to-one over all of them, then write and queue each chunk's decisions
        refused = assign(claims, claimed_invoices(conn, workspace_id))
        del claims
        routed_before = 0
        statistics = _WrittenTableStatistics(conn)
        for index in range(len(chunks)):
            routed = _assigned(spill.load("routed", index), refused, routed_before)
            spill.discard("routed", index)
            routed_before += len(routed)
            decision_ids = _write_decisions(conn, workspace, routed, models.version, run_id, decided_at)
            statistics.wrote(len(routed))
            clock.lap("decide", chunk=True)
            _queue_auto_links(conn, workspace, routed, decision_ids, decided_at)
            clock.lap("queue", chunk=True)
            for record in routed:
                counts[record.route] += 1
    if timings is not None:
        compare_and_score = timings.get("compare_seconds", 0.0) + timings.get("score_seconds", 0.0)
        timings["pairs_per_second"] = round(pairs.pair_count / max(compare_and_score, 1e-9))
    return counts


def _train(
    conn: psycopg.Connection, workspace_id: str, pairs: StagedPairs, seed: int, training_records: int
) -> tuple[TrainedModels, ConfirmedLinks, TokenRarity]:
    """Train on every labelled record and a seeded sample of the others, up to
    ``training_records``; the workspace's reviewer links and token rarity, which every chunk is
    compared with, come along."""
    verdicts = {
        (source, record_id): (candidate_id if action in ("accept", "pin") else None)
        for source, record_id, action, candidate_id in conn.execute(_VERDICTS, (workspace_id,))
    }
    rarity = TokenRarity(pairs.names())
    labelled = pairs.positions_where(_IS_LABELLED, {"workspace_id": workspace_id})
    batch = pairs.batch_of(training_sample(pairs.record_count, labelled, seed, training_records))
    # every labelled record is in the sample: its links are the workspace's
    links = confirmed_links(batch, verdicts)
    prepared = prepare(batch, links, rarity)
    models = train(prepared, labels_for(prepared, verdicts), seed, pairs.entries_by_type())
    return models, links, rarity


def training_sample(records: int, labelled: np.ndarray, seed: int, cap: int) -> np.ndarray:
    """The positions, ascending, of the records to train on: all of them when there are no more
    than ``cap``; otherwise every ``labelled`` one and, drawn with ``seed``, as many others as
    the cap leaves room for."""
    if records <= cap:
        return np.arange(records)
    unlabelled = np.setdiff1d(np.arange(records), labelled)
    take = min(max(cap - len(labelled), 0), len(unlabelled))
    drawn = np.random.default_rng(seed).choice(unlabelled, take, replace=False)
    return np.sort(np.r_[labelled, drawn]).astype(np.int64)


def routing_progress(timings: Mapping[str, float]) -> str:
    """Where a :func:`route_workspace` run stands, from the ``timings`` it fills as it goes:
    the steps behind it, and how many chunks the current one has done."""
    chunks = int(timings.get("chunks", 0))
    done = []
    for step in ROUTING_STEPS:
        if f"{step}_seconds" not in timings:
            continue
        step_chunks = int(timings.get(f"{step}_chunks", chunks))
        done.append(
            step if step_chunks >= chunks or step == "balance" else f"{step} {step_chunks}/{chunks} chunks"
        )
    records = f"{int(timings['records']):,} records in {chunks} chunks; " if "records" in timings else ""
    return f"{records}steps done: {', '.join(done) or 'none yet'} (of {', '.join(ROUTING_STEPS)})"


class _Clock:
    """Adds the seconds since the last lap to ``<step>_seconds``, one of :data:`ROUTING_STEPS`
    (steps recur once per chunk), and counts the chunks each step has done."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def note(self, **figures: int) -> None:
        if self.timings is not None:
            self.timings.update(figures)

    def lap(self, step: str, chunk: bool = False) -> None:
        assert step in ROUTING_STEPS, step
        now = time.perf_counter()
        if self.timings is not None:
            key = f"{step}_seconds"
            self.timings[key] = round(self.timings.get(key, 0.0) + now - self.last, 3)
            if chunk:
                self.timings[f"{step}_chunks"] = self.timings.get(f"{step}_chunks", 0) + 1
        self.last = now


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for the run, then as it was. The run builds and unpickles
    hundreds of thousands of small objects a chunk (records, entries, scored candidates, their
    explanations) and almost no reference cycles (a bank-to-ledger run leaves under 500 objects
    in cycles), yet each of the collector's passes walked every object still alive: a third of
    comparing and scoring's time (1.6 s of 5.6 s CPU on bank-to-ledger). Reference counting
    frees the objects as before; the few cycles are collected once the run ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_constructor_call(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    """Pickles an instance of the dataclass ``cls`` as the call that builds it again."""
    values = attrgetter(*(f.name for f in fields(cls)))
    return lambda instance: (cls, values(instance))


def _keeps_chunks_in_memory(records: int, training_records: int) -> bool:
    """Whether a run of ``records`` records keeps its chunks' work in memory rather than in a
    temporary folder: when it trains on every one of them, training compared them all at once, so
    holding every chunk's comparisons adds little to the run's peak (509 MB against 501 on
    bank-to-ledger's 22,634 records), and pickling them to disk and back took a third of
    comparing and scoring."""
    return records <= training_records


class _Spill:
    """A run's per-chunk work kept between the passes over the chunks: in a temporary folder
    (only this process writes and reads it, within the run), or in memory when ``folder`` is None."""

    #: The objects a chunk spills by the ten thousand (each chunk's entries, records and scored
    #: candidates) pickled as their constructor's arguments: by default pickle writes each one's
    #: attributes as a dict, names and all, three times slower.
    REDUCERS: ClassVar[dict[type, Callable[[Any], Any]]] = {
        **copyreg.dispatch_table,
        **{
            cls: _as_constructor_call(cls)
            for cls in (SourceRecord, LedgerEntry, ScoredRecord, ScoredCandidate, RoutedRecord)
        },
    }

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.held: dict[tuple[str, int], object] = {}

    def dump(self, what: str, index: int, value: object) -> None:
        if self.folder is None:
            self.held[what, index] = value
            return
        with (self.folder / f"{what}-{index}.pickle").open("wb") as file:
            pickler = pickle.Pickler(file, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = self.REDUCERS
            pickler.dump(value)

    def load(self, what: str, index: int) -> Any:
        """What :meth:`dump` kept (in memory, the very object: the caller must not change what
        it loads again)."""
        if self.folder is None:
            return self.held[what, index]
        with (self.folder / f"{what}-{index}.pickle").open("rb") as file:
            return pickle.load(file)  # noqa: S301 - written by this run, just above

    def discard(self, what: str, index: int) -> None:
        """Let go of what :meth:`dump` kept, no longer needed."""
        if self.folder is None:
            self.held.pop((what, index), None)
        else:
            (self.folder / f"{what}-{index}.pickle").unlink(missing_ok=True)


#: The ops tables a run fills with a row per decision, which its later statements (the decision
#: history's triggers, the outbox's reads) look up by key.
_WRITTEN_TABLES = ("ops.routing_decisions", "ops.delivery_outbox")
#: Rows written before the first refresh of their statistics: below this any plan is quick.
_ANALYZE_FROM_ROWS = 2_000


class _WrittenTableStatistics:
    """Keeps the planner's idea of the tables a run writes close to what the run has written.
    A run writes all its decisions in one transaction, which autovacuum cannot see, so the
    statistics describe the tables as they were before it: after a benchmark's reset or on a
    new workspace's first run, the lookups by key of later chunks (the decision history's
    triggers, the outbox's reads and updates) were planned for a handful of rows and each chunk
    scanned all the rows the chunks before it wrote (on bank-to-ledger, 22,634 decisions took 77
    s of the server's CPU instead of 25). ANALYZE counts the transaction's own rows; it runs once
    the run has written :data:`_ANALYZE_FROM_ROWS` rows, then each time it has written as many
    again as before the last one (a few times in a run of any size), and skips a table another
    run is analysing rather than wait for it."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.written = 0
        self.next_analyze = _ANALYZE_FROM_ROWS

    def wrote(self, rows: int) -> None:
        self.written += rows
        if self.written >= self.next_analyze:
            self.conn.execute(f"analyze (skip_locked) {', '.join(_WRITTEN_TABLES)}")
            self.next_analyze = 2 * self.written


def claimed_invoices(conn: psycopg.Connection, workspace_id: str) -> dict[str, int | None]:
    """The workspace's invoices already linked, with the amount claimed against each (None: the
    whole invoice), which the one-to-one assignment of the next records respects."""
    return {
        candidate_id: (int(amount) if amount is not None and complete else None)
        for candidate_id, amount, complete in conn.execute(_CLAIMED, (workspace_id,))
    }


def _claims(routed: Sequence[RoutedRecord], routed_before: int) -> list[Claim]:
    """The auto-links' claims on their top candidates, numbered in the run's record order."""
    return [
        Claim(
            routed_before + index,
            record.scored.score,
            record.scored.ranked[0].candidate_type,
            record.scored.ranked[0].candidate_id,
            _claimed_amount(record.scored),
            record.scored.ranked[0].amount_minor,
        )
        for index, record in enumerate(routed)
        if record.route == "auto_link" and record.scored.ranked
    ]


def _assigned(
    routed: Sequence[RoutedRecord], refused: Mapping[int, str], routed_before: int
) -> list[RoutedRecord]:
    """The chunk's records with the auto-links the assignment refused sent to review, and why."""
    result = []
    for index, record in enumerate(routed):
        if (reason := refused.get(routed_before + index)) is not None:
            record.scored.explanation["one_to_one"] = reason
            result.append(RoutedRecord(record.scored, "review"))
        else:
            result.append(record)
    return result


def _claimed_amount(scored: ScoredRecord) -> int | None:
    """What the record takes from its top candidate's balance, in the candidate's currency."""
    top = scored.ranked[0]
    return top.record_amount_minor if top.record_amount_minor is not None else scored.record.amount_minor


def _save_models(
    conn: psycopg.Connection, workspace_id: str, models: TrainedModels, run_id: str, trained_at: datetime
) -> None:
    for candidate_type, model in models.by_candidate_type.items():
        conn.execute(
            """
            insert into ops.match_models (workspace_id, candidate_type, model_version, parameters,
                trained_at, trained_by_run)
            values (%s, %s, %s, %s, %s, %s)
            on conflict (workspace_id, candidate_type, model_version) do nothing
            """,
            (workspace_id, candidate_type, model.version, Jsonb(model.as_json()), trained_at, run_id),
        )


# Every decision in one statement: a record decided before for the same content keeps its
# decision (and returns no row). Text and JSON go as binary arrays: the text form escapes every
# element, several times slower.
_UPSERT_DECISIONS = """
    insert into ops.routing_decisions (
        workspace_id, source, source_record_id, source_payload_sha256, route, score,
        auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
        candidates, explanation, model_version, decided_at, decided_by_run)
    select %(workspace_id)s, d.source, d.source_record_id, d.source_payload_sha256, d.route, d.score,
        %(auto_link_threshold)s, %(review_threshold)s, d.top_candidate_type, d.top_candidate_id,
        d.candidates, d.explanation, %(model_version)s, %(decided_at)s, %(run_id)s
    from unnest(%(source)b::text[], %(source_record_id)b::text[], %(source_payload_sha256)b::text[],
        %(route)b::text[], %(score)s::float8[], %(top_candidate_type)b::text[], %(top_candidate_id)b::text[],
        %(candidates)b::jsonb[], %(explanation)b::jsonb[])
        with ordinality as d (source, source_record_id, source_payload_sha256, route, score,
            top_candidate_type, top_candidate_id, candidates, explanation, position)
    order by d.position
    on conflict (workspace_id, source, source_record_id) do update set
        source_payload_sha256 = excluded.source_payload_sha256, route = excluded.route,
        score = excluded.score, auto_link_threshold = excluded.auto_link_threshold,
        review_threshold = excluded.review_threshold, top_candidate_type = excluded.top_candidate_type,
        top_candidate_id = excluded.top_candidate_id, candidates = excluded.candidates,
        explanation = excluded.explanation, model_version = excluded.model_version,
        decided_at = excluded.decided_at, decided_by_run = excluded.decided_by_run
    where ops.routing_decisions.source_payload_sha256 <> excluded.source_payload_sha256
    returning source, source_record_id, decision_id
"""


def _write_decisions(
    conn: psycopg.Connection,
    workspace: Workspace,
    routed: Sequence[RoutedRecord],
    model_version: str,
    run_id: str,
    decided_at: datetime,
) -> list[int | None]:
    """Upsert every decision in one statement; return each one's decision id, None where the
    record's decision for the same content stands."""
    if not routed:
        return []
    rows = [_decision_row(record) for record in routed]
    columns = list(zip(*rows, strict=True))
    written = {
        (source, record_id): decision_id
        for source, record_id, decision_id in conn.execute(
            _UPSERT_DECISIONS,
            {
                "workspace_id": workspace.workspace_id,
                "auto_link_threshold": workspace.auto_link_threshold,
                "review_threshold": workspace.review_threshold,
                "model_version": model_version,
                "decided_at": decided_at,
                "run_id": run_id,
                **{name: list(values) for name, values in zip(_DECISION_COLUMNS, columns, strict=True)},
            },
        )
    }
    return [written.get((r.scored.record.source, r.scored.record.source_record_id)) for r in routed]


def _queue_auto_links(
    conn: psycopg.Connection,
    workspace: Workspace,
    routed: Sequence[RoutedRecord],
    decision_ids: Sequence[int | None],
    decided_at: datetime,
) -> None:
    """Queue the document of every auto-link decided in this run, in one batch."""
    requests = []
    for record, decision_id in zip(routed, decision_ids, strict=True):
        top = record.scored.ranked[0] if record.scored.ranked else None
        if decision_id is None or record.route != "auto_link" or top is None:
            continue
        source = record.scored.record
        requests.append(
            DocumentRequest(
                decision_id,
                DeliveredRecord(
                    source=source.source,
                    source_record_id=source.source_record_id,
                    source_payload_sha256=source.source_payload_sha256,
                    counterparty_name=source.counterparty_name,
                    amount_minor=source.amount_minor,
                    currency=source.currency,
                    occurred_on=source.occurred_on,
                    reference=source.reference,
                ),
                MatchedEntry(
                    top.candidate_type, top.candidate_id, top.candidate_name, round(record.scored.score, 4)
                ),
            )
        )
    enqueue_documents(conn, workspace, requests, decided_at)


_DECISION_COLUMNS = (
    "source",
    "source_record_id",
    "source_payload_sha256",
    "route",
    "score",
    "top_candidate_type",
    "top_candidate_id",
    "candidates",
    "explanation",
)


def _decision_row(routed: RoutedRecord) -> tuple[object, ...]:
    """The record's values of :data:`_DECISION_COLUMNS`."""
    scored = routed.scored
    record = scored.record
    top = scored.ranked[0] if scored.ranked else None
    explanation = dict(scored.explanation)
    if routed.route == "auto_link" and top is not None and top.candidate_type == "invoice":
        # what this auto-link takes from the invoice's balance, for the next run's assignment
        explanation["claimed_amount_minor"] = _claimed_amount(scored)
    return (
        record.source,
        record.source_record_id,
        record.source_payload_sha256,
        routed.route,
        round(scored.score, 4),
        top.candidate_type if top else None,
        top.candidate_id if top else None,
        Jsonb([candidate.as_json() for candidate in scored.ranked]),
        Jsonb(explanation),
    )
