"""The HTTP behaviour every source client shares: explicit timeouts, bounded retries with
exponential backoff and jitter that honour ``Retry-After``, and no retry of an auth failure.

With a :class:`~ledgerlink.sources.pacing.RequestPacer`, every attempt first waits its turn within
the source's published rate limits.

Transient failures (429, 5xx, timeouts, dropped connections, a body cut short) are retried within
:class:`RetryPolicy`'s bounds on attempts and total time. An authentication failure (401, an
``invalid_grant`` from a token endpoint, a revoked or expired token) raises
:class:`AuthenticationFailed` at once: retrying a refused credential only gets the caller throttled
(Qonto throttles after 200 401s in an hour).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import httpx
import msgspec

from ledgerlink.sources.pacing import RequestPacer

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def tls_context() -> ssl.SSLContext:
    """Certificate-verifying TLS, version 1.3 at minimum, for every real endpoint."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


class SourceError(RuntimeError):
    """A source answered in a way ledgerlink cannot continue from."""


class AuthenticationFailed(SourceError):
    """The source refused the credentials (401, ``invalid_grant``, revoked or expired token).
    Never retried; the connection needs a person to reconnect it."""


class UnreadableResponse(SourceError):
    """A response ledgerlink cannot read records from. ``raw_body`` keeps the text exactly as
    received, for the rejection table; the read stops there and is tried again next run."""

    def __init__(self, message: str, raw_body: str) -> None:
        super().__init__(message)
        self.raw_body = raw_body


class MalformedResponse(UnreadableResponse):
    """A response body that is not the JSON object the endpoint promises, even after retries."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one request: attempts, each delay, and the total time spent."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    max_total_seconds: float = 120.0
    #: The wait after a 429 that carries no ``Retry-After`` (QuickBooks documents 60 s);
    #: ``None`` means exponential backoff like any transient failure.
    throttled_delay_seconds: float | None = None

    def delay(self, attempt: int, status: int | None, retry_after: str | None) -> float:
        hinted = _retry_after_seconds(retry_after)
        if hinted is not None:
            return min(hinted, self.max_delay_seconds)
        if status == 429 and self.throttled_delay_seconds is not None:
            return self.throttled_delay_seconds
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # full jitter  # noqa: S311


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def is_auth_failure(response: httpx.Response) -> bool:
    """401 from any API; an OAuth token endpoint's ``invalid_grant`` (a refresh token that
    expired, was revoked or was already rotated away); or a 403 for a scope the token lacks
    (Qonto: "missing required oauth scope", Square: ``INSUFFICIENT_SCOPES``), which only a
    person reconnecting with the right scopes can fix."""
    if response.status_code == 401:
        return True
    if response.status_code in (400, 403):
        try:
            body = response.json()
        except ValueError:
            return False
        if not isinstance(body, dict):
            return False
        if body.get("error") in ("invalid_grant", "invalid_token"):
            return True
        text = json.dumps(body.get("errors", "")).lower()
        return response.status_code == 403 and ("oauth scope" in text or "insufficient_scopes" in text)
    return False


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
        concurrency: threading.Semaphore | None = None,
        pacer: RequestPacer | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            transport=transport,
            verify=tls_context(),
        )
        self._retry_policy = retry_policy or RetryPolicy()
        self._concurrency = concurrency
        self._pacer = pacer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _slot(self) -> AbstractContextManager[Any]:
        return self._concurrency if self._concurrency is not None else nullcontext()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries on transient failures; raise :class:`AuthenticationFailed` on an
        auth failure and :class:`SourceError` once the retry bounds are spent."""
        response, _ = self._send(method, url, parse_json=False, **kwargs)
        return response

    def request_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """Like :meth:`request`, and the body as a JSON object. A body that does not parse (cut
        short in transit) is retried like a transient failure; if it never parses,
        :class:`MalformedResponse` carries the last raw text."""
        _, body = self._send(method, url, parse_json=True, **kwargs)
        assert body is not None
        return body

    def _send(
        self, method: str, url: str, *, parse_json: bool, **kwargs: Any
    ) -> tuple[httpx.Response, dict[str, Any] | None]:
        policy = self._retry_policy
        started = time.monotonic()
        malformed_body: str | None = None
        for attempt in range(1, policy.max_attempts + 1):
            retry_after: str | None = None
            status: int | None = None
            if self._pacer is not None:
                # Every attempt is a request the source counts. Waiting for a turn is not the
                # request failing: it does not spend the retry budget's time.
                turn_asked = time.monotonic()
                self._pacer.wait_turn()
                started += time.monotonic() - turn_asked
            try:
                with self._slot():
                    response = self._http.request(method, url, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                status = response.status_code
                if is_auth_failure(response):
                    raise AuthenticationFailed(
                        f"{method} {response.url.path} was refused: {_error_summary(response)}"
                    )
                if status not in TRANSIENT_STATUSES:
                    if status >= 400:
                        raise SourceError(f"{method} {response.url.path}: {_error_summary(response)}")
                    if not parse_json:
                        return response, None
                    parsed = _json_object(response)
                    if parsed is not None:
                        return response, parsed
                    malformed_body = response.text
                    failure = "the body is not a complete JSON object"
                else:
                    failure = f"HTTP {status}"
                    retry_after = response.headers.get("Retry-After")
            delay = policy.delay(attempt, status, retry_after)
            out_of_time = time.monotonic() - started + delay > policy.max_total_seconds
            if attempt == policy.max_attempts or out_of_time:
                message = f"{method} {url} failed after {attempt} attempts: {failure}"
                if malformed_body is not None and status is not None and status < 400:
                    raise MalformedResponse(message, malformed_body)
                raise SourceError(message)
            logger.warning("%s %s: %s; retrying in %.1fs", method, url, failure, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    # msgspec parses a page of 1,000 QuickBooks invoices (1.1 MB) in about 60% of json.loads' time.
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


def _error_summary(response: httpx.Response) -> str:
    """Status and the error codes a source sent, never the request's headers (they hold tokens)."""
    text = response.text[:300].replace("\n", " ")
    return f"HTTP {response.status_code} {text}"
