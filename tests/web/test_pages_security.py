"""Real HTTP over loopback against Airflow's api-server: anonymous, cross-workspace and forged
requests are refused, and nothing reaches SQL or HTML unescaped."""

from __future__ import annotations

import re

import httpx
from web_world import AirflowServer, World, review_action_count

from ledgerlink.warehouse import ServerAddress


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def test_every_page_refuses_an_anonymous_request(airflow_server: AirflowServer, world: World) -> None:
    decision_id = world.review_decisions_a[0]
    with httpx.Client(base_url=airflow_server.base_url, timeout=30) as anonymous:
        for path in (
            "/ledgerlink/",
            "/ledgerlink/queue",
            f"/ledgerlink/decisions/{decision_id}",
            f"/ledgerlink/decisions/{decision_id}/document",
            f"/ledgerlink/records/{world.workspace_a}/square/sq-blue",
            "/ledgerlink/status",
        ):
            assert anonymous.get(path).status_code == 401, path
        refused = anonymous.post(f"/ledgerlink/decisions/{decision_id}/actions", data={"choice": "refuse"})
        assert refused.status_code == 401
        # a person's browser is sent to Airflow's login page, and back afterwards
        browser = anonymous.get("/ledgerlink/queue", headers={"accept": "text/html"})
        assert browser.status_code == 303
        assert browser.headers["location"].startswith("/auth/login?next=")
    with httpx.Client(
        base_url=airflow_server.base_url, timeout=30, cookies={"_token": "not-a-jwt"}
    ) as forged:
        assert forged.get("/ledgerlink/queue").status_code in (401, 403)


def test_a_reviewer_sees_only_their_workspaces(airflow_server: AirflowServer, world: World) -> None:
    with airflow_server.login("bob") as bob:
        queue = bob.get("/ledgerlink/queue")
        assert queue.status_code == 200
        assert "Globex" in queue.text and "Blue Bottle" not in queue.text
        assert bob.get("/ledgerlink/queue", params={"workspace": world.workspace_a}).status_code == 403
        for path in (
            f"/ledgerlink/decisions/{world.review_decisions_a[0]}",
            f"/ledgerlink/decisions/{world.review_decisions_a[0]}/document",
            f"/ledgerlink/records/{world.workspace_a}/square/sq-blue",
        ):
            assert bob.get(path).status_code == 404, path
        assert bob.get("/ledgerlink/status", params={"workspace": world.workspace_a}).status_code == 403


def test_an_airflow_admin_without_membership_sees_nothing(
    airflow_server: AirflowServer, world: World
) -> None:
    with airflow_server.login("admin") as admin:
        queue = admin.get("/ledgerlink/queue")
        assert queue.status_code == 200
        assert "not a member of any workspace" in queue.text
        assert admin.get(f"/ledgerlink/decisions/{world.review_decisions_a[0]}").status_code == 404


def test_cross_workspace_and_forged_actions_change_nothing(
    airflow_server: AirflowServer, world: World, warehouse: ServerAddress
) -> None:
    target = world.review_decisions_a[-1]
    before = review_action_count(warehouse, target)
    with airflow_server.login("bob") as bob, airflow_server.login("alice") as alice:
        bob_token = _csrf(bob.get(f"/ledgerlink/decisions/{world.review_decisions_b[0]}"))
        # bob, with a valid token of his own, acts on alice's workspace
        crossed = bob.post(
            f"/ledgerlink/decisions/{target}/actions", data={"choice": "refuse", "csrf_token": bob_token}
        )
        assert crossed.status_code == 404
        # a cross-site form posted with alice's cookie but without her token
        assert (
            alice.post(f"/ledgerlink/decisions/{target}/actions", data={"choice": "refuse"}).status_code
            == 403
        )
        # ... or with bob's token
        stolen = alice.post(
            f"/ledgerlink/decisions/{target}/actions", data={"choice": "refuse", "csrf_token": bob_token}
        )
        assert stolen.status_code == 403
        # pinning another workspace's ledger entry through her own decision
        alice_token = _csrf(alice.get(f"/ledgerlink/decisions/{target}"))
        foreign_pin = alice.post(
            f"/ledgerlink/decisions/{target}/actions",
            data={
                "choice": "pin",
                "candidate_type": "invoice",
                "candidate_id": "2001",
                "csrf_token": alice_token,
            },
        )
        assert foreign_pin.status_code == 409
        assert "no such entry" in foreign_pin.text
    assert review_action_count(warehouse, target) == before


def test_hostile_input_is_escaped_and_parameterised(airflow_server: AirflowServer, world: World) -> None:
    hostile = "<script>alert(1)</script>' or 1=1; drop table ops.review_actions; --"
    with airflow_server.login("alice") as alice:
        page = alice.get(f"/ledgerlink/decisions/{world.review_decisions_a[0]}", params={"q": hostile})
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert alice.get("/ledgerlink/queue", params={"sort": "score; drop table x"}).status_code == 422
        assert alice.get("/ledgerlink/queue", params={"source": "' or 1=1 --"}).status_code == 422
        wildcard = alice.get(f"/ledgerlink/decisions/{world.review_decisions_a[0]}", params={"q": "%"})
        assert "No ledger entry matches" in wildcard.text
        assert alice.get("/ledgerlink/queue").status_code == 200
