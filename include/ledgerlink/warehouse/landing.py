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
