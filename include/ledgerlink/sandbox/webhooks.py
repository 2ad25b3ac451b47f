"""Square webhook notifications as the sandbox sends them (``apis.md`` §2.4): the event envelope,
its ``x-square-hmacsha256-signature``, and :func:`deliver`, which posts with Square's retry
schedule (on a configurable time scale), ``square-retry-number`` and replays of one event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

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


#: Square's resend schedule: the delay before each retry, after the previous attempt (``apis.md``
#: §2.4): 1, 2, 4, 8, 16, 32 minutes, then hourly, for up to 72 hours after the event.
RETRY_DELAYS_SECONDS = (60, 120, 240, 480, 960, 1920)
HOURLY_SECONDS = 3600
GIVE_UP_AFTER_SECONDS = 72 * 3600
ACK_TIMEOUT_SECONDS = 10.0


def retry_delay(retry_number: int) -> int:
    """Seconds between attempt ``retry_number - 1`` and retry ``retry_number`` (1-based)."""
    if retry_number <= len(RETRY_DELAYS_SECONDS):
        return RETRY_DELAYS_SECONDS[retry_number - 1]
    return HOURLY_SECONDS


@dataclass(frozen=True)
class DeliveryAttempt:
    retry_number: int
    status: int | None  # None: no answer (refused, timed out)


def deliver(
    event: dict[str, Any],
    signature_key: str,
    notification_url: str,
    *,
    post_to: str | None = None,
    time_scale: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    replays: int = 0,
) -> list[DeliveryAttempt]:
    """Deliver ``event`` as Square does: a 2xx within 10 s acknowledges it; anything else
    (3xx included, or no answer) is retried on Square's schedule, scaled by ``time_scale``, with
    ``square-retry-number``, until 72 hours (scaled) have passed. ``replays`` more deliveries of
    the same ``event_id`` follow an acknowledged one, as Square's at-least-once delivery allows.
    ``post_to`` is where the request goes when it differs from the signed notification URL."""
    attempts: list[DeliveryAttempt] = []
    waited = 0.0
    retry_number = 0
    acknowledged = 0
    with httpx.Client(timeout=ACK_TIMEOUT_SECONDS, follow_redirects=False) as http:
        while True:
            body, headers = signed_delivery(event, signature_key, notification_url, retry_number=retry_number)
            try:
                status: int | None = http.post(
                    post_to or notification_url, content=body, headers=headers
                ).status_code
            except httpx.HTTPError:
                status = None
            attempts.append(DeliveryAttempt(retry_number, status))
            if status is not None and 200 <= status < 300:
                acknowledged += 1
                if acknowledged > replays:
                    return attempts
                retry_number = 0
                continue
            retry_number += 1
            delay = retry_delay(retry_number)
            if waited + delay > GIVE_UP_AFTER_SECONDS:
                return attempts
            waited += delay
            sleep(delay * time_scale)
