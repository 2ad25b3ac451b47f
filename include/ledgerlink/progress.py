"""Periodic progress lines for long work in Airflow task logs: enough to see a task advance, not
one line per item."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class ProgressLog:
    """Log ``what`` has done so far, at most once every ``interval_seconds`` (and at the end)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        total: int | None = None,
        interval_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.total = total
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.done = 0
        self._started = self._logged = clock()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.clock() - self._logged >= self.interval_seconds:
            self._log()

    def finish(self) -> None:
        if self.done:
            self._log()

    def _log(self) -> None:
        self._logged = self.clock()
        elapsed = self._logged - self._started
        of_total = f" of {self.total:,}" if self.total is not None else ""
        rate = f", {self.done / elapsed:,.0f}/s" if elapsed > 0 else ""
        self.logger.info("%s: %s%s done in %.0f s%s", self.what, f"{self.done:,}", of_total, elapsed, rate)


class InfoLogger(Protocol):
    """A standard library logger, or Airflow's task logger."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...


@contextmanager
def progress_while(
    logger: InfoLogger,
    what: str,
    describe: Callable[[], str],
    interval_seconds: float = 15.0,
) -> Iterator[None]:
    """While the block runs, log ``what``, ``describe()`` and the time so far every
    ``interval_seconds`` (never more often): for work that runs as a few long steps rather than
    item by item, such as scoring. ``describe`` is called from another thread."""
    stopped = threading.Event()
    started = time.monotonic()

    def report() -> None:
        while not stopped.wait(interval_seconds):
            logger.info("%s: %s, %.0f s so far", what, describe(), time.monotonic() - started)

    reporter = threading.Thread(target=report, name=f"progress of {what}", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        stopped.set()
        reporter.join()
