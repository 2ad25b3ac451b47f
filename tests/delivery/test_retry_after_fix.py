"""Retry after fix, from the CLI and over HTTP: a rejected delivery is queued again once, keeps
its Message-ID and source record, and goes out through the same send path."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import psycopg
import pytest
import uvicorn
from click.testing import CliRunner
from delivery_rig import DeliveryRig, attempt_outcomes, decide, outbox_rows, square_record
from fastapi import FastAPI, Header, HTTPException

from ledgerlink.cli.main import cli
from ledgerlink.delivery.api import create_delivery_router
from ledgerlink.delivery.sender import RetryPolicy, deliver_pending
from ledgerlink.warehouse import connect

TOKEN = "reviewer-token"


def _reject_once(conn: psycopg.Connection, rig: DeliveryRig, record_id: str) -> dict[str, object]:
    decide(conn, rig.workspace, square_record(record_id))
    conn.commit()
    unregistered = replace(rig.endpoint(), sender="not-registered@elsewhere.example")
    assert (
        deliver_pending(conn, rig.workspace.workspace_id, unregistered, rig.blobs, "run-1")["rejected"] == 1
    )
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert row["status"] == "rejected" and "not registered" in str(row["rejected_reason"])
    return row


def test_cli_retry_after_fix_delivers_the_same_record_once(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    rejected = _reject_once(conn, rig, "R1")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["delivery", "retry", "--workspace", ws, "--record", "square:R1", "--actor", "ana"]
    )
    assert result.exit_code == 0, result.output
    assert "queued delivery" in result.output and "square:R1" in result.output
    again = runner.invoke(
        cli, ["delivery", "retry", "--workspace", ws, "--record", "square:R1", "--actor", "ana"]
    )
    assert "nothing to retry" in again.output, "asking twice queues it once"

    # the fix: the sender address is now registered with QuickBooks
    assert deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-2", retry=RetryPolicy())["sent"] == 1
    [row] = outbox_rows(conn, ws)
    assert row["outbox_id"] == rejected["outbox_id"] and row["status"] == "sent"
    assert [outcome for outcome, _ in attempt_outcomes(conn, row["outbox_id"])] == [
        "rejected",
        "retry_requested",
        "sent",
    ]
    [path] = rig.email_in.mailbox.messages()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert str(message["Message-ID"]).strip() == rejected["message_id"]
    assert message["X-Ledgerlink-Source-Record"] == "square:R1"

    missing = runner.invoke(cli, ["delivery", "retry", "--workspace", ws, "--record", "square:nope"])
    assert missing.exit_code != 0 and "no delivery" in missing.output


@pytest.fixture()
def api_url(warehouse) -> Iterator[str]:  # noqa: ANN001
    def require_token(authorization: str | None = Header(default=None)) -> None:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(status_code=401, detail="not authenticated")

    app = FastAPI()
    app.include_router(create_delivery_router(lambda: connect(warehouse), [require_token]))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_http_retry_after_fix(conn: psycopg.Connection, rig: DeliveryRig, api_url: str) -> None:
    ws = rig.workspace.workspace_id
    rejected = _reject_once(conn, rig, "R2")
    url = f"{api_url}/workspaces/{ws}/deliveries/{rejected['outbox_id']}/retry"
    with httpx.Client(timeout=10) as http:
        assert http.post(url, json={"actor": "ana"}).status_code == 401, "no anonymous retry"
        response = http.post(url, json={"actor": "ana"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        body = response.json()
        assert (
            body["queued"] is True
            and body["source_record_id"] == "R2"
            and body["previous_status"] == "rejected"
        )
        missing = http.post(
            f"{api_url}/workspaces/{ws}/deliveries/999999999/retry",
            json={"actor": "ana"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert missing.status_code == 404
    assert deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-2")["sent"] == 1
    assert len(rig.email_in.mailbox.messages()) == 1
