"""Storage regions and workspace isolation, in one real DAG run over two extra embedded servers.

Region ``eu`` (its own embedded server) holds workspaces alpha and beta, region ``us`` (another
embedded server) holds gamma; the session's own server is the configuration database. All three
are connected to the same sandbox accounts, so they have IDENTICAL source data, and each has its
own email-in address on one email-in server. Gamma, alone in its region, is the control: what
alpha and beta decide must equal what gamma decides, which it could not if their rows mixed.

(a) no row of any raw/ops/dbt table and no blob of one region is in the other, and the
configuration database holds none of their data; (b) in ``eu``, no decision, email or page mixes
alpha and beta.
"""

from __future__ import annotations

import email
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from ledgerlink.warehouse import connect, connect_region
from ledgerlink.warehouse.embedded import start_embedded_server, stop_embedded_server

pytestmark = pytest.mark.slow

LOGICAL_DATE = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
ALPHA, BETA, GAMMA = "regions-eu-alpha", "regions-eu-beta", "regions-us-gamma"
REGION_OF = {ALPHA: "eu", BETA: "eu", GAMMA: "us"}
EMAIL_IN = {
    ALPHA: "alpha-books@qbodocs.com",
    BETA: "beta-books@qbodocs.com",
    GAMMA: "gamma-books@qbodocs.com",
}
#: the tables a workspace's data lives in, by schema
DATA_SCHEMAS = ("raw", "ops", "staging", "intermediate", "marts")
#: shared configuration: the registry and who may see what, no customer data
#: settings, not customer data: the registry, its members, and the history of its thresholds (a
#: trigger on ops.workspaces versions them wherever the registry row changes)
CONFIGURATION_TABLES = {"ops.workspaces", "ops.workspace_members", "ops.threshold_versions"}


def _tables_with_workspace_id(conn: psycopg.Connection, *, stored_only: bool = False) -> list[str]:
    """Tables and views with a workspace id; ``stored_only`` leaves out views, which hold nothing
    (dbt's staging views in the configuration database show its own registry)."""
    rows = conn.execute(
        "select c.table_schema || '.' || c.table_name from information_schema.columns c"
        " join information_schema.tables t using (table_schema, table_name)"
        " where c.column_name = 'workspace_id' and c.table_schema = any(%s)"
        " and (not %s or t.table_type = 'BASE TABLE') order by 1",
        (list(DATA_SCHEMAS), stored_only),
    )
    return [row[0] for row in rows]


def _workspaces_in(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(f"select distinct workspace_id from {table}")  # noqa: S608 - catalogue names
    return {row[0] for row in rows}


@pytest.fixture(scope="module")
def regional_run(prepared, tmp_path_factory):  # noqa: ANN001
    from ledgerlink.cli.environment import connection_variable
    from ledgerlink.cli.run import register_sandbox_workspace, run_dag_once, sandbox_connections
    from ledgerlink.orchestration.connection_ids import EMAIL_IN_CONN_ID
    from ledgerlink.sandbox.email_in import QuickBooksPolicy, start_email_in
    from ledgerlink.sandbox.generator import generate_fixtures
    from ledgerlink.sandbox.services import SandboxPorts, run_sandbox
    from ledgerlink.settings import AIRFLOW_DATABASE
    from ledgerlink.warehouse.regions import region_dbt_environment

    settings, address = prepared
    base = tmp_path_factory.mktemp("regions")
    servers = {name: base / name / "postgres" for name in ("eu", "us")}
    region_environment = {}
    for name, pgdata in servers.items():
        socket_dir = start_embedded_server(pgdata)
        region_environment[f"LEDGERLINK_REGION_{name.upper()}_URL"] = (
            f"postgresql://postgres@/ledgerlink_{name}?host={quote(str(socket_dir), safe='')}"
        )
        region_environment[f"LEDGERLINK_REGION_{name.upper()}_BLOB_DIR"] = str(base / name / "blobs")
    saved_environment = dict(os.environ)
    os.environ.update(region_environment)
    os.environ.update(region_dbt_environment())
    mailbox = base / "email-in"
    try:
        # a seed of its own: the default region's blob folder must not hold these attachments
        fixtures = generate_fixtures(
            base / "fixtures",
            seed=4242,
            # a quarter of the default set: three workspaces render and send every document
            qonto_invoices=30,
            square_payments=40,
            customers=16,
            open_invoices_without_charge=8,
            paid_invoices=8,
        )
        manifest = json.loads((fixtures / "manifest.json").read_text())
        with run_sandbox(fixtures, base / "sandbox-mail", ports=SandboxPorts.ephemeral()) as endpoints:
            sandbox = endpoints.as_json()
            sender = sandbox["email_in"]["registered_sender"]
            email_in = start_email_in(
                mailbox,
                EMAIL_IN[ALPHA],
                recipients=frozenset(EMAIL_IN.values()),
                policy=QuickBooksPolicy(frozenset({sender.lower()})),
            )
            try:
                with connect(address) as conn:
                    conn.execute("update ops.workspaces set is_active = false")
                    for workspace_id, region in REGION_OF.items():
                        own_sandbox = {
                            **sandbox,
                            "email_in": {**sandbox["email_in"], "address": EMAIL_IN[workspace_id]},
                        }
                        register_sandbox_workspace(
                            conn, own_sandbox, {**manifest, "workspace_id": workspace_id}, region
                        )
                        conn.execute(
                            "insert into ops.workspace_members (workspace_id, username) values (%s, %s)"
                            " on conflict do nothing",
                            (workspace_id, f"reviewer-{workspace_id}"),
                        )
                os.environ.update(sandbox_connections(sandbox))
                os.environ.update(
                    [
                        connection_variable(
                            EMAIL_IN_CONN_ID,
                            {
                                "conn_type": "smtp",
                                "host": email_in.host,
                                "port": email_in.port,
                                "extra": {"from_address": sender},
                            },
                        )
                    ]
                )
                run_dag_once(settings, address, LOGICAL_DATE)
            finally:
                email_in.stop()
                with connect(address) as conn:
                    conn.execute(
                        "update ops.workspaces set is_active = false where workspace_id = any(%s)",
                        (list(REGION_OF),),
                    )
        with psycopg.connect(address.conninfo(AIRFLOW_DATABASE)) as airflow_db:
            task_ids = {
                row[0]
                for row in airflow_db.execute(
                    "select distinct task_id from task_instance where dag_id = 'ledgerlink_reconcile'"
                    " and run_id = (select run_id from dag_run where dag_id = 'ledgerlink_reconcile'"
                    " and logical_date = %s)",
                    (LOGICAL_DATE,),
                )
            }
        yield {
            "settings": settings,
            "address": address,
            "base": base,
            "mailbox": mailbox,
            "task_ids": task_ids,
        }
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        for pgdata in servers.values():
            stop_embedded_server(pgdata)


def test_each_region_was_built_by_its_own_dbt_task_group(regional_run) -> None:  # noqa: ANN001
    task_ids = regional_run["task_ids"]
    for group in ("dbt_match_features", "dbt_reporting_marts"):
        for region in ("eu", "us"):
            assert any(task.startswith(f"{group}_{region}.") for task in task_ids), (group, region)
        assert not any(task.startswith(f"{group}.") for task in task_ids), "no build of the configuration db"


def test_no_row_crosses_regions_and_every_region_holds_its_own(regional_run) -> None:  # noqa: ANN001
    for region in ("eu", "us"):
        own = {workspace for workspace, home in REGION_OF.items() if home == region}
        with connect_region(region) as conn:
            tables = _tables_with_workspace_id(conn)
            assert {"raw.square_payments", "ops.routing_decisions", "marts.match_features"} <= set(tables)
            for table in tables:
                assert _workspaces_in(conn, table) <= own, f"{region}: {table} holds another region's rows"
            for table in ("raw.square_payments", "raw.qonto_attachments", "ops.routing_decisions"):
                assert _workspaces_in(conn, table) == own, f"{region}: {table} lacks a workspace's rows"
            assert _workspaces_in(conn, "marts.match_features") == own


def test_the_configuration_database_holds_no_customer_data(regional_run) -> None:  # noqa: ANN001
    with connect(regional_run["address"]) as conn:
        for table in _tables_with_workspace_id(conn, stored_only=True):
            if table in CONFIGURATION_TABLES:
                continue
            rows = conn.execute(
                f"select count(*) from {table} where workspace_id = any(%s)",  # noqa: S608 - catalogue names
                (list(REGION_OF),),
            ).fetchone()[0]
            assert rows == 0, (
                f"the configuration database holds {rows} rows of regional workspaces in {table}"
            )


def test_no_blob_crosses_regions(regional_run) -> None:  # noqa: ANN001
    stored = {}
    for region in ("eu", "us"):
        folder = regional_run["base"] / region / "blobs"
        stored[region] = {path.name for path in folder.rglob("*") if path.is_file()}
        with connect_region(region) as conn:
            referenced = {
                row[0] for row in conn.execute("select distinct blob_sha256 from raw.qonto_attachments")
            }
        assert referenced, f"{region} landed no attachment"
        # each region's folder holds exactly what its own rows reference, and nothing else
        assert stored[region] == referenced, region
    default_folder = regional_run["settings"].blob_dir
    default_blobs = {path.name for path in default_folder.rglob("*") if path.is_file()}
    assert not (stored["eu"] | stored["us"]) & default_blobs, (
        "a regional attachment is in the default blob store"
    )


def _decisions(workspace_id: str) -> dict[tuple[str, str], tuple[str, str | None, int]]:
    with connect_region(REGION_OF[workspace_id]) as conn:
        rows = conn.execute(
            "select source, source_record_id, route, top_candidate_id, jsonb_array_length(candidates)"
            " from ops.routing_decisions where workspace_id = %s",
            (workspace_id,),
        ).fetchall()
    return {(source, record): (route, top, candidates) for source, record, route, top, candidates in rows}


def test_identical_workspaces_decide_exactly_as_the_one_alone_in_its_region(regional_run) -> None:  # noqa: ANN001
    control = _decisions(GAMMA)
    assert control and any(route == "auto_link" for route, _, _ in control.values())
    # Were alpha's and beta's rows mixed (blocking, features, marts), a record would have twice
    # the candidates, or another top candidate, than gamma's, alone in its region.
    assert _decisions(ALPHA) == control
    assert _decisions(BETA) == control


def test_each_workspace_gets_its_own_documents_at_its_own_address(regional_run) -> None:  # noqa: ANN001
    messages_by_recipient: dict[str, set[str]] = {}
    for path in sorted(Path(regional_run["mailbox"]).glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        messages_by_recipient.setdefault(message["Delivered-To"], set()).add(message["Message-ID"])
    assert set(messages_by_recipient) == set(EMAIL_IN.values())
    for workspace_id, address in EMAIL_IN.items():
        with connect_region(REGION_OF[workspace_id]) as conn:
            outbox = conn.execute(
                "select o.workspace_id, o.recipient, o.message_id, d.workspace_id"
                " from ops.delivery_outbox as o join ops.routing_decisions as d using (decision_id)"
                " where o.workspace_id = %s and o.status = 'sent'",
                (workspace_id,),
            ).fetchall()
            auto_links = conn.execute(
                "select count(*) from ops.routing_decisions where workspace_id = %s and route = 'auto_link'",
                (workspace_id,),
            ).fetchone()[0]
        assert len(outbox) == auto_links > 0
        assert {(row[0], row[1], row[3]) for row in outbox} == {(workspace_id, address, workspace_id)}
        assert {row[2] for row in outbox} == messages_by_recipient[address], workspace_id


def test_a_reviewer_sees_only_their_own_workspace_in_the_pages(regional_run) -> None:  # noqa: ANN001
    import re

    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from ledgerlink.web.app import create_app

    class _User:  # Airflow's authentication is not what this test is about; membership is
        def __init__(self, name: str) -> None:
            self.name = name

        def get_name(self) -> str:
            return self.name

    def decision_ids(workspace_id: str) -> set[int]:
        with connect_region(REGION_OF[workspace_id]) as conn:
            rows = conn.execute(
                "select decision_id from ops.routing_decisions where workspace_id = %s", (workspace_id,)
            )
            return {row[0] for row in rows}

    app = create_app()
    client = TestClient(app)
    for viewer, other in ((ALPHA, BETA), (BETA, ALPHA)):
        app.dependency_overrides[get_user] = lambda viewer=viewer: _User(f"reviewer-{viewer}")
        own_ids, other_ids = decision_ids(viewer), decision_ids(other)
        assert own_ids and other_ids and not own_ids & other_ids
        shown: set[int] = set()
        for show in ("review", "refused"):
            page = client.get("/queue", params={"show": show})
            assert page.status_code == 200
            links = re.findall(r"/decisions/(\d+)\?workspace=([\w-]+)", page.text)
            assert {workspace for _, workspace in links} <= {viewer}
            shown |= {int(decision) for decision, _ in links}
        assert shown and shown <= own_ids
        some_other = min(other_ids)
        assert client.get(f"/decisions/{some_other}").status_code == 404
        assert client.get(f"/decisions/{some_other}", params={"workspace": other}).status_code == 404
        assert client.get("/queue", params={"workspace": other}).status_code == 403
        # the PDF preview comes from the viewer's region's blob store
        with connect_region(REGION_OF[viewer]) as conn:
            qonto_decision = conn.execute(
                "select min(decision_id) from ops.routing_decisions where workspace_id = %s and source = 'qonto'",
                (viewer,),
            ).fetchone()[0]
        document = client.get(f"/decisions/{qonto_decision}/document", params={"workspace": viewer})
        assert document.status_code == 200 and document.content.startswith(b"%PDF")
        assert client.get("/status", params={"workspace": other}).status_code == 403

    # the us reviewer's request works in the us region: gamma's own decision is there
    app.dependency_overrides[get_user] = lambda: _User(f"reviewer-{GAMMA}")
    gamma_decision = min(decision_ids(GAMMA))
    page = client.get(f"/decisions/{gamma_decision}", params={"workspace": GAMMA})
    assert page.status_code == 200
    assert f"workspace={GAMMA}" in page.text  # its document link: the page shows gamma's decision
