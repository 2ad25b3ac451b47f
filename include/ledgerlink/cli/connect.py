"""``ledgerlink connect qonto|square --workspace W``: the OAuth authorization-code flow.

It prints the authorize URL (and opens a browser unless told not to), receives the code on a
loopback callback, or takes the redirected URL or the bare code pasted, checks ``state``, exchanges
the code and stores the tokens encrypted (:mod:`ledgerlink.sources.authorization`, the flow the
status page's *Reconnect* runs too). Storing marks the connection ``connected`` again and resolves
its open incident, so a workspace that was ``needs_reauth`` is read by the next run.

Square can also be connected the way its MCP server is: with ``--register`` the CLI registers
itself as a public client through RFC 7591 Dynamic Client Registration (discovered from the
server's ``/.well-known/oauth-authorization-server``) and uses PKCE, so no client secret exists.
"""

from __future__ import annotations

import getpass
import http.server
import secrets
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import click
import httpx
import psycopg

from ledgerlink.credentials import RegisteredClient, load_registered_client, store_registered_client
from ledgerlink.sources.authorization import (
    AuthorizationRefused,
    begin_authorization,
    finish_authorization,
)
from ledgerlink.sources.oauth import QONTO_SCOPES, SQUARE_SCOPES, OAuthClient, register_client

DEFAULT_OAUTH_HOSTS = {"qonto": "https://oauth.qonto.com", "square": "https://connect.squareup.com"}
AUTHORIZE_PATHS = {"qonto": "/oauth2/auth", "square": "/oauth2/authorize"}
CALLBACK_TIMEOUT_SECONDS = 300.0


class LoopbackCallback:
    """A one-shot HTTP server on 127.0.0.1 that receives the authorization redirect."""

    def __init__(self, port: int = 0) -> None:
        self.query: dict[str, str] = {}
        self.received = threading.Event()
        callback = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                callback.query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"ledgerlink is connected. You can close this window.\n")
                callback.received.set()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep codes out of logs
                return

        self.server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackCallback:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self.received.wait(timeout):
            raise click.ClickException("no authorization arrived on the loopback callback in time")
        return self.query


def code_from_redirect(query: dict[str, str], expected_state: str) -> str:
    """The code from the redirect's query, after checking ``state`` (which binds it to this flow)."""
    if "error" in query:
        raise click.ClickException(f"authorization refused: {query['error']}")
    if not secrets.compare_digest(query.get("state", ""), expected_state):
        raise click.ClickException("the redirect's state does not match this flow; start again")
    code = query.get("code")
    if not code:
        raise click.ClickException("the redirect carries no code")
    return code


def parse_pasted(text: str, expected_state: str) -> str:
    """A pasted redirect URL (state checked) or a bare code."""
    text = text.strip()
    if "://" in text or text.startswith("?"):
        query = {key: values[0] for key, values in parse_qs(urlsplit(text).query or text.lstrip("?")).items()}
        return code_from_redirect(query, expected_state)
    return text


def connect_source(
    conn: psycopg.Connection,
    source: str,
    workspace_id: str,
    client: OAuthClient,
    *,
    open_url: Callable[[str], object] | None = None,
    paste: Callable[[], str] | None = None,
    port: int = 0,
    timeout: float = CALLBACK_TIMEOUT_SECONDS,
    echo: Callable[[str], None] = click.echo,
) -> None:
    """Run the code flow for ``source`` and store the tokens for ``workspace_id`` (the flow is
    :mod:`ledgerlink.sources.authorization`, shared with the status page). With ``paste``, the code
    (or redirected URL) is read from it; otherwise it arrives on a loopback callback."""
    with LoopbackCallback(port) as callback:
        pending = begin_authorization(
            conn,
            client,
            workspace_id=workspace_id,
            source=source,
            redirect_uri=callback.redirect_uri,
            requested_by=None,
            now=datetime.now(UTC),
        )
        echo(
            f"Open this URL to connect {source} for workspace {workspace_id}:\n\n  {pending.authorize_url}\n"
        )
        if open_url is not None:
            open_url(pending.authorize_url)
        if paste is not None:
            code = parse_pasted(paste(), pending.state)
        else:
            code = code_from_redirect(callback.wait(timeout), pending.state)
    try:
        finish_authorization(
            conn,
            lambda _source: client,
            state=pending.state,
            code=code,
            requested_by=None,
            now=datetime.now(UTC),
            connected_by=f"ledgerlink connect ({getpass.getuser()})",
        )
    except AuthorizationRefused as refusal:
        raise click.ClickException(str(refusal).replace(" with Reconnect", "")) from refusal
    echo(f"{source} is connected for workspace {workspace_id} (token stored encrypted).")


def dynamic_client(
    server: str,
    redirect_uri: str,
    *,
    conn: psycopg.Connection | None = None,
    workspace_id: str | None = None,
) -> OAuthClient:
    """A client registered with the authorization server at ``server`` (RFC 7591). With a
    warehouse connection and a workspace, a client registered before for the same server and
    redirect URI is reused, and a new registration is kept (secrets encrypted) for next time."""
    metadata = httpx.get(f"{server.rstrip('/')}/.well-known/oauth-authorization-server", timeout=30).json()
    registered = (
        load_registered_client(conn, workspace_id, "square", server, redirect_uri)
        if conn is not None and workspace_id is not None
        else None
    )
    if registered is None:
        registration = register_client(str(metadata["registration_endpoint"]), redirect_uri)
        if conn is not None and workspace_id is not None:
            with conn.transaction():
                registered = store_registered_client(
                    conn, workspace_id, "square", server, redirect_uri, registration
                )
        else:
            registered = RegisteredClient(
                client_id=str(registration["client_id"]), client_secret=registration.get("client_secret")
            )
    return OAuthClient(
        authorize_url=str(metadata["authorization_endpoint"]),
        token_url=str(metadata["token_endpoint"]),
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        scopes=SQUARE_SCOPES,
    )


@click.command()
@click.argument("source", type=click.Choice(["qonto", "square"]))
@click.option("--workspace", "workspace_id", required=True, help="The workspace to connect.")
@click.option("--oauth-host", help="The OAuth server (default: the production host of the source).")
@click.option("--token-url", help="Token endpoint, if not <oauth-host>/oauth2/token.")
@click.option("--client-id", envvar="LEDGERLINK_OAUTH_CLIENT_ID", help="OAuth application id.")
@click.option("--client-secret", envvar="LEDGERLINK_OAUTH_CLIENT_SECRET", help="OAuth application secret.")
@click.option("--register", is_flag=True, help="Square: register a public client (RFC 7591) and use PKCE.")
@click.option(
    "--paste", "pasted", is_flag=True, help="Paste the redirected URL or code instead of a callback."
)
@click.option("--port", default=0, show_default=True, help="Loopback callback port (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
def connect(
    source: str,
    workspace_id: str,
    oauth_host: str | None,
    token_url: str | None,
    client_id: str | None,
    client_secret: str | None,
    register: bool,
    pasted: bool,
    port: int,
    no_browser: bool,
) -> None:
    """Connect a workspace to Qonto or Square through OAuth."""
    from ledgerlink.warehouse import connect_for_workspace

    host = (oauth_host or DEFAULT_OAUTH_HOSTS[source]).rstrip("/")
    client: OAuthClient | None
    if register:
        if source != "square":
            raise click.UsageError("--register is for Square's dynamic client registration")
        if port == 0:
            raise click.UsageError("--register needs a fixed --port: the redirect URI is registered up front")
        client = None  # registered (or reused) once the warehouse is open, below
    else:
        if not client_id:
            raise click.UsageError("--client-id (or LEDGERLINK_OAUTH_CLIENT_ID) is required")
        client = OAuthClient(
            authorize_url=f"{host}{AUTHORIZE_PATHS[source]}",
            token_url=token_url or f"{host}/oauth2/token",
            client_id=client_id,
            client_secret=client_secret,
            scopes=QONTO_SCOPES if source == "qonto" else SQUARE_SCOPES,
        )
    if source == "qonto" and client is not None and client.client_secret is None:
        client = replace(client, client_secret="")
    try:
        region_conn = connect_for_workspace(workspace_id)
    except LookupError as error:
        raise click.UsageError(str(error)) from error
    with region_conn as conn:
        if client is None:
            redirect_uri = f"http://127.0.0.1:{port}/callback"
            client = dynamic_client(host, redirect_uri, conn=conn, workspace_id=workspace_id)
        connect_source(
            conn,
            source,
            workspace_id,
            client,
            open_url=None if no_browser else webbrowser.open,
            paste=(lambda: click.prompt("Paste the redirected URL or the code", hide_input=True))
            if pasted
            else None,
            port=port,
        )
