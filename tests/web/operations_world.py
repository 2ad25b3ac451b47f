"""A workspace of its own for the operator's pages (settings, retry after fix, dashboard), so
its mapping versions and deliveries do not touch the review tests' workspaces: one Square charge
linked to a QuickBooks invoice, queued through the outbox and rejected by a company inbox that
refuses documents without the company's own field mapping."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from ledgerlink.delivery import deliver_pending
from ledgerlink.delivery.outbox import DeliveredRecord, MatchedEntry, enqueue_document
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


def rejected_delivery(address: ServerAddress, blobs: object, folder: Path) -> OperationsWorld:
    """A fresh workspace (alice is its member) with one delivery the inbox rejected."""
    workspace_id = f"web-ops-{uuid.uuid4().hex[:8]}"
    record_id = "sq-retry"
    decided_at = datetime(2026, 11, 3, tzinfo=UTC)
    with connect(address) as conn:
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
            {
                "candidate_type": "invoice",
                "candidate_id": "3001",
                "candidate_name": "Corner Cafe",
                "score": 0.97,
            }
        ]
        row = conn.execute(
            """
            insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
                route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
                candidates, explanation, model_version, decided_at, decided_by_run)
            values (%s, 'square', %s, 'sha-retry-1', 'auto_link', 0.97, 0.9, 0.5, 'invoice', '3001', %s, '{}',
                'fellegi-sunter-test', %s, 'web-ops')
            returning decision_id
            """,
            (workspace_id, record_id, json.dumps(candidates), decided_at),
        ).fetchone()
        assert row is not None
        assert enqueue_document(
            conn,
            workspace,
            decision_id=row[0],
            record=DeliveredRecord(
                "square", record_id, "sha-retry-1", "Corner Cafe", 4_321, "EUR", date(2026, 11, 2), None
            ),
            match=MatchedEntry("invoice", "3001", "Corner Cafe", 0.97),
            enqueued_at=decided_at,
        )
        conn.commit()
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
