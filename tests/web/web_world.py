"""The pages under test, for real: records landed in ``raw.*``, dbt builds the models, the DAG's
scorer routes them, dbt builds the review queue, and Airflow's own api-server (a subprocess on a
loopback port, with the simple auth manager and the plugins folder) serves the pages.

Two inactive workspaces with unique ids: ``alice`` reviews A, ``bob`` reviews B, ``admin`` is an
Airflow admin of neither. A third workspace holds a 10,000-record queue for the benchmark.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fpdf import FPDF

from ledgerlink.blobstore import BlobStore
from ledgerlink.evaluation.pipeline import build_scoring_models, land
from ledgerlink.matching import route_workspace
from ledgerlink.sandbox import SandboxEndpoints, SandboxPorts, generate_fixtures, run_sandbox
from ledgerlink.settings import Settings
from ledgerlink.warehouse import ServerAddress, connect
from ledgerlink.warehouse.landing import SourceRecord, payload_sha256
from ledgerlink.workspaces import DEFAULT_REVIEW_THRESHOLD, Workspace, save_workspace

REPOSITORY = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "alice-pw-7Hq", "bob": "bob-pw-2Lx", "admin": "admin-pw-9Zk"}
BENCHMARK_QUEUE_SIZE = 10_000
ARTIFACTS = REPOSITORY / ".state" / "test-artifacts" / "web"


@dataclass(frozen=True)
class World:
    workspace_a: str
    workspace_b: str
    workspace_benchmark: str
    review_decisions_a: list[int]
    review_decisions_b: list[int]
    refused_decisions_a: list[int]
    blobs: BlobStore


def _square(payment_id: str, customer: str, amount_minor: int, day: str) -> dict[str, list[SourceRecord]]:
    customer_id = f"cust-{payment_id}"
    money = {"amount": amount_minor, "currency": "EUR"}
    created_at = f"{day}T12:00:00Z"
    payment = {
        "id": payment_id,
        "created_at": created_at,
        "updated_at": created_at,
        "amount_money": money,
        "total_money": money,
        "status": "COMPLETED",
        "location_id": "L1",
        "customer_id": customer_id,
    }
    return {
        "square_payments": [SourceRecord(payment_id, payment, None)],
        "square_customers": [SourceRecord(customer_id, {"id": customer_id, "company_name": customer}, None)],
    }


def _qbo_invoice(invoice_id: str, customer: str, amount: float, day: str) -> dict[str, list[SourceRecord]]:
    customer_id = f"c-{invoice_id}"
    invoice = {
        "Id": invoice_id,
        "DocNumber": f"INV-{invoice_id}",
        "TxnDate": day,
        "CustomerRef": {"value": customer_id, "name": customer},
        "TotalAmt": amount,
        "Balance": amount,
        "CurrencyRef": {"value": "EUR", "name": "Euro"},
    }
    return {
        "qbo_invoices": [SourceRecord(invoice_id, invoice, None)],
        "qbo_customers": [
            SourceRecord(customer_id, {"Id": customer_id, "DisplayName": customer, "Active": True}, None)
        ],
    }


def _qonto_invoice(
    invoice_id: str, supplier: str, value: str, blob_sha256: str
) -> dict[str, list[SourceRecord]]:
    invoice = {
        "id": invoice_id,
        "status": "awaiting_payment",
        "supplier_name": supplier,
        "invoice_number": f"F-{invoice_id}",
        "total_amount": {"value": value, "currency": "EUR"},
        "issue_date": "2026-10-01",
        "attachment_id": f"att-{invoice_id}",
        "file_name": f"{invoice_id}.pdf",
        "created_at": "2026-10-01T09:00:00.000Z",
        "updated_at": "2026-10-01T09:00:00.000Z",
    }
    attachment = {
        "id": f"att-{invoice_id}",
        "file_name": f"{invoice_id}.pdf",
        "file_content_type": "application/pdf",
    }
    return {
        "qonto_supplier_invoices": [SourceRecord(invoice_id, invoice, None)],
        "qonto_attachments": [
            SourceRecord(f"att-{invoice_id}", attachment, None, {"blob_sha256": blob_sha256})
        ],
    }


def _vendor(vendor_id: str, name: str) -> dict[str, list[SourceRecord]]:
    vendor = {"Id": vendor_id, "DisplayName": name, "Active": True, "CurrencyRef": {"value": "EUR"}}
    return {"qbo_vendors": [SourceRecord(vendor_id, vendor, None)]}


def _merge(*parts: dict[str, list[SourceRecord]]) -> dict[str, list[SourceRecord]]:
    merged: dict[str, list[SourceRecord]] = {}
    for part in parts:
        for table, records in part.items():
            merged.setdefault(table, []).extend(records)
    return merged


def _supplier_invoice_pdf(supplier: str, number: str, amount: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=16)
    pdf.cell(0, 12, supplier, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 8, f"Invoice {number}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, f"Total due: {amount} EUR", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _dbt_run(settings: Settings, address: ServerAddress, selection: str) -> None:
    """``dbt run`` of the selection (the models; their dbt tests run in tests/dbt)."""
    build_scoring_models(settings, address, selection, dbt_command="run")


def _benchmark_decisions(conn: psycopg.Connection, workspace_id: str, count: int) -> None:
    """``count`` review decisions over landed Square payments, with ranked candidates."""
    rng = random.Random(6)
    decided_at = datetime(2026, 11, 1, tzinfo=UTC)
    payments = []
    with conn.cursor().copy(
        "copy ops.routing_decisions (workspace_id, source, source_record_id, source_payload_sha256, route,"
        " score, auto_link_threshold, review_threshold, top_candidate_type, top_candidate_id, candidates,"
        " explanation, model_version, decided_at, decided_by_run) from stdin"
    ) as copy:
        for index in range(count):
            payment_id = f"bench-{index:05d}"
            day = (decided_at - timedelta(days=rng.randrange(1, 200))).date().isoformat()
            records = _square(payment_id, f"Customer {index % 700}", rng.randrange(100, 500_000), day)
            payments.append(records)
            payment = records["square_payments"][0]
            score = round(rng.uniform(0.55, 0.85), 4)
            candidates = [
                {
                    "candidate_type": "invoice",
                    "candidate_id": f"{index}-{rank}",
                    "candidate_name": f"Customer {rank}",
                    "score": round(score - rank * 0.01, 4),
                }
                for rank in range(3)
            ]
            copy.write_row(
                (
                    workspace_id,
                    "square",
                    payment_id,
                    payload_sha256(payment.payload),
                    "review",
                    score,
                    0.85,
                    0.55,
                    "invoice",
                    candidates[0]["candidate_id"],
                    json.dumps(candidates),
                    json.dumps({"contributions": {"name_similarity": 0.3, "amount_agreement": 0.3}}),
                    "weighted-sum-v1",
                    decided_at,
                    "web-benchmark",
                )
            )
    land(conn, workspace_id, "web-benchmark", _merge(*payments))


@pytest.fixture(scope="session")
def world(prepared: tuple[Settings, ServerAddress]) -> World:
    """Airflow's metadata database is migrated too: the api-server checks revoked tokens there."""
    settings, warehouse = prepared
    suffix = uuid.uuid4().hex[:8]
    workspace_a, workspace_b, workspace_benchmark = (
        f"web-a-{suffix}",
        f"web-b-{suffix}",
        f"web-bench-{suffix}",
    )
    blobs = BlobStore(settings.blob_dir)
    pdf_sha = blobs.put(_supplier_invoice_pdf("Boulangerie Dupont", "F-q-dupont", "120.50"))
    with connect(warehouse) as conn:
        for workspace_id, name, review_threshold in (
            (workspace_a, "Acme Bakery", DEFAULT_REVIEW_THRESHOLD),
            # one record: whatever it scores, workspace B has something to review
            (workspace_b, "Beta Coffee", Decimal("0")),
            (workspace_benchmark, "Benchmark Co", DEFAULT_REVIEW_THRESHOLD),
        ):
            save_workspace(
                conn,
                Workspace(
                    workspace_id,
                    name,
                    f"{workspace_id}@qbodocs.com",
                    owner_email=f"owner@{workspace_id}.example",
                    # a cautious workspace: a name match with a close runner-up (Dupont SARL
                    # against Dupont et Fils scores about 0.96 with the matcher's cold-start prior)
                    # is reviewed, not linked.
                    auto_link_threshold=Decimal("0.98"),
                    review_threshold=review_threshold,
                    is_active=False,
                ),
            )
        conn.execute(
            "insert into ops.workspace_members (workspace_id, username) values (%s, 'alice'), (%s, 'bob'), (%s, 'alice')",
            (workspace_a, workspace_b, workspace_benchmark),
        )
        conn.commit()
        land(
            conn,
            workspace_a,
            "web-test",
            _merge(
                # two open invoices for the same customer and amount: the matcher cannot tell them apart
                _square("sq-blue", "Blue Bottle Coffee", 25_000, "2026-10-05"),
                _qbo_invoice("1001", "Blue Bottle Coffee", 250.0, "2026-10-01"),
                _qbo_invoice("1002", "Blue Bottle Coffee Roasters", 250.0, "2026-09-30"),
                _qbo_invoice("1003", "Initech", 80.0, "2026-09-20"),
                # a charge nothing in the ledger resembles
                _square("sq-mystery", "Zyxw Holdings", 3_300, "2026-10-07"),
                # a supplier invoice with two similar vendors
                _qonto_invoice("q-dupont", "BOULANGERIE DUPONT", "120.50", pdf_sha),
                _vendor("56", "Boulangerie Dupont SARL"),
                _vendor("57", "Boulangerie Dupont et Fils"),
            ),
        )
        land(
            conn,
            workspace_b,
            "web-test",
            _merge(
                _square("sq-beta", "Globex Corporation", 9_900, "2026-10-05"),
                _qbo_invoice("2001", "Globex Corporation", 99.0, "2026-10-01"),
                _qbo_invoice("2002", "Globex Corp", 99.0, "2026-10-02"),
            ),
        )
        conn.commit()
        _benchmark_decisions(conn, workspace_benchmark, BENCHMARK_QUEUE_SIZE)
        conn.commit()
    _dbt_run(settings, warehouse, "+match_features")
    decided_at = datetime(2026, 11, 2, tzinfo=UTC)
    with connect(warehouse) as conn:
        for workspace_id in (workspace_a, workspace_b):
            route_workspace(conn, workspace_id, "web-test", decided_at)
        conn.commit()
        _dbt_run(
            settings,
            warehouse,
            "path:models/staging/ops path:models/intermediate/delivery path:models/marts/reporting"
            " path:models/marts/delivery",
        )

        def decisions(workspace_id: str, route: str) -> list[int]:
            rows = conn.execute(
                "select decision_id from ops.routing_decisions where workspace_id = %s and route = %s"
                " order by decision_id",
                (workspace_id, route),
            ).fetchall()
            return [row[0] for row in rows]

        world = World(
            workspace_a,
            workspace_b,
            workspace_benchmark,
            decisions(workspace_a, "review"),
            decisions(workspace_b, "review"),
            decisions(workspace_a, "refused"),
            blobs,
        )
        routes = conn.execute(
            "select source_record_id, route, score, candidates from ops.routing_decisions where workspace_id = %s",
            (workspace_a,),
        ).fetchall()
    assert len(world.review_decisions_a) >= 2 and world.review_decisions_b and world.refused_decisions_a, (
        routes
    )
    return world


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class AirflowServer:
    base_url: str

    def login(self, username: str) -> httpx.Client:
        """An HTTP client holding the user's Airflow session cookie, as the browser would."""
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": PASSWORDS[username]},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return httpx.Client(
            base_url=self.base_url, timeout=30, cookies={"_token": response.json()["access_token"]}
        )


@pytest.fixture(scope="session")
def oauth_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxEndpoints]:
    """The sandbox's Qonto and Square (their OAuth servers among them) on loopback: the sources a
    person reconnects from the status page."""
    fixtures = generate_fixtures(
        tmp_path_factory.mktemp("oauth-sandbox") / "fixtures",
        seed=6,
        qonto_invoices=3,
        square_payments=3,
        customers=4,
        open_invoices_without_charge=1,
        paid_invoices=1,
    )
    with run_sandbox(
        fixtures, tmp_path_factory.mktemp("oauth-sandbox-mail"), ports=SandboxPorts.ephemeral()
    ) as endpoints:
        yield endpoints


def source_connections(sandbox: SandboxEndpoints) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` of the sources, naming the sandbox's OAuth applications, as an operator
    configures the real ones."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": base_url,
                "login": oauth["client_id"],
                "password": oauth["client_secret"],
                "extra": {"authorize_url": oauth["authorize_url"], "token_url": oauth["token_url"]},
            }
        )
        for conn_id, base_url, oauth in (
            ("ledgerlink_qonto", sandbox.qonto_base_url, sandbox.qonto_oauth),
            ("ledgerlink_square", sandbox.square_base_url, sandbox.square_oauth),
        )
    }


@pytest.fixture(scope="session")
def airflow_server(
    world: World,
    settings: Settings,
    oauth_sandbox: SandboxEndpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowServer]:
    """Airflow's api-server app with its plugins (ours among them), served by uvicorn on loopback,
    with the sources' connections pointing at the sandbox."""
    folder = tmp_path_factory.mktemp("airflow-api")
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    environment = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:viewer,bob:viewer,admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPOSITORY / "plugins"),
        **source_connections(oauth_sandbox),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTIFACTS / "api-server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "airflow.api_fastapi.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (ARTIFACTS / "api-server.log").read_text()[-4000:]
            try:
                if httpx.get(f"{base_url}/ledgerlink/queue", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (ARTIFACTS / "api-server.log").read_text()[-4000:]
            time.sleep(0.5)
        yield AirflowServer(base_url)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    return ARTIFACTS


def review_action_count(address: ServerAddress, decision_id: int) -> int:
    with connect(address) as conn:
        row = conn.execute(
            "select count(*) from ops.review_actions where decision_id = %s", (decision_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def outbox_rows(address: ServerAddress, workspace_id: str) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with connect(address) as conn, conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "select * from ops.delivery_outbox where workspace_id = %s order by outbox_id", (workspace_id,)
        ).fetchall()
