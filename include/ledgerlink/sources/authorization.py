"""The OAuth 2.0 authorization-code flow of a source, from the authorize URL to the stored token:
one piece serving ``ledgerlink connect`` (a loopback callback on the operator's machine) and the
status page's *Reconnect* (a callback route of the pages).

:func:`begin_authorization` remembers the request in ``ops.oauth_states``: a random ``state``
bound to the workspace, the source, the redirect URI, who asked (the page's user; ``None`` for the
CLI), a PKCE verifier (RFC 7636, sent for every client: it binds the code to this request even
when a client secret exists) and a deadline. :func:`finish_authorization` accepts a callback only
for a state that exists, was never used, has not expired and was started by the same user; it
consumes the state before exchanging the code, so a replayed callback is refused, then stores the
tokens encrypted, which marks the connection ``connected``, and resolves the source's open
incidents, saying who reconnected. A refusal raises :class:`AuthorizationRefused` with a message
for a person and changes no token, connection or incident.

A request's PKCE verifier is kept only while its callback can still be accepted: consuming the
state clears it. :func:`forget_old_authorizations`, run by every DAG run, clears it from requests
that expired unanswered, and deletes a request once it has been past its deadline for
:data:`STATE_RETENTION` (until then, who asked and how it ended stay on record).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from ledgerlink.credentials import IssuedToken, store_token
from ledgerlink.incidents import resolve_incidents
from ledgerlink.sources.http import AuthenticationFailed, SourceError
from ledgerlink.sources.oauth import OAuthClient, authorize_url, pkce_pair, qonto_token, square_token

#: How long a person has to approve at the provider before the request is refused.
STATE_LIFETIME = timedelta(minutes=10)
#: How long an ended or expired request stays on record before it is deleted.
STATE_RETENTION = timedelta(days=30)
SOURCES = ("qonto", "square")


class AuthorizationRefused(Exception):
    """A callback that must not connect anything; the message says why, for a person."""


@dataclass(frozen=True)
class PendingAuthorization:
    state: str
    #: where to send the person to approve
    authorize_url: str
    redirect_uri: str


@dataclass(frozen=True)
class Authorization:
    """The request a valid callback belongs to."""

    state: str
    workspace_id: str
    source: str
    redirect_uri: str
    code_verifier: str | None
    requested_by: str | None


@dataclass(frozen=True)
class Connected:
    workspace_id: str
    source: str
    incidents_resolved: int


def new_state(workspace_id: str) -> str:
    """A fresh unguessable state naming its workspace (so a callback finds the workspace's region
    before it can look the state up); the whole string is what is checked."""
    return f"{workspace_id}.{secrets.token_urlsafe(32)}"


def workspace_of_state(state: str) -> str:
    """The workspace a state names, or ``""`` for a string that is not one of ours."""
    workspace_id, separator, _ = state.rpartition(".")
    return workspace_id if separator else ""


def begin_authorization(
    conn: psycopg.Connection,
    client: OAuthClient,
    *,
    workspace_id: str,
    source: str,
    redirect_uri: str,
    requested_by: str | None,
    now: datetime,
) -> PendingAuthorization:
    """Remember a new authorization request (committed) and return the URL to approve it at."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    state = new_state(workspace_id)
    verifier, challenge = pkce_pair()
    with conn.transaction():
        conn.execute(
            "insert into ops.oauth_states (state, workspace_id, source, redirect_uri, code_verifier,"
            " requested_by, created_at, expires_at) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (state, workspace_id, source, redirect_uri, verifier, requested_by, now, now + STATE_LIFETIME),
        )
    return PendingAuthorization(state, authorize_url(client, redirect_uri, state, challenge), redirect_uri)


def claim_authorization(
    conn: psycopg.Connection,
    state: str,
    *,
    requested_by: str | None,
    now: datetime,
    provider_error: str | None = None,
) -> Authorization:
    """Consume ``state`` (committed) and return its request, or refuse: unknown, used, expired,
    started by someone else, or refused by the provider (``provider_error``, which uses the state
    up: the person starts again)."""
    with conn.transaction():
        row = conn.execute(
            "select workspace_id, source, redirect_uri, code_verifier, requested_by, expires_at, consumed_at"
            " from ops.oauth_states where state = %s for update",
            (state,),
        ).fetchone()
        if row is None or row[4] != requested_by:
            # another user's state is as unknown as a forged one: its existence is not disclosed
            raise AuthorizationRefused(
                "This authorization was not started by you here; nothing was changed. Start again"
                " with Reconnect."
            )
        workspace_id, source, redirect_uri, verifier, owner, expires_at, consumed_at = row
        if consumed_at is not None:
            raise AuthorizationRefused(
                "This authorization was already used; nothing was changed. Start again with Reconnect."
            )
        outcome = "claimed"
        if provider_error is not None:
            outcome = f"refused by the provider: {provider_error}"[:200]
        elif expires_at <= now:
            outcome = "expired"
        conn.execute(
            "update ops.oauth_states set consumed_at = %s, outcome = %s, code_verifier = null"
            " where state = %s",
            (now, outcome, state),
        )
    if provider_error is not None:
        raise AuthorizationRefused(
            f"{source.capitalize()} did not authorize ledgerlink ({provider_error}); nothing was"
            " changed. Start again with Reconnect."
        )
    if outcome == "expired":
        minutes = int(STATE_LIFETIME.total_seconds() // 60)
        raise AuthorizationRefused(
            f"This authorization expired (it is valid for {minutes} minutes); nothing was changed."
            " Start again with Reconnect."
        )
    return Authorization(state, workspace_id, source, redirect_uri, verifier, owner)


def forget_old_authorizations(conn: psycopg.Connection, now: datetime) -> int:
    """Clear the PKCE verifier of every request whose deadline has passed, and delete the requests
    past it for longer than :data:`STATE_RETENTION` (committed); the number deleted. A request
    still within its deadline is left whole: its callback may yet arrive."""
    with conn.transaction():
        conn.execute(
            "update ops.oauth_states set code_verifier = null"
            " where expires_at <= %s and code_verifier is not null",
            (now,),
        )
        deleted = conn.execute(
            "delete from ops.oauth_states where expires_at <= %s", (now - STATE_RETENTION,)
        ).rowcount
    return deleted


def exchange_code(client: OAuthClient, authorization: Authorization, code: str) -> IssuedToken:
    """The provider's tokens for ``code``, sent with the request's redirect URI and PKCE verifier."""
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": authorization.redirect_uri}
    if authorization.code_verifier is not None:
        grant["code_verifier"] = authorization.code_verifier
    exchange = qonto_token if authorization.source == "qonto" else square_token
    try:
        issued = exchange(client, grant)
    except (AuthenticationFailed, SourceError) as error:
        raise AuthorizationRefused(
            f"{authorization.source.capitalize()} refused the authorization code ({error}); nothing"
            " was changed. Start again with Reconnect."
        ) from error
    if authorization.source == "qonto" and issued.refresh_token is None:
        raise AuthorizationRefused(
            "Qonto issued no refresh token: the offline_access scope was not granted; nothing was changed."
        )
    return issued


def store_authorization(
    conn: psycopg.Connection, authorization: Authorization, issued: IssuedToken, *, connected_by: str
) -> Connected:
    """Store the tokens encrypted (the connection is ``connected`` again) and resolve the source's
    open incidents, in one transaction."""
    with conn.transaction():
        store_token(
            conn,
            authorization.workspace_id,
            authorization.source,
            issued.access_token,
            issued.refresh_token,
            issued.expires_at,
        )
        resolved = resolve_incidents(
            conn, authorization.workspace_id, authorization.source, resolved_by=connected_by
        )
        conn.execute(
            "update ops.oauth_states set outcome = 'connected' where state = %s", (authorization.state,)
        )
    return Connected(authorization.workspace_id, authorization.source, resolved)


def finish_authorization(
    conn: psycopg.Connection,
    client_for: Callable[[str], OAuthClient],
    *,
    state: str,
    code: str | None,
    provider_error: str | None = None,
    requested_by: str | None,
    now: datetime,
    connected_by: str,
) -> Connected:
    """Check the callback for ``state``, exchange its code with the source's OAuth application
    (``client_for(source)``, which may refuse) and store the tokens; refuse with
    :class:`AuthorizationRefused`, changing nothing but the state's use."""
    authorization = claim_authorization(
        conn, state, requested_by=requested_by, now=now, provider_error=provider_error
    )
    if not code:
        raise AuthorizationRefused("The provider's answer carries no code; nothing was changed.")
    issued = exchange_code(client_for(authorization.source), authorization, code)
    return store_authorization(conn, authorization, issued, connected_by=connected_by)
