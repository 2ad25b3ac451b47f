"""The HTTP behaviour every source client shares: explicit timeouts, bounded retries with
exponential backoff and jitter that honour ``Retry-After``, and no retry of an auth failure."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class SourceError(RuntimeError):
    """A source answered in a way ledgerlink cannot continue from."""


class AuthenticationFailed(SourceError):
    """The source refused the credentials (401, revoked or expired token). Never retried."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    max_total_seconds: float = 120.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_delay_seconds)
            except ValueError:
                pass
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # full jitter  # noqa: S311


class ApiClient:
    """A thin httpx wrapper with ledgerlink's retry rules; subclasses add one API's paging."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            transport=transport,
        )
        self._retry_policy = retry_policy or RetryPolicy()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries on transient failures; raise :class:`AuthenticationFailed` on 401."""
        policy = self._retry_policy
        started = time.monotonic()
        for attempt in range(1, policy.max_attempts + 1):
            retry_after: str | None = None
            try:
                response = self._http.request(method, url, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 401:
                    raise AuthenticationFailed(f"{method} {url} was refused: 401")
                if response.status_code not in TRANSIENT_STATUSES:
                    response.raise_for_status()
                    return response
                failure = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After")
            delay = policy.delay(attempt, retry_after)
            out_of_time = time.monotonic() - started + delay > policy.max_total_seconds
            if attempt == policy.max_attempts or out_of_time:
                raise SourceError(f"{method} {url} failed after {attempt} attempts: {failure}")
            logger.warning("%s %s: %s; retrying in %.1fs", method, url, failure, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")
