"""The delivery benchmark sends every document it queues and leaves nothing behind."""

from __future__ import annotations

import psycopg

from ledgerlink.benchmarks.delivery import BENCHMARK_WORKSPACE, measure_delivery


def test_the_delivery_benchmark_sends_every_document_and_cleans_up(conn: psycopg.Connection) -> None:
    figures = measure_delivery(conn, 3)
    assert (figures.documents, figures.sent) == (3, 3)
    assert figures.documents_per_second > 0
    left = conn.execute(
        "select count(*) from ops.delivery_outbox where workspace_id = %s", (BENCHMARK_WORKSPACE,)
    ).fetchone()
    assert left == (0,)
