"""The Square webhook receiver over real HTTP with the real warehouse: signatures checked before
any write, every delivery of one event landed once (50 concurrent replays), stale updates
discarded when processed, and the same app mounted the way the Airflow plugin mounts it."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ledgerlink.sandbox.services import serve_app
from ledgerlink.sandbox.webhooks import payment_event, signed_delivery
from ledgerlink.warehouse import connect
from ledgerlink.webhooks.app import create_webhook_app
from ledgerlink.webhooks.square import process_pending_events, save_subscription
from ledgerlink.workspaces import Workspace, save_workspace

KEY = "sandbox-signature-key-0123456789"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def receiver(warehouse) -> str:  # noqa: ANN001
    with serve_app("webhooks", create_webhook_app(lambda: connect(warehouse))) as base_url:
        yield base_url


@pytest.fixture
def subscribed(warehouse) -> tuple[str, str]:  # noqa: ANN001
    workspace_id = f"hook-{uuid.uuid4().hex[:10]}"
    # The registered URL (what Square signs) differs from where the request lands: a proxy.
    notification_url = f"https://ledgerlink.example.test/ledgerlink/webhooks/square/{workspace_id}"
    with connect(warehouse) as conn, conn.transaction():
        save_workspace(conn, Workspace(workspace_id, "Hooks", "h@qbodocs.com", is_active=False))
        save_subscription(conn, workspace_id, notification_url, KEY)
    return workspace_id, notification_url


def _payment(payment_id: str, status: str, updated_at: str) -> dict:
    return {
        "id": payment_id,
        "created_at": "2026-10-01T10:00:00.000Z",
        "updated_at": updated_at,
        "amount_money": {"amount": 1250, "currency": "EUR"},
        "total_money": {"amount": 1250, "currency": "EUR"},
        "status": status,
        "location_id": "L1",
        "source_type": "CARD",
    }


def _events(conn, workspace_id: str) -> list[tuple]:  # noqa: ANN001
    return conn.execute(
        "select event_id, outcome from raw.square_webhook_events where workspace_id = %s order by event_id",
        (workspace_id,),
    ).fetchall()


def test_only_correctly_signed_deliveries_are_landed(warehouse, receiver, subscribed) -> None:  # noqa: ANN001
    workspace_id, url = subscribed
    event = payment_event(_payment("P1", "APPROVED", "2026-10-01T10:00:01.000Z"), "payment.created", "M1")
    body, headers = signed_delivery(event, KEY, url)
    endpoint = f"{receiver}/square/{workspace_id}"
    tampered = body.replace(b"1250", b"9250")
    _, wrong_key = signed_delivery(event, "another-key", url)
    _, wrong_url = signed_delivery(event, KEY, url.replace("example.test", "example.org"))
    missing = {k: v for k, v in headers.items() if k != "x-square-hmacsha256-signature"}
    refused = {
        "tampered body": (tampered, headers),
        "wrong key": (body, wrong_key),
        "wrong URL": (body, wrong_url),
        "missing signature": (body, missing),
        "empty body": (b"", headers),
        "unknown workspace": (body, headers),
    }
    with httpx.Client(timeout=10) as http:
        for name, (payload, sent_headers) in refused.items():
            target = endpoint if name != "unknown workspace" else f"{receiver}/square/nobody"
            response = http.post(target, content=payload, headers=sent_headers)
            assert response.status_code == 401, name
        with connect(warehouse) as conn:
            assert _events(conn, workspace_id) == [], "nothing was written for a bad signature"
        response = http.post(endpoint, content=body, headers=headers)
    assert response.status_code == 200 and response.json() == {"status": "accepted"}
    with connect(warehouse) as conn:
        assert _events(conn, workspace_id) == [(event["event_id"], None)]


def test_fifty_concurrent_replays_of_one_event_land_once(warehouse, receiver, subscribed) -> None:  # noqa: ANN001
    workspace_id, url = subscribed
    event = payment_event(_payment("P2", "COMPLETED", "2026-10-01T11:00:00.000Z"), "payment.updated", "M1")
    endpoint = f"{receiver}/square/{workspace_id}"

    def deliver(retry_number: int) -> tuple[int, str, float]:
        body, headers = signed_delivery(event, KEY, url, retry_number=retry_number)
        started = time.monotonic()
        response = httpx.post(endpoint, content=body, headers=headers, timeout=10)
        return response.status_code, response.json().get("status"), time.monotonic() - started

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(deliver, range(50)))
    assert {status for status, _, _ in results} == {200}
    assert sorted(outcome for _, outcome, _ in results) == ["accepted"] + ["duplicate"] * 49
    assert max(seconds for _, _, seconds in results) < 10, "acknowledged within Square's 10 s"
    with connect(warehouse) as conn:
        assert len(_events(conn, workspace_id)) == 1
        with conn.transaction():
            assert process_pending_events(conn, workspace_id, "hooks") == {"landed": 1}
        with conn.transaction():
            assert process_pending_events(conn, workspace_id, "hooks-again") == {}, "processed once"


def test_out_of_order_events_keep_the_newest_payment(warehouse, receiver, subscribed) -> None:  # noqa: ANN001
    workspace_id, url = subscribed
    created = payment_event(_payment("P3", "APPROVED", "2026-10-01T12:00:00.000Z"), "payment.created", "M1")
    updated = payment_event(_payment("P3", "COMPLETED", "2026-10-01T12:05:00.000Z"), "payment.updated", "M1")
    refund = {**created, "type": "refund.created", "event_id": str(uuid.uuid4())}
    with httpx.Client(timeout=10) as http:
        for event in (updated, created, refund):  # the update arrives first
            body, headers = signed_delivery(event, KEY, url)
            assert (
                http.post(f"{receiver}/square/{workspace_id}", content=body, headers=headers).status_code
                == 200
            )
            with connect(warehouse) as conn, conn.transaction():
                process_pending_events(conn, workspace_id, "order")
    with connect(warehouse) as conn:
        outcomes = dict(_events(conn, workspace_id))
        assert outcomes == {
            updated["event_id"]: "landed",
            created["event_id"]: "stale",
            refund["event_id"]: "ignored",
        }
        statuses = conn.execute(
            "select payload ->> 'status' from raw.square_payments where workspace_id = %s", (workspace_id,)
        ).fetchall()
    assert statuses == [("COMPLETED",)]


def test_a_signed_body_that_is_not_an_event_is_quarantined(warehouse, receiver, subscribed) -> None:  # noqa: ANN001
    workspace_id, url = subscribed
    from ledgerlink.sandbox.webhooks import square_signature

    body = b'{"no_event_id": true, "note": "\\u0000"}'
    headers = {"x-square-hmacsha256-signature": square_signature(KEY, url, body)}
    response = httpx.post(f"{receiver}/square/{workspace_id}", content=body, headers=headers, timeout=10)
    assert response.status_code == 400
    with connect(warehouse) as conn:
        [(raw, reason)] = conn.execute(
            "select raw_payload, reason from ops.rejected_records where workspace_id = %s", (workspace_id,)
        ).fetchall()
    assert json.loads(raw) == {"no_event_id": True, "note": "\u0000"}
    assert "event_id" in reason


def test_the_airflow_plugin_serves_the_receiver(warehouse, subscribed) -> None:  # noqa: ANN001
    spec = importlib.util.spec_from_file_location(
        "ledgerlink_webhooks", REPO / "plugins" / "ledgerlink_webhooks.py"
    )
    assert spec is not None and spec.loader is not None
    plugin_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin_module)
    [entry] = plugin_module.LedgerlinkWebhooksPlugin.fastapi_apps
    assert entry["url_prefix"] == "/ledgerlink/webhooks"
    host = FastAPI()  # Airflow's API server mounts plugin apps like this
    host.mount(entry["url_prefix"], entry["app"])
    workspace_id, url = subscribed
    with serve_app("airflow-like", host) as base_url:
        response = httpx.post(
            f"{base_url}/ledgerlink/webhooks/square/{workspace_id}", content=b"{}", timeout=10
        )
    assert response.status_code == 401, "an unsigned (anonymous) request is refused"


def test_the_sandbox_resends_on_squares_schedule_until_acknowledged(warehouse, receiver) -> None:  # noqa: ANN001
    from ledgerlink.sandbox.webhooks import deliver

    workspace_id = f"hook-{uuid.uuid4().hex[:10]}"
    url = f"https://ledgerlink.example.test/ledgerlink/webhooks/square/{workspace_id}"
    with connect(warehouse) as conn, conn.transaction():
        save_workspace(conn, Workspace(workspace_id, "Hooks", "h@qbodocs.com", is_active=False))
    event = payment_event(_payment("P5", "COMPLETED", "2026-10-01T13:00:00.000Z"), "payment.updated", "M1")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the receiver is fixed (the subscription saved) after three failures
            with connect(warehouse) as conn, conn.transaction():
                save_subscription(conn, workspace_id, url, KEY)

    attempts = deliver(event, KEY, url, post_to=f"{receiver}/square/{workspace_id}", time_scale=0.001,
                       sleep=sleep, replays=2)  # fmt: skip
    assert [(a.retry_number, a.status) for a in attempts] == [
        (0, 401),
        (1, 401),
        (2, 401),
        (3, 200),
        (0, 200),
        (0, 200),
    ]
    assert waits == pytest.approx([0.06, 0.12, 0.24]), "1, 2, 4 minutes, scaled"
    with connect(warehouse) as conn:
        rows = conn.execute(
            "select event_id, square_retry_number from raw.square_webhook_events where workspace_id = %s",
            (workspace_id,),
        ).fetchall()
    assert rows == [(event["event_id"], 3)], "landed once, from the third retry; replays changed nothing"


def test_the_sandbox_gives_up_after_72_hours() -> None:
    from ledgerlink.sandbox.webhooks import GIVE_UP_AFTER_SECONDS, deliver

    waits: list[float] = []
    event = payment_event(_payment("P6", "COMPLETED", "2026-10-01T13:00:00.000Z"), "payment.updated", "M1")
    attempts = deliver(event, KEY, "http://127.0.0.1:9/unreachable", sleep=waits.append)
    assert all(a.status is None for a in attempts)
    assert waits[:7] == [60, 120, 240, 480, 960, 1920, 3600]
    assert sum(waits) <= GIVE_UP_AFTER_SECONDS < sum(waits) + 3600
