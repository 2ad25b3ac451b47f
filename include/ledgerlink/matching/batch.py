"""Candidate pairs as columns: one table of source records, one of ledger entries, and per pair
only positions into both plus the features dbt computed. Millions of pairs never become Python
objects: the warehouse sends them packed as fixed-width binary fields, one row of bytes per record,
that numpy reads in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

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
    #: per entry, its position among all the entries of the pairs the batch was read from (a
    #: chunk's entries are a few of the workspace's); None: the batch's own positions
    entry_positions: np.ndarray | None = None
    #: per record, its position among all the records read (None: the batch's own positions)
    record_positions: np.ndarray | None = None

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


class StagedPairs:
    """The pairs a query selects from ``marts.match_features``, staged once in temporary tables
    (records and entries numbered in key order, pairs as positions plus the features dbt computed)
    and read back a set of records at a time, so memory follows the records read, not the
    workspace's history. A batch of records ``first..stop`` holds exactly what the whole
    selection's batch holds for them, in the same order; its entries are only those its pairs
    reach, with their positions among all entries in ``entry_positions``.

    Use as a context manager on an open transaction: leaving it drops the tables."""

    def __init__(self, conn: psycopg.Connection, pairs_query: str, params: dict[str, Any]) -> None:
        """``pairs_query`` selects from ``marts.match_features`` (aliased ``f``) every column of
        :data:`PAIR_COLUMNS`."""
        self.conn = conn
        self._drop()
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
        conn.execute("create index on match_batch_records (record_position)")
        conn.execute("create index on match_batch_records (source, source_record_id)")
        conn.execute("create index on match_batch_entries (entry_position)")
        conn.execute("analyze match_batch_records")
        conn.execute("analyze match_batch_entries")
        # each record's pairs as one value of packed fixed-width positions and features (stored
        # as they are: compressing them costs more than it saves)
        conn.execute(
            "create temporary table match_batch_pairs"
            " (record_position int4 primary key, pair_count int4 not null, packed bytea not null)"
        )
        conn.execute("alter table match_batch_pairs alter column packed set storage external")
        conn.execute(_STAGE_PAIRS)
        conn.execute("drop table pg_temp.match_batch")
        conn.execute("analyze match_batch_pairs")
        self.record_count = _count(conn, "select count(*) from match_batch_records")
        self.entry_count = _count(conn, "select count(*) from match_batch_entries")
        self.pair_count = _count(conn, "select coalesce(sum(pair_count), 0) from match_batch_pairs")

    def __enter__(self) -> StagedPairs:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.conn.closed and self.conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            self._drop()

    def _drop(self) -> None:
        for table in ("match_batch", "match_batch_records", "match_batch_entries", "match_batch_pairs"):
            self.conn.execute(f"drop table if exists pg_temp.{table}")

    def entries_by_type(self) -> dict[str, int]:
        """How many distinct entries of each type the pairs reach."""
        rows = self.conn.execute("select candidate_type, count(*) from match_batch_entries group by 1")
        return {candidate_type: int(count) for candidate_type, count in rows}

    def names(self) -> Iterator[str]:
        """Every distinct name of a record or an entry once ('' for none), streamed."""
        with self.conn.cursor(name="match_batch_names") as cursor:
            cursor.itersize = 10_000
            cursor.execute(
                """
                select coalesce(record_counterparty_name_normalised, '') from match_batch_records
                union
                select coalesce(candidate_name_normalised, '') from match_batch_entries
                """
            )
            for (name,) in cursor:
                yield name

    def positions_where(self, condition: str, params: dict[str, Any]) -> np.ndarray:
        """The positions, ascending, of the records (aliased ``r``) for which ``condition`` holds."""
        rows = self.conn.execute(
            f"select record_position from match_batch_records as r where {condition} order by 1",  # noqa: S608
            params,
        ).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def batch(self, first: int, stop: int) -> PairBatch:
        """The records at positions ``first`` to ``stop`` (excluded), with their pairs."""
        where = sql.SQL("record_position >= {} and record_position < {}").format(
            sql.Literal(first), sql.Literal(stop)
        )
        return self._read(where)

    def batch_of(self, positions: np.ndarray) -> PairBatch:
        """The records at ``positions`` (ascending), with their pairs."""
        if len(positions) == self.record_count:
            return self.batch(0, self.record_count)
        chosen = sql.Literal([int(position) for position in positions])
        return self._read(sql.SQL("record_position = any({}::int4[])").format(chosen))

    def _read(self, where: sql.Composed) -> PairBatch:
        conn = self.conn
        rows = conn.execute(
            sql.SQL(
                "select {}, record_position from match_batch_records where {} order by record_position"
            ).format(sql.SQL(", ").join(map(sql.Identifier, _RECORD_COLUMNS)), where)
        ).fetchall()
        records = [SourceRecord(*row[:-1]) for row in rows]
        record_positions = np.array([row[-1] for row in rows], dtype=np.int64)
        del rows
        counted = conn.execute(
            sql.SQL("select coalesce(sum(pair_count), 0) from match_batch_pairs where {}").format(where)
        ).fetchone()
        pairs = _read_pairs(conn, sql.SQL(_PACKED_PAIRS).format(where), counted[0] if counted else 0)
        entry_positions = np.unique(pairs["entry"]).astype(np.int64)
        entries = [
            LedgerEntry(*row)
            for row in conn.execute(
                sql.SQL(
                    "select {} from match_batch_entries where entry_position = any(%s) order by entry_position"
                ).format(sql.SQL(", ").join(map(sql.Identifier, _ENTRY_COLUMNS))),
                (entry_positions.tolist(),),
            )
        ]
        # ordered by record here: numpy sorts two integer columns faster than the warehouse sorts rows;
        # each column is taken in that order on its own, so the rows are never copied whole
        order = np.lexsort((pairs["entry"], pairs["record"]))
        return PairBatch(
            records,
            entries,
            np.searchsorted(record_positions, pairs["record"][order]).astype(np.int32),
            np.searchsorted(entry_positions, pairs["entry"][order]).astype(np.int32),
            pairs["amount_diff"][order].astype(np.float64),
            _missing_as_nan(pairs["lag"][order], _NO_LAG),
            _missing_as_nan(pairs["currency"][order], -1),
            _missing_as_nan(pairs["reference"][order], -1),
            entry_positions,
            record_positions,
        )


def _count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


# A record's pairs in no particular order (the batch sorts them): one row of packed bytes per
# record, :data:`_PAIR_ROW` per pair. A binary COPY of a row per pair sends one message per pair,
# which cost the client a few seconds a million to read one at a time, and the server a sort of
# every pair to keep a range of records a range of the table.
_STAGE_PAIRS = f"""
    insert into match_batch_pairs (record_position, pair_count, packed)
    select r.record_position, count(*)::int4,
        string_agg(
            int4send(r.record_position) || int4send(e.entry_position)
                || float8send(coalesce(b.amount_diff_minor::float8, 'NaN'))
                || int4send(coalesce(b.date_lag_days, {_NO_LAG})::int4)
                || int4send(coalesce(b.is_currency_match::int4, -1))
                || int4send(case when b.record_reference is null or b.candidate_reference is null then -1
                                 else coalesce(b.is_reference_match::int4, -1) end),
            ''::bytea)
    from match_batch as b
    inner join match_batch_records as r
        on b.source = r.source and b.source_record_id = r.source_record_id
    inner join match_batch_entries as e
        on b.candidate_type = e.candidate_type and b.candidate_id = e.candidate_id
    group by r.record_position
"""  # noqa: S608 - a constant


# Every field non-null and fixed width, so each pair is the same 28 bytes (big-endian, as the
# warehouse's binary send functions write them).
_PAIR_ROW = np.dtype(
    [
        ("record", ">i4"),
        ("entry", ">i4"),
        ("amount_diff", ">f8"),
        ("lag", ">i4"),
        ("currency", ">i4"),
        ("reference", ">i4"),
    ]
)
_PACKED_PAIRS = "select packed from match_batch_pairs where {}"


def _read_pairs(conn: psycopg.Connection, query: sql.Composed, expected: int) -> np.ndarray:
    """The pairs ``query`` packs (:data:`_PACKED_PAIRS`), streamed into one buffer sized for
    ``expected`` pairs up front (a growing buffer is reallocated, and so held twice, many times
    over millions of pairs; a fetched result is held whole by the client library too)."""
    buffer = bytearray(expected * _PAIR_ROW.itemsize)
    filled = 0
    for (packed,) in conn.cursor(binary=True).stream(query):
        end = filled + len(packed)
        if end > len(buffer):  # more pairs than counted: grow as needed
            buffer.extend(bytes(end - len(buffer)))
        buffer[filled:end] = packed
        filled = end
    return np.frombuffer(memoryview(buffer)[:filled], dtype=_PAIR_ROW)


def _missing_as_nan(values: np.ndarray, missing: int) -> np.ndarray:
    """Small integers (days, 1/0 flags) as float32, nan where the value is ``missing`` or below."""
    floats = values.astype(np.float32)
    floats[values <= missing] = np.nan
    return floats


def _nan(value: Any) -> float:
    return np.nan if value is None else float(value)
