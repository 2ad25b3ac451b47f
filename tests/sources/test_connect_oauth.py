"""``ledgerlink connect`` against the sandbox's OAuth servers over real HTTP: Qonto's code flow
by loopback callback and by paste (with its four scopes, a rotating refresh token), Square's code
flow (30-day token, refresh without rotation) and Square through Dynamic Client Registration
with PKCE; a reconnect brings a needs_reauth connection back."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta

import click
import httpx
import pytest
from click.testing import CliRunner

from ledgerlink.cli.connect import connect_source, dynamic_client
from ledgerlink.cli.main import cli
from ledgerlink.credentials import connection_status, load_registered_client, load_token, mark_needs_reauth
from ledgerlink.sources.oauth import QONTO_SCOPES, refresher
from ledgerlink.warehouse import connect


def _browser(url: str) -> None:
    """The user's browser: follows the authorize URL to the loopback callback."""
    threading.Thread(target=httpx.get, args=(url,), kwargs={"follow_redirects": True, "timeout": 10}).start()


def test_qonto_connect_by_loopback_reconnects_a_broken_workspace(
    warehouse, new_workspace, qonto_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    printed: list[str] = []
    with connect(warehouse) as conn:
        with conn.transaction():
            mark_needs_reauth(conn, workspace_id, "qonto", "401")
        connect_source(conn, "qonto", workspace_id, qonto_oauth, open_url=_browser,
                       timeout=20, echo=printed.append)  # fmt: skip
        assert connection_status(conn, workspace_id, "qonto") == "connected"
        token = load_token(conn, workspace_id, "qonto")
    url = httpx.URL(printed[0].split()[-1])
    assert url.params["scope"].split() == list(QONTO_SCOPES)
    assert token.refresh_token and token.refresh_token.startswith("ory_rt_")
    assert timedelta(minutes=55) < token.access_token_expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert token.access_token not in "".join(printed), "the token is never printed"


def test_qonto_connect_by_pasted_redirect_checks_the_state(warehouse, new_workspace, qonto_oauth) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    redirected: list[str] = []

    def open_without_following(url: str) -> None:
        redirected.append(httpx.get(url, timeout=10).headers["location"])

    with connect(warehouse) as conn:
        connect_source(conn, "qonto", workspace_id, qonto_oauth,
                       open_url=open_without_following, paste=lambda: redirected[0], echo=lambda _: None)  # fmt: skip
        assert load_token(conn, workspace_id, "qonto").refresh_token
        forged = lambda: redirected[0].split("&state=")[0] + "&state=forged"  # noqa: E731
        with pytest.raises(click.ClickException, match="state does not match"):
            connect_source(conn, "qonto", workspace_id, qonto_oauth,
                           open_url=lambda url: redirected.insert(0, httpx.get(url).headers["location"]),
                           paste=forged, echo=lambda _: None)  # fmt: skip


def test_square_code_flow_gives_thirty_day_tokens_refreshed_without_rotation(
    warehouse, source_sandbox, new_workspace, square_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    client = square_oauth
    with connect(warehouse) as conn:
        connect_source(
            conn, "square", workspace_id, client, open_url=_browser, timeout=20, echo=lambda _: None
        )
        token = load_token(conn, workspace_id, "square")
    assert timedelta(days=29) < token.access_token_expires_at - datetime.now(UTC) <= timedelta(days=30)
    refreshed = refresher("square", client)(token.refresh_token)
    assert refreshed.refresh_token == token.refresh_token, "no rotation in the code flow"
    assert refreshed.access_token != token.access_token
    payments = httpx.get(f"{source_sandbox.square_base_url}/v2/payments",
                         headers={"Authorization": f"Bearer {refreshed.access_token}"})  # fmt: skip
    assert payments.status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_square_through_dynamic_client_registration_and_pkce(
    warehouse, source_sandbox, new_workspace
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    port = _free_port()
    client = dynamic_client(source_sandbox.square_base_url, f"http://127.0.0.1:{port}/callback")
    assert client.client_secret is None, "a public client: ledgerlink holds no secret"
    with connect(warehouse) as conn:
        connect_source(conn, "square", workspace_id, client, open_url=_browser, port=port, timeout=20,
                       echo=lambda _: None)  # fmt: skip
        assert load_token(conn, workspace_id, "square").access_token.startswith("EAAA")
    refused = httpx.post(f"{source_sandbox.square_base_url}/oauth2/register",
                         json={"redirect_uris": ["https://evil.example.com/cb"]})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_redirect_uri"


def test_a_registered_client_is_stored_encrypted_and_reused_on_reconnect(
    warehouse, source_sandbox, new_workspace, faults
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    port = _free_port()
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    server = source_sandbox.square_base_url
    before = len(faults.requests)
    with connect(warehouse) as conn:
        first = dynamic_client(server, redirect_uri, conn=conn, workspace_id=workspace_id)
        connect_source(conn, "square", workspace_id, first, open_url=_browser, port=port, timeout=20,
                       echo=lambda _: None)  # fmt: skip
        mark_needs_reauth(conn, workspace_id, "square", "token revoked")
        again = dynamic_client(server, redirect_uri, conn=conn, workspace_id=workspace_id)
        assert again.client_id == first.client_id
        connect_source(conn, "square", workspace_id, again, open_url=_browser, port=port, timeout=20,
                       echo=lambda _: None)  # fmt: skip
        assert connection_status(conn, workspace_id, "square") == "connected"
        registrations = [r for r in faults.requests[before:] if r[1] == "POST" and r[2] == "/oauth2/register"]
        assert len(registrations) == 1, "the reconnect reused the registered client"
        stored = load_registered_client(conn, workspace_id, "square", server, redirect_uri)
        assert stored is not None and stored.registration_access_token
        row = conn.execute(
            "select client_id, registration_access_token_encrypted from ops.oauth_clients where workspace_id = %s",
            (workspace_id,),
        ).fetchone()
        assert row[0] == first.client_id
        assert stored.registration_access_token.encode() not in bytes(row[1]), "encrypted at rest"
        assert "registration" not in repr(stored) or stored.registration_access_token not in repr(stored)
        # Another redirect URI is another registration; a workspace never sees another's client.
        other_port = _free_port()
        other = dynamic_client(
            server, f"http://127.0.0.1:{other_port}/callback", conn=conn, workspace_id=workspace_id
        )
        assert other.client_id != first.client_id
        stranger = new_workspace()
        assert load_registered_client(conn, stranger, "square", server, redirect_uri) is None


def test_connect_is_a_cli_command() -> None:
    result = CliRunner().invoke(cli, ["connect", "--help"])
    assert result.exit_code == 0 and "--workspace" in result.output
    result = CliRunner().invoke(
        cli, ["connect", "qonto", "--workspace", "w"], env={"LEDGERLINK_OAUTH_CLIENT_ID": ""}
    )
    assert result.exit_code != 0 and "--client-id" in result.output
