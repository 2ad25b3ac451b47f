"""The sync marker never loses or duplicates a record (Hypothesis).

A Qonto-shaped source held in memory (served to the real client through an httpx transport, with
Qonto's inclusive ``filter[updated_at_from|to]``, ``updated_at:asc`` order, page numbers and
``meta.total_count``) goes through arbitrary interleavings of inserts and updates, with equal
timestamps, changes committed late with an ``updated_at`` up to the lookback in the past, changes
made while a run is paging (late ones too), any page size, crashes at any request, and marker
rewinds. After the source goes quiet and one
more run reads, the warehouse holds the latest version of every record, nothing that never
existed, and no record version twice.

What it cannot promise, by design: a version overwritten before any run could read it is not
seen, and a change back-dated by more than the lookback (15 minutes) before the marker is missed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledgerlink.blobstore import BlobStore
from ledgerlink.credentials import store_token
from ledgerlink.extraction import LOOKBACK, ExtractionWindow, SourceAccess, extract_qonto
from ledgerlink.sources.http import RetryPolicy
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import payload_sha256
from ledgerlink.warehouse.sync_markers import read_marker, rewind_marker
from ledgerlink.workspaces import Workspace, save_workspace

START = datetime(2026, 10, 1, tzinfo=UTC)


class Crash(Exception):
    """The task died: the run's transaction rolls back."""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class FakeQonto:
    page_size: int
    clock: datetime = START
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    every_version: set[tuple[str, str]] = field(default_factory=set)
    #: During a run: changes to apply after the n-th request, and the request that crashes.
    pending: list[tuple[int, Any]] = field(default_factory=list)
    crash_at: int | None = None
    requests: int = 0

    def change(self, record_id: str, back_seconds: int, advance_seconds: int) -> None:
        """Insert or update ``record_id``: its ``updated_at`` is the clock, or earlier (committed late)."""
        self.clock += timedelta(seconds=advance_seconds)
        version = self.records.get(record_id, {}).get("version", 0) + 1
        record = {
            "id": record_id,
            "version": version,
            "status": "paid" if version % 2 else "to_review",
            "updated_at": _iso(self.clock - timedelta(seconds=back_seconds)),
            "created_at": _iso(START),
        }
        self.records[record_id] = record
        self.every_version.add((record_id, payload_sha256(record)))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        for after, change in [p for p in self.pending if p[0] < self.requests]:
            change()
            self.pending.remove((after, change))
        if self.crash_at is not None and self.requests >= self.crash_at:
            raise Crash
        params = request.url.params
        lower = params.get("filter[updated_at_from]")
        upper = params["filter[updated_at_to]"]
        selected = sorted(
            (
                r
                for r in self.records.values()
                if (lower is None or r["updated_at"] >= lower) and r["updated_at"] <= upper
            ),
            key=lambda r: (r["updated_at"], r["id"]),
        )
        per_page = min(int(params["per_page"]), self.page_size)
        page = int(params["page"])
        chunk = selected[(page - 1) * per_page : page * per_page]
        has_next = page * per_page < len(selected)
        meta: dict[str, Any] = {
            "current_page": page,
            "per_page": per_page,
            "total_pages": -(-len(selected) // per_page),
            "total_count": len(selected),
        }
        if has_next:
            meta["next_page"] = page + 1
        return httpx.Response(200, json={"supplier_invoices": chunk, "meta": meta})


ids = st.sampled_from([f"inv-{n}" for n in range(8)])
change = st.tuples(
    st.just("change"),
    ids,
    st.integers(0, int(LOOKBACK.total_seconds())),  # committed late by up to the lookback
    st.sampled_from([0, 0, 1, 30, 3600]),  # equal timestamps are common; an hour passes
)
run = st.tuples(
    st.just("run"),
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 4), ids, st.sampled_from([0, 1, 3600])),
            st.tuples(  # committed late too: it may land exactly on a tie group being read
                st.integers(0, 4),
                ids,
                st.sampled_from([0, 1, 3600]),
                st.integers(0, int(LOOKBACK.total_seconds())),
            ),
        ),
        max_size=3,
    ),  # changes while paging
    st.one_of(st.none(), st.integers(1, 6)),  # the request that crashes, if any
)
rewind = st.tuples(st.just("rewind"), st.integers(0, 3600))
steps = st.lists(st.one_of(change, change, run, rewind), min_size=1, max_size=14)


# Page numbers alone lose inv-1 here: inv-0 changes while the run pages, leaves its place, and
# every later record moves up one page; keyset paging does not.
@example(
    page_size=1,
    plan=[*(("change", f"inv-{n}", 0, 3600) for n in range(4)), ("run", [(1, "inv-0", 3600)], None)],
)
# Keyset paging alone loses inv-1 here: the second run's first page is all inv-0 at T0, so the
# next page is page 2 at the same lower bound; inv-0 changes before it (to a time still inside
# the run's window), inv-1 (at T0 + 1 s) moves up to page 1, and page 2 starts after it.
@example(
    page_size=1,
    plan=[
        ("change", "inv-3", 1, 0),
        ("run", [(0, "inv-0", 0), (0, "inv-1", 1), (0, "inv-2", 3600)], None),
        ("run", [(4, "inv-0", 0)], None),
    ],
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page_size=st.integers(1, 5), plan=steps)
def test_landed_set_equals_truth(warehouse, tmp_path, page_size, plan) -> None:  # noqa: ANN001
    source = FakeQonto(page_size=page_size)
    workspace_id = f"prop-{uuid.uuid4().hex[:12]}"
    access = SourceAccess(
        "http://qonto.invalid",
        retry_policy=RetryPolicy(max_attempts=1),
        client_options={"transport": httpx.MockTransport(source.handle)},
    )
    blobs = BlobStore(tmp_path / "blobs")
    with connect(warehouse) as conn:
        with conn.transaction():
            save_workspace(conn, Workspace(workspace_id, "Property", "p@qbodocs.com", is_active=False))
            store_token(conn, workspace_id, "qonto", "token")

        def read(run_id: str, during: list[tuple[Any, ...]], crash_at: int | None) -> None:
            source.requests = 0
            source.crash_at = crash_at
            source.pending = [
                (after, lambda rid=rid, adv=adv, back=(back or [0])[0]: source.change(rid, back, adv))
                for after, rid, adv, *back in during
            ]
            window = ExtractionWindow(run_id, source.clock)  # the run reads up to "now"
            try:
                extract_qonto(conn, workspace_id, access, window, blobs)
            except Crash:
                conn.rollback()
            for _, change_now in source.pending:  # changes the crash pre-empted still happen
                change_now()
            source.pending = []

        for number, step in enumerate(plan):
            if step[0] == "change":
                source.change(step[1], step[2], step[3])
            elif step[0] == "run":
                read(f"run-{number}", step[1], step[2])
            else:
                with conn.transaction():
                    marker = read_marker(conn, workspace_id, "qonto", "supplier_invoices")
                    if marker is not None:  # a rewind moves the marker back, never forward
                        rewind_marker(
                            conn,
                            workspace_id,
                            "qonto",
                            "supplier_invoices",
                            marker - timedelta(seconds=step[1]),
                        )
        # The source goes quiet; a run later than every back-dated commit reads the rest.
        source.clock += LOOKBACK
        read("final", [], None)

        landed = conn.execute(
            "select source_record_id, payload_sha256 from raw.qonto_supplier_invoices where workspace_id = %s",
            (workspace_id,),
        ).fetchall()
    landed_versions = [(record_id, sha) for record_id, sha in landed]
    assert len(landed_versions) == len(set(landed_versions)), "no version landed twice"
    assert set(landed_versions) <= source.every_version, "nothing that never existed"
    latest = {(record_id, payload_sha256(record)) for record_id, record in source.records.items()}
    missing = latest - set(landed_versions)
    assert not missing, f"latest versions lost: {missing}; records {json.dumps(source.records)}"
