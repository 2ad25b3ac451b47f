"""The webhook receiver as a FastAPI app: served by the Airflow plugin
(``plugins/ledgerlink_webhooks.py``) under ``/ledgerlink/webhooks``, or on its own with
``python -m ledgerlink.webhooks``.

``POST /square/{workspace_id}``: the subscription's notification URL. The request's only
credential is its signature: Square cannot log in to Airflow, so this route deliberately does not
take Airflow's auth dependency; a request without a valid signature is refused with 401 before
anything is written. A valid delivery is landed raw and acknowledged at once (Square wants a 2xx
within 10 s); processing happens in the next extraction run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ledgerlink.webhooks.square import SIGNATURE_HEADER, land_event, load_subscription, verify_signature

logger = logging.getLogger(__name__)

#: Warehouse sessions the receiver opens at once; more deliveries wait their turn.
MAX_DATABASE_SESSIONS = 8


def _default_connect(workspace_id: str) -> psycopg.Connection:
    from ledgerlink.warehouse import connect_for_workspace

    return connect_for_workspace(workspace_id)


def create_webhook_app(connect: Callable[[], psycopg.Connection] | None = None) -> FastAPI:
    """The receiver app; ``connect`` opens a warehouse connection (default: the database of the
    workspace's storage region)."""

    def open_connection(workspace_id: str) -> psycopg.Connection:
        return connect() if connect is not None else _default_connect(workspace_id)

    sessions = threading.BoundedSemaphore(MAX_DATABASE_SESSIONS)
    app = FastAPI(title="ledgerlink webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    def receive(
        workspace_id: str, body: bytes, signature: str | None, retry_number: int | None
    ) -> JSONResponse:
        with sessions:
            try:
                conn = open_connection(workspace_id)
            except LookupError:  # an unknown workspace (or region): nothing to verify against
                return JSONResponse({"error": "invalid signature"}, status_code=401)
            with conn:
                with conn.transaction():
                    subscription = load_subscription(conn, workspace_id)
                if subscription is None or not verify_signature(subscription, body, signature):
                    return JSONResponse({"error": "invalid signature"}, status_code=401)
                with conn.transaction():
                    landed = land_event(conn, workspace_id, body, retry_number)
        if landed is None:
            return JSONResponse({"error": "not a Square event"}, status_code=400)
        return JSONResponse({"status": "accepted" if landed else "duplicate"})

    @app.post("/square/{workspace_id}")
    async def square_notification(workspace_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        retry = request.headers.get("square-retry-number")
        retry_number = int(retry) if retry and retry.isdigit() else None
        return await run_in_threadpool(
            receive, workspace_id, body, request.headers.get(SIGNATURE_HEADER), retry_number
        )

    return app
