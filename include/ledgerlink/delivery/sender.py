"""The email operator's work: send each pending outbox row to the workspace's QuickBooks
email-in address with its stable Message-ID, and record every attempt.

The send path commits at two points before any reply can be lost, so a crash anywhere leaves a
row that tells the next run what may have happened:

1. ``status = 'sending'`` (the claim), committed before connecting, for a batch of rows at once
   (:data:`CLAIM_BATCH_SIZE`, one attempt row each);
2. ``unconfirmed_data_at``, committed just before each message's DATA command and cleared by the
   server's reply to it.

A row found in ``sending`` by the next run was interrupted. Without ``unconfirmed_data_at`` the
server never saw the message (it may have been claimed in a batch and never tried), and it is
simply sent. With it the email-in may have accepted the message unseen; it is sent again with
the same Message-ID and flagged ``is_possible_duplicate`` (nothing is lost; a second copy is
possible only in that window). A crash mid-batch therefore keeps the messages already recorded,
flags the one in flight, and sends the rest once.

The outcome of an attempt (sent, refused, transient) is committed without waiting for the WAL
flush (``synchronous_commit = off``): a sender crash cannot lose it, since PostgreSQL has it
already; only a crash of the database server within a fraction of a second can, and then the
row is found in ``sending`` with its durable DATA mark, the case above. The next message's DATA
mark, committed synchronously, flushes it anyway. That leaves one flush per message and one per
batch, instead of three per message.

Senders run in parallel, one per shard (:class:`DeliveryShard`): Airflow maps the email
operator over a workspace's shards, so the executor runs them as parallel processes (LocalExecutor)
or spreads them over workers (CeleryExecutor). Shards are disjoint, and every step is safe when
two senders still meet on a row (two runs, a shard retried while a stray copy of it runs, a
different shard count): a row is claimed only while ``pending``, in a statement that skips rows
another claim has locked, so exactly one sender claims it; and each claim records its sender's
database backend, which holds an advisory lock (:data:`CLAIMER_LOCK`) while it runs, so only
the claims of a sender that is gone are recovered as interrupted, never a live one's.

Within a sender, messages go over a few SMTP sessions at once (``sessions``, the DAG's tasks
take ``LEDGERLINK_DELIVERY_SESSIONS``), each a lane with its own thread and database connection
(:class:`_SendingLanes`): a message spends most of its time waiting on the server's replies and on
its durable DATA mark, and the lanes wait side by side while the sender renders the next batch.
Every step above holds per message and lane; a record's rows always take the same lane, so its
versions go out in order. Each lane's messages share one SMTP session
(:class:`ledgerlink.mail.ReusedSmtpSession`): RSET after a refused MAIL, RCPT or DATA; a new
session after a dropped connection, a timeout or a refused message.

Failure classes: 4xx replies, connection errors and timeouts are transient (retried with
exponential backoff and full jitter, bounded in attempts and time); ``535`` stops the run and
opens one ``email_in`` incident that emails the owner once; other 5xx replies are permanent
rejections, kept with the server's reason.
"""

from __future__ import annotations

import logging
import random
import smtplib
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from ledgerlink.blobstore import BlobStore
from ledgerlink.delivery.documents import DocumentRefused, DocumentRenderer, document_source
from ledgerlink.delivery.shards import WHOLE_OUTBOX, DeliveryShard
from ledgerlink.incidents import NEEDS_REAUTH, notify_owner_once, open_incident, resolve_incidents
from ledgerlink.mail import ReusedSmtpSession, SmtpEndpoint, header_safe
from ledgerlink.money import format_money
from ledgerlink.progress import ProgressLog
from ledgerlink.workspaces import load_workspace

logger = logging.getLogger(__name__)

#: The incident channel of the email-in connection.
EMAIL_IN_CHANNEL = "email_in"

Outcome = Literal["sent", "transient", "rejected", "auth_refused"]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on transient failures: per row and run, ``max_attempts`` tries spaced by full-jitter
    exponential backoff, all within ``run_deadline_seconds``; across runs, a row that has failed
    ``max_total_attempts`` times becomes ``failed`` (shown, and retryable after a fix)."""

    max_attempts: int = 4
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    run_deadline_seconds: float = 300.0
    max_total_attempts: int = 12
    defer_seconds: float = 900.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return rng() * min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1))


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    smtp_code: int | None
    detail: str | None


def build_message(
    outbox_row: dict[str, Any], sender: str, attachment: tuple[str, bytes, str] | tuple[str, bytes]
) -> EmailMessage:
    """The email for one outbox row. Every value from a record passes :func:`header_safe` before
    it reaches a header."""
    document = outbox_row["document"]
    source_ref = f"{outbox_row['source']}:{outbox_row['source_record_id']}"
    amount = format_money(document.get("amount_minor"), document.get("currency"))
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = outbox_row["recipient"]
    message["Message-ID"] = outbox_row["message_id"]
    message["Subject"] = header_safe(
        f"ledgerlink {source_ref}: {document.get('counterparty_name') or 'unknown counterparty'}, "
        f"{amount}, {document.get('occurred_on')}"
    )
    message["X-Ledgerlink-Source-Record"] = header_safe(source_ref)
    if document.get("mapping_version") is not None:
        message["X-Ledgerlink-Mapping-Version"] = header_safe(document["mapping_version"])
    if outbox_row.get("is_possible_duplicate"):
        message["X-Ledgerlink-Possible-Duplicate"] = "yes"
    if outbox_row.get("supersedes_message_id"):
        message["References"] = header_safe(outbox_row["supersedes_message_id"])
    message.set_content(
        f"Reconciled by ledgerlink.\n\nSource record: {source_ref}\n"
        f"Counterparty: {header_safe(document.get('counterparty_name'))}\n"
        f"Amount: {amount}\n"
        f"Date: {document.get('occurred_on')}\n"
        f"Matched QuickBooks {document.get('matched_type')}: {document.get('matched_id')}\n"
        f"Mapping version: {document.get('mapping_version')}\n"
    )
    file_name, content, *content_type = attachment
    maintype, _, subtype = (content_type[0] if content_type else "application/pdf").partition("/")
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=header_safe(file_name))
    return message


#: Outbox rows claimed, and their documents rendered, together: one commit claims them all.
CLAIM_BATCH_SIZE = 50

#: Advisory lock class each sender holds, keyed by its backend pid, while it runs (module doc).
CLAIMER_LOCK = "ledgerlink.delivery.claimer"


def deliver_pending(
    conn: psycopg.Connection,
    workspace_id: str,
    smtp: SmtpEndpoint,
    blobs: BlobStore,
    run_id: str,
    *,
    notifier: SmtpEndpoint | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    render_processes: int = 0,
    shard: DeliveryShard = WHOLE_OUTBOX,
    sessions: int = 1,
) -> dict[str, int]:
    """Send the due outbox rows of the workspace's ``shard`` (by default its whole outbox);
    return counts of sent, rejected, deferred, failed and auth_refused. Only one sender works on
    a shard at a time (an advisory lock that a killed process releases with its connection);
    senders of other shards work alongside. Documents render ahead of the sending, in
    ``render_processes`` worker processes or, by default, in this one: on this project's shared
    two-core machine, two worker processes delivered 17-22 documents/s against 35-36 inline.
    Messages go over ``sessions`` SMTP sessions at once (:class:`_SendingLanes`); with one, over
    this connection, in this thread."""
    retry = retry or RetryPolicy()
    counts = {"sent": 0, "rejected": 0, "deferred": 0, "failed": 0, "auth_refused": 0}
    workspace = load_workspace(conn, workspace_id)
    locked = conn.execute(
        "select pg_try_advisory_lock(hashtext(%s))", (f"delivery:{workspace_id}:{shard.index}/{shard.count}",)
    ).fetchone()
    conn.commit()
    if not locked or not locked[0]:
        logger.info("another sender is delivering %s for workspace %s", shard, workspace_id)
        return counts
    # held while this sender runs: it tells the others its claims are alive (module doc)
    _hold_claimer_lock(conn)
    try:
        _recover_interrupted(conn, workspace_id)
        deadline = time.monotonic() + retry.run_deadline_seconds
        due = _due_rows(conn, workspace_id, shard)
        batches = [due[start : start + CLAIM_BATCH_SIZE] for start in range(0, len(due), CLAIM_BATCH_SIZE)]
        progress = ProgressLog(
            logger, f"workspace {workspace_id}, {shard}: outbox rows handled", total=len(due)
        )
        with (
            _SendingLanes(conn, smtp, max(1, min(sessions, len(due)))) as lanes,
            DocumentRenderer(workspace.display_name, render_processes) as renderer,
        ):
            run = _SendRun(conn, workspace_id, run_id, retry, deadline, sleep, notifier, counts, progress)
            upcoming = _start_rendering(conn, blobs, renderer, batches[0]) if batches else []
            for index in range(len(batches)):
                # the lanes send this batch while the next one renders
                sending = run.dispatch(lanes, upcoming)
                has_next = index + 1 < len(batches)
                upcoming = _start_rendering(conn, blobs, renderer, batches[index + 1]) if has_next else []
                if run.collect(sending):
                    break
        progress.finish()
    finally:
        conn.rollback()  # an error may have left a transaction open
        conn.execute("select pg_advisory_unlock(hashtext(%s), pg_backend_pid())", (CLAIMER_LOCK,))
        conn.execute(
            "select pg_advisory_unlock(hashtext(%s))",
            (f"delivery:{workspace_id}:{shard.index}/{shard.count}",),
        )
        conn.commit()
    return counts


def _hold_claimer_lock(conn: psycopg.Connection) -> None:
    """Take the claimer lock keyed by this connection's backend: the rows it claims are alive
    while the connection is (module doc)."""
    conn.execute("select pg_advisory_lock(hashtext(%s), pg_backend_pid())", (CLAIMER_LOCK,))
    conn.commit()


class _SendingLanes:
    """The sessions a sender sends over at once. Each lane is one SMTP session with the
    database connection its crash boundaries commit on, fed in order by one thread: while one
    lane waits on the server's reply or on its durable DATA mark, the others send. A record's
    rows always take the same lane, so they go out in order.

    With one lane, it is the sender's own connection and thread, as a sender without lanes.
    Otherwise each lane opens a connection of its own to the same database, holding the claimer
    lock keyed by its backend, since a retry re-claims the row on it."""

    def __init__(self, conn: psycopg.Connection, smtp: SmtpEndpoint, count: int) -> None:
        if count < 1:
            raise ValueError(f"a sender needs at least one SMTP session, got {count}")
        self._own_connections: list[psycopg.Connection] = []
        self._threads: list[ThreadPoolExecutor] = []
        self.lanes: list[tuple[psycopg.Connection, ReusedSmtpSession]] = []
        try:
            for _ in range(count):
                lane_conn = conn
                if count > 1:
                    lane_conn = psycopg.connect(conn.info.dsn, password=conn.info.password)
                    self._own_connections.append(lane_conn)
                    _hold_claimer_lock(lane_conn)
                    self._threads.append(ThreadPoolExecutor(1, thread_name_prefix="delivery-lane"))
                self.lanes.append((lane_conn, ReusedSmtpSession(smtp)))
        except BaseException:
            self.close(cancel=True)
            raise

    def lane_of(self, row: dict[str, Any]) -> int:
        """The row's lane: its record's, hashed (stable across runs, unlike ``hash``)."""
        return zlib.crc32(f"{row['source']}:{row['source_record_id']}".encode()) % len(self.lanes)

    def submit(self, lane: int, send: Callable[..., _LaneOutcome], *args: Any) -> Future[_LaneOutcome]:
        """Run ``send(connection, session, *args)`` on the lane: in its thread, or at once when
        the sender has one lane."""
        lane_conn, session = self.lanes[lane]
        if self._threads:
            return self._threads[lane].submit(send, lane_conn, session, *args)
        future: Future[_LaneOutcome] = Future()
        future.set_result(send(lane_conn, session, *args))  # an error propagates here, as before
        return future

    def close(self, *, cancel: bool = False) -> None:
        for thread in self._threads:
            thread.shutdown(wait=True, cancel_futures=cancel)
        for _, session in self.lanes:
            session.close()
        for lane_conn in self._own_connections:
            lane_conn.close()  # releases its claimer lock

    def __enter__(self) -> _SendingLanes:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(cancel=exc_type is not None)


#: What a lane did with a claimed row: a key of the run's counts, "unsent" (the run stopped
#: before the row was tried) or "moved_on" (see ``_defer``), and the last attempt's result.
_LaneOutcome = tuple[str, AttemptResult | None]


Rendering = list[tuple[dict[str, Any], "Future[tuple[str, bytes, str]]"]]


def _start_rendering(
    conn: psycopg.Connection, blobs: BlobStore, renderer: DocumentRenderer, outbox_ids: list[int]
) -> Rendering:
    """Each row with its document's future; the reads commit before the send path starts."""
    rendering: Rendering = []
    for row in _load_rows(conn, outbox_ids):
        try:
            future = renderer.submit(document_source(conn, blobs, row))
        except DocumentRefused as refusal:
            future = Future()
            future.set_exception(refusal)
        rendering.append((row, future))
    # End the read so each step of the send path commits on its own (a conn.transaction()
    # inside an open transaction would only be a savepoint).
    conn.commit()
    return rendering


@dataclass
class _SendRun:
    """What a sender's run keeps across its batches: its settings, counts and progress, and
    whether one message has gone through yet."""

    conn: psycopg.Connection
    workspace_id: str
    run_id: str
    retry: RetryPolicy
    deadline: float
    sleep: Callable[[float], None]
    notifier: SmtpEndpoint | None
    counts: dict[str, int]
    progress: ProgressLog
    stop: threading.Event = field(default_factory=threading.Event)
    login_proven: bool = False

    def dispatch(
        self, lanes: _SendingLanes, rendering: Rendering
    ) -> list[tuple[int, int, Future[_LaneOutcome]]]:
        """Claim the batch's rendered rows in one commit and hand each to its record's lane; a
        row no document can be made for is kept as a rejection with the reason. The run's first
        message goes alone, the others once it is through: a refused login then costs one
        attempt, not one per lane. Returns each claimed row's id, attempt and outcome to come."""
        attachments = {}
        for row, future in rendering:
            try:
                attachments[row["outbox_id"]] = (row, future.result())
            except DocumentRefused as refusal:
                _reject_without_sending(self.conn, row["outbox_id"], self.run_id, str(refusal))
                self.counts["rejected"] += 1
                self.progress.advance()
        claims = _claim(self.conn, list(attachments), self.run_id)
        sending = []
        for outbox_id, (row, attachment) in attachments.items():
            if outbox_id not in claims:
                self.progress.advance()  # superseded by a newer version of the record since it was read
                continue
            attempt_id = claims[outbox_id]
            outcome = lanes.submit(lanes.lane_of(row), self._send, row, attempt_id, attachment)
            if not self.login_proven:
                outcome.result()  # the first message's outcome (or the lane's error, raised here)
                self.login_proven = True
            sending.append((outbox_id, attempt_id, outcome))
        return sending

    def _send(
        self,
        conn: psycopg.Connection,
        session: ReusedSmtpSession,
        row: dict[str, Any],
        attempt_id: int,
        attachment: tuple[str, bytes, str],
    ) -> _LaneOutcome:
        """One claimed row, on its lane: sent, refused, or deferred after its transient
        failures; left untried once the run stops."""
        if self.stop.is_set():
            return "unsent", None
        result = _deliver_one(
            conn, row, attempt_id, session, attachment, self.run_id, self.retry, self.deadline, self.sleep
        )
        if result.outcome == "auth_refused":
            self.stop.set()  # every further row would be refused the same way
            return "auth_refused", result
        if result.outcome == "transient":
            return _defer(conn, row["outbox_id"], self.retry), result
        return result.outcome, result

    def collect(self, sending: list[tuple[int, int, Future[_LaneOutcome]]]) -> bool:
        """Count the batch's outcomes, in the order its rows were claimed; give back the rows
        left untried when the email-in refused the login, and raise its incident. Return whether
        the run must stop."""
        sent_before = self.counts["sent"]
        refused: AttemptResult | None = None
        untried: dict[int, int] = {}
        for outbox_id, attempt_id, outcome in sending:
            key, result = outcome.result()
            self.progress.advance()
            if key == "unsent":
                untried[outbox_id] = attempt_id
            if key in ("unsent", "moved_on"):
                continue
            self.counts[key] += 1
            if key == "auth_refused":
                refused = refused or result
        if refused is not None:
            _release_claims(self.conn, untried)
            _raise_auth_incident(self.conn, self.workspace_id, refused, self.run_id, self.notifier)
            return True
        if self.counts["sent"] > sent_before:
            with self.conn.transaction():
                resolve_incidents(self.conn, self.workspace_id, EMAIL_IN_CHANNEL)
        return False


def _recover_interrupted(conn: psycopg.Connection, workspace_id: str) -> None:
    """Rows a sender that is gone (killed, or ended by an error) left in ``sending`` go back to
    pending; those that had reached DATA without a reply are flagged as possible duplicates
    before they are sent again. The claims of a live sender, whatever its shard, are left alone:
    its claimer lock is held (module doc)."""
    claimers = [
        row[0]
        for row in conn.execute(
            "select distinct claimed_by_backend from ops.delivery_outbox"
            " where workspace_id = %s and status = 'sending'",
            (workspace_id,),
        )
    ]
    conn.commit()
    for claimer in claimers:
        if claimer is None:  # claimed before claims named their sender (migration 019)
            _recover_claims_of(conn, workspace_id, None)
            continue
        # Succeeds only if no live session holds it (or this one does: its own earlier call
        # in this session is over); held until its rows are recovered, so no new sender that
        # got the same backend pid claims rows meanwhile.
        free = conn.execute(
            "select pg_try_advisory_lock(hashtext(%s), %s)", (CLAIMER_LOCK, claimer)
        ).fetchone()
        conn.commit()
        if not free or not free[0]:
            continue  # a live sender's claims
        try:
            _recover_claims_of(conn, workspace_id, claimer)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s), %s)", (CLAIMER_LOCK, claimer))
            conn.commit()


def _recover_claims_of(conn: psycopg.Connection, workspace_id: str, claimer: int | None) -> None:
    with conn.transaction():
        recovered = conn.execute(
            """
            update ops.delivery_outbox set status = 'pending', next_attempt_at = null,
                is_possible_duplicate = is_possible_duplicate or unconfirmed_data_at is not null,
                unconfirmed_data_at = null
            where workspace_id = %s and status = 'sending' and claimed_by_backend is not distinct from %s
            returning outbox_id
            """,
            (workspace_id, claimer),
        ).fetchall()
        conn.execute(
            "update ops.delivery_attempts set outcome = 'interrupted', finished_at = now()"
            " where outcome = 'started' and outbox_id = any(%s)",
            ([row[0] for row in recovered],),
        )


def _due_rows(conn: psycopg.Connection, workspace_id: str, shard: DeliveryShard) -> list[int]:
    rows = conn.execute(
        # the shard key (ledgerlink.delivery.shards): the record, hashed; cast before abs,
        # which overflows on the smallest integer
        """
        select outbox_id from ops.delivery_outbox
        where workspace_id = %s and status = 'pending' and (next_attempt_at is null or next_attempt_at <= now())
            and abs(hashtext(source || ':' || source_record_id)::bigint) %% %s = %s
        order by outbox_id
        """,
        (workspace_id, shard.count, shard.index),
    ).fetchall()
    conn.commit()
    return [row[0] for row in rows]


def _load_rows(conn: psycopg.Connection, outbox_ids: list[int]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            """
            select o.*, previous.message_id as supersedes_message_id
            from ops.delivery_outbox as o
            left join ops.delivery_outbox as previous on previous.outbox_id = o.supersedes_outbox_id
            where o.outbox_id = any(%s)
            order by o.outbox_id
            """,
            (outbox_ids,),
        ).fetchall()
    conn.commit()
    return rows


def _claim(conn: psycopg.Connection, outbox_ids: list[int], run_id: str) -> dict[int, int]:
    """Claim the rows still pending for an attempt each, in one commit (the first crash
    boundary, module doc); return each claimed row's attempt id. A row another transaction
    holds at this moment (most likely another sender's claim) is skipped rather than waited for:
    two batch claims over the same rows, each locking them in its own order, could otherwise
    deadlock. A skipped row nobody claims stays pending for the next run."""
    with conn.transaction():
        pending = conn.execute(
            """
            update ops.delivery_outbox set status = 'sending', attempt_count = attempt_count + 1,
                claimed_by_backend = pg_backend_pid()
            where outbox_id in (
                select outbox_id from ops.delivery_outbox
                where outbox_id = any(%s) and status = 'pending'
                for update skip locked)
            returning outbox_id
            """,
            (outbox_ids,),
        ).fetchall()
        claimed = conn.execute(
            "insert into ops.delivery_attempts (outbox_id, attempted_at, attempted_by_run, outcome, smtp_phase)"
            " select outbox_id, now(), %s, 'started', 'connect' from unnest(%s::bigint[]) as outbox_id"
            " returning outbox_id, attempt_id",
            (run_id, [row[0] for row in pending]),
        ).fetchall()
    return {outbox_id: attempt_id for outbox_id, attempt_id in claimed}


def _release_claims(conn: psycopg.Connection, claims: dict[int, int]) -> None:
    """Give back rows claimed in this run but never tried: their attempts never happened."""
    if not claims:
        return
    with conn.transaction():
        conn.execute("delete from ops.delivery_attempts where attempt_id = any(%s)", (list(claims.values()),))
        conn.execute(
            "update ops.delivery_outbox set status = 'pending', attempt_count = attempt_count - 1"
            " where outbox_id = any(%s)",
            (list(claims),),
        )
    claims.clear()


def _deliver_one(
    conn: psycopg.Connection,
    row: dict[str, Any],
    attempt_id: int,
    session: ReusedSmtpSession,
    attachment: tuple[str, bytes, str],
    run_id: str,
    retry: RetryPolicy,
    deadline: float,
    sleep: Callable[[float], None],
) -> AttemptResult:
    attempt = 1
    while True:
        result = _attempt(conn, row, attempt_id, session, attachment)
        if result.outcome != "transient" or attempt >= retry.max_attempts:
            return result
        pause = retry.delay(attempt)
        if time.monotonic() + pause >= deadline:
            return result
        sleep(pause)
        attempt += 1
        outbox_id = row["outbox_id"]
        claimed = _claim(conn, [outbox_id], run_id)
        if outbox_id not in claimed:  # superseded while waiting
            return result
        attempt_id = claimed[outbox_id]
        [row] = _load_rows(conn, [outbox_id])  # it may now be flagged a possible duplicate


def _attempt(
    conn: psycopg.Connection,
    row: dict[str, Any],
    attempt_id: int,
    session: ReusedSmtpSession,
    attachment: tuple[str, bytes, str],
) -> AttemptResult:
    """One try of a claimed row: talk SMTP, record. Each commit here is a crash boundary (module
    doc)."""
    outbox_id = row["outbox_id"]
    smtp = session.endpoint
    message = build_message(row, smtp.sender, attachment)
    reached_data = False
    try:
        client = session.client()
        _expect(client.mail(smtp.sender), (250,))
        _expect(client.rcpt(row["recipient"]), (250, 251))
        with conn.transaction():
            conn.execute(
                "update ops.delivery_outbox set unconfirmed_data_at = now() where outbox_id = %s",
                (outbox_id,),
            )
            conn.execute(
                "update ops.delivery_attempts set smtp_phase = 'data' where attempt_id = %s",
                (attempt_id,),
            )
        reached_data = True
        code, reply = client.data(message.as_bytes())
        if code != 250:
            session.discard()  # a fresh session for the next message, whatever state this one is in
            raise smtplib.SMTPDataError(code, reply)
        session.message_sent()
        # Recorded before the next message: the window in which an accepted message is not
        # yet marked sent is only this commit.
        sent = AttemptResult("sent", code, None)
        _record(conn, outbox_id, attempt_id, sent, keep_unconfirmed=False)
        return sent
    except smtplib.SMTPResponseException as error:
        session.reset()  # MAIL, RCPT or DATA refused: the next message starts a clean transaction
        result = _classify(error.smtp_code, error.smtp_error)
        reached_data = False  # the server answered: it did not accept the message
    except (smtplib.SMTPServerDisconnected, OSError) as error:
        # Connection errors and timeouts; after DATA the acceptance is unknown, so the
        # unconfirmed mark stays for the next claim to turn into a possible-duplicate flag.
        session.discard()
        result = AttemptResult("transient", None, f"{type(error).__name__}: {error}")
    _record(conn, outbox_id, attempt_id, result, keep_unconfirmed=reached_data and result.outcome != "sent")
    return result


def _expect(response: tuple[int, bytes], codes: tuple[int, ...]) -> None:
    code, reply = response
    if code not in codes:
        raise smtplib.SMTPResponseException(code, reply)


def _classify(code: int, reply: bytes | str) -> AttemptResult:
    text = f"{code} " + (reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply))
    if code == 535:
        return AttemptResult("auth_refused", code, text)
    if 400 <= code < 500 or code < 200:
        return AttemptResult("transient", code, text)
    return AttemptResult("rejected", code, text)


def _record(
    conn: psycopg.Connection,
    outbox_id: int,
    attempt_id: int,
    result: AttemptResult,
    *,
    keep_unconfirmed: bool,
) -> None:
    status = {"sent": "sent", "rejected": "rejected"}.get(result.outcome, "pending")
    with conn.transaction():
        # The one commit that need not wait for the WAL flush (module doc): losing it takes a
        # crash of the database server itself, and then the row is back in 'sending' with the
        # durable DATA mark, resent flagged, as after a sender crash right after the 250.
        conn.execute("set local synchronous_commit = off")
        conn.execute(
            "update ops.delivery_attempts set outcome = %s, smtp_code = %s, detail = %s, finished_at = now()"
            " where attempt_id = %s",
            (result.outcome, result.smtp_code, result.detail, attempt_id),
        )
        conn.execute(
            """
            update ops.delivery_outbox set
                status = %(status)s,
                sent_at = case when %(status)s = 'sent' then now() else sent_at end,
                last_error = %(detail)s,
                rejected_reason = case when %(status)s = 'rejected' then %(detail)s else rejected_reason end,
                is_possible_duplicate = is_possible_duplicate or %(keep)s,
                unconfirmed_data_at = null
            where outbox_id = %(outbox_id)s
            """,
            {"status": status, "detail": result.detail, "keep": keep_unconfirmed, "outbox_id": outbox_id},
        )


def _reject_without_sending(conn: psycopg.Connection, outbox_id: int, run_id: str, reason: str) -> None:
    with conn.transaction():
        conn.execute(
            "insert into ops.delivery_attempts (outbox_id, attempted_at, attempted_by_run, outcome, detail,"
            " finished_at, smtp_phase) values (%s, now(), %s, 'rejected', %s, now(), 'render')",
            (outbox_id, run_id, reason),
        )
        conn.execute(
            "update ops.delivery_outbox set status = 'rejected', rejected_reason = %s, last_error = %s"
            " where outbox_id = %s",
            (reason, reason, outbox_id),
        )


def _defer(
    conn: psycopg.Connection, outbox_id: int, retry: RetryPolicy
) -> Literal["deferred", "failed", "moved_on"]:
    """A row whose transient failures outlived this run waits for a later run, or is given up
    as ``failed`` once it has used its attempts across runs. A row that is no longer pending
    (between two tries it was superseded, or another sender claimed and maybe sent it) is left
    as it is: ``moved_on``."""
    with conn.transaction():
        row = conn.execute(
            """
            update ops.delivery_outbox set
                status = case when attempt_count >= %(max_total)s then 'failed' else 'pending' end,
                next_attempt_at = now() + %(defer)s
            where outbox_id = %(outbox_id)s and status = 'pending'
            returning status
            """,
            {
                "max_total": retry.max_total_attempts,
                "defer": timedelta(seconds=retry.defer_seconds),
                "outbox_id": outbox_id,
            },
        ).fetchone()
    if row is None:
        return "moved_on"
    return "failed" if row[0] == "failed" else "deferred"


def _raise_auth_incident(
    conn: psycopg.Connection,
    workspace_id: str,
    result: AttemptResult,
    run_id: str,
    notifier: SmtpEndpoint | None,
) -> None:
    with conn.transaction():
        incident = open_incident(
            conn,
            workspace_id,
            EMAIL_IN_CHANNEL,
            NEEDS_REAUTH,
            f"the email-in SMTP server refused ledgerlink's login ({result.smtp_code} {result.detail})",
            run_id,
        )
    logger.warning("workspace %s: email-in login refused; incident %s", workspace_id, incident.incident_id)
    if notifier is not None:
        notify_owner_once(conn, incident, notifier)
