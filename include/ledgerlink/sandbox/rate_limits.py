"""A source's published rate limits, enforced by its sandbox like the real API enforces them.

A :class:`RateLimitGate` counts the requests it admits in a sliding window per limit (one
counter: every client of a sandbox is on one machine, so on one IP address). A request over a
limit gets 429 in the service's error shape, with ``Retry-After`` (whole seconds until a request
fits again) unless :attr:`RateLimitGate.retry_after` is off: whether Qonto sends it is
unconfirmed (``apis.md`` §1.6). Refused requests are not counted against the limit. Off (no
limits) by default; tests and ``ledgerlink sandbox serve --qonto-rate-limits`` set it, and
the gate keeps what it admitted and refused so a test can prove a client stayed under it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyrate_limiter import InMemoryBucket, Rate, RateItem
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink.sandbox.faults import ErrorBody
from ledgerlink.sources.pacing import RateLimit


@dataclass
class RateLimitGate:
    """Limits shared by a running sandbox and the test that sets them; thread-safe."""

    limits: tuple[RateLimit, ...] = ()
    #: Whether a 429 carries ``Retry-After``.
    retry_after: bool = True
    admitted: int = 0
    refused: int = 0
    _bucket: InMemoryBucket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.set(self.limits, retry_after=self.retry_after)

    def set(self, limits: Sequence[RateLimit], *, retry_after: bool = True) -> None:
        """Enforce ``limits`` from now on (none: admit everything), with fresh counts."""
        rates = sorted((Rate(limit.requests, round(limit.seconds * 1000)) for limit in limits), key=_interval)
        with self._lock:
            self.limits, self.retry_after = tuple(limits), retry_after
            self._bucket = InMemoryBucket(rates) if rates else None
            self.admitted = self.refused = 0

    def admit(self) -> float | None:
        """Count one request: ``None`` when it is admitted, else the seconds until one fits."""
        with self._lock:
            if self._bucket is None:
                self.admitted += 1
                return None
            now = time.monotonic_ns() // 1_000_000
            self._bucket.leak(now)
            decision = self._bucket.put_decision(RateItem("sandbox", now))
            assert not isinstance(decision, bool) and not hasattr(decision, "__await__")
            if decision.allowed:
                self.admitted += 1
                return None
            self.refused += 1
            return (decision.retry_after_ms or 0) / 1000


def _interval(rate: Rate) -> int:
    return rate.interval


class RateLimitMiddleware:
    """Counts every request whose path starts with ``path_prefix`` through ``gate``; answers
    429 with the service's error body for those over the limits."""

    def __init__(self, app: ASGIApp, *, gate: RateLimitGate, path_prefix: str, error_body: ErrorBody) -> None:
        self.app, self.gate, self.path_prefix, self.error_body = app, gate, path_prefix, error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        wait = self.gate.admit()
        if wait is None:
            await self.app(scope, receive, send)
            return
        status, body = self.error_body(429, None, scope["path"])
        raw = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        if self.gate.retry_after:
            headers.append((b"retry-after", str(max(1, math.ceil(wait))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})
