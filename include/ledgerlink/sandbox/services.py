"""Start the whole sandbox (three API servers and email-in) in background threads."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from ledgerlink.sandbox.common import SandboxOptions, bind_tcp
from ledgerlink.sandbox.email_in import AcceptancePolicy, QuickBooksPolicy, start_email_in
from ledgerlink.sandbox.fixtures import load_fixtures
from ledgerlink.sandbox.qonto import create_qonto_app
from ledgerlink.sandbox.quickbooks import create_quickbooks_app
from ledgerlink.sandbox.square import create_square_app, square_oauth_client
from ledgerlink.sources.pacing import describe

STARTUP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class SandboxPorts:
    """Where each server listens; 0 picks a free port."""

    qonto: int = 8701
    square: int = 8702
    quickbooks: int = 8703
    smtp: int = 8725

    @classmethod
    def ephemeral(cls) -> SandboxPorts:
        return cls(0, 0, 0, 0)


@dataclass(frozen=True)
class SandboxEndpoints:
    """How to reach a running sandbox, and the credentials its fixtures hold."""

    workspace_id: str
    fixtures_dir: Path
    mailbox_dir: Path
    qonto_base_url: str
    qonto_access_token: str
    qonto_oauth: dict[str, str]
    square_base_url: str
    square_access_token: str
    square_oauth: dict[str, str]
    square_location_id: str
    square_webhook_signature_key: str
    square_webhook_notification_url: str
    quickbooks_base_url: str
    quickbooks_access_token: str
    quickbooks_realm_id: str
    smtp_host: str
    smtp_port: int
    email_in_address: str
    registered_sender: str
    owner_email: str
    owner_smtp_port: int
    owner_mailbox_dir: Path
    #: The rate limits the sandbox's Qonto enforces (``off``, or e.g. ``1000/10s, 10000/10min``).
    qonto_rate_limits: str = "off"

    def as_json(self) -> dict[str, Any]:
        """The endpoints as a JSON-ready dict: ``{"qonto": {...}, "square": {...}, "quickbooks":
        {...}, "email_in": {...}, "mailbox", "fixtures", "workspace_id"}``."""
        return {
            "qonto": {
                "base_url": self.qonto_base_url,
                "access_token": self.qonto_access_token,
                "oauth": self.qonto_oauth,
                "rate_limits": self.qonto_rate_limits,
            },
            "square": {
                "base_url": self.square_base_url,
                "access_token": self.square_access_token,
                "oauth": self.square_oauth,
                "location_id": self.square_location_id,
                "webhook_signature_key": self.square_webhook_signature_key,
                "webhook_notification_url": self.square_webhook_notification_url,
            },
            "quickbooks": {
                "base_url": self.quickbooks_base_url,
                "access_token": self.quickbooks_access_token,
                "realm_id": self.quickbooks_realm_id,
            },
            "email_in": {
                "smtp_host": self.smtp_host,
                "smtp_port": self.smtp_port,
                "address": self.email_in_address,
                "registered_sender": self.registered_sender,
            },
            "owner_inbox": {
                "smtp_host": self.smtp_host,
                "smtp_port": self.owner_smtp_port,
                "address": self.owner_email,
                "mailbox": str(self.owner_mailbox_dir),
            },
            "mailbox": str(self.mailbox_dir),
            "fixtures": str(self.fixtures_dir),
            "workspace_id": self.workspace_id,
        }

    def json_line(self) -> str:
        """:meth:`as_json` as one line of JSON, the line ``ledgerlink sandbox serve`` prints."""
        return json.dumps(self.as_json(), separators=(",", ":"))


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - reachable locally through loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _ApiServer:
    """One uvicorn server in a daemon thread, on a socket bound before it starts."""

    def __init__(self, name: str, app: FastAPI, host: str, port: int) -> None:
        self.name = name
        self.sock = bind_tcp(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.base_url = f"http://{_url_host(host)}:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name=f"sandbox-{name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the {self.name} sandbox server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {self.name} sandbox server did not start in time")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.sock.close()


@contextlib.contextmanager
def run_sandbox(
    fixtures_dir: Path,
    mailbox_dir: Path,
    *,
    host: str = "127.0.0.1",
    ports: SandboxPorts | None = None,
    options: SandboxOptions | None = None,
    email_policy: AcceptancePolicy | None = None,
) -> Iterator[SandboxEndpoints]:
    """Serve ``fixtures_dir`` through the Qonto, Square and QuickBooks sandboxes and run email-in
    into ``mailbox_dir``; yield once every server answers, stop them all on exit."""
    ports = ports or SandboxPorts()
    options = options or SandboxOptions()
    fixtures = load_fixtures(Path(fixtures_dir))
    mailbox_dir = Path(mailbox_dir).resolve()
    manifest = fixtures.manifest
    with contextlib.ExitStack() as stack:
        apps = {
            "qonto": (create_qonto_app(fixtures, options), ports.qonto),
            "square": (create_square_app(fixtures, options), ports.square),
            "quickbooks": (create_quickbooks_app(fixtures, options), ports.quickbooks),
        }
        servers: dict[str, _ApiServer] = {}
        for name, (app, port) in apps.items():
            server = _ApiServer(name, app, host, port)
            # Registered before starting, so a server whose start fails still releases its socket.
            stack.callback(server.stop)
            server.start()
            servers[name] = server
        registered_sender = str(manifest.get("registered_sender", ""))
        if email_policy is None and registered_sender:
            email_policy = QuickBooksPolicy(frozenset({registered_sender.lower()}))
        email_in = start_email_in(
            mailbox_dir,
            fixtures.email_in_address,
            host=host,
            port=ports.smtp,
            policy=email_policy,
            reply_delay_seconds=options.email_in_reply_delay_seconds,
        )
        stack.callback(email_in.stop)
        # The workspace owner's inbox, where incident notices arrive (any sender, one recipient).
        owner_email = str(manifest.get("owner_email", ""))
        owner_inbox = start_email_in(
            mailbox_dir / "owner-inbox", owner_email, host=host, recipients=frozenset({owner_email.lower()})
        )
        stack.callback(owner_inbox.stop)
        oauth = fixtures.qonto_oauth_client
        square_client_id, square_client_secret = square_oauth_client(fixtures)
        yield SandboxEndpoints(
            workspace_id=fixtures.workspace_id,
            fixtures_dir=fixtures.root,
            mailbox_dir=mailbox_dir,
            qonto_base_url=servers["qonto"].base_url,
            qonto_access_token=fixtures.access_token("qonto"),
            qonto_rate_limits=describe(options.qonto_rate_limits.limits),
            qonto_oauth={
                "authorize_url": f"{servers['qonto'].base_url}/oauth2/auth",
                "token_url": f"{servers['qonto'].base_url}/oauth2/token",
                "client_id": oauth.client_id,
                "client_secret": oauth.client_secret,
                "refresh_token": oauth.refresh_token,
            },
            square_base_url=servers["square"].base_url,
            square_access_token=fixtures.access_token("square"),
            square_oauth={
                "authorize_url": f"{servers['square'].base_url}/oauth2/authorize",
                "token_url": f"{servers['square'].base_url}/oauth2/token",
                "registration_url": f"{servers['square'].base_url}/oauth2/register",
                "client_id": square_client_id,
                "client_secret": square_client_secret,
            },
            square_location_id=fixtures.square_location_id,
            square_webhook_signature_key=str(manifest.get("square_webhook_signature_key", "")),
            square_webhook_notification_url=options.webhook_notification_url,
            quickbooks_base_url=servers["quickbooks"].base_url,
            quickbooks_access_token=fixtures.access_token("quickbooks"),
            quickbooks_realm_id=fixtures.quickbooks_realm_id,
            smtp_host=_url_host(host).strip("[]"),
            smtp_port=email_in.port,
            email_in_address=fixtures.email_in_address,
            registered_sender=registered_sender,
            owner_email=owner_email,
            owner_smtp_port=owner_inbox.port,
            owner_mailbox_dir=owner_inbox.mailbox.folder,
        )


@contextlib.contextmanager
def serve_app(name: str, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve one ASGI app (a sandbox API, the webhook receiver) on loopback; yield its base URL."""
    server = _ApiServer(name, app, host, port)
    try:
        server.start()
        yield server.base_url
    finally:
        server.stop()
