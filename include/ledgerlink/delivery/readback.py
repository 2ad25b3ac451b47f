"""Read-back: find the QuickBooks bills and purchases drafted from ledgerlink's documents and
link each to its delivery, whose status becomes ``posted`` with the QuickBooks id.

A document carries ``ledgerlink source record id: <source>:<id>`` on its page and in its
subject; QuickBooks keeps what its OCR and the person confirming the draft carried over in the
entry's memo (``PrivateNote``), reference (``DocNumber``) or line descriptions, so those are
searched. Reads go through the existing read-only :class:`QuickBooksClient`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from ledgerlink.sources.quickbooks.client import QuickBooksClient

READ_BACK_ENTITIES = ("Bill", "Purchase")
_SOURCE_ID = re.compile(r"\b(qonto|square):([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class PostedEntry:
    entity: str
    quickbooks_id: str
    source: str
    source_record_id: str
    posted_at: datetime | None


def source_ids_in(entry: dict[str, Any]) -> set[tuple[str, str]]:
    """Every ledgerlink source record id written on a Bill or Purchase."""
    texts = [entry.get("PrivateNote"), entry.get("DocNumber"), entry.get("Memo")]
    texts += [line.get("Description") for line in entry.get("Line") or []]
    found: set[tuple[str, str]] = set()
    for text in texts:
        if isinstance(text, str) and "ledgerlink" in text.lower():
            found.update(_SOURCE_ID.findall(text))
    return found


def posted_entries(client: QuickBooksClient, updated_from: datetime | None) -> Iterator[PostedEntry]:
    for entity in READ_BACK_ENTITIES:
        for page in client.entity_pages(entity, updated_from):
            for entry in page:
                created = (entry.get("MetaData") or {}).get("CreateTime")
                for source, record_id in sorted(source_ids_in(entry)):
                    yield PostedEntry(
                        entity,
                        str(entry["Id"]),
                        source,
                        record_id,
                        datetime.fromisoformat(created) if created else None,
                    )


def link_posted(conn: psycopg.Connection, workspace_id: str, entries: Iterable[PostedEntry]) -> int:
    """Mark the newest delivered document of each entry's source record ``posted``; return how
    many deliveries were linked now (a rerun links nothing new)."""
    linked = 0
    with conn.transaction():
        for entry in entries:
            cursor = conn.execute(
                """
                update ops.delivery_outbox set status = 'posted', posted_at = coalesce(%(at)s, now()),
                    quickbooks_entity = %(entity)s, quickbooks_id = %(qbo_id)s
                where outbox_id = (
                    select outbox_id from ops.delivery_outbox
                    where workspace_id = %(ws)s and source = %(source)s and source_record_id = %(record_id)s
                        and status = 'sent'
                    order by outbox_id desc limit 1
                )
                """,
                {
                    "at": entry.posted_at,
                    "entity": entry.entity,
                    "qbo_id": entry.quickbooks_id,
                    "ws": workspace_id,
                    "source": entry.source,
                    "record_id": entry.source_record_id,
                },
            )
            linked += cursor.rowcount
    return linked


def read_back(
    conn: psycopg.Connection,
    workspace_id: str,
    client: QuickBooksClient,
    updated_from: datetime | None = None,
) -> int:
    """Read bills and purchases changed since ``updated_from`` and link them; return the count."""
    return link_posted(conn, workspace_id, posted_entries(client, updated_from))


def never_posted(
    conn: psycopg.Connection, workspace_id: str, *, older_than_days: int, as_of: datetime
) -> list[tuple[int, str, str, datetime]]:
    """Deliveries sent more than ``older_than_days`` before ``as_of`` with no QuickBooks entry:
    (outbox id, source, source record id, sent at)."""
    rows = conn.execute(
        """
        select outbox_id, source, source_record_id, sent_at from ops.delivery_outbox
        where workspace_id = %s and status = 'sent' and sent_at < %s
        order by sent_at
        """,
        (workspace_id, as_of - timedelta(days=older_than_days)),
    ).fetchall()
    return [(row[0], row[1], row[2], row[3]) for row in rows]
