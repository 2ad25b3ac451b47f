"""Delivery tests run against the session's real warehouse, a real email-in SMTP server
(aiosmtpd, requiring a login, with QuickBooks' acceptance rules) and the fault-injecting proxy
between it and the sender."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ledgerlink.blobstore import BlobStore
from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
from ledgerlink.delivery.sender import deliver_pending
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sources.quickbooks.client import QuickBooksClient
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace

if TYPE_CHECKING:  # the sandbox package imports FastAPI; the sender subprocess does without it
    from ledgerlink.sandbox.email_in import EmailInServer
    from ledgerlink.sandbox.smtp_faults import SmtpFaultProxy

SMTP_LOGIN = ("ledgerlink-relay", "correct horse battery staple")

QUICKBOOKS_TOKEN = "qbo-sandbox-token"
REALM = "4620816365"
BILLS = [
    {
        "Id": "501",
        "PrivateNote": "ledgerlink source record id: square:RB1 and square:O1",
        "MetaData": {"CreateTime": "2026-03-20T10:00:00+00:00"},
    },
    {
        "Id": "502",
        "PrivateNote": "paid in cash, see square:RB9",
        "MetaData": {"CreateTime": "2026-03-20T10:00:00+00:00"},
    },
]
PURCHASES = [
    {
        "Id": "77",
        "Line": [{"Description": "Card payment receipt — ledgerlink square:RB2"}],
        "MetaData": {"CreateTime": "2026-03-21T09:30:00+00:00"},
    }
]
EXCHANGE_RATES = [
    {"SourceCurrencyCode": "USD", "TargetCurrencyCode": "EUR", "Rate": 0.91, "AsOfDate": "2026-03-12"},
    {"SourceCurrencyCode": "GBP", "TargetCurrencyCode": "EUR", "Rate": 1.17, "AsOfDate": "2026-03-12"},
    {"SourceCurrencyCode": "GBP", "TargetCurrencyCode": "EUR", "Rate": 1.18, "AsOfDate": "2026-03-13"},
    {"SourceCurrencyCode": "EUR", "TargetCurrencyCode": "USD", "Rate": 1.09, "AsOfDate": "2026-03-12"},
]


@pytest.fixture()
def quickbooks_url(tmp_path: Path) -> Iterator[str]:
    """The QuickBooks sandbox app over loopback HTTP, serving the bills, purchases and rates above."""
    import uvicorn  # imported here: the crash tests' sender subprocess imports this module

    from ledgerlink.sandbox.fixtures import Fixtures
    from ledgerlink.sandbox.quickbooks import create_quickbooks_app

    fixtures = Fixtures(
        root=tmp_path,
        manifest={
            "workspace_id": "readback",
            "access_tokens": {"quickbooks": QUICKBOOKS_TOKEN},
            "quickbooks_realm_id": REALM,
            "company_name": "Read Back SAS",
            "home_currency": "EUR",
        },
        qonto_supplier_invoices=[],
        qonto_attachments={},
        square_payments=[],
        square_customers=[],
        square_locations=[],
        quickbooks={"Bill": BILLS, "Purchase": PURCHASES, "ExchangeRate": EXCHANGE_RATES},
        ground_truth={},
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_quickbooks_app(fixtures), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture()
def quickbooks(quickbooks_url: str) -> QuickBooksClient:
    return QuickBooksClient(quickbooks_url, QUICKBOOKS_TOKEN, REALM)


@dataclass
class DeliveryRig:
    workspace: Workspace
    email_in: EmailInServer
    proxy: SmtpFaultProxy
    owner_inbox: EmailInServer
    blobs: BlobStore
    sender_address: str

    def endpoint(self, password: str = SMTP_LOGIN[1], timeout: float = 5.0) -> SmtpEndpoint:
        """The sender's view: through the proxy, logging in."""
        return SmtpEndpoint(
            "127.0.0.1",
            self.proxy.port,
            sender=self.sender_address,
            username=SMTP_LOGIN[0],
            password=password,
            timeout_seconds=timeout,
        )

    @property
    def notifier(self) -> SmtpEndpoint:
        return SmtpEndpoint("127.0.0.1", self.owner_inbox.port, sender="notices@ledgerlink.invalid")


@pytest.fixture()
def conn(warehouse) -> Iterator[psycopg.Connection]:  # noqa: ANN001
    with connect(warehouse) as connection:
        yield connection


def new_workspace(conn: psycopg.Connection, home_currency: str = "EUR") -> Workspace:
    workspace_id = f"delivery-{uuid.uuid4().hex[:10]}"
    workspace = Workspace(
        workspace_id=workspace_id,
        display_name="Delivery Test SAS",
        email_in_address=f"{workspace_id}@qbodocs.com",
        owner_email=f"owner-{workspace_id}@qbodocs.com",
        home_currency=home_currency,
        is_active=False,
    )
    with conn.transaction():
        save_workspace(conn, workspace)
    return workspace


@pytest.fixture()
def rig(conn: psycopg.Connection, tmp_path: Path) -> Iterator[DeliveryRig]:
    from ledgerlink.sandbox.email_in import QuickBooksPolicy, start_email_in
    from ledgerlink.sandbox.smtp_faults import SmtpFaultProxy

    workspace = new_workspace(conn)
    sender_address = f"ledgerlink@{workspace.workspace_id}.example"
    email_in = start_email_in(
        tmp_path / "email-in",
        workspace.email_in_address,
        policy=QuickBooksPolicy(frozenset({sender_address})),
        credentials=SMTP_LOGIN,
        max_message_bytes=400_000,
    )
    assert workspace.owner_email is not None
    owner_inbox = start_email_in(tmp_path / "owner", workspace.owner_email)
    proxy = SmtpFaultProxy("127.0.0.1", email_in.port).start()
    try:
        yield DeliveryRig(
            workspace, email_in, proxy, owner_inbox, BlobStore(tmp_path / "blobs"), sender_address
        )
    finally:
        proxy.stop()
        email_in.stop()
        owner_inbox.stop()


def square_record(record_id: str, *, version: str = "v1", **changes: object) -> DeliveredRecord:
    values: dict[str, object] = {
        "source": "square",
        "source_record_id": record_id,
        "source_payload_sha256": hashlib.sha256(f"{record_id}:{version}".encode()).hexdigest(),
        "counterparty_name": "Boulangerie Marchand",
        "amount_minor": 4250,
        "currency": "EUR",
        "occurred_on": date(2026, 3, 14),
        "reference": f"REF-{record_id}",
    }
    values.update(changes)
    return DeliveredRecord(**values)  # type: ignore[arg-type]


MATCH = MatchedEntry("invoice", "1042", "Boulangerie Marchand", 0.97)


def decide(
    conn: psycopg.Connection,
    workspace: Workspace,
    record: DeliveredRecord,
    decided_at: datetime | None = None,
) -> int:
    """What the scorer does for an auto-link: upsert the decision, queue the document."""
    decided_at = decided_at or datetime.now(UTC)
    decision_id = upsert_decision(conn, workspace, record, decided_at)
    enqueue_document(
        conn, workspace, decision_id=decision_id, record=record, match=MATCH, enqueued_at=decided_at
    )
    return decision_id


def upsert_decision(
    conn: psycopg.Connection, workspace: Workspace, record: DeliveredRecord, decided_at: datetime
) -> int:
    """The record's auto-link decision, as the scorer writes it before queueing the document."""
    row = conn.execute(
        """
        insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
            route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
            candidates, explanation, model_version, decided_at, decided_by_run)
        values (%s, %s, %s, %s, 'auto_link', 0.97, 0.85, 0.55, 'invoice', '1042', '[]', %s, 'test', %s, 'test')
        on conflict (workspace_id, source, source_record_id) do update set
            source_payload_sha256 = excluded.source_payload_sha256, decided_at = excluded.decided_at
        returning decision_id
        """,
        (
            workspace.workspace_id,
            record.source,
            record.source_record_id,
            record.source_payload_sha256,
            Jsonb({}),
            decided_at,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def outbox_rows(conn: psycopg.Connection, workspace_id: str) -> list[dict[str, object]]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            "select * from ops.delivery_outbox where workspace_id = %s order by outbox_id", (workspace_id,)
        ).fetchall()
    conn.commit()
    return rows


def attempt_outcomes(conn: psycopg.Connection, outbox_id: object) -> list[tuple[str, int | None]]:
    rows = conn.execute(
        "select outcome, smtp_code from ops.delivery_attempts where outbox_id = %s order by attempt_id",
        (outbox_id,),
    ).fetchall()
    conn.commit()
    return [(row[0], row[1]) for row in rows]


def land_qonto_invoice(
    conn: psycopg.Connection,
    workspace: Workspace,
    blobs: BlobStore,
    record_id: str,
    file_name: str,
    content: bytes,
    **changes: object,
) -> DeliveredRecord:
    """A Qonto supplier invoice and its attachment as extraction lands them."""
    payload = {"id": record_id, "attachment_id": f"att-{record_id}", "supplier_name": "Papeterie Dupont"}
    payload_sha = hashlib.sha256(repr(sorted(payload.items())).encode()).hexdigest()
    blob = blobs.put(content)
    now = datetime.now(UTC)
    conn.execute(
        "insert into raw.qonto_supplier_invoices (workspace_id, source_record_id, payload, payload_sha256,"
        " landed_at, landed_by_run) values (%s, %s, %s, %s, %s, 'test')",
        (workspace.workspace_id, record_id, Jsonb(payload), payload_sha, now),
    )
    conn.execute(
        "insert into raw.qonto_attachments (workspace_id, source_record_id, payload, payload_sha256,"
        " landed_at, landed_by_run, blob_sha256) values (%s, %s, %s, %s, %s, 'test', %s)",
        (workspace.workspace_id, f"att-{record_id}", Jsonb({"file_name": file_name}), blob, now, blob),
    )
    values: dict[str, object] = {
        "source": "qonto",
        "source_record_id": record_id,
        "source_payload_sha256": payload_sha,
        "counterparty_name": "Papeterie Dupont",
        "amount_minor": 12000,
        "currency": "EUR",
        "occurred_on": date(2026, 3, 10),
        "reference": f"F-{record_id}",
    }
    values.update(changes)
    return DeliveredRecord(**values)  # type: ignore[arg-type]


@contextmanager
def sender_held_at_mail(
    rig: DeliveryRig, warehouse: object, run_id: str = "run-a"
) -> Iterator[dict[str, int]]:
    """A sender delivering the workspace's whole outbox from a thread and connection of its own,
    held at the SMTP server's MAIL once it has claimed its batch. Yields its counts, filled in when
    it finishes; leaving the block releases it and waits for it."""
    hold = rig.proxy.plan.add("MAIL", "hold")
    counts: dict[str, int] = {}

    def send() -> None:
        with connect(warehouse) as own:  # type: ignore[arg-type]
            counts.update(
                deliver_pending(own, rig.workspace.workspace_id, rig.endpoint(timeout=10), rig.blobs, run_id)
            )

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert hold.reached.wait(20), "the held sender never reached MAIL"
        yield counts
    finally:
        hold.release()
        thread.join(60)
