"""Square webhook notifications as the sandbox would send them (``apis.md`` §2.4): the event
envelope and its ``x-square-hmacsha256-signature``, for tests of ledgerlink's webhook receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

SIGNATURE_HEADER = "x-square-hmacsha256-signature"


def square_signature(signature_key: str, notification_url: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, notification_url + raw body)), as Square's SDK helper computes it."""
    payload = notification_url.encode("utf-8") + body
    return base64.b64encode(
        hmac.new(signature_key.encode("utf-8"), payload, hashlib.sha256).digest()
    ).decode()


def payment_event(
    payment: dict[str, Any], event_type: str, merchant_id: str, *, event_id: str | None = None
) -> dict[str, Any]:
    """A ``payment.created`` / ``payment.updated`` envelope carrying the full payment."""
    return {
        "merchant_id": merchant_id,
        "type": event_type,
        "event_id": event_id
        or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{payment['id']}:{event_type}:{payment['updated_at']}")),
        "created_at": payment["updated_at"],
        "data": {"type": "payment", "id": payment["id"], "object": {"payment": payment}},
    }


def signed_delivery(
    event: dict[str, Any], signature_key: str, notification_url: str, *, retry_number: int = 0
) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers of one delivery attempt; a retry reuses the same event id."""
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: square_signature(signature_key, notification_url, body),
        "square-environment": "Sandbox",
        "square-initial-delivery-timestamp": str(event["created_at"]),
    }
    if retry_number:
        headers["square-retry-number"] = str(retry_number)
        headers["square-retry-reason"] = "http_error"
    return body, headers
