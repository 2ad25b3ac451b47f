"""QuickBooks' email-in address, played by a real SMTP server (aiosmtpd).

The server accepts mail for the workspace's ``...@qbodocs.com`` address (and the same local part
at ``@assist.intuit.com``, the newer domain, ``apis.md`` §3.1) and refuses every other recipient.
Each accepted message is stored as one ``.eml`` file in the mailbox folder, named by a counter
and the message's hash, written atomically (temporary file, then rename).

Checks on the message itself go through :class:`AcceptancePolicy`: the default accepts every
sender and message; :class:`QuickBooksPolicy` plays QuickBooks' own rules (registered senders,
JPG/PNG/GIF/PDF attachments only), refusing with a reply that states the reason. Each accepted
attachment becomes one "for review" item, recorded in ``for_review.jsonl`` beside the mail.

The server can require SMTP AUTH (``credentials``), as the relay ledgerlink sends through would:
a wrong password is answered ``535`` like any real server.

It can also play a server far away (``reply_delay_seconds``, off by default): each reply is held
that long before it is sent, as one network round trip would hold it, so a sender waits that much
per command, as it waits on QuickBooks over the internet.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import json
import re
import socket
import threading
from asyncio import AbstractServer
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ledgerlink.sandbox.common import bind_tcp
from ledgerlink.sandbox.fixtures import write_bytes_atomically

EMAIL_IN_DOMAINS = ("qbodocs.com", "assist.intuit.com")
#: Size cap per message; QuickBooks' own limit is unconfirmed, so it is configurable.
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: The attachment types QuickBooks' email-in turns into "for review" items.
ACCEPTED_ATTACHMENT_TYPES = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "application/pdf": (".pdf",),
}
_COUNTER_NAME = re.compile(r"^(\d{6,})-[0-9a-f]+\.eml$")


def accepted_addresses(email_in_address: str) -> frozenset[str]:
    """The workspace address and its twin on the other email-in domain, lower-cased."""
    local, _, _ = email_in_address.partition("@")
    return frozenset(f"{local}@{domain}".lower() for domain in EMAIL_IN_DOMAINS)


class AcceptancePolicy:
    """Decides on each sender and message. Return ``None`` to accept, or an SMTP reply such as
    ``"550 5.7.1 ..."`` to refuse. The base class accepts everything."""

    def check_sender(self, mail_from: str) -> str | None:
        return None

    def check_message(self, mail_from: str, recipients: list[str], content: bytes) -> str | None:
        return None


def _attachments(content: bytes) -> list[tuple[str, str]]:
    """(file name, content type) of each attachment of a raw message."""
    message = email.message_from_bytes(content)
    found = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() not in ("attachment", "inline"):
            continue
        if part.get_content_disposition() == "inline" and not part.get_filename():
            continue
        found.append((part.get_filename() or "", part.get_content_type()))
    return found


@dataclass
class QuickBooksPolicy(AcceptancePolicy):
    """QuickBooks' email-in rules: mail only from registered senders, at least one attachment,
    and every attachment a JPG, PNG, GIF or PDF."""

    registered_senders: frozenset[str]

    def check_sender(self, mail_from: str) -> str | None:
        if mail_from.lower() not in self.registered_senders:
            return f"550 5.7.1 <{mail_from}>: sender is not registered with this QuickBooks company"
        return None

    def check_message(self, mail_from: str, recipients: list[str], content: bytes) -> str | None:
        attachments = _attachments(content)
        if not attachments:
            return "550 5.6.0 no attachment: QuickBooks needs a receipt or bill attached"
        for file_name, content_type in attachments:
            extensions = ACCEPTED_ATTACHMENT_TYPES.get(content_type)
            if extensions is None or not file_name.lower().endswith(extensions):
                return (
                    f"554 5.6.1 attachment {file_name or '(unnamed)'} ({content_type}) refused:"
                    " QuickBooks accepts only JPG, PNG, GIF and PDF files"
                )
        return None


class Mailbox:
    """A folder of ``.eml`` files, ``NNNNNN-<sha256 prefix>.eml``, in arrival order."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        existing = [int(m.group(1)) for p in self.folder.iterdir() if (m := _COUNTER_NAME.match(p.name))]
        self._counter = max(existing, default=0)

    def deliver(self, content: bytes) -> Path:
        digest = hashlib.sha256(content).hexdigest()[:16]
        with self._lock:
            self._counter += 1
            path = self.folder / f"{self._counter:06d}-{digest}.eml"
            write_bytes_atomically(path, content)
        return path

    def record_for_review(self, message_path: Path, message_id: str, file_names: list[str]) -> None:
        """One "for review" item per accepted attachment, as QuickBooks creates them."""
        lines = "".join(
            json.dumps({"message": message_path.name, "message_id": message_id, "file_name": name}) + "\n"
            for name in file_names
        )
        with self._lock, (self.folder / "for_review.jsonl").open("a", encoding="utf-8") as items:
            items.write(lines)

    def for_review(self) -> list[dict[str, str]]:
        path = self.folder / "for_review.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def messages(self) -> list[Path]:
        return sorted(path for path in self.folder.glob("*.eml") if _COUNTER_NAME.match(path.name))


@dataclass
class EmailInHandler:
    """aiosmtpd hooks: recipient check, policy checks, delivery to the mailbox."""

    mailbox: Mailbox
    addresses: frozenset[str]
    policy: AcceptancePolicy = field(default_factory=AcceptancePolicy)

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        refusal = self.policy.check_sender(address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() not in self.addresses:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", errors="surrogateescape")
        mail_from = envelope.mail_from or ""
        refusal = self.policy.check_message(mail_from, list(envelope.rcpt_tos), content)
        if refusal is not None:
            return refusal
        # What a local delivery agent adds: the envelope sender and recipient.
        trace = f"Return-Path: <{mail_from}>\r\nDelivered-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        path = self.mailbox.deliver(trace + content)
        message_id = email.message_from_bytes(content).get("Message-ID", "")
        self.mailbox.record_for_review(path, str(message_id), [name for name, _ in _attachments(content)])
        return f"250 2.0.0 Ok: queued as {path.stem}"


@dataclass(frozen=True)
class _Authenticator:
    username: str
    password: str

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.username.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False)


class _DistantSMTP(SMTP):
    """An SMTP server whose every reply arrives ``reply_delay_seconds`` late: one round trip per
    command. Only a reply's last line waits (a multi-line EHLO reply is one round trip)."""

    def __init__(self, handler: Any, *, reply_delay_seconds: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.reply_delay_seconds = reply_delay_seconds

    async def push(self, status: Any) -> None:
        line = status.encode() if isinstance(status, str) else status
        if line[3:4] != b"-":
            await asyncio.sleep(self.reply_delay_seconds)
        await super().push(status)


class _BoundController(Controller):
    """aiosmtpd's threaded controller on a socket bound up front, so port 0 works and the real
    port is known before the server starts."""

    def __init__(
        self, handler: Any, sock: socket.socket, reply_delay_seconds: float = 0.0, **kwargs: Any
    ) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock
        self._reply_delay_seconds = reply_delay_seconds

    def factory(self) -> SMTP:
        if not self._reply_delay_seconds:
            return super().factory()
        return _DistantSMTP(self.handler, reply_delay_seconds=self._reply_delay_seconds, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@dataclass
class EmailInServer:
    """A running email-in server; :meth:`stop` it when done."""

    host: str
    port: int
    address: str
    mailbox: Mailbox
    _controller: Controller

    def stop(self) -> None:
        self._controller.stop()


def start_email_in(
    mailbox_dir: Path,
    email_in_address: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    policy: AcceptancePolicy | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: tuple[str, str] | None = None,
    recipients: frozenset[str] | None = None,
    reply_delay_seconds: float = 0.0,
) -> EmailInServer:
    """Start the SMTP server in a background thread and return once it answers. Port 0 picks a
    free port. With ``credentials`` the server requires AUTH (plain text on loopback) and answers
    ``535`` to any other login. ``recipients`` replaces the accepted addresses (the email-in
    address and its twin), e.g. to play a person's inbox. ``reply_delay_seconds`` holds every
    reply that long, as a distant server's round trip would (module doc)."""
    if reply_delay_seconds < 0:
        raise ValueError(f"reply_delay_seconds must not be negative, got {reply_delay_seconds}")
    sock = bind_tcp(host, port)
    mailbox = Mailbox(mailbox_dir)
    handler = EmailInHandler(
        mailbox, recipients or accepted_addresses(email_in_address), policy or AcceptancePolicy()
    )
    auth: dict[str, Any] = {}
    if credentials is not None:
        auth = {
            "authenticator": _Authenticator(*credentials),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = _BoundController(
        handler,
        sock,
        reply_delay_seconds,
        server_hostname="qbodocs.sandbox.invalid",
        data_size_limit=max_message_bytes,
        **auth,
    )
    controller.start()
    return EmailInServer(host, sock.getsockname()[1], email_in_address, mailbox, controller)
