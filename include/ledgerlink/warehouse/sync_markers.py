"""Sync markers: how far each workspace's source entity has been read. Moved only in the same
transaction as the landing it describes, and never backwards except by an explicit rewind."""

from __future__ import annotations

from datetime import datetime

import psycopg


def read_marker(conn: psycopg.Connection, workspace_id: str, source: str, entity: str) -> datetime | None:
    row = conn.execute(
        "select marker_at from ops.sync_markers where workspace_id = %s and source = %s and entity = %s",
        (workspace_id, source, entity),
    ).fetchone()
    return row[0] if row else None


def advance_marker(
    conn: psycopg.Connection, workspace_id: str, source: str, entity: str, marker_at: datetime, run_id: str
) -> None:
    conn.execute(
        """
        insert into ops.sync_markers (workspace_id, source, entity, marker_at, updated_by_run)
        values (%s, %s, %s, %s, %s)
        on conflict (workspace_id, source, entity) do update
            set marker_at = greatest(ops.sync_markers.marker_at, excluded.marker_at),
                updated_by_run = excluded.updated_by_run,
                updated_at = now()
        """,
        (workspace_id, source, entity, marker_at, run_id),
    )


def rewind_marker(
    conn: psycopg.Connection, workspace_id: str, source: str, entity: str, marker_at: datetime
) -> None:
    """Move a marker back so the next run re-reads; landing dedup makes the re-read harmless."""
    conn.execute(
        "update ops.sync_markers set marker_at = %s, updated_at = now()"
        " where workspace_id = %s and source = %s and entity = %s",
        (marker_at, workspace_id, source, entity),
    )
