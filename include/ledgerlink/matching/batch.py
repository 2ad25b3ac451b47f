"""Candidate pairs as columns: one table of source records, one of ledger entries, and per pair
only positions into both plus the features dbt computed. Millions of pairs never become Python
objects: the warehouse sends them as fixed-width binary COPY rows that numpy reads in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import psycopg

#: The columns of ``marts.match_features`` a batch is built from, in this order.
PAIR_COLUMNS = (
    "workspace_id",
    "source",
    "source_record_id",
    "source_payload_sha256",
    "record_counterparty_name",
    "record_counterparty_name_normalised",
    "record_amount_minor",
    "record_currency",
    "record_occurred_on",
    "record_reference",
    "candidate_type",
    "candidate_id",
    "candidate_name",
    "candidate_name_normalised",
    "candidate_amount_minor",
    "candidate_currency",
    "candidate_entry_on",
    "candidate_reference",
    "amount_diff_minor",
    "date_lag_days",
    "is_currency_match",
    "is_reference_match",
    "record_is_fully_refunded",
)
_RECORD_COLUMNS = (*PAIR_COLUMNS[:10], "record_is_fully_refunded")
_ENTRY_COLUMNS = PAIR_COLUMNS[10:18]
_NO_LAG = -(2**31)


@dataclass(frozen=True)
class SourceRecord:
    """What routing and delivery need of the record a decision is about."""

    workspace_id: str
    source: str
    source_record_id: str
    source_payload_sha256: str
    counterparty_name: str | None
    counterparty_name_normalised: str | None
    amount_minor: int | None
    currency: str | None
    occurred_on: date | None
    reference: str | None
    #: a Square charge refunded in full: scored, but a person decides what to book
    is_fully_refunded: bool = False


@dataclass(frozen=True)
class LedgerEntry:
    candidate_type: str
    candidate_id: str
    candidate_name: str | None
    candidate_name_normalised: str | None
    amount_minor: int | None
    currency: str | None
    entry_on: date | None
    reference: str | None


@dataclass(frozen=True)
class PairBatch:
    """Records, entries and pairs; pairs are ordered by record. A record without candidates has
    no pairs."""

    records: list[SourceRecord]
    entries: list[LedgerEntry]
    record_index: np.ndarray  # per pair, int32
    entry_index: np.ndarray  # per pair, int32
    amount_diff_minor: np.ndarray  # per pair, float64, nan when unknown
    # whole days and 1/0 flags are exact in float32, half the bytes of float64 per pair
    date_lag_days: np.ndarray  # per pair, float32, nan when unknown
    is_currency_match: np.ndarray  # per pair, float32 1/0, nan when unknown
    is_reference_match: np.ndarray  # per pair, float32 1/0, nan when either side has no reference

    def __len__(self) -> int:
        return len(self.record_index)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> PairBatch:
        """Rows of ``marts.match_features`` in :data:`PAIR_COLUMNS` order, ordered by record."""
        records: dict[tuple[str, str, str], int] = {}
        entries: dict[tuple[str, str], int] = {}
        record_list: list[SourceRecord] = []
        entry_list: list[LedgerEntry] = []
        pairs = []
        for row in rows:
            key = (row[0], row[1], row[2])
            if key not in records:
                records[key] = len(record_list)
                record = SourceRecord(*row[:10])
                record_list.append(replace(record, is_fully_refunded=True) if row[22] else record)
            if row[11] is None:
                continue
            entry_key = (row[10], row[11])
            if entry_key not in entries:
                entries[entry_key] = len(entry_list)
                entry_list.append(LedgerEntry(*row[10:18]))
            no_reference = row[9] is None or row[17] is None
            pairs.append(
                (
                    records[key],
                    entries[entry_key],
                    _nan(row[18]),
                    _nan(row[19]),
                    _nan(row[20]),
                    np.nan if no_reference else _nan(row[21]),
                )
            )
        columns = np.array(pairs, dtype=float).reshape(-1, 6)
        order = np.argsort(columns[:, 0], kind="stable")
        columns = columns[order]
        return cls(
            record_list,
            entry_list,
            columns[:, 0].astype(np.int32),
            columns[:, 1].astype(np.int32),
            columns[:, 2].copy(),
            columns[:, 3].astype(np.float32),
            columns[:, 4].astype(np.float32),
            columns[:, 5].astype(np.float32),
        )

    @classmethod
    def from_warehouse(cls, conn: psycopg.Connection, pairs_query: str, params: dict[str, Any]) -> PairBatch:
        """The pairs ``pairs_query`` selects from ``marts.match_features`` (aliased ``f``, every
        column of :data:`PAIR_COLUMNS`), read in three passes over a temporary table."""
        for table in ("match_batch", "match_batch_records", "match_batch_entries"):
            conn.execute(f"drop table if exists pg_temp.{table}")
        # the records and entries are hashed, not sorted, in memory (the default 4 MB spills to disk)
        conn.execute("set local work_mem = '128MB'")
        conn.execute(f"create temporary table match_batch as {pairs_query}", params)  # noqa: S608 - caller's SQL
        conn.execute(
            f"""
            create temporary table match_batch_records as
            select {", ".join(_RECORD_COLUMNS)},
                   (row_number() over (order by source, source_record_id) - 1)::int4 as record_position
            from (select {", ".join(_RECORD_COLUMNS)} from match_batch
                  group by {", ".join(_RECORD_COLUMNS)}) as records
            """  # noqa: S608 - fixed column names
        )
        conn.execute(
            f"""
            create temporary table match_batch_entries as
            select {", ".join(_ENTRY_COLUMNS)},
                   (row_number() over (order by candidate_type, candidate_id) - 1)::int4 as entry_position
            from (select {", ".join(_ENTRY_COLUMNS)} from match_batch
                  where candidate_id is not null group by {", ".join(_ENTRY_COLUMNS)}) as entries
            """  # noqa: S608 - fixed column names
        )
        conn.execute("analyze match_batch_records")
        conn.execute("analyze match_batch_entries")
        records = [
            SourceRecord(*row)
            for row in conn.execute(
                f"select {', '.join(_RECORD_COLUMNS)} from match_batch_records order by record_position"  # noqa: S608
            )
        ]
        entries = [
            LedgerEntry(*row)
            for row in conn.execute(
                f"select {', '.join(_ENTRY_COLUMNS)} from match_batch_entries order by entry_position"  # noqa: S608
            )
        ]
        counted = conn.execute("select count(*) from match_batch where candidate_id is not null").fetchone()
        pairs = _copy_pairs(conn, counted[0] if counted else 0)
        for table in ("match_batch", "match_batch_records", "match_batch_entries"):
            conn.execute(f"drop table pg_temp.{table}")
        # ordered by record here: numpy sorts two integer columns faster than the warehouse sorts rows;
        # each column is taken in that order on its own, so the rows are never copied whole
        order = np.lexsort((pairs["entry"], pairs["record"]))
        return cls(
            records,
            entries,
            pairs["record"][order].astype(np.int32),
            pairs["entry"][order].astype(np.int32),
            pairs["amount_diff"][order].astype(np.float64),
            _missing_as_nan(pairs["lag"][order], _NO_LAG),
            _missing_as_nan(pairs["currency"][order], -1),
            _missing_as_nan(pairs["reference"][order], -1),
        )


# Every field non-null and fixed width, so each binary COPY row has the same layout.
_PAIR_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("record_length", ">i4"),
        ("record", ">i4"),
        ("entry_length", ">i4"),
        ("entry", ">i4"),
        ("amount_diff_length", ">i4"),
        ("amount_diff", ">f8"),
        ("lag_length", ">i4"),
        ("lag", ">i4"),
        ("currency_length", ">i4"),
        ("currency", ">i4"),
        ("reference_length", ">i4"),
        ("reference", ">i4"),
    ]
)
_COPY_HEADER = 19  # signature, flags and header extension length
_COPY_PAIRS = f"""
    copy (
        select r.record_position, e.entry_position,
               coalesce(b.amount_diff_minor::float8, 'NaN'),
               coalesce(b.date_lag_days, {_NO_LAG})::int4,
               coalesce(b.is_currency_match::int4, -1),
               case when b.record_reference is null or b.candidate_reference is null then -1
                    else coalesce(b.is_reference_match::int4, -1) end
        from match_batch as b
        inner join match_batch_records as r
            on b.source = r.source and b.source_record_id = r.source_record_id
        inner join match_batch_entries as e
            on b.candidate_type = e.candidate_type and b.candidate_id = e.candidate_id
    ) to stdout (format binary)
"""  # noqa: S608 - a constant


def _copy_pairs(conn: psycopg.Connection, expected: int) -> np.ndarray:
    """The COPY rows, read into one buffer sized for ``expected`` rows up front (a growing buffer
    is reallocated, and so held twice, many times over millions of rows)."""
    buffer = bytearray(_COPY_HEADER + expected * _PAIR_ROW.itemsize + 2)
    filled = 0
    with conn.cursor().copy(_COPY_PAIRS) as copy:
        for chunk in copy:
            end = filled + len(chunk)
            if end > len(buffer):  # more rows than counted: grow as needed
                buffer.extend(bytes(end - len(buffer)))
            buffer[filled:end] = chunk
            filled = end
    body = memoryview(buffer)[_COPY_HEADER : filled - 2]  # the trailer is a field count of -1
    return np.frombuffer(body, dtype=_PAIR_ROW)


def _missing_as_nan(values: np.ndarray, missing: int) -> np.ndarray:
    """Small integers (days, 1/0 flags) as float32, nan where the value is ``missing`` or below."""
    floats = values.astype(np.float32)
    floats[values <= missing] = np.nan
    return floats


def _nan(value: Any) -> float:
    return np.nan if value is None else float(value)
