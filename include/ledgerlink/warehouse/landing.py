"""Landing source payloads in ``raw.*`` with COPY, exactly once per (workspace, record, content).

Raw is append-only: a record whose content changed lands as a new row, and a payload that landed
before (a rerun, a rewound sync marker, a replay) is absorbed by the table's unique key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

RAW_COLUMNS = (
    "workspace_id",
    "source_record_id",
    "payload",
    "payload_sha256",
    "source_updated_at",
    "landed_at",
    "landed_by_run",
)


@dataclass(frozen=True)
class SourceRecord:
    """One payload as received, with the columns some raw tables add (``blob_sha256``)."""

    source_record_id: str
    payload: Mapping[str, Any]
    source_updated_at: datetime | None
    extra_columns: Mapping[str, Any] = field(default_factory=dict)


def payload_sha256(payload: Mapping[str, Any]) -> str:
    """The hash of a payload's canonical JSON, stable however the source ordered its keys."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def land_records(
    conn: psycopg.Connection,
    table: str,
    workspace_id: str,
    run_id: str,
    records: Iterable[SourceRecord],
) -> int:
    """COPY ``records`` into ``raw.<table>`` inside the caller's transaction; return how many were
    new. Rows already landed with the same content are skipped."""
    records = list(records)
    if not records:
        return 0
    extra = sorted({name for record in records for name in record.extra_columns})
    columns = [*RAW_COLUMNS, *extra]
    staging = sql.Identifier(f"landing_{table}")
    target = sql.Identifier("raw", table)
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL("create temp table if not exists {} (like {} including defaults) on commit drop").format(
            staging, target
        )
    )
    conn.execute(sql.SQL("truncate {}").format(staging))
    landed_at = conn.execute("select transaction_timestamp()").fetchone()[0]  # type: ignore[index]
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(staging, column_list)) as copy:
        for record in records:
            copy.write_row(
                (
                    workspace_id,
                    record.source_record_id,
                    json.dumps(record.payload, ensure_ascii=False),
                    payload_sha256(record.payload),
                    record.source_updated_at,
                    landed_at,
                    run_id,
                    *(record.extra_columns.get(name) for name in extra),
                )
            )
    insert = sql.SQL(
        "insert into {target} ({cols})"
        " select distinct on (workspace_id, source_record_id, payload_sha256) {cols} from {staging}"
        " on conflict do nothing"
    )
    inserted = conn.execute(insert.format(target=target, staging=staging, cols=column_list))
    return inserted.rowcount


@dataclass(frozen=True)
class Rejection:
    """A record (or a whole response) that could not land, with the raw text as received."""

    entity: str
    source_record_id: str | None
    raw_payload: Any  # the text as received, or the parsed value (written back as JSON)
    reason: str


def raw_text(value: Any) -> str:
    """A payload as storable text: JSON for parsed values; a NUL character, which PostgreSQL text
    cannot hold, written as the JSON escape ``\\u0000``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\x00", "\\u0000")


def reject_records(
    conn: psycopg.Connection, workspace_id: str, source: str, run_id: str, rejections: Iterable[Rejection]
) -> int:
    """Quarantine ``rejections`` in ``ops.rejected_records`` (in the caller's transaction). The same
    raw payload rejected again counts one more attempt instead of a second row."""
    count = 0
    for rejection in rejections:
        raw = raw_text(rejection.raw_payload)
        conn.execute(
            """
            insert into ops.rejected_records
                (workspace_id, source, entity, source_record_id, raw_payload, raw_payload_sha256,
                 reason, rejected_by_run)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (workspace_id, source, entity, raw_payload_sha256) do update set
                attempts = ops.rejected_records.attempts + 1,
                reason = excluded.reason,
                rejected_by_run = excluded.rejected_by_run,
                rejected_at = now(),
                retry_state = 'open',
                resolved_at = null
            """,
            (
                workspace_id,
                source,
                rejection.entity,
                raw_text(rejection.source_record_id) if rejection.source_record_id else None,
                raw,
                hashlib.sha256(raw.encode("utf-8")).hexdigest(),
                raw_text(rejection.reason),
                run_id,
            ),
        )
        count += 1
    return count


def resolve_rejections(
    conn: psycopg.Connection, workspace_id: str, source: str, entity: str, source_record_ids: Iterable[str]
) -> int:
    """Close open rejections of records that have now landed (a corrected version arrived)."""
    ids = sorted(set(source_record_ids))
    if not ids:
        return 0
    return conn.execute(
        "update ops.rejected_records set retry_state = 'landed', resolved_at = now()"
        " where workspace_id = %s and source = %s and entity = %s and retry_state = 'open'"
        " and source_record_id = any(%s)",
        (workspace_id, source, entity, ids),
    ).rowcount


def open_rejections(
    conn: psycopg.Connection, workspace_id: str, source: str | None = None
) -> list[dict[str, Any]]:
    """Open rejections, oldest first: what an operator sees and can retry."""
    cursor = conn.execute(
        "select rejection_id, source, entity, source_record_id, raw_payload, reason, attempts, rejected_at"
        " from ops.rejected_records where workspace_id = %s and retry_state = 'open'"
        " and (%s::text is null or source = %s) order by rejection_id",
        (workspace_id, source, source),
    )
    columns = [column.name for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
