"""Square webhook notifications (``apis.md`` §2.4): verify, land raw, process later.

* :func:`verify_signature`: ``x-square-hmacsha256-signature`` is base64(HMAC-SHA256(signature key,
  notification URL + raw body)), compared in constant time. The URL is the one registered on the
  subscription, byte for byte, not whatever URL the request reached (proxies rewrite it).
* :func:`land_event`: the raw body goes to ``raw.square_webhook_events`` keyed by ``event_id``, for
  ever: a retry or replay (Square resends with ``square-retry-number``) lands nothing.
* :func:`process_pending_events`: later, in the extraction task: a payment event lands its payment
  in ``raw.square_payments`` unless a version at least as new is already there (events arrive out
  of order); everything else is marked and kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from cryptography.fernet import MultiFernet

from ledgerlink.credentials import token_cipher
from ledgerlink.sources import validation
from ledgerlink.warehouse.landing import Rejection, SourceRecord, land_records, raw_text, reject_records

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
PAYMENT_EVENTS = frozenset({"payment.created", "payment.updated"})


@dataclass(frozen=True)
class Subscription:
    workspace_id: str
    notification_url: str
    signature_key: str

    def __repr__(self) -> str:  # the key must never be printed
        return f"Subscription(workspace_id={self.workspace_id!r}, notification_url={self.notification_url!r})"


def expected_signature(signature_key: str, notification_url: str, body: bytes) -> str:
    mac = hmac.new(signature_key.encode("utf-8"), notification_url.encode("utf-8") + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def verify_signature(subscription: Subscription, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` signs ``body`` for this subscription; an empty body never does."""
    if not body or not signature:
        return False
    expected = expected_signature(subscription.signature_key, subscription.notification_url, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def save_subscription(
    conn: psycopg.Connection,
    workspace_id: str,
    notification_url: str,
    signature_key: str,
    cipher: MultiFernet | None = None,
) -> None:
    cipher = cipher or token_cipher()
    conn.execute(
        """
        insert into ops.square_webhook_subscriptions (workspace_id, notification_url, signature_key_encrypted)
        values (%s, %s, %s)
        on conflict (workspace_id) do update set notification_url = excluded.notification_url,
            signature_key_encrypted = excluded.signature_key_encrypted, updated_at = now()
        """,
        (workspace_id, notification_url, cipher.encrypt(signature_key.encode())),
    )


def load_subscription(
    conn: psycopg.Connection, workspace_id: str, cipher: MultiFernet | None = None
) -> Subscription | None:
    row = conn.execute(
        "select notification_url, signature_key_encrypted from ops.square_webhook_subscriptions"
        " where workspace_id = %s",
        (workspace_id,),
    ).fetchone()
    if row is None:
        return None
    cipher = cipher or token_cipher()
    return Subscription(workspace_id, row[0], cipher.decrypt(bytes(row[1])).decode())


def land_event(
    conn: psycopg.Connection, workspace_id: str, body: bytes, retry_number: int | None
) -> bool | None:
    """Land one verified delivery; return True if it is new, False for a replay, None when the
    body has no usable ``event_id`` (then it is quarantined instead)."""
    text = body.decode("utf-8", errors="replace")
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    event_id = event.get("event_id") if isinstance(event, dict) else None
    if not isinstance(event_id, str) or not event_id or validation.rejection_reason(event, lambda _: None):
        reject_records(
            conn,
            workspace_id,
            "square",
            "webhook",
            [Rejection("webhook_events", None, text, "webhook body is not an event with an event_id")],
        )
        return None
    assert isinstance(event, dict)
    inserted = conn.execute(
        """
        insert into raw.square_webhook_events
            (workspace_id, event_id, event_type, merchant_id, raw_body, payload, square_retry_number)
        values (%s, %s, %s, %s, %s, %s, %s)
        on conflict (event_id) do nothing
        """,
        (
            workspace_id,
            event_id,
            event.get("type"),
            event.get("merchant_id"),
            raw_text(text),
            json.dumps(event),
            retry_number,
        ),
    ).rowcount
    return inserted == 1


def process_pending_events(conn: psycopg.Connection, workspace_id: str, run_id: str) -> dict[str, int]:
    """Process the workspace's unprocessed events in the caller's transaction, oldest first; rows
    are locked (skip locked), so two tasks never process one event."""
    rows = conn.execute(
        "select event_id, event_type, payload from raw.square_webhook_events"
        " where workspace_id = %s and processed_at is null order by received_at, event_id"
        " for update skip locked",
        (workspace_id,),
    ).fetchall()
    outcomes: dict[str, int] = {}
    for event_id, event_type, payload in rows:
        outcome = _process(conn, workspace_id, run_id, event_type, payload)
        conn.execute(
            "update raw.square_webhook_events set processed_at = now(), outcome = %s where event_id = %s",
            (outcome, event_id),
        )
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _process(
    conn: psycopg.Connection, workspace_id: str, run_id: str, event_type: str | None, payload: dict[str, Any]
) -> str:
    if event_type not in PAYMENT_EVENTS:
        return "ignored"
    payment = ((payload.get("data") or {}).get("object") or {}).get("payment")
    reason = validation.rejection_reason(payment, validation.square_payment)
    if reason is not None:
        reject_records(conn, workspace_id, "square", run_id, [Rejection("payments", None, payment, reason)])
        return "rejected"
    assert isinstance(payment, dict)
    newest = conn.execute(
        "select max(source_updated_at) from raw.square_payments where workspace_id = %s and source_record_id = %s",
        (workspace_id, str(payment["id"])),
    ).fetchone()
    updated_at = validation.parse_timestamp(payment["updated_at"])
    if newest is not None and newest[0] is not None and newest[0] >= updated_at:
        return "stale"
    land_records(
        conn, "square_payments", workspace_id, run_id, [SourceRecord(str(payment["id"]), payment, updated_at)]
    )
    return "landed"
