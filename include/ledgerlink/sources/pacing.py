"""Pacing requests to a source's published rate limits, so a long first sync waits its turn
instead of collecting 429s.

Qonto allows 1,000 requests per 10 s and 10,000 per 10 min, counted per IP address (``apis.md``
§1.6): 100,000 attachments (an API call each for a fresh download URL) take at least 100 minutes,
whatever the client does. Retrying the 429s would get there too, but hammering a limit risks
Qonto's throttling and spends the retry budget of every request that meets it.

The limits count per IP address, and every process of a machine shares its address: the parallel
workspace tasks of the LocalExecutor, a Celery worker's processes. So the requests a machine sent
are kept in one ledger in its state folder (pyrate-limiter's SQLite bucket, its file lock making
each turn one transaction across processes), and every pacer of the machine for the same host
takes its turns from it. Another machine has its own address and its own state folder.

A limit is written ``REQUESTS/WINDOW``, the window in seconds, minutes or hours (``1000/10s``,
``10000/10min``, ``5000/1h``); several are separated by commas; ``off`` turns pacing off.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyrate_limiter import Limiter, Rate, SQLiteBucket, validate_rate_list

logger = logging.getLogger(__name__)

#: Added to every window the client paces to: a request takes its turn here, but the source
#: counts it when it arrives, a network and a scheduler later. Without slack, a request delayed
#: on its way lands in the same window as the ones sent a full window after it.
WINDOW_MARGIN_SECONDS = 1.0
#: Seconds between two progress lines about pacing in the task log.
LOG_EVERY_SECONDS = 30.0

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|min|m|h)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` requests in any window of ``seconds``."""

    requests: int
    seconds: float

    def __str__(self) -> str:
        if self.seconds >= 60 and self.seconds % 60 == 0:
            return f"{self.requests}/{self.seconds / 60:g}min"
        return f"{self.requests}/{self.seconds:g}s"


def parse_rate_limits(text: str) -> tuple[RateLimit, ...]:
    """``"1000/10s,10000/10min"`` as limits; ``"off"`` (or nothing) as none. Refuses anything
    else with a message naming the part it could not read."""
    if text.strip().lower() in ("", "off", "none"):
        return ()
    limits = []
    for part in text.split(","):
        match = _LIMIT.match(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a rate limit like 1000/10s or 10000/10min")
        requests, amount, unit = match.groups()
        seconds = float(amount or 1) * _UNITS[unit.lower()]
        if int(requests) < 1 or seconds <= 0:
            raise ValueError(f"{part.strip()!r}: a limit needs at least one request in a window above 0 s")
        limits.append(RateLimit(int(requests), seconds))
    return tuple(sorted(limits, key=lambda limit: limit.seconds))


def describe(limits: Sequence[RateLimit]) -> str:
    return ", ".join(str(limit) for limit in limits) or "off"


class RequestPacer:
    """Makes each request take a turn within every limit (a sliding window log), blocking while a
    window is full. The log is ``ledger``, a SQLite file shared by every process that names it.
    Thread-safe: parallel downloads share it. Time spent
    waiting is logged when pacing first holds a request back, then every
    :data:`LOG_EVERY_SECONDS` while it keeps doing so."""

    def __init__(
        self,
        name: str,
        limits: Sequence[RateLimit],
        *,
        ledger: Path,
        margin_seconds: float = WINDOW_MARGIN_SECONDS,
    ) -> None:
        if not limits:
            raise ValueError("a pacer needs at least one limit")
        self.name, self.limits = name, tuple(limits)
        rates = sorted(
            (Rate(limit.requests, round((limit.seconds + margin_seconds) * 1000)) for limit in limits),
            key=lambda rate: rate.interval,
        )
        if not validate_rate_list(rates):
            raise ValueError(
                f"{name}: the limits {describe(limits)} must allow more requests in each longer window,"
                f" at a lower rate (with the {margin_seconds:g} s margin added to every window)"
            )
        ledger.parent.mkdir(parents=True, exist_ok=True)
        self._limiter = Limiter(SQLiteBucket.init_from_file(rates, db_path=str(ledger), use_file_lock=True))
        self._lock = threading.Lock()
        self.requests = 0
        self.held_back = 0
        self.waited_seconds = 0.0
        self._logged_at: float | None = None

    def wait_turn(self) -> None:
        """Return when one more request fits in every limit, counting it."""
        if self._limiter.try_acquire(self.name, blocking=False):
            with self._lock:
                self.requests += 1
            return
        started = time.monotonic()
        self._limiter.try_acquire(self.name)
        now = time.monotonic()
        with self._lock:
            self.requests += 1
            self.held_back += 1
            self.waited_seconds += now - started
            if self._logged_at is not None and now - self._logged_at < LOG_EVERY_SECONDS:
                return
            self._logged_at = now
            requests, held_back, waited = self.requests, self.held_back, self.waited_seconds
        logger.info(
            "%s: pacing requests to %s; %d of %d requests waited their turn, %.1f s in all so far",
            self.name,
            describe(self.limits),
            held_back,
            requests,
            waited,
        )

    def close(self) -> None:
        self._limiter.close()


_shared: dict[tuple[str, tuple[RateLimit, ...]], RequestPacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(name: str, limits: Sequence[RateLimit]) -> RequestPacer | None:
    """The machine-wide pacer for ``name`` (a source's host: its limits count per IP address, so
    every client on the machine, whatever its workspace or process, takes its turns from one
    ledger in the state folder), or ``None`` without limits. One pacer per process serves all its
    clients."""
    if not limits:
        return None
    key = (name, tuple(limits))
    with _shared_lock:
        pacer = _shared.get(key)
        if pacer is None:
            pacer = _shared[key] = RequestPacer(name, limits, ledger=ledger_path(name, limits))
        return pacer


def ledger_path(name: str, limits: Sequence[RateLimit]) -> Path:
    """Where the machine keeps the requests sent to ``name`` under ``limits``: a file per host and
    set of limits in the state folder (a change of limits starts a new log rather than reading the
    old one's windows)."""
    from ledgerlink.settings import load_settings

    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{name} {describe(limits)}").strip("-")
    return load_settings().state_dir / "pacing" / f"{slug}.sqlite"
