"""Source tokens, encrypted at rest with Fernet. Keys come from ``LEDGERLINK_FERNET_KEYS``
(comma-separated, newest first, so keys can rotate) or, by default, a key file generated once in
the state folder. Plaintext tokens never reach the database, logs or XComs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

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
