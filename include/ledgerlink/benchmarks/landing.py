"""Landing throughput: rows per second through :func:`ledgerlink.warehouse.landing.land_records`
(serialisation, content hash, COPY into a staging table, deduplicating insert), against a plain
COPY of the same rows into a table of the same shape as the yardstick, in the same run.

Everything happens in one transaction that is rolled back, so the warehouse is left unchanged.
"""

from __future__ import annotations

import copy
import itertools
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from ledgerlink.warehouse.landing import RAW_COLUMNS, SourceRecord, land_records

BENCHMARK_WORKSPACE = "benchmark-landing"
_TEMPLATES = 2_000  # distinct generated payments, reused with new ids and amounts past this


@dataclass(frozen=True)
class LandingFigures:
    rows: int
    landing_seconds: float
    landing_rows_per_second: float
    copy_seconds: float
    copy_rows_per_second: float
    peak_rss_bytes: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def generated_payments(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` Square payments shaped by the sandbox generator, each with its own id."""
    from ledgerlink.sandbox.generator import generate_fixtures

    with tempfile.TemporaryDirectory() as folder:
        fixtures = generate_fixtures(
            Path(folder) / "fixtures",
            seed=seed,
            square_payments=min(count, _TEMPLATES),
            qonto_invoices=0,
            open_invoices_without_charge=0,
            paid_invoices=0,
        )
        templates = json.loads((fixtures / "square" / "payments.json").read_text())["payments"]
    for index in range(count):
        payment = copy.deepcopy(templates[index % len(templates)])
        payment["id"] = f"{payment['id'][:20]}{index:09d}"
        payment["amount_money"]["amount"] += index // len(templates)
        yield payment


def measure_landing(
    conn: psycopg.Connection, rows: int, page_size: int = 100, seed: int = 1
) -> LandingFigures:
    """Land ``rows`` payments page by page, as extraction does (the APIs return at most 100 per
    page), then COPY the same rows in one stream. Rows are generated as they go, never held."""
    updated_at = datetime(2026, 1, 1, tzinfo=UTC)
    landing_seconds = copy_seconds = 0.0  # generating the rows is not timed, only what lands them
    try:
        with conn.transaction():
            landed = 0
            payments = generated_payments(rows, seed)
            while page := list(itertools.islice(payments, page_size)):
                records = [SourceRecord(payment["id"], payment, updated_at) for payment in page]
                started = time.perf_counter()
                landed += land_records(conn, "square_payments", BENCHMARK_WORKSPACE, "benchmark", records)
                landing_seconds += time.perf_counter() - started
            if landed != rows:
                raise RuntimeError(f"landed {landed} of {rows} rows; the benchmark workspace was not empty")

            conn.execute("create temp table copy_yardstick (like raw.square_payments) on commit drop")
            payments = generated_payments(rows, seed)
            with conn.cursor().copy(f"copy copy_yardstick ({', '.join(RAW_COLUMNS)}) from stdin") as target:
                while page := list(itertools.islice(payments, page_size)):
                    lines = [
                        (BENCHMARK_WORKSPACE, p["id"], json.dumps(p), "", updated_at, updated_at, "benchmark")
                        for p in page
                    ]
                    started = time.perf_counter()
                    for line in lines:
                        target.write_row(line)
                    copy_seconds += time.perf_counter() - started
                started = time.perf_counter()
            copy_seconds += time.perf_counter() - started  # the end of COPY, when the server commits the rows
            raise _RollBack
    except _RollBack:
        pass
    return LandingFigures(
        rows=rows,
        landing_seconds=round(landing_seconds, 3),
        landing_rows_per_second=round(rows / landing_seconds),
        copy_seconds=round(copy_seconds, 3),
        copy_rows_per_second=round(rows / copy_seconds),
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )


class _RollBack(Exception):
    """Raised inside the benchmark's transaction so that nothing it wrote stays."""
