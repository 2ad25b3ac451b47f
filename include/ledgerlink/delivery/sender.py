"""The email operator's work: send each pending outbox row to the workspace's QuickBooks
email-in address with its stable Message-ID, and record every attempt.

A row is marked sent in the same transaction that records the successful attempt, so a rerun
never sends a delivered document again.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledgerlink.blobstore import BlobStore
from ledgerlink.delivery.documents import qonto_attachment, render_square_receipt
from ledgerlink.mail import SmtpEndpoint, header_safe, smtp_session
from ledgerlink.money import format_money
from ledgerlink.workspaces import load_workspace

logger = logging.getLogger(__name__)


def build_message(outbox_row: dict[str, Any], sender: str, attachment: tuple[str, bytes]) -> EmailMessage:
    document = outbox_row["document"]
    source_ref = f"{outbox_row['source']}:{outbox_row['source_record_id']}"
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = outbox_row["recipient"]
    message["Message-ID"] = outbox_row["message_id"]
    message["Subject"] = header_safe(
        f"ledgerlink {source_ref}: {document.get('counterparty_name') or 'unknown counterparty'}, "
        f"{format_money(document.get('amount_minor'), document.get('currency'))}, {document.get('occurred_on')}"
    )
    message["X-Ledgerlink-Source-Record"] = header_safe(source_ref)
    message.set_content(
        f"Reconciled by ledgerlink.\n\nSource record: {source_ref}\n"
        f"Counterparty: {header_safe(document.get('counterparty_name'))}\n"
        f"Amount: {format_money(document.get('amount_minor'), document.get('currency'))}\n"
        f"Date: {document.get('occurred_on')}\n"
        f"Matched QuickBooks {document.get('matched_type')}: {document.get('matched_id')}\n"
    )
    file_name, content = attachment
    message.add_attachment(content, maintype="application", subtype="pdf", filename=header_safe(file_name))
    return message


def _document_for(
    conn: psycopg.Connection, blobs: BlobStore, outbox_row: dict[str, Any], workspace_name: str
) -> tuple[str, bytes]:
    if outbox_row["source"] == "qonto":
        return qonto_attachment(
            conn,
            blobs,
            outbox_row["workspace_id"],
            outbox_row["source_record_id"],
            outbox_row["source_payload_sha256"],
        )
    pdf = render_square_receipt(outbox_row["document"], workspace_name)
    return f"square-{outbox_row['source_record_id']}.pdf", pdf


def deliver_pending(
    conn: psycopg.Connection, workspace_id: str, smtp: SmtpEndpoint, blobs: BlobStore, run_id: str
) -> dict[str, int]:
    """Send the workspace's pending outbox rows; return counts of sent, failed and deferred."""
    workspace = load_workspace(conn, workspace_id)
    with conn.cursor(row_factory=dict_row) as cursor:
        pending = cursor.execute(
            "select * from ops.delivery_outbox where workspace_id = %s and status = 'pending' order by outbox_id",
            (workspace_id,),
        ).fetchall()
    conn.commit()
    counts = {"sent": 0, "failed": 0, "deferred": 0}
    if not pending:
        return counts
    with smtp_session(smtp) as client:
        for row in pending:
            message = build_message(row, smtp.sender, _document_for(conn, blobs, row, workspace.display_name))
            outcome, code, detail = _send(client, message)
            attempted_at = datetime.now(UTC)
            with conn.transaction():
                conn.execute(
                    "insert into ops.delivery_attempts"
                    " (outbox_id, attempted_at, attempted_by_run, outcome, smtp_code, detail)"
                    " values (%s, %s, %s, %s, %s, %s)",
                    (row["outbox_id"], attempted_at, run_id, outcome, code, detail),
                )
                conn.execute(
                    """
                    update ops.delivery_outbox set
                        status = case %(outcome)s when 'sent' then 'sent' when 'rejected' then 'failed'
                                 else status end,
                        sent_at = case when %(outcome)s = 'sent' then %(at)s else sent_at end,
                        attempt_count = attempt_count + 1,
                        last_error = case when %(outcome)s = 'sent' then null else %(detail)s end
                    where outbox_id = %(outbox_id)s
                    """,
                    {"outcome": outcome, "at": attempted_at, "detail": detail, "outbox_id": row["outbox_id"]},
                )
            counts[{"sent": "sent", "rejected": "failed"}.get(outcome, "deferred")] += 1
    return counts


def _send(client: smtplib.SMTP, message: EmailMessage) -> tuple[str, int | None, str | None]:
    try:
        client.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = next(iter(error.recipients.values()))
        return ("rejected" if code >= 500 else "transient"), code, _reply_text(reply)
    except smtplib.SMTPResponseException as error:
        if error.smtp_code == 535:
            raise  # authentication: stop the loop; the task fails and nothing is marked
        outcome = "rejected" if error.smtp_code >= 500 else "transient"
        return outcome, error.smtp_code, _reply_text(error.smtp_error)
    return "sent", 250, None


def _reply_text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
