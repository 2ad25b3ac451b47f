"""The settings, dashboard and retry routes over real HTTP through Airflow's login: a save makes
a new version (never an edit) and the diff shows it; bad input is refused with every reason and
nothing saved; anonymous, cross-workspace and forged requests are refused on every new route."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import httpx
from operations_world import rejected_delivery
from web_world import AirflowServer, World, outbox_rows

from ledgerlink.warehouse import ServerAddress, connect


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def _versions(
    address: ServerAddress, workspace_id: str
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with connect(address) as conn:
        thresholds = conn.execute(
            "select threshold_version, auto_link_threshold, review_threshold, created_by"
            " from ops.threshold_versions where workspace_id = %s order by threshold_version",
            (workspace_id,),
        ).fetchall()
        mappings = conn.execute(
            "select mapping_version, spec, created_by from ops.field_mappings where workspace_id = %s"
            " order by mapping_version",
            (workspace_id,),
        ).fetchall()
    return thresholds, mappings


def test_saving_settings_adds_versions_and_the_diff_shows_them(
    airflow_server: AirflowServer, world: World, prepared: tuple[object, ServerAddress], tmp_path: Path
) -> None:
    warehouse = prepared[1]
    operations = rejected_delivery(warehouse, world.blobs, tmp_path)
    workspace = operations.workspace_id
    thresholds_before, mappings_before = _versions(warehouse, workspace)
    assert [row[0] for row in thresholds_before] == [1] and mappings_before == []
    with airflow_server.login("alice") as alice:
        page = alice.get("/ledgerlink/settings", params={"workspace": workspace})
        assert page.status_code == 200 and "Only one version so far" in page.text
        form = {
            "csrf_token": _csrf(page),
            "workspace": workspace,
            "auto_link_threshold": "0.92",
            "review_threshold": "0.6",
            "overrides": "tax = VAT 20%",
            "ignored": "reference",
            "computed": "gl_code = '706'",
        }
        saved = alice.post("/ledgerlink/settings", data=form)
        assert saved.status_code == 303
        shown = alice.get(saved.headers["location"])
        assert "thresholds version 2 and mapping version 1" in shown.text
        # saving the same again changes nothing and adds no version
        again = alice.get(alice.post("/ledgerlink/settings", data=form).headers["location"])
        assert "nothing changed" in again.text
        form["computed"] = "gl_code = '707'"
        third = alice.get(alice.post("/ledgerlink/settings", data=form).headers["location"])
        assert "mapping version 2" in third.text
        diff = third.text[third.text.index('id="diff"') :]
        assert "from version 1 to version 2" in diff
        assert "computed gl_code" in diff and "&#39;706&#39;" in diff and "&#39;707&#39;" in diff
        assert "fixed value tax" not in diff  # unchanged settings are not in the diff
        thresholds_diff = alice.get(
            "/ledgerlink/settings",
            params={"workspace": workspace, "compare": "thresholds", "old": 1, "new": 2},
        ).text
        assert "auto-link threshold" in thresholds_diff and "0.92" in thresholds_diff

        # bad input: every problem named, nothing saved
        bad = alice.post(
            "/ledgerlink/settings",
            data={
                **form,
                "auto_link_threshold": "lots",
                "review_threshold": "1.5",
                "overrides": "no equals sign here",
                "ignored": "colour",
                "computed": "gl_code = ''.__class__.__mro__",
            },
        )
        assert bad.status_code == 422
        for reason in (
            "auto-link threshold: &#39;lots&#39; is not a number",
            "overrides, line 1: write it as field = value",
            "ignored: &#39;colour&#39; is not a field",
            "computed field &#39;gl_code&#39; refused",
        ):
            assert reason in bad.text, reason
        out_of_range = alice.post("/ledgerlink/settings", data={**form, "review_threshold": "1.5"})
        assert (
            out_of_range.status_code == 422
            and "review threshold: must be between 0 and 1" in out_of_range.text
        )
    thresholds_after, mappings_after = _versions(warehouse, workspace)
    assert [row[0] for row in thresholds_after] == [1, 2]
    assert thresholds_after[1][1:] == (Decimal("0.92"), Decimal("0.6"), "alice")
    assert [row[0] for row in mappings_after] == [1, 2]
    # version 1 was never edited
    assert mappings_after[0][1]["computed"] == {"gl_code": "'706'"}


def test_new_routes_refuse_anonymous_cross_workspace_and_forged_requests(
    airflow_server: AirflowServer, world: World, prepared: tuple[object, ServerAddress], tmp_path: Path
) -> None:
    warehouse = prepared[1]
    operations = rejected_delivery(warehouse, world.blobs, tmp_path)  # alice's workspace
    retry = f"/ledgerlink/deliveries/{operations.outbox_id}/retry"
    with httpx.Client(base_url=airflow_server.base_url, timeout=30) as anonymous:
        for path in ("/ledgerlink/settings", "/ledgerlink/dashboard"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post(retry).status_code == 401
        assert (
            anonymous.post("/ledgerlink/settings", data={"workspace": operations.workspace_id}).status_code
            == 401
        )
    with airflow_server.login("bob") as bob, airflow_server.login("alice") as alice:
        bob_token = _csrf(bob.get("/ledgerlink/settings"))
        assert (
            bob.get("/ledgerlink/settings", params={"workspace": operations.workspace_id}).status_code == 403
        )
        assert (
            bob.get("/ledgerlink/dashboard", params={"workspace": operations.workspace_id}).status_code == 403
        )
        assert "Corner Cafe" not in bob.get("/ledgerlink/status").text
        # bob, with his own valid token, on alice's delivery and settings
        assert bob.post(retry, data={"csrf_token": bob_token}).status_code == 404
        crossed = bob.post(
            "/ledgerlink/settings",
            data={
                "csrf_token": bob_token,
                "workspace": operations.workspace_id,
                "auto_link_threshold": "0.1",
                "review_threshold": "0",
            },
        )
        assert crossed.status_code == 403
        # alice's cookie without her token (a cross-site form), or with bob's
        assert alice.post(retry).status_code == 403
        assert alice.post(retry, data={"csrf_token": bob_token}).status_code == 403
        forged_settings = alice.post(
            "/ledgerlink/settings",
            data={
                "workspace": operations.workspace_id,
                "auto_link_threshold": "0.1",
                "review_threshold": "0",
            },
        )
        assert forged_settings.status_code == 403
        # nothing changed: the delivery is still rejected and the thresholds have one version
        (row,) = outbox_rows(warehouse, operations.workspace_id)
        assert row["status"] == "rejected"
        assert [version[0] for version in _versions(warehouse, operations.workspace_id)[0]] == [1]
        # her own retry works, and asking twice queues it once
        token = _csrf(alice.get("/ledgerlink/status"))
        first = alice.post(retry, data={"csrf_token": token})
        assert first.status_code == 303 and "queued=1" in first.headers["location"]
        second = alice.post(retry, data={"csrf_token": token})
        assert "queued=0" in second.headers["location"]
        assert "not waiting for a retry" in alice.get(second.headers["location"]).text
        (row,) = outbox_rows(warehouse, operations.workspace_id)
        assert row["status"] == "pending"


def test_the_dashboard_draws_from_the_marts(airflow_server: AirflowServer, world: World) -> None:
    with airflow_server.login("alice") as alice:
        page = alice.get("/ledgerlink/dashboard", params={"days": 365})
    assert page.status_code == 200
    for chart in ("routes", "queue-age", "precision", "failures"):
        assert f'class="chart-{chart}"' in page.text
    assert "<script" not in page.text.split("</head>")[1]  # inline SVG, no script
    queue_size = re.search(r'id="queue-size">(\d+)<', page.text)
    assert queue_size and int(queue_size.group(1)) > 0
