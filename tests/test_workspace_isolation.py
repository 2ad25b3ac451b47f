"""One workspace's failure never stops another's, in a real DAG run: a workspace that was never
connected fails its own extraction at once (no retries: retrying cannot connect it), and the
healthy workspace is still extracted, scored and delivered in the same run."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import psycopg
import pytest

from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace

pytestmark = pytest.mark.slow

LOGICAL_DATE = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
BROKEN = "never-connected-ws"


@pytest.fixture(scope="module")
def run_with_a_broken_workspace(prepared, tmp_path_factory):  # noqa: ANN001
    from ledgerlink.cli.run import register_sandbox_workspace, run_dag_once, sandbox_connections
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.sandbox.services import SandboxPorts, run_sandbox
    from ledgerlink.settings import AIRFLOW_DATABASE

    settings, address = prepared
    fixtures = generate_fixtures(tmp_path_factory.mktemp("fixtures") / "seed", seed=5)
    mailbox = tmp_path_factory.mktemp("mailbox")
    manifest = json.loads((fixtures / "manifest.json").read_text())
    # its own workspace id: another test's run of the same sandbox workspace leaves sync markers
    healthy = "isolation-healthy"
    manifest = {**manifest, "workspace_id": healthy}
    with run_sandbox(fixtures, mailbox, ports=SandboxPorts.ephemeral()) as endpoints:
        sandbox = endpoints.as_json()
        with connect(address) as conn:
            conn.execute("update ops.workspaces set is_active = false")
            register_sandbox_workspace(conn, sandbox, manifest)
            save_workspace(
                conn, Workspace(workspace_id=BROKEN, display_name="B", email_in_address="b@qbodocs.com")
            )
            conn.commit()
        os.environ.update(sandbox_connections(sandbox))
        try:
            with pytest.raises(RuntimeError, match="failed"):  # the run reports the failure
                run_dag_once(settings, address, LOGICAL_DATE)
        finally:
            with connect(address) as conn:
                conn.execute(
                    "update ops.workspaces set is_active = false where workspace_id in (%s, %s)",
                    (healthy, BROKEN),
                )
                conn.commit()
    with psycopg.connect(address.conninfo(AIRFLOW_DATABASE)) as airflow_db:
        states = airflow_db.execute(
            """
            select ti.task_id, ti.map_index, ti.state, ti.try_number
            from task_instance as ti join dag_run as r on r.run_id = ti.run_id and r.dag_id = ti.dag_id
            where r.dag_id = 'ledgerlink_reconcile' and r.logical_date = %s
            """,
            (LOGICAL_DATE,),
        ).fetchall()
    # map index i is the i-th active workspace by id; for deliver_documents it is the i-th shard
    # planned, and at this size each workspace has one
    workspaces = sorted([healthy, BROKEN])
    return {
        "address": address,
        "healthy": healthy,
        "mailbox": mailbox,
        "states": {
            (task, workspaces[index] if index >= 0 else None): (state, tries)
            for task, index, state, tries in states
        },
    }


def test_the_broken_workspace_fails_its_extractions_without_retrying(run_with_a_broken_workspace) -> None:  # noqa: ANN001
    states = run_with_a_broken_workspace["states"]
    for source in ("qonto", "square", "quickbooks"):
        assert states[(f"extract_{source}", BROKEN)] == ("failed", 1)
    assert states[("report_failures", None)][0] == "failed", "the run must not look green"


def test_the_healthy_workspace_is_extracted_scored_and_delivered(run_with_a_broken_workspace) -> None:  # noqa: ANN001
    run = run_with_a_broken_workspace
    healthy = run["healthy"]
    for task in (
        "extract_qonto",
        "extract_square",
        "extract_quickbooks",
        "score_and_route",
        "deliver_documents",
    ):
        assert run["states"][(task, healthy)][0] == "success", task
    with connect(run["address"]) as conn:
        auto_linked = conn.execute(
            "select count(*) from ops.routing_decisions where workspace_id = %s and route = 'auto_link'",
            (healthy,),
        ).fetchone()[0]
        sent = conn.execute(
            "select count(*) from ops.delivery_outbox where workspace_id = %s and status = 'sent'", (healthy,)
        ).fetchone()[0]
        broken_decisions = conn.execute(
            "select count(*) from ops.routing_decisions where workspace_id = %s", (BROKEN,)
        ).fetchone()[0]
    assert auto_linked > 0
    assert sent == auto_linked
    assert len(list(run["mailbox"].glob("*.eml"))) == sent
    assert broken_decisions == 0
    reporting = {
        state for (task, _), (state, _) in run["states"].items() if task.startswith("dbt_reporting_marts.")
    }
    assert reporting == {"success"}, "the reporting marts must still be built"
