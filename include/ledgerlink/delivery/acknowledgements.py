"""A person's acknowledgement of a record that changed after its document was delivered.

QuickBooks cannot be edited by email, so such a record (``ops.delivery_outbox.needs_person``)
waits on the status page until someone has checked the entry drafted from the original and says
so. The acknowledgement records who and when, and takes the record off the list; the outbox row
and its delivery are otherwise untouched. Acknowledging twice records the first one only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from ledgerlink.delivery.retry import DeliveryNotFound


@dataclass(frozen=True)
class Acknowledgement:
    outbox_id: int
    source: str
    source_record_id: str
    acknowledged_by: str
    acknowledged_at: datetime
    #: False when someone had acknowledged it already (then ``acknowledged_by/at`` are theirs)
    recorded_now: bool


def acknowledge_changed_record(
    conn: psycopg.Connection, workspace_id: str, outbox_id: int, *, actor: str, at: datetime
) -> Acknowledgement:
    """Record that ``actor`` handled the changed record of outbox row ``outbox_id`` (committed).
    :class:`DeliveryNotFound` when the workspace has no such row needing a person."""
    with conn.transaction():
        row = conn.execute(
            "select source, source_record_id, needs_person_resolved_by, needs_person_resolved_at"
            " from ops.delivery_outbox"
            " where outbox_id = %s and workspace_id = %s and needs_person and status <> 'superseded'"
            " for update",
            (outbox_id, workspace_id),
        ).fetchone()
        if row is None:
            raise DeliveryNotFound(f"no changed record {outbox_id} in workspace {workspace_id}")
        source, source_record_id, resolved_by, resolved_at = row
        if resolved_at is not None:
            return Acknowledgement(outbox_id, source, source_record_id, resolved_by, resolved_at, False)
        conn.execute(
            "update ops.delivery_outbox set needs_person_resolved_at = %s, needs_person_resolved_by = %s"
            " where outbox_id = %s",
            (at, actor, outbox_id),
        )
    return Acknowledgement(outbox_id, source, source_record_id, actor, at, True)
