"""Delivery throughput: documents per second through the email operator's own code
(:func:`ledgerlink.delivery.sender.deliver_pending`: rendering, the outbox's crash-safe commits
and SMTP) into the sandbox's email-in, which requires a login and writes every message to disk
as the tests' one does. The email-in runs in a process of its own, as the real one is elsewhere:
in this process it would compete with the sender for the interpreter lock. It can hold each reply
a while (``smtp_reply_delay_ms``), as QuickBooks across the internet does: one sender then waits
on round trips, and parallel senders (shards, each in its own process) show what they win.

The documents are Square receipts queued through :func:`enqueue_document`, as the scorer queues
auto-links, in an inactive workspace of their own whose outbox is emptied before and after.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.blobstore import BlobStore
from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
from ledgerlink.delivery.sender import deliver_pending
from ledgerlink.delivery.shards import DEFAULT_DELIVERY_SESSIONS, DeliveryShard
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.workspaces import Workspace, save_workspace

BENCHMARK_WORKSPACE = "benchmark-delivery"
_LOGIN = ("ledgerlink-benchmark", "benchmark-password")
_COUNTERPARTIES = ["Boulangerie Marchand", "Café de la Gare", "Atelier Lefèvre", "Papeterie Dupont"]


@dataclass(frozen=True)
class DeliveryFigures:
    documents: int
    sent: int
    delivery_seconds: float
    documents_per_second: float
    enqueue_seconds: float
    senders: int
    sessions: int
    smtp_reply_delay_ms: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measure_delivery(
    address: ServerAddress,
    documents: int,
    render_processes: int = 0,
    *,
    senders: int = 1,
    sessions: int = DEFAULT_DELIVERY_SESSIONS,
    smtp_reply_delay_ms: float = 0.0,
) -> DeliveryFigures:
    """Queue ``documents`` receipts in the benchmark's workspace, deliver them all once with
    ``senders`` senders, each a process of its own sending one shard of the outbox (as the DAG's
    mapped delivery tasks do) over ``sessions`` SMTP sessions at once, rendering in ``render_processes`` worker processes each (or in the
    sender's own when 0), into an email-in that holds each reply ``smtp_reply_delay_ms`` (a
    distant server); then remove the workspace's decisions, outbox rows and attempts again. The
    clock runs from the moment every sender is ready until the last one is done."""
    workspace_id = BENCHMARK_WORKSPACE
    workspace = Workspace(
        workspace_id=workspace_id,
        display_name="Benchmark SAS",
        email_in_address=f"{workspace_id}@qbodocs.com",
        home_currency="EUR",
        is_active=False,
    )
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder, connect(address) as conn:
        email_in = _EmailInProcess(Path(folder) / "email-in", workspace.email_in_address, smtp_reply_delay_ms)
        try:
            _clear_workspace(conn, workspace_id)
            started = time.perf_counter()
            with conn.transaction():
                save_workspace(conn, workspace)
                for index in range(documents):
                    _queue_receipt(conn, workspace, index)
            enqueued = time.perf_counter()
            endpoint = SmtpEndpoint(
                "127.0.0.1",
                email_in.port,
                sender=f"ledgerlink@{workspace_id}.example",
                username=_LOGIN[0],
                password=_LOGIN[1],
            )
            ready = context.Barrier(senders + 1)
            results: multiprocessing.Queue[dict[str, int]] = context.Queue()
            processes = [
                context.Process(
                    target=_send_shard,
                    args=(
                        address,
                        endpoint,
                        Path(folder) / "blobs",
                        render_processes,
                        DeliveryShard(index, senders),
                        sessions,
                    ),
                    kwargs={"ready": ready, "results": results},
                    daemon=True,
                )
                for index in range(senders)
            ]
            for process in processes:
                process.start()
            ready.wait(120)
            go = time.perf_counter()
            sent = sum(results.get(timeout=3600)["sent"] for _ in processes)
            delivered = time.perf_counter()
            for process in processes:
                process.join(30)
        finally:
            email_in.stop()
            _clear_workspace(conn, workspace_id)
    seconds = delivered - go
    return DeliveryFigures(
        documents=documents,
        sent=sent,
        delivery_seconds=round(seconds, 2),
        documents_per_second=round(sent / seconds, 1) if seconds else 0.0,
        enqueue_seconds=round(enqueued - started, 2),
        senders=senders,
        sessions=sessions,
        smtp_reply_delay_ms=smtp_reply_delay_ms,
    )


def _send_shard(
    address: ServerAddress,
    endpoint: SmtpEndpoint,
    blob_dir: Path,
    render_processes: int,
    shard: DeliveryShard,
    sessions: int,
    *,
    ready: Any,
    results: Any,
) -> None:
    """One sender: connect and import everything first, wait for the others, then deliver."""
    with connect(address) as conn:
        ready.wait(120)
        counts = deliver_pending(
            conn,
            BENCHMARK_WORKSPACE,
            endpoint,
            BlobStore(blob_dir),
            f"benchmark-{shard.index}",
            render_processes=render_processes,
            shard=shard,
            sessions=sessions,
        )
    results.put(counts)


class _EmailInProcess:
    """The sandbox email-in served from a spawned process, on a free loopback port."""

    def __init__(self, mailbox_dir: Path, address: str, reply_delay_ms: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        ports: multiprocessing.Queue[int] = context.Queue()
        self._process = context.Process(
            target=_serve_email_in,
            args=(mailbox_dir, address, reply_delay_ms, ports, self._stop),
            daemon=True,
        )
        self._process.start()
        self.port = ports.get(timeout=60)

    def stop(self) -> None:
        self._stop.set()
        self._process.join(30)


def _serve_email_in(mailbox_dir: Path, address: str, reply_delay_ms: float, ports: Any, stop: Any) -> None:
    from ledgerlink.sandbox.email_in import start_email_in

    server = start_email_in(
        mailbox_dir, address, credentials=_LOGIN, reply_delay_seconds=reply_delay_ms / 1000
    )
    ports.put(server.port)
    stop.wait()
    server.stop()


def _queue_receipt(conn: psycopg.Connection, workspace: Workspace, index: int) -> None:
    record_id = f"BENCH{index:08d}"
    record = DeliveredRecord(
        source="square",
        source_record_id=record_id,
        source_payload_sha256=hashlib.sha256(record_id.encode()).hexdigest(),
        counterparty_name=_COUNTERPARTIES[index % len(_COUNTERPARTIES)],
        amount_minor=1_000 + index,
        currency="EUR",
        occurred_on=date(2026, 1, 1) + timedelta(days=index % 300),
        reference=f"REF-{record_id}",
    )
    decided_at = datetime.now(UTC)
    row = conn.execute(
        """
        insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
            route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
            candidates, explanation, model_version, decided_at, decided_by_run)
        values (%s, 'square', %s, %s, 'auto_link', 0.97, 0.85, 0.55, 'invoice', %s, '[]', %s,
            'benchmark', %s, 'benchmark')
        returning decision_id
        """,
        (workspace.workspace_id, record_id, record.source_payload_sha256, str(index), Jsonb({}), decided_at),
    ).fetchone()
    assert row is not None
    match = MatchedEntry("invoice", str(index), record.counterparty_name, 0.97)
    enqueue_document(conn, workspace, decision_id=row[0], record=record, match=match, enqueued_at=decided_at)


def _clear_workspace(conn: psycopg.Connection, workspace_id: str) -> None:
    conn.rollback()
    with conn.transaction():
        conn.execute(
            "delete from ops.delivery_attempts where outbox_id in"
            " (select outbox_id from ops.delivery_outbox where workspace_id = %s)",
            (workspace_id,),
        )
        conn.execute("delete from ops.delivery_outbox where workspace_id = %s", (workspace_id,))
        conn.execute(
            "delete from ops.review_actions where decision_id in"
            " (select decision_id from ops.routing_decisions where workspace_id = %s)",
            (workspace_id,),
        )
        conn.execute("delete from ops.routing_decisions where workspace_id = %s", (workspace_id,))
