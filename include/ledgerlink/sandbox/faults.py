"""Fault injection for every sandbox API, settable per test and per endpoint.

A :class:`FaultInjector` holds rules (service, method, path prefix) -> :class:`Fault`, each for a
number of matching requests. :class:`FaultMiddleware` wraps one service's app and, for a matching
request, answers with the fault instead of (or on top of) the real response:

* ``status``: a 429 (with or without ``Retry-After``) or 5xx, in the service's own error shape;
* ``latency_seconds``: a delay before answering (longer than the client's timeout = a timeout);
* ``reset``: the connection drops after the headers, with the body promised but never sent;
* ``truncate``: a complete HTTP message whose JSON body is cut in half;
* ``auth``: ``expired`` or ``revoked``, the service's answer to such a token (401; on an OAuth
  token endpoint 400 ``invalid_grant``);
* ``body``: any raw body with status ``status`` (default 200), e.g. a QuickBooks ``Fault`` sent
  with 200, or a page with a malformed record.

Every request is recorded in :attr:`FaultInjector.requests` (service, method, decoded path?query), so a test
can prove what a client sent. A sandbox started from the CLI takes the same rules over HTTP:
``POST /_sandbox/faults`` with a JSON rule, ``DELETE /_sandbox/faults`` to clear.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Builds a service's error body: (status, auth kind or None, path) -> (status, JSON body).
ErrorBody = Callable[[int, str | None, str], tuple[int, dict[str, Any]]]

CONTROL_PATH = "/_sandbox/faults"


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    retry_after: str | None = None
    latency_seconds: float = 0.0
    reset: bool = False
    truncate: bool = False
    auth: Literal["expired", "revoked"] | None = None
    body: str | None = None


@dataclass
class _Rule:
    service: str
    path_prefix: str
    method: str | None
    fault: Fault
    remaining: int | None


@dataclass
class FaultInjector:
    """Rules shared by the sandbox's services; thread-safe, changed by tests while servers run."""

    _rules: list[_Rule] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        service: str,
        path_prefix: str,
        fault: Fault,
        *,
        method: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Apply ``fault`` to the next ``times`` matching requests (``None``: until cleared)."""
        with self._lock:
            self._rules.append(_Rule(service, path_prefix, method and method.upper(), fault, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.requests.clear()

    def take(self, service: str, method: str, path: str, query: str = "") -> Fault | None:
        with self._lock:
            self.requests.append((service, method, f"{path}?{query}" if query else path))
            for rule in self._rules:
                if rule.service != service or not path.startswith(rule.path_prefix):
                    continue
                if rule.method is not None and rule.method != method:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None


class FaultMiddleware:
    """Pure ASGI middleware (it must control the bytes on the wire)."""

    def __init__(self, app: ASGIApp, *, service: str, injector: FaultInjector, error_body: ErrorBody) -> None:
        self.app, self.service, self.injector, self.error_body = app, service, injector, error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == CONTROL_PATH:
            await self._control(method, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        fault = self.injector.take(self.service, method, path, unquote_plus(query))
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.latency_seconds:
            await asyncio.sleep(fault.latency_seconds)
        if fault.reset:
            # Promise a body and close without sending it: the client sees the connection drop.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]}
            )
            return
        if fault.body is not None:
            await _send_json_text(send, fault.status or 200, fault.body, {})
            return
        if fault.auth is not None or fault.status is not None:
            status, body = self.error_body(fault.status or 401, fault.auth, path)
            headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
            await _send_json_text(send, status, json.dumps(body), headers)
            return
        if fault.truncate:
            await self._truncated(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(cut)).encode())]})
        await send({"type": "http.response.body", "body": cut})

    async def _control(self, method: str, receive: Receive, send: Send) -> None:
        if method == "DELETE":
            self.injector.clear()
            await _send_json_text(send, 200, '{"cleared":true}', {})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            rule = json.loads(raw)
            known = {f.name for f in fields(Fault)}
            fault = Fault(**{k: v for k, v in rule.items() if k in known})
            self.injector.add(
                self.service, str(rule["path"]), fault, method=rule.get("method"), times=rule.get("times", 1)
            )
        except (ValueError, KeyError, TypeError) as error:
            await _send_json_text(send, 400, json.dumps({"error": str(error)}), {})
            return
        await _send_json_text(send, 201, '{"added":true}', {})


async def _send_json_text(send: Send, status: int, text: str, headers: dict[str, str]) -> None:
    body = text.encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
