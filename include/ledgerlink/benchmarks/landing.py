"""Landing throughput: rows per second through :class:`ledgerlink.warehouse.landing.Lander`, fed
page by page as extraction feeds it (serialisation, content hash, COPY into a staging table,
deduplicating insert), against a plain COPY of the same rows into a table of the same shape as
the yardstick, in the same run.

Everything happens in one transaction that is rolled back, so the warehouse is left unchanged.
"""

from __future__ import annotations

import itertools
import json
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from ledgerlink.warehouse.landing import RAW_COLUMNS, Lander, SourceRecord

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


def payment_templates(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """Up to 2,000 distinct Square payments from the sandbox generator, to be varied."""
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
        payments: list[dict[str, Any]] = json.loads((fixtures / "square" / "payments.json").read_text())[
            "payments"
        ]
    return payments


def generated_payments(templates: list[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """``count`` payments varied from ``templates``, each with its own id and amount. Only the
    parts that change are copied, so generating costs about a microsecond a row."""
    for index in range(count):
        template = templates[index % len(templates)]
        amount = {
            **template["amount_money"],
            "amount": template["amount_money"]["amount"] + index // len(templates),
        }
        yield {**template, "id": f"{template['id'][:20]}{index:09d}", "amount_money": amount}


def measure_landing(
    conn: psycopg.Connection,
    rows: int,
    page_size: int = 100,
    seed: int = 1,
    on_rows: Callable[[int], None] | None = None,
) -> LandingFigures:
    """Land ``rows`` payments page by page, as extraction feeds them (the APIs return at most 100
    per page), then COPY the same rows in one stream into a table built like ``raw.square_payments``
    (logged, with its unique key): the fastest those rows could reach such a table. Both timings
    include generating the rows (cheap, the same for both); rows are never all held at once.
    ``on_rows`` hears how many rows each phase has handled, every page (for a progress bar)."""
    templates = payment_templates(rows, seed)
    updated_at = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        with conn.transaction():
            started = time.perf_counter()
            lander = Lander(conn, "square_payments", BENCHMARK_WORKSPACE, "benchmark")
            payments = generated_payments(templates, rows)
            done = 0
            while page := list(itertools.islice(payments, page_size)):
                lander.add(SourceRecord(payment["id"], payment, updated_at) for payment in page)
                done += len(page)
                if on_rows is not None:
                    on_rows(done)
            lander.flush()
            landing_seconds = time.perf_counter() - started
            if lander.landed_new != rows:
                raise RuntimeError(
                    f"landed {lander.landed_new} of {rows} rows; the benchmark workspace was not empty"
                )

            conn.execute("create table ops.copy_yardstick (like raw.square_payments including all)")
            started = time.perf_counter()
            statement = f"copy ops.copy_yardstick ({', '.join(RAW_COLUMNS)}) from stdin"
            with conn.cursor().copy(statement) as target:
                for done, payment in enumerate(generated_payments(templates, rows), start=1):
                    if on_rows is not None and done % page_size == 0:
                        on_rows(done)
                    target.write_row(
                        (
                            BENCHMARK_WORKSPACE,
                            payment["id"],
                            msgspec.json.encode(payment).decode(),
                            "",
                            updated_at,
                            updated_at,
                            "benchmark",
                        )
                    )
            copy_seconds = time.perf_counter() - started  # the end of COPY included: the rows are in
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
