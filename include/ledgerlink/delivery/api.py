"""The delivery HTTP API the status page calls: retry one rejected delivery after a fix.

:func:`create_delivery_router` returns a FastAPI router; whoever mounts it supplies the
authentication dependency (the Airflow plugin passes Airflow's), so no route is ever anonymous."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from ledgerlink.delivery.retry import DeliveryNotFound, retry_delivery


class RetryBody(BaseModel):
    actor: str
    source_record: str | None = None


def create_delivery_router(connect: Callable[[], Any], auth: Sequence[Any]) -> APIRouter:
    """Routes under ``/workspaces/{workspace_id}/deliveries``; ``connect`` opens a warehouse
    connection, ``auth`` lists the dependencies every route requires."""
    router = APIRouter(dependencies=[Depends(dependency) for dependency in auth])

    @router.post("/workspaces/{workspace_id}/deliveries/{outbox_id}/retry")
    def retry(workspace_id: str, outbox_id: int, body: RetryBody) -> dict[str, Any]:
        with connect() as conn:
            try:
                request = retry_delivery(conn, workspace_id, actor=body.actor, outbox_id=outbox_id)
            except DeliveryNotFound as error:
                raise HTTPException(status_code=404, detail=str(error)) from error
        return asdict(request)

    return router
