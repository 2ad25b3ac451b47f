"""Scoring and routing a chunk of records at a time decides exactly what one batch of everything
decides: the same routes, scores, ranked candidates, explanations, models and queued documents,
on generated data landed in the real warehouse and built by dbt. The data holds charges that
compete for one open invoice, so the one-to-one assignment and the balancing of invoices' claims
have to be worked out across chunks."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledgerlink.evaluation.generated import land_fixtures
from ledgerlink.evaluation.reviewer import forget_decisions
from ledgerlink.matching import routing
from ledgerlink.matching.routing import route_workspace, routing_progress
from ledgerlink.settings import Settings
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.workspaces import Workspace

WORKSPACE_ID = "chunked-routing"
DECIDED_AT = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def landed(settings: Settings, warehouse: ServerAddress) -> Iterator[ServerAddress]:
    from ledgerlink.sandbox.fixtures import load_fixtures
    from ledgerlink.sandbox.generator import generate_fixtures

    with tempfile.TemporaryDirectory(prefix="ledgerlink-chunked-") as folder:
        # few customers for many charges: charges compete for the same open invoices
        fixtures = load_fixtures(
            generate_fixtures(
                Path(folder) / "fixtures", 11, qonto_invoices=60, square_payments=260, customers=25
            )
        )
    workspace = Workspace(
        workspace_id=WORKSPACE_ID,
        display_name="Chunked routing",
        email_in_address="chunked@qbodocs.com",
        home_currency=fixtures.manifest.get("home_currency", "EUR"),
        is_active=False,
    )
    land_fixtures(settings, warehouse, workspace, "chunked-land", fixtures)
    yield warehouse


def _route(conn: psycopg.Connection, **chunking: int) -> tuple[dict[str, int], dict[str, Any]]:
    """Forget every decision, route the workspace afresh, and read back what a user sees."""
    ids = [
        row[0]
        for row in conn.execute(
            "select source_record_id from ops.routing_decisions where workspace_id = %s", (WORKSPACE_ID,)
        )
    ]
    forget_decisions(conn, WORKSPACE_ID, ids)
    timings: dict[str, float] = {}
    counts = route_workspace(conn, WORKSPACE_ID, "chunked-test", DECIDED_AT, timings, **chunking)
    decisions = {
        record_id: rest
        for record_id, *rest in conn.execute(
            "select source_record_id, route, score::float8, top_candidate_type, top_candidate_id,"
            " candidates, explanation, model_version from ops.routing_decisions where workspace_id = %s",
            (WORKSPACE_ID,),
        )
    }
    queued = sorted(
        conn.execute(
            "select source_record_id, status, message_id, document::text, needs_person"
            " from ops.delivery_outbox where workspace_id = %s",
            (WORKSPACE_ID,),
        ).fetchall()
    )
    return counts, {"decisions": decisions, "queued": queued, "chunks": timings["chunks"], "timings": timings}


@pytest.mark.timeout(600)
def test_decisions_do_not_depend_on_the_chunk_size(landed: ServerAddress) -> None:
    with connect(landed) as conn:
        whole_counts, whole = _route(conn, chunk_records=100_000)
        tiny_counts, tiny = _route(conn, chunk_records=7)
        # a rerun over the same input decides nothing new
        assert route_workspace(conn, WORKSPACE_ID, "chunked-rerun", DECIDED_AT, chunk_records=7) == {
            "auto_link": 0,
            "review": 0,
            "refused": 0,
        }
    assert whole["chunks"] == 1 and tiny["chunks"] > 40
    # the operator's progress line counts the chunks each step has done
    assert all(tiny["timings"][f"{step}_chunks"] == tiny["chunks"] for step in ("compare", "score", "decide"))
    assert routing_progress(tiny["timings"]).startswith(
        f"{len(tiny['decisions'])} records in {tiny['chunks']} chunks"
    )
    assert tiny_counts == whole_counts
    assert tiny["decisions"] == whole["decisions"]
    assert tiny["queued"] == whole["queued"]
    # the data exercises what ties chunks together: records in different chunks whose top
    # candidate is the same open invoice
    tops = [(rest[2], rest[3]) for rest in whole["decisions"].values() if rest[2] == "invoice"]
    assert len(tops) - len(set(tops)) >= 10
    assert whole_counts["auto_link"] >= 20 and len(whole["queued"]) == whole_counts["auto_link"]


@pytest.mark.timeout(600)
def test_chunks_held_in_memory_or_in_a_folder_decide_alike(
    landed: ServerAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that trains on every one of its records keeps its chunks' comparisons and routed
    records in memory between the passes; a larger one pickles them to a temporary folder. Both
    write the same decisions and queue the same documents."""
    with connect(landed) as conn:
        _, in_memory = _route(conn, chunk_records=7)
        assert routing._keeps_chunks_in_memory(len(in_memory["decisions"]), routing.TRAINING_RECORDS)
        monkeypatch.setattr(routing, "_keeps_chunks_in_memory", lambda records, training_records: False)
        _, in_folder = _route(conn, chunk_records=7)
    assert in_memory["chunks"] == in_folder["chunks"] > 40
    assert in_folder["decisions"] == in_memory["decisions"]
    assert in_folder["queued"] == in_memory["queued"]


@pytest.mark.timeout(600)
def test_a_run_reads_only_the_records_it_has_to_decide(landed: ServerAddress) -> None:
    """A window reads the pairs of the records without a decision for their content (and of the
    records a reviewer labelled: none here), not the pairs of every record decided before."""
    with connect(landed) as conn:
        _route(conn)
        forgotten = [
            row[0]
            for row in conn.execute(
                "select source_record_id from ops.routing_decisions where workspace_id = %s"
                " order by source_record_id limit 3",
                (WORKSPACE_ID,),
            )
        ]
        forget_decisions(conn, WORKSPACE_ID, forgotten)
        timings: dict[str, float] = {}
        counts = route_workspace(conn, WORKSPACE_ID, "chunked-window", DECIDED_AT, timings)
        decided_again = {
            row[0]
            for row in conn.execute(
                "select source_record_id from ops.routing_decisions where decided_by_run = 'chunked-window'"
            )
        }
    assert timings["records"] == 3
    assert sum(counts.values()) == 3
    assert decided_again == set(forgotten)


def _analyses(conn: psycopg.Connection) -> dict[str, int]:
    conn.execute("select pg_stat_clear_snapshot()")
    return dict(
        conn.execute(
            "select relname, analyze_count from pg_stat_user_tables"
            " where schemaname = 'ops' and relname in ('routing_decisions', 'delivery_outbox')"
        ).fetchall()
    )


@pytest.mark.timeout(600)
def test_a_run_analyses_what_it_wrote_as_it_grows(
    landed: ServerAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later chunks look up what earlier ones wrote in the run's own transaction, where
    autovacuum cannot give the planner statistics: the run analyses the tables itself as what it
    wrote grows, a few times in all (the cumulative statistics show each ANALYZE once the run
    commits). The first analysis waits for 2,000 rows; this workspace has a few hundred."""
    monkeypatch.setattr(routing, "_ANALYZE_FROM_ROWS", 25)
    with connect(landed) as observer:
        before = _analyses(observer)
        with connect(landed) as conn:
            _, run = _route(conn, chunk_records=25)
            conn.execute("select pg_stat_force_next_flush()")
        records = len(run["decisions"])
        deadline = time.monotonic() + 30  # the server publishes a backend's statistics within a second or so
        while (after := _analyses(observer)) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # both tables' counts come in the same report
        after = _analyses(observer)
    added = {table: after[table] - before[table] for table in before}
    assert set(added) == {"routing_decisions", "delivery_outbox"}
    assert added["routing_decisions"] == added["delivery_outbox"], added
    # each time what it wrote doubled: from 25 rows, about log2(records / 25) + 1 times
    assert 3 <= added["delivery_outbox"] <= math.log2(records / 25) + 1, (added, records)


@pytest.mark.timeout(600)
def test_a_sample_trained_model_is_reproducible_and_scores_every_chunk_alike(landed: ServerAddress) -> None:
    with connect(landed) as conn:
        _, everything = _route(conn, chunk_records=100_000)
        _, sampled = _route(conn, chunk_records=100_000, training_records=120)
        _, sampled_again = _route(conn, chunk_records=9, training_records=120)

    def versions(run: dict[str, Any]) -> set[str]:
        return {rest[6] for rest in run["decisions"].values()}

    # fewer records than the workspace holds: another model, the same on every run with the seed
    assert versions(sampled) != versions(everything)
    assert sampled_again["decisions"] == sampled["decisions"]
    assert sampled_again["queued"] == sampled["queued"]


def test_the_progress_line_says_how_far_the_current_step_is() -> None:
    midway = {"chunks": 12, "records": 60_000, "read_seconds": 4.0, "train_seconds": 9.0}
    midway |= {"compare_seconds": 30.0, "compare_chunks": 12, "balance_seconds": 2.0, "balance_chunks": 1}
    midway |= {"score_seconds": 5.0, "score_chunks": 3}
    assert routing_progress(midway) == (
        "60,000 records in 12 chunks; steps done: read, train, compare, balance, score 3/12 chunks"
        " (of read, train, compare, balance, score, decide, queue)"
    )
    assert (
        routing_progress({})
        == "steps done: none yet (of read, train, compare, balance, score, decide, queue)"
    )


def test_the_scoring_task_reads_its_chunking_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerlink.orchestration.runtime import scoring_chunking

    assert scoring_chunking() == {}
    monkeypatch.setenv("LEDGERLINK_SCORING_CHUNK_RECORDS", "2000")
    monkeypatch.setenv("LEDGERLINK_TRAINING_RECORDS", "10000")
    assert scoring_chunking() == {"chunk_records": 2000, "training_records": 10000}
    monkeypatch.setenv("LEDGERLINK_SCORING_CHUNK_RECORDS", "2k")
    with pytest.raises(ValueError, match="LEDGERLINK_SCORING_CHUNK_RECORDS must be a whole number"):
        scoring_chunking()
