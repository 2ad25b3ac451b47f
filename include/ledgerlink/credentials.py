"""Source tokens, encrypted at rest with Fernet. Keys come from ``LEDGERLINK_FERNET_KEYS``
(comma-separated, newest first, so keys can rotate) or, by default, a key file generated once in
the state folder. Plaintext tokens never reach the database, logs or XComs.

A connection's ``status`` is ``connected`` or ``needs_reauth``: a source that refused the token
is not called again for that workspace until a person reconnects (which stores a new token).
Refreshes are serialised per workspace and source with an advisory lock, and the rotated refresh
token is stored in the transaction that obtained it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from cryptography.fernet import Fernet, MultiFernet

from ledgerlink.settings import Settings, load_settings

KEYS_VARIABLE = "LEDGERLINK_FERNET_KEYS"


def token_cipher(settings: Settings | None = None) -> MultiFernet:
    """The cipher for tokens: every configured key decrypts, the first one encrypts."""
    configured = os.environ.get(KEYS_VARIABLE)
    if configured:
        keys = [key.strip() for key in configured.split(",") if key.strip()]
    else:
        key_file = (settings or load_settings()).secrets_dir / "fernet.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.touch(mode=0o600)
            key_file.write_bytes(Fernet.generate_key())
        keys = [key_file.read_text().strip()]
    return MultiFernet([Fernet(key) for key in keys])


class NotConnected(LookupError):
    """The workspace has no connection to the source: a person must run ``ledgerlink connect``.
    Retrying cannot help."""


@dataclass(frozen=True)
class SourceToken:
    access_token: str
    refresh_token: str | None
    access_token_expires_at: datetime | None
    status: str

    def __repr__(self) -> str:  # tokens must never be printed
        return f"SourceToken(status={self.status!r}, expires_at={self.access_token_expires_at!r})"


def store_token(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    access_token: str,
    refresh_token: str | None = None,
    access_token_expires_at: datetime | None = None,
    cipher: MultiFernet | None = None,
) -> None:
    cipher = cipher or token_cipher()
    conn.execute(
        """
        insert into ops.source_credentials
            (workspace_id, source, access_token_encrypted, refresh_token_encrypted, access_token_expires_at, status)
        values (%s, %s, %s, %s, %s, 'connected')
        on conflict (workspace_id, source) do update set
            access_token_encrypted = excluded.access_token_encrypted,
            refresh_token_encrypted = excluded.refresh_token_encrypted,
            access_token_expires_at = excluded.access_token_expires_at,
            status = 'connected',
            status_detail = null,
            updated_at = now()
        """,
        (
            workspace_id,
            source,
            cipher.encrypt(access_token.encode()),
            cipher.encrypt(refresh_token.encode()) if refresh_token else None,
            access_token_expires_at,
        ),
    )


def load_token(
    conn: psycopg.Connection, workspace_id: str, source: str, cipher: MultiFernet | None = None
) -> SourceToken:
    row = conn.execute(
        "select access_token_encrypted, refresh_token_encrypted, access_token_expires_at, status"
        " from ops.source_credentials where workspace_id = %s and source = %s",
        (workspace_id, source),
    ).fetchone()
    if row is None:
        raise NotConnected(f"workspace {workspace_id!r} has no {source} connection; run `ledgerlink connect`")
    cipher = cipher or token_cipher()
    return SourceToken(
        access_token=cipher.decrypt(bytes(row[0])).decode(),
        refresh_token=cipher.decrypt(bytes(row[1])).decode() if row[1] else None,
        access_token_expires_at=row[2],
        status=row[3],
    )


@dataclass(frozen=True)
class RegisteredClient:
    """An OAuth client registered dynamically (RFC 7591) for one redirect URI at one server."""

    client_id: str
    client_secret: str | None = None
    registration_access_token: str | None = None
    registration_client_uri: str | None = None

    def __repr__(self) -> str:  # the secret and the registration token must never be printed
        return f"RegisteredClient(client_id={self.client_id!r}, has_secret={self.client_secret is not None})"


def store_registered_client(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    authorization_server: str,
    redirect_uri: str,
    registration: Mapping[str, Any],
    cipher: MultiFernet | None = None,
) -> RegisteredClient:
    """Keep the registration response so a reconnect reuses the client instead of registering
    another; its secret and registration access token are encrypted like tokens."""
    client_id = registration.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("the registration response names no client_id")
    client = RegisteredClient(
        client_id=client_id,
        client_secret=registration.get("client_secret") or None,
        registration_access_token=registration.get("registration_access_token") or None,
        registration_client_uri=registration.get("registration_client_uri") or None,
    )
    expires = registration.get("client_secret_expires_at")  # RFC 7591: 0 means never
    cipher = cipher or token_cipher()

    def encrypted(value: str | None) -> bytes | None:
        return cipher.encrypt(value.encode()) if value else None

    conn.execute(
        """
        insert into ops.oauth_clients (workspace_id, source, authorization_server, redirect_uri, client_id,
            client_secret_encrypted, registration_access_token_encrypted, registration_client_uri,
            client_secret_expires_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))
        on conflict (workspace_id, source, authorization_server, redirect_uri) do update set
            client_id = excluded.client_id, client_secret_encrypted = excluded.client_secret_encrypted,
            registration_access_token_encrypted = excluded.registration_access_token_encrypted,
            registration_client_uri = excluded.registration_client_uri,
            client_secret_expires_at = excluded.client_secret_expires_at, registered_at = now()
        """,
        (
            workspace_id,
            source,
            authorization_server,
            redirect_uri,
            client.client_id,
            encrypted(client.client_secret),
            encrypted(client.registration_access_token),
            client.registration_client_uri,
            expires if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0 else None,
        ),
    )
    return client


def load_registered_client(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    authorization_server: str,
    redirect_uri: str,
    cipher: MultiFernet | None = None,
) -> RegisteredClient | None:
    """The client registered earlier for this workspace, server and redirect URI, unless its
    secret has expired (then the caller registers again)."""
    row = conn.execute(
        "select client_id, client_secret_encrypted, registration_access_token_encrypted,"
        " registration_client_uri from ops.oauth_clients"
        " where workspace_id = %s and source = %s and authorization_server = %s and redirect_uri = %s"
        " and (client_secret_expires_at is null or client_secret_expires_at > now())",
        (workspace_id, source, authorization_server, redirect_uri),
    ).fetchone()
    if row is None:
        return None
    cipher = cipher or token_cipher()
    return RegisteredClient(
        client_id=row[0],
        client_secret=cipher.decrypt(bytes(row[1])).decode() if row[1] else None,
        registration_access_token=cipher.decrypt(bytes(row[2])).decode() if row[2] else None,
        registration_client_uri=row[3],
    )


CONNECTED = "connected"
NEEDS_REAUTH = "needs_reauth"

#: Refresh an access token this long before it expires.
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    """What a token endpoint returned."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"IssuedToken(expires_at={self.expires_at!r})"


def mark_needs_reauth(conn: psycopg.Connection, workspace_id: str, source: str, detail: str) -> None:
    """Stop using the connection until a person reconnects it."""
    conn.execute(
        "update ops.source_credentials set status = 'needs_reauth', status_detail = %s, updated_at = now()"
        " where workspace_id = %s and source = %s",
        (detail[:500], workspace_id, source),
    )


def connection_status(conn: psycopg.Connection, workspace_id: str, source: str) -> str | None:
    row = conn.execute(
        "select status from ops.source_credentials where workspace_id = %s and source = %s",
        (workspace_id, source),
    ).fetchone()
    return row[0] if row else None


def fresh_token(
    conn: psycopg.Connection,
    workspace_id: str,
    source: str,
    now: datetime,
    refresh: Callable[[str], IssuedToken],
    *,
    force: bool = False,
) -> SourceToken:
    """The connection's token, refreshed first when it expires within :data:`REFRESH_MARGIN` (or
    when ``force``: the source refused it). One refresh at a time per workspace and source: the
    advisory lock makes a second task wait, then it sees the token the first one stored. The new
    (rotated) refresh token is committed with the access token in the lock's transaction, so a
    crash can never leave ledgerlink holding only a dead refresh token."""
    with conn.transaction():
        token = load_token(conn, workspace_id, source)
        if not (force or _expiring(token, now)) or token.refresh_token is None:
            return token
        conn.execute(
            "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"ledgerlink-refresh:{workspace_id}:{source}",),
        )
        current = load_token(conn, workspace_id, source)
        refreshed_meanwhile = current.access_token != token.access_token
        if refreshed_meanwhile or current.refresh_token is None:
            return current
        issued = refresh(current.refresh_token)
        store_token(
            conn,
            workspace_id,
            source,
            issued.access_token,
            issued.refresh_token or current.refresh_token,
            issued.expires_at,
        )
        return load_token(conn, workspace_id, source)


def _expiring(token: SourceToken, now: datetime) -> bool:
    expires_at = token.access_token_expires_at
    return expires_at is not None and expires_at - REFRESH_MARGIN <= now
