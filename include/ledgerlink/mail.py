"""SMTP endpoints and the header hygiene every message ledgerlink sends shares: documents to the
QuickBooks email-in and notices to workspace owners."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 30.0

    def __repr__(self) -> str:  # the password must never be printed
        return f"SmtpEndpoint(host={self.host!r}, port={self.port}, sender={self.sender!r})"


def header_safe(text: Any) -> str:
    """Collapse control characters (CR/LF included) so no value can add a header."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or "")).strip()


def _open_session(endpoint: SmtpEndpoint) -> smtplib.SMTP:
    """A connected, greeted and logged-in client (STARTTLS when the endpoint asks for it); the
    socket is closed again if any step fails."""
    client = smtplib.SMTP(endpoint.host, endpoint.port, timeout=endpoint.timeout_seconds)
    try:
        # Greet first: callers may drive MAIL/RCPT/DATA themselves, which, unlike send_message,
        # do not say EHLO on their own (a server without login then answers 503).
        client.ehlo_or_helo_if_needed()
        if endpoint.starttls:
            client.starttls()
            client.ehlo()
        if endpoint.username:
            client.login(endpoint.username, endpoint.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _say_goodbye(client: smtplib.SMTP) -> None:
    """QUIT, never raising on its reply: a message the server already accepted must not be
    reported as failed because the goodbye went wrong, and an error inside the session must not
    be masked by one from QUIT (``smtplib.SMTP.__exit__`` does both)."""
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


@contextmanager
def smtp_session(endpoint: SmtpEndpoint) -> Iterator[smtplib.SMTP]:
    """A connected, greeted and logged-in SMTP client for one conversation, said goodbye to on
    leaving (see :func:`_say_goodbye`)."""
    client = _open_session(endpoint)
    try:
        yield client
    finally:
        _say_goodbye(client)


class ReusedSmtpSession:
    """One SMTP session carrying many messages, so a message costs MAIL, RCPT and DATA rather
    than a connection, a greeting and a login too.

    :meth:`client` opens the session on first use, and again after :meth:`discard` or once
    ``messages_per_session`` messages went through it (servers limit a session's messages).
    After an error reply to MAIL, RCPT or DATA, :meth:`reset` says RSET so the next message
    starts a clean transaction; after a dropped connection, a timeout or a refused message, the
    caller calls :meth:`discard` (the session's state is unknown, so no QUIT is waited for)."""

    def __init__(self, endpoint: SmtpEndpoint, messages_per_session: int = 100) -> None:
        self.endpoint = endpoint
        self.messages_per_session = messages_per_session
        self._client: smtplib.SMTP | None = None
        self._messages = 0

    def client(self) -> smtplib.SMTP:
        if self._client is not None and self._messages >= self.messages_per_session:
            self.close()
        if self._client is None:
            self._client = _open_session(self.endpoint)
            self._messages = 0
        return self._client

    def message_sent(self) -> None:
        self._messages += 1

    def reset(self) -> None:
        if self._client is None:
            return
        try:
            code, _ = self._client.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self.discard()

    def discard(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        if self._client is not None:
            _say_goodbye(self._client)
            self._client = None

    def __enter__(self) -> ReusedSmtpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
