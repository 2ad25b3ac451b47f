"""A workspace of its own for the operator's pages (settings, retry after fix, dashboard), so
its mapping versions, deliveries and connections do not touch the review tests' workspaces: one
Square charge linked to a QuickBooks invoice, queued through the outbox and rejected by a company
inbox that refuses documents without the company's own field mapping; or delivered, then changed;
or a source connection that refused its token."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from ledgerlink.credentials import mark_needs_reauth, store_token
from ledgerlink.delivery import deliver_pending
from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
from ledgerlink.incidents import open_incident
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sandbox.email_in import AcceptancePolicy, EmailInServer, start_email_in
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.workspaces import Workspace, add_member, save_workspace


class NeedsCompanyMapping(AcceptancePolicy):
    """The company's inbox rule: every document carries its own field mapping (not version 0)."""

    def check_message(self, mail_from: str, recipients: list[str], content: bytes) -> str | None:
        if b"Mapping version: 0" in content:
            return "554 5.6.0 documents must carry the company's field mapping (account code)"
        return None


@dataclass(frozen=True)
class OperationsWorld:
    workspace_id: str
    record_id: str
    outbox_id: int


def start_inbox(folder: Path, workspace_id: str) -> EmailInServer:
    return start_email_in(folder, f"{workspace_id}@qbodocs.com", policy=NeedsCompanyMapping())


def deliver(address: ServerAddress, workspace_id: str, inbox: EmailInServer, blobs: object) -> dict[str, int]:
    with connect(address) as conn:
        return deliver_pending(
            conn,
            workspace_id,
            SmtpEndpoint(inbox.host, inbox.port, "ledgerlink@ops.example"),
            blobs,  # type: ignore[arg-type]
            "web-ops-delivery",
        )


def _linked_charge(conn: psycopg.Connection, record_id: str, payload_sha256: str) -> tuple[Workspace, int]:
    """A fresh workspace (alice is its member) with one Square charge auto-linked to an invoice
    and queued for delivery; its decision id."""
    workspace_id = f"web-ops-{uuid.uuid4().hex[:8]}"
    decided_at = datetime(2026, 11, 3, tzinfo=UTC)
    workspace = Workspace(
        workspace_id,
        "Corner Shop",
        f"{workspace_id}@qbodocs.com",
        auto_link_threshold=Decimal("0.9"),
        review_threshold=Decimal("0.5"),
        is_active=False,
    )
    save_workspace(conn, workspace)
    add_member(conn, workspace_id, "alice")
    candidates = [
        {"candidate_type": "invoice", "candidate_id": "3001", "candidate_name": "Corner Cafe", "score": 0.97}
    ]
    row = conn.execute(
        """
        insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
            route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
            candidates, explanation, model_version, decided_at, decided_by_run)
        values (%s, 'square', %s, %s, 'auto_link', 0.97, 0.9, 0.5, 'invoice', '3001', %s, '{}',
            'fellegi-sunter-test', %s, 'web-ops')
        returning decision_id
        """,
        (workspace_id, record_id, payload_sha256, json.dumps(candidates), decided_at),
    ).fetchone()
    assert row is not None
    assert _enqueue(conn, workspace, row[0], record_id, payload_sha256, 4_321)
    return workspace, row[0]


def _enqueue(
    conn: psycopg.Connection,
    workspace: Workspace,
    decision_id: int,
    record_id: str,
    payload_sha256: str,
    amount_minor: int,
) -> bool:
    return enqueue_document(
        conn,
        workspace,
        decision_id=decision_id,
        record=DeliveredRecord(
            "square", record_id, payload_sha256, "Corner Cafe", amount_minor, "EUR", date(2026, 11, 2), None
        ),
        match=MatchedEntry("invoice", "3001", "Corner Cafe", 0.97),
        enqueued_at=datetime(2026, 11, 3, tzinfo=UTC),
    )


def rejected_delivery(address: ServerAddress, blobs: object, folder: Path) -> OperationsWorld:
    """A fresh workspace (alice is its member) with one delivery the inbox rejected."""
    record_id = "sq-retry"
    with connect(address) as conn:
        workspace, _decision_id = _linked_charge(conn, record_id, "sha-retry-1")
        conn.commit()
    workspace_id = workspace.workspace_id
    inbox = start_inbox(folder, workspace_id)
    try:
        assert deliver(address, workspace_id, inbox, blobs)["rejected"] == 1
    finally:
        inbox.stop()
    with connect(address) as conn:
        outbox = conn.execute(
            "select outbox_id, status from ops.delivery_outbox where workspace_id = %s", (workspace_id,)
        ).fetchone()
    assert outbox is not None and outbox[1] == "rejected"
    return OperationsWorld(workspace_id, record_id, int(outbox[0]))


def changed_after_delivery(address: ServerAddress, blobs: object, folder: Path) -> OperationsWorld:
    """A fresh workspace (alice is its member) whose charge was delivered, then changed at Square:
    the new copy's outbox row (returned) needs a person, since QuickBooks cannot be edited by email."""
    record_id = "sq-changed"
    with connect(address) as conn:
        workspace, decision_id = _linked_charge(conn, record_id, "sha-changed-1")
        conn.commit()
    inbox = start_email_in(folder, workspace.email_in_address)
    try:
        assert deliver(address, workspace.workspace_id, inbox, blobs)["sent"] == 1
    finally:
        inbox.stop()
    with connect(address) as conn:
        # the charge's amount was corrected after the document went out
        assert _enqueue(conn, workspace, decision_id, record_id, "sha-changed-2", 4_521)
        conn.commit()
        outbox = conn.execute(
            "select outbox_id from ops.delivery_outbox where workspace_id = %s and needs_person",
            (workspace.workspace_id,),
        ).fetchone()
    assert outbox is not None
    return OperationsWorld(workspace.workspace_id, record_id, int(outbox[0]))


def broken_connection(address: ServerAddress, source: str, member: str) -> str:
    """A fresh workspace of ``member`` whose ``source`` refused its token: the connection needs
    re-authorisation and an incident is open, as a run leaves them."""
    workspace_id = f"web-conn-{uuid.uuid4().hex[:8]}"
    with connect(address) as conn:
        save_workspace(
            conn,
            Workspace(
                workspace_id,
                f"Broken {source.capitalize()} Ltd",
                f"{workspace_id}@qbodocs.com",
                owner_email=f"owner@{workspace_id}.example",
                is_active=False,
            ),
        )
        add_member(conn, workspace_id, member)
        store_token(conn, workspace_id, source, f"{source}-revoked-access-token", f"{source}-revoked-refresh")
        detail = f"{source.capitalize()} refused the token (401 invalid_grant)"
        mark_needs_reauth(conn, workspace_id, source, detail)
        open_incident(conn, workspace_id, source, "needs_reauth", detail, "web-test-run")
        conn.commit()
    return workspace_id
