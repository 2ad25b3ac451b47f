"""The delivery benchmark sends every document it queues, with one sender or several, and
leaves nothing behind."""

from __future__ import annotations

import psycopg
import pytest

from ledgerlink.benchmarks.delivery import BENCHMARK_WORKSPACE, measure_delivery


@pytest.mark.parametrize(("senders", "reply_delay_ms"), [(1, 0.0), (2, 5.0)])
def test_the_delivery_benchmark_sends_every_document_and_cleans_up(
    conn: psycopg.Connection,
    warehouse,
    senders: int,
    reply_delay_ms: float,  # noqa: ANN001
) -> None:
    figures = measure_delivery(warehouse, 6, senders=senders, smtp_reply_delay_ms=reply_delay_ms)
    assert (figures.documents, figures.sent, figures.senders) == (6, 6, senders)
    assert figures.documents_per_second > 0
    left = conn.execute(
        "select count(*) from ops.delivery_outbox where workspace_id = %s", (BENCHMARK_WORKSPACE,)
    ).fetchone()
    assert left == (0,)
