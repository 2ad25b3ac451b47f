"""SIGKILL the sender at each boundary of the send path, rerun, and check that no document is
lost and that a second copy appears only where the email-in may have accepted the first unseen,
with the same Message-ID and flagged ``possible_duplicate``.

The fault proxy holds the sender at the boundary (it withholds a reply); for "after 250, before
the commit" the test holds the outbox row lock so the sender's commit waits.

| boundary                                        | copies in the mailbox | flagged |
|-------------------------------------------------|-----------------------|---------|
| before the outbox commit                        | 1                     | no      |
| after the outbox commit, before DATA            | 1                     | no      |
| after DATA, before the 250 (accepted; Sq + Qo)  | 2, same Message-ID    | yes     |
| after DATA, before the 250 (not taken)          | 1                     | yes     |
| after the 250, before the commit                | 2, same Message-ID    | yes     |
| mid-batch, after the 2nd DATA (accepted unseen) | 1st: 1, 2nd: 2, 3rd: 1 | 2nd only |

The sender claims a batch of rows in one commit, so in the last case the third row is in
``sending`` without ever having been tried: it is sent once, unflagged, by the rerun.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from delivery_rig import DeliveryRig, attempt_outcomes, decide, land_qonto_invoice, outbox_rows, square_record

from ledgerlink.delivery.sender import RetryPolicy, deliver_pending

HARNESS = Path(__file__).with_name("sender_process.py")


def _spawn(mode: str, workspace_id: str, argument: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(HARNESS), mode, workspace_id, argument],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HARNESS.parent,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("backend "), first
    return process, int(first.split()[1])


def _kill(process: subprocess.Popen[str], conn: psycopg.Connection, backend_pid: int) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL
    _wait_for_backend_to_go(conn, backend_pid)


def _wait_for_backend_to_go(conn: psycopg.Connection, backend_pid: int) -> None:
    """The killed sender's database session ends, releasing its delivery lock."""
    _wait_until(
        lambda: (
            conn.execute("select count(*) from pg_stat_activity where pid = %s", (backend_pid,)).fetchone()
            == (0,)
        ),
        conn,
    )


def _wait_until(
    condition: Callable[[], bool], conn: psycopg.Connection | None = None, seconds: float = 15
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = condition()
        if conn is not None:
            conn.commit()
        if done:
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _deliver_in_subprocess(rig: DeliveryRig) -> tuple[subprocess.Popen[str], int]:
    endpoint = rig.endpoint(timeout=60)
    options = {
        "smtp": {
            "host": endpoint.host,
            "port": endpoint.port,
            "sender": endpoint.sender,
            "username": endpoint.username,
            "password": endpoint.password,
            "timeout_seconds": endpoint.timeout_seconds,
        },
        "blobs": str(rig.blobs.root),
    }
    return _spawn("deliver", rig.workspace.workspace_id, json.dumps(options))


def _rerun(conn: psycopg.Connection, rig: DeliveryRig) -> dict[str, int]:
    return deliver_pending(
        conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "rerun", retry=RetryPolicy()
    )


def _mailbox_message_ids(rig: DeliveryRig) -> list[tuple[str, str | None]]:
    found = []
    for path in rig.email_in.mailbox.messages():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((str(message["Message-ID"]).strip(), message["X-Ledgerlink-Possible-Duplicate"]))
    return found


def test_killed_before_the_outbox_commit(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    process, backend = _spawn("enqueue", rig.workspace.workspace_id, "C1")
    assert process.stdout is not None and process.stdout.readline().strip() == "enqueued"
    _kill(process, conn, backend)
    assert outbox_rows(conn, rig.workspace.workspace_id) == [], "the decision and its outbox row part never"
    decide(conn, rig.workspace, square_record("C1"))  # the scorer's rerun
    conn.commit()
    assert _rerun(conn, rig)["sent"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["is_possible_duplicate"]) == ("sent", False)
    assert _mailbox_message_ids(rig) == [(row["message_id"], None)]


def test_killed_after_the_outbox_commit_before_data(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    decide(conn, rig.workspace, square_record("C2"))
    conn.commit()
    hold = rig.proxy.plan.add("MAIL", "hold")
    process, backend = _deliver_in_subprocess(rig)
    assert hold.reached.wait(20)
    _kill(process, conn, backend)
    hold.release()
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["unconfirmed_data_at"]) == ("sending", None)
    assert _rerun(conn, rig)["sent"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["is_possible_duplicate"]) == ("sent", False)
    assert _mailbox_message_ids(rig) == [(row["message_id"], None)]
    outcomes = [
        r[0]
        for r in conn.execute(
            "select outcome from ops.delivery_attempts where outbox_id = %s order by attempt_id",
            (row["outbox_id"],),
        )
    ]
    assert outcomes == ["interrupted", "sent"]


@pytest.mark.parametrize(
    ("server_accepted", "source"),
    [(True, "square"), (True, "qonto"), (False, "square")],
    ids=["accepted-unseen", "accepted-unseen-qonto", "never-accepted"],
)
def test_killed_after_data_before_the_250(
    conn: psycopg.Connection, rig: DeliveryRig, server_accepted: bool, source: str
) -> None:
    if source == "qonto":  # its document is read from the warehouse before the send path
        record = land_qonto_invoice(conn, rig.workspace, rig.blobs, "C3", "facture.pdf", b"%PDF-1.4 facture")
    else:
        record = square_record("C3")
    decide(conn, rig.workspace, record)
    conn.commit()
    hold = rig.proxy.plan.add("END_OF_DATA", "relay_then_hold" if server_accepted else "hold")
    process, backend = _deliver_in_subprocess(rig)
    assert hold.reached.wait(20)
    if server_accepted:
        _wait_until(lambda: len(rig.email_in.mailbox.messages()) == 1)
    _kill(process, conn, backend)
    hold.release()
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert row["status"] == "sending" and row["unconfirmed_data_at"] is not None
    assert _rerun(conn, rig)["sent"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["is_possible_duplicate"]) == ("sent", True)
    expected = [(row["message_id"], None)] if server_accepted else []
    assert _mailbox_message_ids(rig) == [*expected, (row["message_id"], "yes")]


def test_killed_after_the_250_before_the_commit(
    conn: psycopg.Connection, rig: DeliveryRig, warehouse
) -> None:  # noqa: ANN001
    from ledgerlink.warehouse import connect

    decide(conn, rig.workspace, square_record("C4"))
    conn.commit()
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    hold = rig.proxy.plan.add("END_OF_DATA", "delay_reply")
    process, backend = _deliver_in_subprocess(rig)
    assert hold.reached.wait(20)
    with connect(warehouse) as locker:
        # The sender's commit of "sent" will wait on this row lock.
        locker.execute(
            "select 1 from ops.delivery_outbox where outbox_id = %s for update", (row["outbox_id"],)
        )
        hold.release()
        _wait_until(
            lambda: (
                conn.execute(
                    "select count(*) from pg_stat_activity where pid = %s and wait_event_type = 'Lock'",
                    (backend,),
                ).fetchone()
                == (1,)
            ),
            conn,
        )
        assert len(rig.email_in.mailbox.messages()) == 1, "the server accepted and answered 250"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
        locker.rollback()
    _wait_for_backend_to_go(conn, backend)
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert row["status"] == "sending" and row["unconfirmed_data_at"] is not None
    assert _rerun(conn, rig)["sent"] == 1
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["is_possible_duplicate"]) == ("sent", True)
    assert _mailbox_message_ids(rig) == [(row["message_id"], None), (row["message_id"], "yes")]


def test_killed_mid_batch_keeps_what_was_sent_and_sends_the_rest_once(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    for record_id in ("M1", "M2", "M3"):
        decide(conn, rig.workspace, square_record(record_id))
    conn.commit()
    # The first message goes through; the server accepts the second, whose reply is withheld.
    hold = rig.proxy.plan.add("END_OF_DATA", "relay_then_hold", pass_first=1)
    process, backend = _deliver_in_subprocess(rig)
    assert hold.reached.wait(20)
    _wait_until(lambda: len(rig.email_in.mailbox.messages()) == 2)
    _kill(process, conn, backend)
    hold.release()
    first, second, third = outbox_rows(conn, rig.workspace.workspace_id)
    assert (first["status"], first["unconfirmed_data_at"]) == ("sent", None)
    assert second["status"] == "sending" and second["unconfirmed_data_at"] is not None
    assert (third["status"], third["unconfirmed_data_at"]) == ("sending", None), "claimed, never tried"

    assert _rerun(conn, rig)["sent"] == 2
    rows = outbox_rows(conn, rig.workspace.workspace_id)
    assert [(row["status"], row["is_possible_duplicate"]) for row in rows] == [
        ("sent", False),
        ("sent", True),
        ("sent", False),
    ]
    assert [attempt_outcomes(conn, row["outbox_id"]) for row in rows] == [
        [("sent", 250)],
        [("interrupted", None), ("sent", 250)],
        [("interrupted", None), ("sent", 250)],
    ]
    assert _mailbox_message_ids(rig) == [
        (first["message_id"], None),
        (second["message_id"], None),
        (second["message_id"], "yes"),
        (third["message_id"], None),
    ]
