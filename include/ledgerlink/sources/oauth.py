"""OAuth 2.0 token endpoints of the sources: authorization-code exchange and refresh.

* Qonto (``apis.md`` §1.2): form-encoded ``POST /oauth2/token``; access tokens last an hour and
  every refresh rotates the refresh token (the old one stays valid for 60 s after first use).
* Square (§2.6): JSON ``POST /oauth2/token``; code-flow access tokens last 30 days and refresh
  without rotation (the same refresh token comes back). PKCE (``code_verifier``) for public
  clients, such as one registered dynamically (RFC 7591) the way Square's MCP server does.

A refused grant (``invalid_grant``, 401) raises :class:`AuthenticationFailed`, never retried.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ledgerlink.credentials import IssuedToken
from ledgerlink.sources.http import ApiClient, RetryPolicy

QONTO_SCOPES = ("supplier_invoice.read", "attachment.read", "organization.read", "offline_access")
SQUARE_SCOPES = ("PAYMENTS_READ", "CUSTOMERS_READ", "MERCHANT_PROFILE_READ")


@dataclass(frozen=True)
class OAuthClient:
    """One OAuth application: where to send the user, where to exchange codes, its credentials."""

    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...]

    def __repr__(self) -> str:  # the secret must never be printed
        return f"OAuthClient(client_id={self.client_id!r}, token_url={self.token_url!r})"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) for RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(
    client: OAuthClient, redirect_uri: str, state: str, code_challenge: str | None = None
) -> str:
    """The URL the user opens to consent."""
    params = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(client.scopes),
        "state": state,
    }
    if code_challenge is not None:
        params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    return f"{client.authorize_url}?{urlencode(params)}"


def _token_client(token_url: str) -> tuple[ApiClient, str]:
    base, _, path = token_url.partition("/oauth2/")
    return ApiClient(
        base, {"Accept": "application/json"}, retry_policy=RetryPolicy(max_total_seconds=30.0)
    ), (f"/oauth2/{path}")


def _issued(body: dict[str, Any], now: datetime) -> IssuedToken:
    if "expires_at" in body:
        expires_at: datetime | None = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
    elif "expires_in" in body:
        expires_at = now + timedelta(seconds=int(body["expires_in"]))
    else:
        expires_at = None
    return IssuedToken(str(body["access_token"]), body.get("refresh_token"), expires_at)


def qonto_token(client: OAuthClient, grant: dict[str, str]) -> IssuedToken:
    """Qonto's token endpoint with ``grant`` (``{"grant_type": "authorization_code", "code",
    "redirect_uri"}`` or ``{"grant_type": "refresh_token", "refresh_token"}``)."""
    http, path = _token_client(client.token_url)
    form = {"client_id": client.client_id, "client_secret": client.client_secret or "", **grant}
    with http:
        body = http.request_json(
            "POST",
            path,
            content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return _issued(body, datetime.now(UTC))


def square_token(client: OAuthClient, grant: dict[str, str]) -> IssuedToken:
    """Square's token endpoint (JSON body) with ``grant``; a public client sends no secret."""
    http, path = _token_client(client.token_url)
    payload = {"client_id": client.client_id, **grant}
    if client.client_secret is not None:
        payload["client_secret"] = client.client_secret
    with http:
        body = http.request_json("POST", path, json=payload)
    return _issued(body, datetime.now(UTC))


def refresher(source: str, client: OAuthClient) -> Callable[[str], IssuedToken]:
    """The refresh function :func:`ledgerlink.credentials.fresh_token` calls for ``source``."""
    exchange = qonto_token if source == "qonto" else square_token

    def refresh(refresh_token: str) -> IssuedToken:
        return exchange(client, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    return refresh


def register_client(
    registration_url: str, redirect_uri: str, client_name: str = "ledgerlink"
) -> dict[str, Any]:
    """RFC 7591 Dynamic Client Registration of a public client (PKCE, no secret)."""
    base, _, path = registration_url.partition("/oauth2/")
    with ApiClient(base, {"Accept": "application/json"}) as http:
        return http.request_json(
            "POST",
            f"/oauth2/{path}",
            json={
                "client_name": client_name,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
