"""Each failure class through the fault-injecting proxy in front of a real SMTP server:
transient failures retried within bounds, a refused login raising one incident that emails the
owner exactly once and resolves itself, permanent refusals kept with the server's reason."""

from __future__ import annotations

import email
import os

import psycopg
from delivery_rig import (
    DeliveryRig,
    attempt_outcomes,
    decide,
    land_qonto_invoice,
    outbox_rows,
    sender_held_at_mail,
    square_record,
)

from ledgerlink.delivery.sender import RetryPolicy, deliver_pending
from ledgerlink.incidents import open_incidents

FAST = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.05, run_deadline_seconds=30)


def test_transient_failures_are_retried_until_the_message_goes_once(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("T1"))
    conn.commit()
    rig.proxy.plan.add("CONNECT", "drop")  # connection error
    rig.proxy.plan.add("MAIL", "reply", "451 4.3.0 mailbox busy, try later")  # 4xx reply
    rig.proxy.plan.add("END_OF_DATA", "hold")  # timeout waiting for the final reply
    pauses: list[float] = []
    counts = deliver_pending(
        conn,
        rig.workspace.workspace_id,
        rig.endpoint(timeout=1.0),
        rig.blobs,
        "run-1",
        retry=FAST,
        sleep=pauses.append,
    )
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert counts["sent"] == 1
    assert row["status"] == "sent"
    assert attempt_outcomes(conn, row["outbox_id"]) == [
        ("transient", None),
        ("transient", 451),
        ("transient", None),
        ("sent", 250),
    ]
    # The timeout hit after DATA without a reply: the server never got the final dot here, but
    # the sender cannot know, so the resend is flagged.
    assert row["is_possible_duplicate"] is True
    assert len(rig.email_in.mailbox.messages()) == 1
    assert len(pauses) == 3 and all(0 <= pause <= 0.05 for pause in pauses)


def test_transient_failures_are_bounded_then_deferred_then_failed(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("T2"))
    conn.commit()
    for _ in range(6):
        rig.proxy.plan.add("RCPT", "reply", "421 4.7.0 too many connections")
    policy = RetryPolicy(
        max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.02, max_total_attempts=6, defer_seconds=0
    )
    first = deliver_pending(
        conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-1", retry=policy
    )
    assert first["deferred"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["attempt_count"]) == ("pending", 3)
    assert row["next_attempt_at"] is not None
    second = deliver_pending(
        conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-2", retry=policy
    )
    assert second["failed"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["attempt_count"]) == ("failed", 6)
    assert str(row["last_error"]).startswith("421 ")
    assert rig.email_in.mailbox.messages() == []


def test_transient_retries_stop_at_the_run_deadline(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    decide(conn, rig.workspace, square_record("T3"))
    conn.commit()
    for _ in range(10):
        rig.proxy.plan.add("MAIL", "reply", "450 4.2.1 slow down")
    policy = RetryPolicy(max_attempts=10, base_delay_seconds=5, max_delay_seconds=5, run_deadline_seconds=0.5)
    counts = deliver_pending(
        conn,
        rig.workspace.workspace_id,
        rig.endpoint(),
        rig.blobs,
        "run-1",
        retry=policy,
        sleep=lambda _: None,
    )
    assert counts["deferred"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert row["attempt_count"] < 10


def test_a_refused_login_stops_raises_one_incident_and_notifies_the_owner_once(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    for number in range(3):
        decide(conn, rig.workspace, square_record(f"A{number}"))
    conn.commit()
    wrong = rig.endpoint(password="revoked")
    for run in range(3):
        counts = deliver_pending(conn, ws, wrong, rig.blobs, f"run-{run}", retry=FAST, notifier=rig.notifier)
        assert counts["auth_refused"] == 1 and counts["sent"] == 0
    # one login attempt per run: the loop stopped at the first 535
    rows = outbox_rows(conn, ws)
    assert [row["attempt_count"] for row in rows] == [3, 0, 0]
    assert {row["status"] for row in rows} == {"pending"}
    [incident] = open_incidents(conn, ws, "email_in")
    assert incident.occurrences == 3 and "535" in incident.detail
    notices = rig.owner_inbox.mailbox.messages()
    assert len(notices) == 1, "the owner is emailed exactly once while the incident stays open"
    notice = email.message_from_bytes(notices[0].read_bytes())
    assert "email_in" in str(notice["Subject"])

    counts = deliver_pending(
        conn, ws, rig.endpoint(), rig.blobs, "run-fixed", retry=FAST, notifier=rig.notifier
    )
    assert counts["sent"] == 3
    assert open_incidents(conn, ws, "email_in") == []
    assert len(rig.email_in.mailbox.messages()) == 3
    assert len(rig.owner_inbox.mailbox.messages()) == 1


def test_a_535_from_the_relay_mid_session_is_an_auth_failure_too(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("A9"))
    conn.commit()
    rig.proxy.plan.add("MAIL", "reply", "535 5.7.8 Authentication credentials invalid")
    counts = deliver_pending(conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-1", retry=FAST)
    assert counts["auth_refused"] == 1
    assert len(open_incidents(conn, rig.workspace.workspace_id, "email_in")) == 1


def test_permanent_refusals_are_kept_as_rejections_with_the_reason(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    decide(conn, rig.workspace, square_record("P1"))  # refused by the proxy as unsupported content
    big_pdf = b"%PDF-1.4\n" + os.urandom(600_000)  # over the email-in's 400 kB limit: 552
    decide(conn, rig.workspace, land_qonto_invoice(conn, rig.workspace, rig.blobs, "P2", "big.pdf", big_pdf))
    docx = b"PK\x03\x04 word document"  # a format QuickBooks refuses and nothing can convert
    decide(conn, rig.workspace, land_qonto_invoice(conn, rig.workspace, rig.blobs, "P3", "bill.docx", docx))
    conn.commit()
    rig.proxy.plan.add("END_OF_DATA", "reply", "554 5.6.1 unsupported content")
    counts = deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-1", retry=FAST)
    assert counts["rejected"] == 3
    rows = outbox_rows(conn, ws)
    assert [row["status"] for row in rows] == ["rejected", "rejected", "rejected"]
    assert rows[0]["rejected_reason"] == "554 5.6.1 unsupported content"
    assert attempt_outcomes(conn, rows[1]["outbox_id"]) == [("rejected", 552)]
    assert str(rows[1]["rejected_reason"]).startswith("552 ")
    assert "bill.docx" in str(rows[2]["rejected_reason"]) and "JPG, PNG, GIF, PDF" in str(
        rows[2]["rejected_reason"]
    )
    assert rig.email_in.mailbox.messages() == []


def test_a_bounce_from_the_email_in_states_the_reason(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    ws = rig.workspace.workspace_id
    decide(conn, rig.workspace, square_record("B1"))
    conn.commit()
    unregistered = rig.endpoint()
    unregistered = type(unregistered)(**{**unregistered.__dict__, "sender": "someone@else.example"})
    counts = deliver_pending(conn, ws, unregistered, rig.blobs, "run-1", retry=FAST)
    assert counts["rejected"] == 1
    [row] = outbox_rows(conn, ws)
    assert "not registered" in str(row["rejected_reason"])


def test_only_one_sender_works_on_a_workspace(conn: psycopg.Connection, rig: DeliveryRig, warehouse) -> None:  # noqa: ANN001
    decide(conn, rig.workspace, square_record("L1"))
    conn.commit()
    with sender_held_at_mail(rig, warehouse):
        second = deliver_pending(
            conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-b", retry=FAST
        )
        assert sum(second.values()) == 0
    assert len(rig.email_in.mailbox.messages()) == 1


def test_one_session_carries_on_past_a_refused_recipient_and_a_dropped_connection(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    for record_id in ("S1", "S2", "S3", "S4"):
        decide(conn, rig.workspace, square_record(record_id))
    conn.commit()
    rig.proxy.plan.add("RCPT", "reply", "550 5.1.1 mailbox unavailable", pass_first=1)  # S2, then RSET
    rig.proxy.plan.add("MAIL", "drop", pass_first=2)  # S3: the session is gone mid-batch
    counts = deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-1", retry=FAST, sleep=lambda _: None)
    assert (counts["sent"], counts["rejected"]) == (3, 1)
    rows = outbox_rows(conn, ws)
    assert [attempt_outcomes(conn, row["outbox_id"]) for row in rows] == [
        [("sent", 250)],
        [("rejected", 550)],
        [("transient", None), ("sent", 250)],
        [("sent", 250)],
    ]
    assert [row["is_possible_duplicate"] for row in rows] == [False, False, False, False]
    assert len(rig.email_in.mailbox.messages()) == 3


def test_a_row_superseded_while_its_retry_waits_stays_superseded(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    """A new version of the record queued during the backoff supersedes the row: the sender gives
    up the retry and leaves the row superseded, so the old content is never sent later."""
    ws = rig.workspace.workspace_id
    decide(conn, rig.workspace, square_record("W1"))
    conn.commit()
    rig.proxy.plan.add("MAIL", "reply", "451 4.3.0 mailbox busy, try later")

    def new_version_arrives(_: float) -> None:
        decide(conn, rig.workspace, square_record("W1", version="v2", amount_minor=5100))
        conn.commit()

    counts = deliver_pending(
        conn, ws, rig.endpoint(), rig.blobs, "run-1", retry=FAST, sleep=new_version_arrives
    )
    assert (counts["sent"], counts["deferred"], counts["failed"]) == (0, 0, 0)
    first, second = outbox_rows(conn, ws)
    assert first["status"] == "superseded"
    assert (second["status"], second["next_attempt_at"]) == ("pending", None)
    assert attempt_outcomes(conn, first["outbox_id"]) == [("transient", 451)]
    assert deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-2", retry=FAST)["sent"] == 1
    assert [row["status"] for row in outbox_rows(conn, ws)] == ["superseded", "sent"]
    assert len(rig.email_in.mailbox.messages()) == 1
