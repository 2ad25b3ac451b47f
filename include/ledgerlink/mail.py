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


@contextmanager
def smtp_session(endpoint: SmtpEndpoint) -> Iterator[smtplib.SMTP]:
    """A connected, greeted and logged-in SMTP client (STARTTLS when the endpoint asks for it).

    Leaving the session says QUIT but never raises on its reply: a message the server already
    accepted must not be reported as failed because the goodbye went wrong, and an error inside
    the session must not be masked by one from QUIT (``smtplib.SMTP.__exit__`` does both)."""
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
        yield client
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
