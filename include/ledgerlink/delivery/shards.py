"""Parallel delivery: a workspace's outbox split into disjoint shards, each sent by its own
sender. The DAG maps the email operator over the shards :func:`plan_delivery_shards` returns, so
Airflow's executor runs them side by side: as processes of one machine (LocalExecutor), or over
its workers (CeleryExecutor).

A row's shard is its record (source and source record id) hashed, modulo the shard count
(``ledgerlink.delivery.sender``'s due-rows query): a record's versions always fall in the same
shard, so one sender sends them in order. Shards only divide the work; the sender's claims stay
safe when two senders meet on a row anyway.

Each shard costs a task: a process and an SMTP login. So a workspace gets one shard per
:data:`DOCUMENTS_PER_SHARD` due documents, at most ``LEDGERLINK_DELIVERY_SHARDS`` (default
:data:`DEFAULT_DELIVERY_SHARDS`): a 15-minute window is one task, a first sync's thousands of
documents are several.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psycopg

#: The environment variable bounding the shards per workspace and run.
DELIVERY_SHARDS_VARIABLE = "LEDGERLINK_DELIVERY_SHARDS"
#: On this project's 2-core machine under a load of 6-8 (``ledgerlink benchmark delivery
#: --senders K --smtp-reply-delay-ms 20``), 1, 2 and 3 senders sent 6.3, 10.1 and 11.6
#: documents/s; with no reply delay, 1 and 3 sent 12-17 and 18-22. A sender waits on the SMTP
#: server's round trips, so a few more senders than cores still pay; a Celery deployment with
#: more workers can raise the bound.
DEFAULT_DELIVERY_SHARDS = 3
#: The environment variable setting how many SMTP sessions each sender keeps open at once.
DELIVERY_SESSIONS_VARIABLE = "LEDGERLINK_DELIVERY_SESSIONS"
#: Sessions per sender (``ledgerlink.delivery.sender``): each sends its share of a batch over its
#: own SMTP session and database connection, so one message's round trips and durable commit
#: overlap another's. ``ledgerlink benchmark delivery`` on this project's 2-core machine at a load
#: of 7-10: 1, 4 and 8 sessions sent 31-34, 71-104 and 94 documents/s into a local email-in, and
#: 8.6, 35.5 and 52.2 into one holding each reply 20 ms (a distant server). Each session is a
#: database connection too (shards times sessions per workspace), and servers bound a client's
#: connections, so the default stays modest.
DEFAULT_DELIVERY_SESSIONS = 4
#: Due documents that justify one more shard: fewer go faster through the shards already there
#: than a new task takes to start.
DOCUMENTS_PER_SHARD = 500


@dataclass(frozen=True)
class DeliveryShard:
    """Part ``index`` of ``count`` disjoint parts of a workspace's outbox. The default is the
    whole outbox."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                "a delivery shard is an index from 0 to count - 1, with count at least 1;"
                f" got index {self.index} of count {self.count}"
            )

    def __str__(self) -> str:
        return f"shard {self.index + 1} of {self.count}"


WHOLE_OUTBOX = DeliveryShard()


def configured_max_shards() -> int:
    """``LEDGERLINK_DELIVERY_SHARDS``, or the default; anything but a positive integer is refused
    with the variable's name."""
    return _positive_setting(DELIVERY_SHARDS_VARIABLE, DEFAULT_DELIVERY_SHARDS)


def configured_sessions() -> int:
    """``LEDGERLINK_DELIVERY_SESSIONS``, or the default; anything but a positive integer is
    refused with the variable's name."""
    return _positive_setting(DELIVERY_SESSIONS_VARIABLE, DEFAULT_DELIVERY_SESSIONS)


def _positive_setting(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{variable} must be a positive integer, got {value!r}")
    return number


def plan_delivery_shards(conn: psycopg.Connection, workspace_id: str, max_shards: int) -> list[DeliveryShard]:
    """The shards the workspace's due outbox rows are sent in this run: one per
    :data:`DOCUMENTS_PER_SHARD`, at least one (its sender also recovers interrupted rows) and
    at most ``max_shards``."""
    if max_shards < 1:
        raise ValueError(f"max_shards must be at least 1, got {max_shards}")
    row = conn.execute(
        "select count(*) from ops.delivery_outbox where workspace_id = %s and status in ('pending', 'sending')"
        " and (next_attempt_at is null or next_attempt_at <= now())",
        (workspace_id,),
    ).fetchone()
    due = row[0] if row else 0
    count = max(1, min(max_shards, math.ceil(due / DOCUMENTS_PER_SHARD)))
    return [DeliveryShard(index, count) for index in range(count)]
