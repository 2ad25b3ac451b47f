"""Wire compatibility: sampled Square sandbox responses (one or more per response type, errors
included) validate against Square's published OpenAPI document, strictly: an object may carry
only the properties the spec names."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from ledgerlink.sandbox import load_fixtures
from ledgerlink.sandbox.faults import Fault
from ledgerlink.sandbox.square import square_oauth_client
from ledgerlink.sandbox.webhooks import payment_event

SPEC = Path("/work/shared/reference/square-openapi/api.json")
pytestmark = pytest.mark.skipif(
    not SPEC.exists(), reason="Square's OpenAPI document is not in shared/reference"
)


def _strict(node: Any) -> Any:
    """Forbid properties the spec does not name, wherever it names some. A ``required`` name that
    the same schema does not define (``RiskEvaluation`` requires an undefined ``status``) is a
    slip in the spec, not something Square sends: such names are dropped."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
            if "required" in node:
                node["required"] = [name for name in node["required"] if name in node["properties"]]
        return node
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


@cache
def _registry() -> Registry:
    document = _strict(copy.deepcopy(json.loads(SPEC.read_text())))
    return Registry().with_resource("urn:square", Resource(contents=document, specification=DRAFT4))


def assert_matches(schema_name: str, body: Any) -> None:
    validator = Draft4Validator(
        {"$ref": f"urn:square#/components/schemas/{schema_name}"}, registry=_registry()
    )
    problems = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    assert not problems, "\n".join(f"{list(p.absolute_path)}: {p.message[:200]}" for p in problems[:10])


@pytest.fixture
def http(source_sandbox):  # noqa: ANN001
    headers = {
        "Authorization": f"Bearer {source_sandbox.square_access_token}",
        "Square-Version": "2025-08-20",
    }
    with httpx.Client(base_url=source_sandbox.square_base_url, headers=headers, timeout=10) as client:
        yield client


def test_payments_responses_match_the_spec(http) -> None:  # noqa: ANN001
    listed = http.get(
        "/v2/payments", params={"limit": 100, "sort_order": "ASC", "begin_time": "2000-01-01T00:00:00Z"}
    )
    assert listed.status_code == 200 and listed.json()["payments"]
    assert_matches("ListPaymentsResponse", listed.json())
    payment_id = listed.json()["payments"][0]["id"]
    assert_matches("GetPaymentResponse", http.get(f"/v2/payments/{payment_id}").json())


def test_refunds_responses_match_the_spec(http) -> None:  # noqa: ANN001
    listed = http.get("/v2/refunds", params={"sort_order": "ASC", "begin_time": "2000-01-01T00:00:00Z"})
    assert listed.status_code == 200 and listed.json()["refunds"]
    assert_matches("ListPaymentRefundsResponse", listed.json())
    refund = listed.json()["refunds"][0]
    assert_matches("GetPaymentRefundResponse", http.get(f"/v2/refunds/{refund['id']}").json())
    refunded = http.get(f"/v2/payments/{refund['payment_id']}").json()
    assert refund["id"] in refunded["payment"]["refund_ids"]
    assert_matches("GetPaymentResponse", refunded)


def test_customers_responses_match_the_spec(http) -> None:  # noqa: ANN001
    listed = http.get("/v2/customers", params={"limit": 50, "count": "true"}).json()
    assert listed["customers"]
    assert_matches("ListCustomersResponse", listed)
    searched = http.post(
        "/v2/customers/search", json={"limit": 10, "query": {"sort": {"field": "CREATED_AT"}}}
    )
    assert_matches("SearchCustomersResponse", searched.json())
    assert_matches(
        "RetrieveCustomerResponse", http.get(f"/v2/customers/{listed['customers'][0]['id']}").json()
    )


def test_locations_responses_match_the_spec(http) -> None:  # noqa: ANN001
    listed = http.get("/v2/locations").json()
    assert_matches("ListLocationsResponse", listed)
    assert_matches(
        "RetrieveLocationResponse", http.get(f"/v2/locations/{listed['locations'][0]['id']}").json()
    )


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429),
        Fault(status=500),
        Fault(status=503),
        Fault(auth="expired"),
        Fault(auth="revoked"),
        None,
    ],
)
def test_error_responses_match_the_spec(http, faults, fault) -> None:  # noqa: ANN001
    if fault is not None:
        faults.add("square", "/v2/payments", fault)
        response = http.get("/v2/payments")
    else:
        response = http.get("/v2/payments", params={"sort_order": "SIDEWAYS"})
    assert response.status_code >= 400
    assert_matches("ListPaymentsResponse", response.json())
    for error in response.json()["errors"]:
        assert_matches("Error", error)


def test_oauth_token_response_matches_the_spec(source_sandbox) -> None:  # noqa: ANN001
    client_id, client_secret = square_oauth_client(load_fixtures(source_sandbox.fixtures_dir))
    redirect_uri = "http://127.0.0.1:9/callback"
    authorize = httpx.get(
        f"{source_sandbox.square_base_url}/oauth2/authorize",
        params={"client_id": client_id, "redirect_uri": redirect_uri, "state": "s", "scope": "PAYMENTS_READ"},
    )
    code = httpx.URL(authorize.headers["location"]).params["code"]
    token = httpx.post(
        f"{source_sandbox.square_base_url}/oauth2/token",
        json={
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
        },  # fmt: skip
    )
    assert token.status_code == 200
    assert_matches("ObtainTokenResponse", token.json())
    expires_at = datetime.fromisoformat(token.json()["expires_at"].replace("Z", "+00:00"))
    assert 29 <= (expires_at - datetime.now(UTC)).days <= 30, "code-flow tokens last 30 days"


def test_webhook_events_match_the_spec(http) -> None:  # noqa: ANN001
    payment = http.get("/v2/payments", params={"begin_time": "2000-01-01T00:00:00Z"}).json()["payments"][0]
    assert_matches(
        "PaymentCreatedEvent", payment_event({**payment, "status": "APPROVED"}, "payment.created", "M")
    )
    assert_matches("PaymentUpdatedEvent", payment_event(payment, "payment.updated", "M"))
