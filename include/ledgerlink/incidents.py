"""Incidents: a connection that stopped working (a source refusing its token, the email-in SMTP
refusing its login) for one workspace.

One incident stays open per workspace, channel and kind however often the failure repeats. The
workspace owner is emailed once when it opens, never again while it stays open; the next
success on that channel resolves it.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import psycopg
from psycopg.rows import class_row

from ledgerlink.mail import SmtpEndpoint, header_safe, smtp_session

logger = logging.getLogger(__name__)

#: A source or the email-in refused ledgerlink's credentials; a person must reconnect.
NEEDS_REAUTH = "needs_reauth"


@dataclass(frozen=True)
class Incident:
    incident_id: int
    workspace_id: str
    channel: str
    kind: str
    detail: str
    opened_at: datetime
    occurrences: int
    owner_notified_at: datetime | None
    resolved_at: datetime | None


def open_incident(
    conn: psycopg.Connection,
    workspace_id: str,
    channel: str,
    kind: str,
    detail: str,
    run_id: str | None = None,
) -> Incident:
    """Open an incident, or count one more occurrence of the open one."""
    with conn.cursor(row_factory=class_row(Incident)) as cursor:
        incident = cursor.execute(
            """
            insert into ops.incidents (workspace_id, channel, kind, detail, opened_by_run)
            values (%s, %s, %s, %s, %s)
            on conflict (workspace_id, channel, kind) where resolved_at is null do update set
                last_seen_at = now(), occurrences = ops.incidents.occurrences + 1, detail = excluded.detail
            returning incident_id, workspace_id, channel, kind, detail, opened_at, occurrences,
                      owner_notified_at, resolved_at
            """,
            (workspace_id, channel, kind, detail, run_id),
        ).fetchone()
    assert incident is not None
    return incident


def open_incidents(conn: psycopg.Connection, workspace_id: str, channel: str | None = None) -> list[Incident]:
    with conn.cursor(row_factory=class_row(Incident)) as cursor:
        return cursor.execute(
            """
            select incident_id, workspace_id, channel, kind, detail, opened_at, occurrences,
                   owner_notified_at, resolved_at
            from ops.incidents
            where workspace_id = %s and resolved_at is null and (%s::text is null or channel = %s)
            order by incident_id
            """,
            (workspace_id, channel, channel),
        ).fetchall()


def resolve_incidents(
    conn: psycopg.Connection, workspace_id: str, channel: str, *, resolved_by: str | None = None
) -> int:
    """Close the channel's open incidents after a success (or a person reconnecting it, named by
    ``resolved_by``); return how many were closed."""
    cursor = conn.execute(
        "update ops.incidents set resolved_at = now(), resolved_by = %s"
        " where workspace_id = %s and channel = %s and resolved_at is null",
        (resolved_by, workspace_id, channel),
    )
    return cursor.rowcount


def notify_owner_once(conn: psycopg.Connection, incident: Incident, notifier: SmtpEndpoint) -> bool:
    """Email the workspace owner about the incident unless that was already done; return whether
    an email went out now. The claim is committed before sending, so two tasks never both send;
    a failed send releases the claim, so the next occurrence tries again."""
    with conn.transaction():
        claimed = conn.execute(
            """
            update ops.incidents as i set owner_notified_at = now(), notification_error = null
            from ops.workspaces as w
            where i.incident_id = %s and i.owner_notified_at is null and w.workspace_id = i.workspace_id
            returning w.owner_email, w.display_name
            """,
            (incident.incident_id,),
        ).fetchone()
    if claimed is None:
        return False
    owner_email, workspace_name = claimed
    if not owner_email:
        logger.warning(
            "workspace %s has no owner email; incident %s is unannounced",
            incident.workspace_id,
            incident.incident_id,
        )
        _release_claim(conn, incident, "the workspace has no owner email")
        return False
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = notifier.sender
    message["To"] = owner_email
    message["Subject"] = header_safe(f"ledgerlink: {incident.channel} needs attention for {workspace_name}")
    message.set_content(
        f"ledgerlink stopped using the {incident.channel} connection of {workspace_name}.\n\n"
        f"Reason: {incident.detail}\n\n"
        "Nothing is lost: records wait until the connection works again. Reconnect it with\n"
        f"  ledgerlink connect {incident.channel} --workspace {incident.workspace_id}\n"
        "or from the ledgerlink status page. This message is sent once per incident.\n"
    )
    try:
        with smtp_session(notifier) as client:
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        logger.warning("could not notify the owner of incident %s: %s", incident.incident_id, error)
        _release_claim(conn, incident, str(error))
        return False
    return True


def _release_claim(conn: psycopg.Connection, incident: Incident, reason: str) -> None:
    with conn.transaction():
        conn.execute(
            "update ops.incidents set owner_notified_at = null, notification_error = %s where incident_id = %s",
            (reason, incident.incident_id),
        )
