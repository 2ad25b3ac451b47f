"""The status page's actions over real HTTP (Airflow's api-server on loopback, the sandbox's OAuth
servers): reconnecting a source through the OAuth code flow, and acknowledging a record changed
after delivery. Every request that must be refused is refused with a clear message and changes
no token, connection, incident or acknowledgement."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from operations_world import broken_connection, changed_after_delivery
from psycopg.rows import dict_row
from web_world import AirflowServer, World

from ledgerlink.credentials import load_token
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.workspaces import add_member

CALLBACK = "/ledgerlink/connections/oauth/callback"


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def _connection(address: ServerAddress, workspace_id: str, source: str) -> dict[str, Any]:
    """What a refused request must leave alone: the stored (encrypted) token, the connection's
    health and the open incidents."""
    with connect(address) as conn, conn.cursor(row_factory=dict_row) as cursor:
        stored = cursor.execute(
            "select status, status_detail, access_token_encrypted, refresh_token_encrypted"
            " from ops.source_credentials where workspace_id = %s and source = %s",
            (workspace_id, source),
        ).fetchone()
        incidents = cursor.execute(
            "select incident_id, resolved_at, resolved_by from ops.incidents where workspace_id = %s"
            " order by incident_id",
            (workspace_id,),
        ).fetchall()
    assert stored is not None
    return {**stored, "incidents": incidents}


def _start(client: httpx.Client, workspace_id: str, source: str) -> httpx.URL:
    """Press Reconnect on the status page; the answer sends the browser to the provider."""
    page = client.get("/ledgerlink/status", params={"workspace": workspace_id})
    assert f"Reconnect {source.capitalize()}" in page.text
    started = client.post(
        f"/ledgerlink/connections/{workspace_id}/{source}/reconnect", data={"csrf_token": _csrf(page)}
    )
    assert started.status_code == 303, started.text
    return httpx.URL(started.headers["location"])


def _approve(authorize: httpx.URL) -> httpx.URL:
    """The provider's answer once the person approved: the callback URL with ``code`` and ``state``."""
    answer = httpx.get(authorize, headers={"accept": "text/html"}, timeout=30)
    assert "Allow" in answer.text and "Deny" in answer.text  # the consent page
    approved = httpx.get(authorize.copy_merge_params({"consent": "allow"}), timeout=30)
    assert approved.status_code in (302, 307), approved.text
    return httpx.URL(approved.headers["location"])


@pytest.fixture
def alice(airflow_server: AirflowServer) -> Iterator[httpx.Client]:
    with airflow_server.login("alice") as client:
        yield client


@pytest.fixture
def bob(airflow_server: AirflowServer) -> Iterator[httpx.Client]:
    with airflow_server.login("bob") as client:
        yield client


def test_reconnect_sends_the_person_to_the_provider_with_state_and_pkce(
    alice: httpx.Client, airflow_server: AirflowServer, oauth_sandbox: Any, warehouse: ServerAddress
) -> None:
    workspace_id = broken_connection(warehouse, "qonto", "alice")
    before = _connection(warehouse, workspace_id, "qonto")
    authorize = _start(alice, workspace_id, "qonto")
    assert str(authorize).startswith(oauth_sandbox.qonto_oauth["authorize_url"])
    assert authorize.params["client_id"] == oauth_sandbox.qonto_oauth["client_id"]
    assert authorize.params["redirect_uri"] == f"{airflow_server.base_url}{CALLBACK}"
    assert (
        authorize.params["code_challenge_method"] == "S256" and len(authorize.params["code_challenge"]) == 43
    )
    assert authorize.params["state"].startswith(f"{workspace_id}.") and len(authorize.params["state"]) > 40
    assert "offline_access" in authorize.params["scope"].split()
    # starting changes nothing yet: the connection stays broken until the provider answers
    assert _connection(warehouse, workspace_id, "qonto") == before
    # the status page lets a form's answer go to the provider (CSP form-action), and nowhere else
    policy = alice.get("/ledgerlink/status", params={"workspace": workspace_id}).headers[
        "content-security-policy"
    ]
    assert f"form-action 'self' {oauth_sandbox.qonto_base_url};" in policy


def test_a_good_callback_connects_once_and_a_replay_is_refused(
    alice: httpx.Client, warehouse: ServerAddress
) -> None:
    workspace_id = broken_connection(warehouse, "qonto", "alice")
    callback = _approve(_start(alice, workspace_id, "qonto"))
    assert callback.path == CALLBACK

    done = alice.get(callback.path, params=callback.params, headers={"accept": "text/html"})
    assert done.status_code == 303
    status = alice.get(done.headers["location"], headers={"accept": "text/html"})
    assert "Qonto is connected again; 1 open incident closed" in status.text
    after = _connection(warehouse, workspace_id, "qonto")
    assert after["status"] == "connected" and after["status_detail"] is None
    assert [(i["resolved_at"] is not None, i["resolved_by"]) for i in after["incidents"]] == [(True, "alice")]
    with connect(warehouse) as conn:
        token = load_token(conn, workspace_id, "qonto")
    assert token.access_token.startswith("ory_at_") and token.refresh_token.startswith("ory_rt_")
    assert token.access_token.encode() not in bytes(after["access_token_encrypted"]), "encrypted at rest"
    assert token.access_token not in status.text

    replay = alice.get(callback.path, params=callback.params, headers={"accept": "text/html"})
    assert replay.status_code == 400
    assert "already used; nothing was changed" in replay.text
    assert _connection(warehouse, workspace_id, "qonto") == after


def test_forged_foreign_expired_and_denied_callbacks_change_nothing(
    alice: httpx.Client, bob: httpx.Client, warehouse: ServerAddress
) -> None:
    alices = broken_connection(warehouse, "qonto", "alice")
    bobs = broken_connection(warehouse, "square", "bob")
    alice_before = _connection(warehouse, alices, "qonto")
    bob_before = _connection(warehouse, bobs, "square")

    def refused(client: httpx.Client, params: dict[str, str], why: str) -> None:
        answer = client.get(CALLBACK, params=params, headers={"accept": "text/html"})
        assert answer.status_code == 400, (params, answer.text[:500])
        assert why in answer.text and "nothing was changed" in answer.text, answer.text[:2000]

    callback = _approve(_start(alice, alices, "qonto"))
    code, state = callback.params["code"], callback.params["state"]
    # a forged state (one character changed), a missing one, another workspace's prefix on it
    refused(
        alice, {"code": code, "state": state[:-1] + ("A" if state[-1] != "A" else "B")}, "not started by you"
    )
    refused(alice, {"code": code}, "not started by you")
    refused(alice, {"code": code, "state": f"{bobs}.{state.split('.', 1)[1]}"}, "not started by you")
    # alice's callback presented by bob (another user, not a member of the workspace)
    refused(bob, {"code": code, "state": state}, "not started by you")
    # a state bob started, presented by alice
    bob_callback = _approve(_start(bob, bobs, "square"))
    refused(alice, dict(bob_callback.params), "not started by you")
    assert _connection(warehouse, alices, "qonto") == alice_before
    assert _connection(warehouse, bobs, "square") == bob_before

    # the provider says the person refused: the state is used up, nothing connects
    denied = _start(alice, alices, "qonto")
    answer = httpx.get(denied.copy_merge_params({"consent": "deny"}), timeout=30)
    denial = httpx.URL(answer.headers["location"])
    assert denial.params["error"] == "access_denied"
    refused(alice, dict(denial.params), "Qonto did not authorize ledgerlink (access_denied)")
    refused(alice, {**dict(denial.params), "code": code}, "already used")

    # an approval that came back too late
    late = _approve(_start(alice, alices, "qonto"))
    with connect(warehouse) as conn:
        conn.execute(
            "update ops.oauth_states set expires_at = now() - interval '1 second' where state = %s",
            (late.params["state"],),
        )
        conn.commit()
    refused(alice, dict(late.params), "expired")
    assert _connection(warehouse, alices, "qonto") == alice_before

    # the first, still unused approval works: every refusal above left it alone
    assert alice.get(CALLBACK, params={"code": code, "state": state}).status_code == 303
    assert _connection(warehouse, alices, "qonto")["status"] == "connected"
    assert _connection(warehouse, bobs, "square") == bob_before


def test_a_state_another_member_started_is_refused(
    alice: httpx.Client, bob: httpx.Client, warehouse: ServerAddress
) -> None:
    """Both may reconnect the shared workspace, but a callback belongs to whoever started it: a
    link bob was sent back with, opened in alice's session, connects nothing."""
    shared = broken_connection(warehouse, "qonto", "alice")
    with connect(warehouse) as conn:
        add_member(conn, shared, "bob")
        conn.commit()
    before = _connection(warehouse, shared, "qonto")
    bobs = _approve(_start(bob, shared, "qonto"))
    taken = alice.get(CALLBACK, params=dict(bobs.params), headers={"accept": "text/html"})
    assert taken.status_code == 400 and "not started by you" in taken.text
    assert _connection(warehouse, shared, "qonto") == before
    assert bob.get(CALLBACK, params=dict(bobs.params)).status_code == 303  # still his to finish
    assert _connection(warehouse, shared, "qonto")["status"] == "connected"


def test_reconnect_refuses_anonymous_cross_workspace_and_forged_requests(
    airflow_server: AirflowServer, alice: httpx.Client, bob: httpx.Client, warehouse: ServerAddress
) -> None:
    workspace_id = broken_connection(warehouse, "qonto", "alice")
    reconnect = f"/ledgerlink/connections/{workspace_id}/qonto/reconnect"
    with httpx.Client(base_url=airflow_server.base_url, timeout=30) as anonymous:
        assert anonymous.post(reconnect).status_code == 401
        assert anonymous.get(CALLBACK, params={"state": f"{workspace_id}.x", "code": "c"}).status_code == 401
    bob_token = _csrf(bob.get("/ledgerlink/status"))
    assert bob.post(reconnect, data={"csrf_token": bob_token}).status_code == 404  # not his workspace
    assert alice.post(reconnect).status_code == 403  # no CSRF token: a cross-site form
    assert alice.post(reconnect, data={"csrf_token": bob_token}).status_code == 403  # another user's token
    alice_token = _csrf(alice.get("/ledgerlink/status"))
    # a source the workspace never connected, and a source the pages do not know
    assert (
        alice.post(
            f"/ledgerlink/connections/{workspace_id}/square/reconnect", data={"csrf_token": alice_token}
        ).status_code
        == 404
    )
    assert (
        alice.post(
            f"/ledgerlink/connections/{workspace_id}/quickbooks/reconnect", data={"csrf_token": alice_token}
        ).status_code
        == 422
    )
    with connect(warehouse) as conn:
        started = conn.execute(
            "select count(*) from ops.oauth_states where workspace_id = %s", (workspace_id,)
        ).fetchone()
    assert started == (0,), "no refused request started an authorization"


def test_a_person_acknowledges_a_record_changed_after_delivery(
    alice: httpx.Client, bob: httpx.Client, world: World, warehouse: ServerAddress, tmp_path: Path
) -> None:
    changed = changed_after_delivery(warehouse, world.blobs, tmp_path)
    acknowledge = f"/ledgerlink/deliveries/{changed.outbox_id}/acknowledge"
    page = alice.get("/ledgerlink/status", params={"workspace": changed.workspace_id})
    assert "Changed after delivery (1)" in page.text and "Checked in QuickBooks" in page.text

    def acknowledged() -> tuple[Any, ...]:
        with connect(warehouse) as conn:
            row = conn.execute(
                "select needs_person_resolved_by, needs_person_resolved_at from ops.delivery_outbox"
                " where outbox_id = %s",
                (changed.outbox_id,),
            ).fetchone()
        assert row is not None
        return tuple(row)

    bob_token = _csrf(bob.get("/ledgerlink/status"))
    assert bob.post(acknowledge, data={"csrf_token": bob_token}).status_code == 404
    assert alice.post(acknowledge).status_code == 403
    assert alice.post(acknowledge, data={"csrf_token": bob_token}).status_code == 403
    assert acknowledged() == (None, None)
    # the first delivery of the record was never "changed after delivery": nothing to acknowledge
    with connect(warehouse) as conn:
        first = conn.execute(
            "select outbox_id from ops.delivery_outbox where workspace_id = %s and not needs_person",
            (changed.workspace_id,),
        ).fetchone()
    assert first is not None
    token = _csrf(page)
    assert (
        alice.post(f"/ledgerlink/deliveries/{first[0]}/acknowledge", data={"csrf_token": token}).status_code
        == 404
    )

    done = alice.post(acknowledge, data={"csrf_token": token, "workspace": changed.workspace_id})
    assert done.status_code == 303
    after = alice.get(done.headers["location"])
    assert "square:sq-changed is marked as checked in QuickBooks" in after.text
    assert "Changed after delivery" not in after.text
    by, at = acknowledged()
    assert by == "alice" and at is not None
    # asking again keeps the first acknowledgement
    assert alice.post(acknowledge, data={"csrf_token": token}).status_code == 303
    assert acknowledged() == (by, at)
    history = alice.get(f"/ledgerlink/records/{changed.workspace_id}/square/sq-changed")
    assert "Checked in QuickBooks by alice" in history.text
