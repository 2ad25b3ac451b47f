"""Progress lines in task logs: periodic, never one per item, and a last line at the end."""

from __future__ import annotations

import logging
import time

from ledgerlink.progress import ProgressLog, progress_while


def test_progress_logs_once_per_interval_and_at_the_end(caplog) -> None:  # noqa: ANN001
    now = [0.0]
    progress = ProgressLog(logging.getLogger("progress-test"), "pages", total=1000, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="progress-test"):
        for _ in range(100):
            now[0] += 1  # 100 s in all, ten pages a second, a line due every 15 s
            progress.advance(10)
        progress.finish()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 7, lines
    assert lines[0].startswith("pages: 150 of 1,000 done in 15 s")
    assert lines[-1].startswith("pages: 1,000 of 1,000 done in 100 s, 10/s")


def test_nothing_done_logs_nothing(caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.INFO):
        ProgressLog(logging.getLogger("progress-test"), "rows").finish()
    assert caplog.records == []


def test_a_long_step_logs_what_it_has_done_at_most_once_per_interval(caplog) -> None:  # noqa: ANN001
    steps: list[str] = []
    logger = logging.getLogger("progress-test")
    with caplog.at_level(logging.INFO, logger="progress-test"):
        with progress_while(logger, "scoring", lambda: f"done: {', '.join(steps) or 'none'}", 0.05):
            steps.append("read")
            deadline = time.monotonic() + 30
            while len(caplog.records) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        after_the_block = len(caplog.records)
        time.sleep(0.2)
    lines = [record.getMessage() for record in caplog.records]
    assert after_the_block >= 3, lines
    assert lines[0].startswith("scoring: done: read, ")
    assert len(caplog.records) == after_the_block  # nothing once the work is over
    times = [record.created for record in caplog.records]
    assert all(later - earlier >= 0.04 for earlier, later in zip(times, times[1:], strict=False)), times
