"""What a running task needs from its context: the run id, the window it covers, a warehouse."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from ledgerlink.extraction import CHUNK_RECORDS, FIRST_SYNC_HISTORY, ExtractionWindow


def extraction_window(context: Any) -> ExtractionWindow:
    """The run's window end: its data interval end, else its logical date, else when it was asked
    to run. Business logic reads this, never the wall clock, so reruns and backfills are exact."""
    dag_run = context["dag_run"]
    window_end: datetime | None = (
        context.get("data_interval_end") or context.get("logical_date") or getattr(dag_run, "run_after", None)
    )
    if window_end is None:
        raise ValueError("the run has neither a data interval, a logical date nor a run_after time")
    # A workspace's first sync reaches this far back, committing every so many records.
    first_sync_days = os.environ.get("LEDGERLINK_FIRST_SYNC_DAYS")
    chunk_records = os.environ.get("LEDGERLINK_SYNC_CHUNK_RECORDS")
    return ExtractionWindow(
        run_id=str(context["run_id"]),
        window_end=window_end,
        first_sync_history=timedelta(days=int(first_sync_days)) if first_sync_days else FIRST_SYNC_HISTORY,
        chunk_records=int(chunk_records) if chunk_records else CHUNK_RECORDS,
    )


def scoring_chunking() -> dict[str, int]:
    """How the scoring task cuts a workspace's records, from ``LEDGERLINK_SCORING_CHUNK_RECORDS``
    (records scored at a time) and ``LEDGERLINK_TRAINING_RECORDS`` (the most records the models
    are trained on); unset, :mod:`ledgerlink.matching.routing`'s defaults."""
    chunking = {}
    for variable, argument in (
        ("LEDGERLINK_SCORING_CHUNK_RECORDS", "chunk_records"),
        ("LEDGERLINK_TRAINING_RECORDS", "training_records"),
    ):
        value = os.environ.get(variable)
        if not value:
            continue
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{variable} must be a whole number of records, at least 1: {value!r}")
        chunking[argument] = int(value)
    return chunking
