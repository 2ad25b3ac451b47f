"""Incidents against the real warehouse and a real SMTP server: one open incident however often a
failure repeats, the owner emailed exactly once, a success resolving it, and a new failure after
that opening a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.incidents import (
    NEEDS_REAUTH,
    notify_owner_once,
    open_incident,
    open_incidents,
    resolve_incidents,
)
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sandbox.email_in import start_email_in
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace

OWNER = "owner@qbodocs.com"


@pytest.fixture()
def conn(warehouse):  # noqa: ANN001
    with connect(warehouse) as connection:
        save_workspace(
            connection,
            Workspace(
                workspace_id="incident-ws",
                display_name="Incident SAS",
                email_in_address="incident@qbodocs.com",
                owner_email=OWNER,
                is_active=False,
            ),
        )
        connection.execute("delete from ops.incidents where workspace_id = 'incident-ws'")
        connection.commit()
        yield connection


def test_a_repeating_failure_is_one_incident_announced_once(conn, tmp_path: Path) -> None:  # noqa: ANN001
    inbox = start_email_in(tmp_path / "owner", OWNER)
    try:
        notifier = SmtpEndpoint("127.0.0.1", inbox.port, sender="ledgerlink@example.com")
        for attempt in range(5):
            incident = open_incident(conn, "incident-ws", "qonto", NEEDS_REAUTH, f"401 on try {attempt}")
            conn.commit()
            notify_owner_once(conn, incident, notifier)
        assert len(inbox.mailbox.messages()) == 1
        body = inbox.mailbox.messages()[0].read_text()
        assert "Incident SAS" in body and "ledgerlink connect qonto --workspace incident-ws" in body
        [still_open] = open_incidents(conn, "incident-ws")
        assert still_open.occurrences == 5
        assert still_open.detail == "401 on try 4"

        assert resolve_incidents(conn, "incident-ws", "qonto") == 1
        assert open_incidents(conn, "incident-ws") == []
        again = open_incident(conn, "incident-ws", "qonto", NEEDS_REAUTH, "revoked")
        conn.commit()
        assert again.incident_id != still_open.incident_id
        assert notify_owner_once(conn, again, notifier) is True
        assert len(inbox.mailbox.messages()) == 2
    finally:
        inbox.stop()


def test_an_unreachable_notifier_is_retried_by_the_next_occurrence(conn, tmp_path: Path) -> None:  # noqa: ANN001
    incident = open_incident(conn, "incident-ws", "email_in", NEEDS_REAUTH, "535")
    conn.commit()
    closed_port = SmtpEndpoint("127.0.0.1", 9, sender="ledgerlink@example.com", timeout_seconds=2)
    assert notify_owner_once(conn, incident, closed_port) is False
    [recorded] = open_incidents(conn, "incident-ws")
    assert recorded.owner_notified_at is None
    inbox = start_email_in(tmp_path / "owner", OWNER)
    try:
        incident = open_incident(conn, "incident-ws", "email_in", NEEDS_REAUTH, "535")
        conn.commit()
        assert notify_owner_once(
            conn, incident, SmtpEndpoint("127.0.0.1", inbox.port, "ledgerlink@example.com")
        )
        assert len(inbox.mailbox.messages()) == 1
    finally:
        inbox.stop()
