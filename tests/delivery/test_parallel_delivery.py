"""Parallel delivery (issue 7): a workspace's outbox split into shards, each sent by its own
sender with its own database connection and SMTP session, over the real sandbox email-in. Every
row goes out exactly once, however the senders meet."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from delivery_rig import (
    DeliveryRig,
    attempt_outcomes,
    decide,
    outbox_rows,
    sender_held_at_mail,
    square_record,
)

from ledgerlink.delivery.sender import RetryPolicy, deliver_pending
from ledgerlink.delivery.shards import (
    DELIVERY_SESSIONS_VARIABLE,
    DELIVERY_SHARDS_VARIABLE,
    DeliveryShard,
    configured_max_shards,
    configured_sessions,
    plan_delivery_shards,
)
from ledgerlink.incidents import open_incidents
from ledgerlink.warehouse import ServerAddress, connect

FAST = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.05, run_deadline_seconds=30)


def _queue(conn: psycopg.Connection, rig: DeliveryRig, count: int) -> None:
    for number in range(count):
        decide(conn, rig.workspace, square_record(f"P{number:03d}"))
    conn.commit()


def _message_ids(mailbox_messages: list[Path]) -> list[str]:
    return [
        str(email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["Message-ID"]).strip()
        for path in mailbox_messages
    ]


def _send_together(
    warehouse: ServerAddress, rig: DeliveryRig, shards: list[DeliveryShard]
) -> list[dict[str, int]]:
    """Run one sender per shard, each in its own thread with its own connection, all released at
    once; return each one's counts."""
    start = threading.Barrier(len(shards))
    counts: list[dict[str, int]] = [{} for _ in shards]
    errors: list[BaseException] = []

    def send(position: int, shard: DeliveryShard) -> None:
        try:
            with connect(warehouse) as own:
                start.wait(10)
                counts[position] = deliver_pending(
                    own,
                    rig.workspace.workspace_id,
                    rig.endpoint(timeout=10),
                    rig.blobs,
                    f"run-{position}",
                    shard=shard,
                )
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=send, args=(position, shard)) for position, shard in enumerate(shards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return counts


def _assert_each_row_sent_once(conn: psycopg.Connection, rig: DeliveryRig, expected: int) -> None:
    rows = outbox_rows(conn, rig.workspace.workspace_id)
    assert len(rows) == expected
    assert {row["status"] for row in rows} == {"sent"}
    assert not any(row["is_possible_duplicate"] for row in rows)
    assert all(attempt_outcomes(conn, row["outbox_id"]) == [("sent", 250)] for row in rows)
    received = _message_ids(rig.email_in.mailbox.messages())
    assert sorted(received) == sorted(str(row["message_id"]) for row in rows)  # one message per row


def test_shards_deliver_every_row_exactly_once(conn: psycopg.Connection, rig: DeliveryRig, warehouse) -> None:  # noqa: ANN001
    _queue(conn, rig, 30)
    counts = _send_together(warehouse, rig, [DeliveryShard(index, 3) for index in range(3)])
    assert sum(shard["sent"] for shard in counts) == 30
    assert all(shard["sent"] > 0 for shard in counts), counts  # the work was split, not done by one
    _assert_each_row_sent_once(conn, rig, 30)


def test_senders_racing_on_the_same_rows_never_send_one_twice(
    conn: psycopg.Connection,
    rig: DeliveryRig,
    warehouse,  # noqa: ANN001
) -> None:
    """A whole-outbox sender and two shard senders (as after a change of shard count) start at the
    same moment and compete for every row."""
    _queue(conn, rig, 30)
    counts = _send_together(warehouse, rig, [DeliveryShard(), DeliveryShard(0, 2), DeliveryShard(1, 2)])
    assert sum(shard["sent"] for shard in counts) == 30
    _assert_each_row_sent_once(conn, rig, 30)


def test_a_sender_starting_mid_send_leaves_the_live_senders_claims_alone(
    conn: psycopg.Connection,
    rig: DeliveryRig,
    warehouse,  # noqa: ANN001
) -> None:
    """Rows in ``sending`` are recovered as interrupted only when their sender is gone. A second
    sender starting while the first one holds its claimed batch at the SMTP server must neither
    send those rows again nor mark them interrupted."""
    _queue(conn, rig, 6)
    with sender_held_at_mail(rig, warehouse) as first:
        assert {row["status"] for row in outbox_rows(conn, rig.workspace.workspace_id)} == {"sending"}
        second = deliver_pending(
            conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run-b", shard=DeliveryShard(1, 2)
        )
        assert second["sent"] == 0
        assert {row["status"] for row in outbox_rows(conn, rig.workspace.workspace_id)} == {"sending"}
    # the held session was dropped: that message is retried by the same sender, not a second one
    assert first["sent"] == 6
    rows = outbox_rows(conn, rig.workspace.workspace_id)
    assert {row["status"] for row in rows} == {"sent"}
    assert not any(row["is_possible_duplicate"] for row in rows)
    assert all(
        "interrupted" not in [outcome for outcome, _ in attempt_outcomes(conn, row["outbox_id"])]
        for row in rows
    )
    received = _message_ids(rig.email_in.mailbox.messages())
    assert sorted(received) == sorted(str(row["message_id"]) for row in rows)


def test_the_plan_gives_a_shard_per_batch_of_due_documents_up_to_the_bound(
    conn: psycopg.Connection, rig: DeliveryRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = rig.workspace.workspace_id
    assert plan_delivery_shards(conn, ws, 3) == [DeliveryShard(0, 1)]  # nothing due: one, to recover
    monkeypatch.setattr("ledgerlink.delivery.shards.DOCUMENTS_PER_SHARD", 4)
    _queue(conn, rig, 9)
    assert plan_delivery_shards(conn, ws, 5) == [DeliveryShard(index, 3) for index in range(3)]
    assert plan_delivery_shards(conn, ws, 2) == [DeliveryShard(0, 2), DeliveryShard(1, 2)]


@pytest.mark.parametrize(
    ("variable", "configured"),
    [(DELIVERY_SHARDS_VARIABLE, configured_max_shards), (DELIVERY_SESSIONS_VARIABLE, configured_sessions)],
)
def test_the_shard_bound_and_session_count_come_from_the_environment_and_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, configured: Callable[[], int]
) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert configured() >= 1
    monkeypatch.setenv(variable, "6")
    assert configured() == 6
    for bad in ("0", "-2", "three"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ValueError, match=variable):
            configured()


def test_a_shard_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError, match="shard"):
        DeliveryShard(3, 3)


def test_several_sessions_send_every_row_once_and_record_each_outcome_on_its_own(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    """One sender over three SMTP sessions at once: a refused recipient and a session dropped
    mid-batch touch only their own message; the dropped one is retried, not lost."""
    ws = rig.workspace.workspace_id
    _queue(conn, rig, 12)
    rig.proxy.plan.add("RCPT", "reply", "550 5.1.1 mailbox unavailable", pass_first=3)
    rig.proxy.plan.add("MAIL", "drop", pass_first=6)
    counts = deliver_pending(
        conn, ws, rig.endpoint(), rig.blobs, "run-1", retry=FAST, sleep=lambda _: None, sessions=3
    )
    assert (counts["sent"], counts["rejected"]) == (11, 1)
    rows = outbox_rows(conn, ws)
    outcomes = sorted(attempt_outcomes(conn, row["outbox_id"]) for row in rows)
    assert outcomes == sorted(
        [[("sent", 250)]] * 10 + [[("rejected", 550)]] + [[("transient", None), ("sent", 250)]]
    )
    assert sorted(str(row["status"]) for row in rows) == ["rejected"] + ["sent"] * 11
    assert not any(row["is_possible_duplicate"] for row in rows)
    received = _message_ids(rig.email_in.mailbox.messages())
    assert sorted(received) == sorted(str(row["message_id"]) for row in rows if row["status"] == "sent")


def test_a_refused_login_costs_one_attempt_whatever_the_sessions(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    _queue(conn, rig, 6)
    counts = deliver_pending(
        conn, ws, rig.endpoint(password="revoked"), rig.blobs, "run-1", retry=FAST, sessions=3
    )
    assert (counts["auth_refused"], counts["sent"]) == (1, 0)
    rows = outbox_rows(conn, ws)
    assert sorted(int(row["attempt_count"]) for row in rows) == [0, 0, 0, 0, 0, 1]  # type: ignore[call-overload]
    assert {row["status"] for row in rows} == {"pending"}
    assert len(open_incidents(conn, ws, "email_in")) == 1
    counts = deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-2", retry=FAST, sessions=3)
    assert counts["sent"] == 6
    assert open_incidents(conn, ws, "email_in") == []
    assert len(rig.email_in.mailbox.messages()) == 6


def test_a_lane_retrying_a_row_keeps_its_claim_alive(
    conn: psycopg.Connection,
    rig: DeliveryRig,
    warehouse,  # noqa: ANN001
) -> None:
    """A row a lane claims again for its retry is claimed on the lane's own connection: a
    sender starting meanwhile must not take it for an interrupted one and send it too."""
    ws = rig.workspace.workspace_id
    _queue(conn, rig, 2)
    # the first message goes alone; the second is refused for now, and its retry held at MAIL
    rig.proxy.plan.add("MAIL", "reply", "451 4.3.0 mailbox busy, try later", pass_first=1)
    held = rig.proxy.plan.add("MAIL", "hold")
    counts: dict[str, int] = {}
    sender_backend: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with connect(warehouse) as own:
                sender_backend.append(own.info.backend_pid)
                counts.update(
                    deliver_pending(
                        own,
                        ws,
                        rig.endpoint(),
                        rig.blobs,
                        "run-a",
                        retry=FAST,
                        sleep=lambda _: None,
                        sessions=2,
                    )
                )
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert held.reached.wait(30), "the retry never reached MAIL"
        [retried] = [row for row in outbox_rows(conn, ws) if row["status"] == "sending"]
        assert retried["claimed_by_backend"] not in (None, *sender_backend), (
            "claimed on the lane's connection"
        )
        # a sender of another shard recovers the claims of senders that are gone, and only those
        other = deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-b", shard=DeliveryShard(1, 2))
        assert other["sent"] == 0
        assert [
            row["status"] for row in outbox_rows(conn, ws) if row["outbox_id"] == retried["outbox_id"]
        ] == ["sending"]
    finally:
        held.release()
        thread.join(60)
    assert not errors, errors
    assert counts["sent"] == 2
    rows = outbox_rows(conn, ws)
    assert {row["status"] for row in rows} == {"sent"}
    assert not any(row["is_possible_duplicate"] for row in rows)
    assert all(
        "interrupted" not in [outcome for outcome, _ in attempt_outcomes(conn, row["outbox_id"])]
        for row in rows
    )
    assert sorted(_message_ids(rig.email_in.mailbox.messages())) == sorted(
        str(row["message_id"]) for row in rows
    )
