"""Square webhook signatures follow Square's published algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from ledgerlink.sandbox.webhooks import SIGNATURE_HEADER, payment_event, signed_delivery


def test_signature_is_hmac_sha256_over_url_and_raw_body() -> None:
    payment = {"id": "P1", "updated_at": "2026-03-01T10:00:00.000Z", "status": "COMPLETED"}
    event = payment_event(payment, "payment.updated", "ML123")
    body, headers = signed_delivery(event, "key-1", "https://example.invalid/hooks/square", retry_number=2)
    expected = base64.b64encode(
        hmac.new(b"key-1", b"https://example.invalid/hooks/square" + body, hashlib.sha256).digest()
    ).decode()
    assert headers[SIGNATURE_HEADER] == expected
    assert headers["square-retry-number"] == "2"
    assert json.loads(body)["data"]["object"]["payment"] == payment
    assert payment_event(payment, "payment.updated", "ML123")["event_id"] == event["event_id"]
