"""What the three API servers share: options, timestamp parsing, bearer tokens, opaque cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.rate_limits import RateLimitGate

DEFAULT_WEBHOOK_NOTIFICATION_URL = "http://127.0.0.1:8080/ledgerlink/webhooks/square"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SandboxOptions:
    """Behaviour the public documentation leaves open (see ``shared/reference/apis.md``), made
    configurable so tests can pin each choice."""

    #: Qonto attachment download URLs stay valid this long (documented: 30 minutes).
    attachment_url_ttl_seconds: float = 1800.0
    #: Qonto's default ``per_page`` is unconfirmed; 100 is the documented maximum.
    qonto_default_per_page: int = 100
    #: What a ``per_page`` above 100 does: ``clamp`` to 100 (default) or ``reject`` with 422.
    qonto_per_page_over_max: Literal["clamp", "reject"] = "clamp"
    #: Lifetime of access tokens minted by the sandbox's Qonto OAuth token endpoint (1 hour).
    qonto_access_token_ttl_seconds: float = 3600.0
    #: A used Qonto refresh token keeps working this long after its first use (60 s).
    qonto_refresh_grace_seconds: float = 60.0
    #: QuickBooks hides inactive name-list records (vendors, customers, accounts) unless a query
    #: names ``Active``. Off by default so every fixture record is readable with ``select *``;
    #: turn it on to see what a real company returns.
    quickbooks_hide_inactive: bool = False
    #: QuickBooks answers 429 to more than this many concurrent requests per company.
    quickbooks_max_concurrent: int = 10
    #: Square's ListPayments window when ``begin_time`` is absent: now minus one year.
    square_default_lookback: timedelta = timedelta(days=365)
    #: Where Square webhooks for this sandbox are addressed; part of the signed payload.
    webhook_notification_url: str = DEFAULT_WEBHOOK_NOTIFICATION_URL
    #: Email-in holds each SMTP reply this long, as a server across the internet would (one
    #: round trip per command); 0, the default, answers at once.
    email_in_reply_delay_seconds: float = 0.0
    #: The sandbox's clock (defaults, expiries); fixture data never depends on it.
    clock: Callable[[], datetime] = field(default=utc_now)
    #: Qonto's rate limits on its API (``/v2/...``), enforced with 429s; none by default. Its
    #: documented limits are 1,000 requests per 10 s and 10,000 per 10 min, per IP address;
    #: whether its 429 carries ``Retry-After`` is unconfirmed (the gate's ``retry_after``).
    qonto_rate_limits: RateLimitGate = field(default_factory=RateLimitGate)
    #: Faults to inject per service and endpoint (see :mod:`ledgerlink.sandbox.faults`), and the
    #: record of every request the servers received.
    faults: FaultInjector = field(default_factory=FaultInjector)


class ListingResponse(JSONResponse):
    """A JSON response rendered by msgspec: the same compact JSON as Starlette's, about ten times
    faster, which matters for a page of 1,000 records (json.dumps spent 50 ms on a QuickBooks page
    of 1,000 invoices, a third of the sandbox's time in a first sync)."""

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one, known before any server
    starts. It is created as IPPROTO_TCP because asyncio (under uvicorn and aiosmtpd) turns Nagle's
    algorithm off only on connections from sockets that say they are TCP: without it, a reply
    written in pieces (aiosmtpd writes an EHLO reply line by line) waited 40 ms for the client's
    delayed ACK, once per message sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 / RFC 3339 timestamp (``Z`` or an offset; a bare date is midnight UTC)."""
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 takes fractions of any length, but not a space-encoded "+" from a sloppy URL.
    if " " in text and len(text) > 10 and text[10] == "T":
        text = text.replace(" ", "+")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def epoch_microseconds(moment: datetime) -> int:
    """An aware moment as whole microseconds since the epoch: exact, and 8 bytes in an array."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def query_fingerprint(params: Any) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(offset: int, fingerprint: str) -> str:
    """An opaque cursor tied to the query it was issued for."""
    raw = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> int:
    """The offset in ``cursor``; ``ValueError`` when it is malformed or belongs to another query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = int(document["o"])
        issued_for = str(document["q"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ValueError("malformed cursor") from error
    if issued_for != fingerprint or offset < 0:
        raise ValueError("cursor does not belong to this query")
    return offset


def consent_answer(request: Request, provider: str) -> Response | None:
    """The consent step of an OAuth authorize endpoint, as a person meets it.

    A browser (``Accept: text/html``) first gets a page naming the application and the scopes,
    with *Allow* and *Deny*: the buttons send the same query back with ``consent=allow|deny``.
    *Deny* redirects to the ``redirect_uri`` with ``error=access_denied`` and the ``state``, as
    RFC 6749 §4.1.2.1 says. Returns ``None`` when the caller should issue a code now (*Allow*, or a
    program following the URL, which the sandbox's user always consents for). The caller has
    checked the client and the redirect URI already."""
    params = request.query_params
    consent = params.get("consent")
    if consent == "deny":
        query = urlencode({"error": "access_denied", "state": params.get("state", "")})
        redirect_uri = params.get("redirect_uri", "")
        return RedirectResponse(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", 303)
    if consent == "allow" or "text/html" not in request.headers.get("accept", ""):
        return None
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">'
        for key, value in params.items()
        if key != "consent"
    )
    scopes = "".join(
        f"<li><code>{html.escape(scope)}</code></li>" for scope in params.get("scope", "").split()
    )
    page = (
        f"<!doctype html><html><head><title>{provider} sandbox: authorize</title></head>"
        f'<body style="font-family:sans-serif;max-width:36em;margin:3em auto">'
        f"<h1>{provider} sandbox</h1><p>The application <strong>{html.escape(params.get('client_id', ''))}"
        f"</strong> asks to read your account:</p><ul>{scopes}</ul>"
        f'<form method="get">{hidden}<button name="consent" value="allow">Allow</button> '
        f'<button name="consent" value="deny">Deny</button></form></body></html>'
    )
    return HTMLResponse(page)
