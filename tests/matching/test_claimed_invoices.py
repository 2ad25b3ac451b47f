"""The one-to-one assignment of a run respects invoices linked before it: by auto-links and by
reviewers, so an invoice a reviewer accepted or pinned for one charge is not auto-linked to
another charge in a later run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from ledgerlink.matching.routing import claimed_invoices
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace

AT = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


def _decision(
    conn: psycopg.Connection,
    workspace_id: str,
    record_id: str,
    route: str,
    invoice_id: str,
    **explanation: object,
) -> int:
    row = conn.execute(
        """
        insert into ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256,
            route, score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id,
            candidates, explanation, model_version, decided_at, decided_by_run)
        values (%s, 'square', %s, 'v1', %s, 0.7, 0.85, 0.55, 'invoice', %s, '[]', %s, 'test', %s, 'test')
        returning decision_id
        """,
        (workspace_id, record_id, route, invoice_id, Jsonb(explanation), AT),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _review_action(
    conn: psycopg.Connection,
    workspace_id: str,
    decision_id: int,
    action: str,
    invoice_id: str | None,
    sha: str,
) -> None:
    """As the review queue stores an action (``ledgerlink.review.take_review_action``): the row,
    and for a link the decision moved to the reviewer's entry."""
    conn.execute(
        """
        insert into ops.review_actions (workspace_id, decision_id, source, source_record_id,
            source_payload_sha256, action, candidate_type, candidate_id, actor, acted_at)
        select workspace_id, decision_id, source, source_record_id, %s, %s, %s, %s, 'alice', %s
        from ops.routing_decisions where decision_id = %s
        """,
        (sha, action, "invoice" if invoice_id else None, invoice_id, AT, decision_id),
    )
    if invoice_id is not None:
        conn.execute(
            "update ops.routing_decisions set top_candidate_id = %s where decision_id = %s",
            (invoice_id, decision_id),
        )


def test_reviewers_links_on_the_current_content_claim_the_whole_invoice(warehouse) -> None:  # noqa: ANN001
    workspace_id = f"claims-{uuid.uuid4().hex[:10]}"
    with connect(warehouse) as conn:
        save_workspace(
            conn,
            Workspace(
                workspace_id=workspace_id,
                display_name="Claims SAS",
                email_in_address=f"{workspace_id}@qbodocs.com",
                owner_email=f"owner-{workspace_id}@qbodocs.com",
                home_currency="EUR",
                is_active=False,
            ),
        )
        # two partial payments auto-linked to one invoice
        _decision(conn, workspace_id, "P1", "auto_link", "INV-1", claimed_amount_minor=3000)
        _decision(conn, workspace_id, "P2", "auto_link", "INV-1", claimed_amount_minor=2000)
        accepted = _decision(conn, workspace_id, "R1", "review", "INV-2", claimed_amount_minor=5000)
        _review_action(conn, workspace_id, accepted, "accept", "INV-2", "v1")
        pinned = _decision(conn, workspace_id, "R2", "review", "INV-9")
        _review_action(conn, workspace_id, pinned, "pin", "INV-3", "v1")
        refused = _decision(conn, workspace_id, "R3", "refused", "INV-4")
        _review_action(conn, workspace_id, refused, "refuse", None, "v1")
        # a link on content the record no longer has claims nothing
        outdated = _decision(conn, workspace_id, "R4", "review", "INV-5")
        _review_action(conn, workspace_id, outdated, "pin", "INV-5", "v0")
        _decision(conn, workspace_id, "R5", "review", "INV-6")

        assert claimed_invoices(conn, workspace_id) == {"INV-1": 5000, "INV-2": None, "INV-3": None}
        conn.rollback()
