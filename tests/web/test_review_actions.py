"""Review actions over HTTP: a refused record keeps its place and can be pinned later; a record
is linked once; a reviewer can only choose among the record's candidates; every action is a label."""

from __future__ import annotations

import re

import httpx
from web_world import AirflowServer, World, outbox_rows

from ledgerlink.warehouse import ServerAddress, connect


def _csrf_token(client: httpx.Client, decision_id: int) -> str:
    """The token the reviewer's own review page carries (bound to their session, not the page)."""
    match = re.search(
        r'name="csrf_token" value="([0-9a-f]+)"', client.get(f"/ledgerlink/decisions/{decision_id}").text
    )
    assert match
    return match.group(1)


def _act(client: httpx.Client, decision_id: int, token: str, **form: str) -> httpx.Response:
    return client.post(f"/ledgerlink/decisions/{decision_id}/actions", data={**form, "csrf_token": token})


def _labels(address: ServerAddress, decision_id: int) -> list[tuple[str, str | None, str]]:
    with connect(address) as conn:
        rows = conn.execute(
            "select action, candidate_id, actor from ops.review_actions where decision_id = %s order by action_id",
            (decision_id,),
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def test_a_refused_record_is_pinned_later_and_linked_only_once(
    airflow_server: AirflowServer, world: World, prepared: tuple[object, ServerAddress]
) -> None:
    warehouse = prepared[1]
    mystery = world.refused_decisions_a[0]  # nothing in the ledger resembles it: no candidate
    with airflow_server.login("alice") as alice:
        page = alice.get(f"/ledgerlink/decisions/{mystery}")
        assert "The matcher found no candidate" in page.text
        token = _csrf_token(alice, mystery)
        refused_list = {"workspace": world.workspace_a, "show": "refused"}
        assert "Zyxw Holdings" in alice.get("/ledgerlink/queue", params=refused_list).text
        assert _act(alice, mystery, token, choice="accept").status_code == 409  # nothing to accept
        assert (
            _act(
                alice, mystery, token, choice="choose", candidate_type="invoice", candidate_id="1003"
            ).status_code
            == 409
        )
        refused = _act(alice, mystery, token, choice="refuse")
        assert refused.status_code == 303
        assert "Refused by alice" in alice.get(f"/ledgerlink/decisions/{mystery}").text
        assert not [row for row in outbox_rows(warehouse, world.workspace_a) if row["decision_id"] == mystery]

        # later, someone finds the entry in the ledger and pins it
        search = alice.get(f"/ledgerlink/decisions/{mystery}", params={"q": "initech"})
        assert "invoice 1003" in search.text
        pinned = _act(alice, mystery, token, choice="pin", candidate_type="invoice", candidate_id="1003")
        assert pinned.status_code == 303
        assert "Zyxw Holdings" not in alice.get("/ledgerlink/queue", params=refused_list).text
        again = _act(alice, mystery, token, choice="pin", candidate_type="vendor", candidate_id="57")
        assert again.status_code == 409
        assert "already linked" in again.text

    assert _labels(warehouse, mystery) == [("refuse", None, "alice"), ("pin", "1003", "alice")]
    queued = [row for row in outbox_rows(warehouse, world.workspace_a) if row["decision_id"] == mystery]
    assert len(queued) == 1
    assert queued[0]["status"] == "pending"
    assert queued[0]["document"]["matched_id"] == "1003"
    assert queued[0]["document"]["amount_minor"] == 3_300
    with connect(warehouse) as conn:
        row = conn.execute(
            "select route, top_candidate_type, top_candidate_id from ops.routing_decisions where decision_id = %s",
            (mystery,),
        ).fetchone()
    assert row == ("refused", "invoice", "1003")  # the decision moved to the pinned entry


def test_choosing_another_candidate_links_that_one(
    airflow_server: AirflowServer, world: World, prepared: tuple[object, ServerAddress]
) -> None:
    warehouse = prepared[1]
    globex = world.review_decisions_b[0]
    with airflow_server.login("bob") as bob:
        page = bob.get(f"/ledgerlink/decisions/{globex}")
        second = re.search(r'id="choose-2".*?name="candidate_id" value="([^"]+)"', page.text, re.S)
        assert second, page.text
        chosen = _act(
            bob,
            globex,
            _csrf_token(bob, globex),
            choice="choose",
            candidate_type="invoice",
            candidate_id=second.group(1),
        )
        assert chosen.status_code == 303
        # the queue no longer holds it
        assert "Globex" not in bob.get("/ledgerlink/queue").text
    assert _labels(warehouse, globex) == [("pin", second.group(1), "bob")]
    (queued,) = outbox_rows(warehouse, world.workspace_b)
    assert queued["document"]["matched_id"] == second.group(1)
