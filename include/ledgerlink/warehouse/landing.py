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

import msgspec
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
# What a record carries; the lander adds the workspace, the landing time and the run.
_STAGED_COLUMNS = ("source_record_id", "payload", "payload_sha256", "source_updated_at")
# Pages are buffered up to this many rows before they go to PostgreSQL: one COPY and one insert
# per flush rather than per API page (100 rows) keeps the per-statement cost off the row rate.
FLUSH_ROWS = 5_000


@dataclass(frozen=True)
class SourceRecord:
    """One payload as received, with the columns some raw tables add (``blob_sha256``)."""

    source_record_id: str
    payload: Mapping[str, Any]
    source_updated_at: datetime | None
    extra_columns: Mapping[str, Any] = field(default_factory=dict)


_canonical_encoder = msgspec.json.Encoder(order="sorted")


def canonical_json(payload: Mapping[str, Any]) -> str:
    """A payload's canonical JSON: sorted keys, no spaces, UTF-8 as is. It is both the stored text
    and what the content hash covers, so a payload is serialised once.

    It is what ``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    writes (the form hashes were first taken in) at a tenth of the cost, except for floats of
    magnitude below 1e-4 or from 1e16 on, which msgspec spells ``0.00001`` / ``1e16`` where the
    stdlib wrote ``1e-05`` / ``1e+16``. No source amount takes that form; a payload that did would
    land once more as an identical version. NaN, which JSON cannot hold, becomes null.
    """
    return _canonical_encoder.encode(payload).decode("utf-8")


def payload_sha256(payload: Mapping[str, Any]) -> str:
    """The hash of a payload's canonical JSON, stable however the source ordered its keys."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class Lander:
    """Lands records in ``raw.<table>`` inside the caller's transaction, exactly once per
    (workspace, record id, content).

    Each payload is serialised once (the canonical JSON is both the stored text and what the hash
    covers). Records are buffered and deduplicated in Python; each flush looks up which of them raw
    already holds (one index probe per record) and COPYs the rest straight into raw: no staging
    table, no sort, no conflict handling. Nothing is visible in raw before :meth:`flush`, which
    returns how many rows were new.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        table: str,
        workspace_id: str,
        run_id: str,
        extra_columns: Iterable[str] = (),
        flush_rows: int = FLUSH_ROWS,
    ) -> None:
        self.conn = conn
        self.table = table
        self.workspace_id = workspace_id
        self.run_id = run_id
        self.extra_columns = tuple(sorted(extra_columns))
        self._declared = frozenset(self.extra_columns)
        self.flush_rows = flush_rows
        self.landed_new = 0
        self.landed_ids: list[str] = []  # ids flushed since the caller last took them
        self._pending: dict[tuple[str, str], tuple[Any, ...]] = {}

    def add(self, records: Iterable[SourceRecord]) -> None:
        """Buffer ``records``; flush once the buffer holds ``flush_rows``."""
        for record in records:
            if record.extra_columns and not self._declared.issuperset(record.extra_columns):
                unknown = set(record.extra_columns) - self._declared
                raise ValueError(
                    f"raw.{self.table}: columns {sorted(unknown)} were not declared to the lander"
                )
            encoded = _canonical_encoder.encode(record.payload)  # canonical_json, kept as bytes
            sha = hashlib.sha256(encoded).hexdigest()
            key = (record.source_record_id, sha)
            # Only the first of identical payloads in a batch counts; the rest are already landed.
            if key not in self._pending:
                row = (record.source_record_id, encoded.decode("utf-8"), sha, record.source_updated_at)
                if self.extra_columns:
                    row += tuple(record.extra_columns.get(name) for name in self.extra_columns)
                self._pending[key] = row
        if len(self._pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> int:
        """Write the buffered records that raw does not hold yet; return how many were new."""
        if not self._pending:
            return 0
        target = sql.Identifier("raw", self.table)
        # Landers of one workspace's table take turns until commit, so the check below stays
        # true until the COPY after it lands; the unique key remains the backstop.
        self.conn.execute(
            "select pg_advisory_xact_lock(hashtext('ledgerlink.landing'), hashtext(%s))",
            (f"{self.table}/{self.workspace_id}",),
        )
        landed = self.conn.execute(
            sql.SQL(
                "select source_record_id, payload_sha256 from {} where workspace_id = %s and source_record_id = any(%s)"
            ).format(target),
            (self.workspace_id, list({record_id for record_id, _ in self._pending})),
        ).fetchall()
        # raw returns every version of these ids; only the buffered contents count as landed
        already = [key for key in map(tuple, landed) if self._pending.pop(key, None) is not None]
        new_rows = list(self._pending.values())
        self.landed_ids.extend(row[0] for row in new_rows)
        self.landed_ids.extend(record_id for record_id, _ in already)
        self._pending.clear()
        if new_rows:
            # COPY straight into raw: no staging table and no conflict handling left to do.
            landed_at = self.conn.execute("select transaction_timestamp()").fetchone()[0]  # type: ignore[index]
            columns = [*_STAGED_COLUMNS, *self.extra_columns, "workspace_id", "landed_at", "landed_by_run"]
            statement = sql.SQL("copy {} ({}) from stdin").format(
                target, sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with self.conn.cursor().copy(statement) as copy:
                for row in new_rows:
                    copy.write_row((*row, self.workspace_id, landed_at, self.run_id))
        self.landed_new += len(new_rows)
        return len(new_rows)

    def take_landed_ids(self) -> list[str]:
        """The record ids flushed since the last call (to close their open rejections)."""
        ids, self.landed_ids = self.landed_ids, []
        return ids


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
    extra = {name for record in records for name in record.extra_columns}
    lander = Lander(conn, table, workspace_id, run_id, extra_columns=extra, flush_rows=len(records) + 1)
    lander.add(records)
    return lander.flush()


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
