"""A first sync commits chunk by chunk: a process killed mid-way keeps the chunks it committed,
with the marker where they end, and the rerun resumes there; the landed set is then exactly the
source's records, each once. The kill is real (SIGKILL of a child process mid-read)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.extraction import ExtractionWindow, SourceAccess, extract_square
from ledgerlink.sandbox.faults import Fault
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.sync_markers import read_marker

WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK_RECORDS = 40  # a chunk ends at a page boundary: the sandbox pages 100 payments at a time

_CHILD = """
import sys
from datetime import datetime
import psycopg
from ledgerlink.extraction import ExtractionWindow, extract_square
conninfo, workspace_id, base_url, window_end, chunk = sys.argv[1:]
window = ExtractionWindow("crashing-run", datetime.fromisoformat(window_end), chunk_records=int(chunk))
with psycopg.connect(conninfo) as conn:
    extract_square(conn, workspace_id, base_url, window)
"""


def _landed(conn, workspace_id: str) -> list[tuple[str, int]]:  # noqa: ANN001
    return conn.execute(
        "select source_record_id, count(*)::int from raw.square_payments where workspace_id = %s"
        " group by source_record_id order by source_record_id",
        (workspace_id,),
    ).fetchall()


def test_a_first_sync_killed_mid_way_resumes_and_lands_each_record_once(
    warehouse,  # noqa: ANN001
    source_sandbox,  # noqa: ANN001
    faults,  # noqa: ANN001
    new_workspace,  # noqa: ANN001
    fixtures_root,  # noqa: ANN001
) -> None:
    payments = json.loads((fixtures_root / "square" / "payments.json").read_text())["payments"]
    assert len(payments) > 100, "the fixtures must span more than one page for a chunk to commit"
    workspace_id = new_workspace()
    # Every payments page answers slowly, so the child is still waiting for its second page when
    # the first chunk has committed and it is killed.
    faults.add("square", "/v2/payments", Fault(latency_seconds=3.0), times=None)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            warehouse.conninfo(),
            workspace_id,
            source_sandbox.square_base_url,
            WINDOW_END.isoformat(),
            str(CHUNK_RECORDS),
        ],
        env=os.environ.copy(),
    )
    try:
        with connect(warehouse, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while read_marker(conn, workspace_id, "square", "payments") is None:
                assert child.poll() is None, "the child ended before committing a chunk"
                assert time.monotonic() < deadline, "no chunk committed within two minutes"
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
            child.wait()
            faults.clear()

            marker = read_marker(conn, workspace_id, "square", "payments")
            landed = _landed(conn, workspace_id)
            assert marker is not None and marker < WINDOW_END, "the marker is where the first chunk ends"
            assert 0 < len(landed) < len(payments), "the kill came mid-way"
            newest_landed = conn.execute(
                "select max(source_updated_at) from raw.square_payments where workspace_id = %s",
                (workspace_id,),
            ).fetchone()[0]
            assert marker == newest_landed

            # The rerun (a new run, as the next schedule would start) resumes from the marker.
            window = ExtractionWindow("resuming-run", WINDOW_END, chunk_records=CHUNK_RECORDS)
            summary = extract_square(conn, workspace_id, SourceAccess(source_sandbox.square_base_url), window)
            assert _landed(conn, workspace_id) == sorted((payment["id"], 1) for payment in payments)
            assert summary["payments"] == len(payments) - len(landed)
            assert read_marker(conn, workspace_id, "square", "payments") == WINDOW_END
            received, new, already, rejected = conn.execute(
                "select received, landed_new, landed_already, rejected from ops.extraction_counts"
                " where workspace_id = %s and entity = 'payments' and run_id = 'resuming-run'",
                (workspace_id,),
            ).fetchone()
            assert received == new + already + rejected
            assert received < len(payments), "the rerun did not read the history again from its start"
    finally:
        if child.poll() is None:
            child.kill()


def test_a_first_sync_reads_only_the_configured_history(warehouse, source_sandbox, new_workspace) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    window = ExtractionWindow("short-history", WINDOW_END, first_sync_history=timedelta(days=90))
    with connect(warehouse) as conn:
        extract_square(conn, workspace_id, SourceAccess(source_sandbox.square_base_url), window)
        oldest = conn.execute(
            "select min(source_updated_at), count(*) from raw.square_payments where workspace_id = %s",
            (workspace_id,),
        ).fetchone()
    assert oldest[1] > 0
    assert oldest[0] >= WINDOW_END - timedelta(days=90)


def test_an_extraction_window_refuses_a_chunk_of_nothing() -> None:
    with pytest.raises(ValueError, match="positive"):
        ExtractionWindow("r", WINDOW_END, chunk_records=0)
