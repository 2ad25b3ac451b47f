"""Square's official Python SDK (``squareup``), unmodified, pointed at the sandbox's base URL over
real loopback HTTP: what it lists, pages and parses equals the sandbox's data.

Qonto and QuickBooks publish no official Python SDK (``python-quickbooks`` is community-made), so
this is the one SDK check; their wire shapes are checked against ``apis.md`` by the sandbox tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledgerlink.sandbox import SandboxEndpoints, load_fixtures

square_sdk = pytest.importorskip("square", reason="squareup is a dev dependency")


@pytest.fixture
def client(source_sandbox: SandboxEndpoints) -> Any:
    return square_sdk.Square(
        base_url=source_sandbox.square_base_url, token=source_sandbox.square_access_token, timeout=10
    )


@pytest.fixture
def fixtures(source_sandbox: SandboxEndpoints) -> Any:
    return load_fixtures(source_sandbox.fixtures_dir)


def _dump(model: Any) -> dict[str, Any]:
    """What the SDK parsed, as JSON again (fields it was not sent stay out)."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def test_list_payments_pages_by_cursor_to_every_payment(client: Any, fixtures: Any) -> None:
    pager = client.payments.list(begin_time="2026-01-01T00:00:00Z", sort_order="ASC", limit=40)
    pages = list(pager.iter_pages())
    assert len(pages) > 2, "the SDK followed the sandbox's cursor across pages"
    assert all(len(page.items or []) <= 40 for page in pages)
    listed = [payment for page in pages for payment in page.items or []]
    assert [p.id for p in listed] == [p["id"] for p in fixtures.square_payments]
    by_id = {p["id"]: p for p in fixtures.square_payments}
    for payment in listed:
        assert _dump(payment) == by_id[payment.id]  # every field parsed, none lost or altered


def test_get_payment_parses_a_refunded_payment(client: Any, fixtures: Any) -> None:
    refunded = next(p for p in fixtures.square_payments if p.get("refund_ids"))
    response = client.payments.get(payment_id=refunded["id"])
    assert not response.errors
    assert _dump(response.payment) == refunded
    assert response.payment.refunded_money.amount == refunded["refunded_money"]["amount"]


def test_a_missing_payment_raises_the_sdks_not_found_error(client: Any) -> None:
    with pytest.raises(square_sdk.core.api_error.ApiError) as raised:
        client.payments.get(payment_id="no-such-payment")
    assert raised.value.status_code == 404
    assert raised.value.body["errors"][0]["code"] == "NOT_FOUND"


def test_list_customers_pages_through_every_profile(client: Any, fixtures: Any) -> None:
    listed = list(client.customers.list(limit=25, sort_field="CREATED_AT", sort_order="ASC"))
    assert {c.id for c in listed} == {c["id"] for c in fixtures.square_customers}
    created = [c.created_at for c in listed]
    assert created == sorted(created)
    by_id = {c["id"]: c for c in fixtures.square_customers}
    assert all(_dump(c) == by_id[c.id] for c in listed)


def test_search_customers_by_updated_at(client: Any, fixtures: Any) -> None:
    since = "2026-03-01T00:00:00Z"
    response = client.customers.search(
        query={
            "filter": {"updated_at": {"start_at": since}},
            "sort": {"field": "CREATED_AT", "order": "ASC"},
        },
        limit=100,
    )
    found = list(response.customers or [])
    while response.cursor:
        response = client.customers.search(
            query={
                "filter": {"updated_at": {"start_at": since}},
                "sort": {"field": "CREATED_AT", "order": "ASC"},
            },
            limit=100,
            cursor=response.cursor,
        )
        found += response.customers or []
    expected = {c["id"] for c in fixtures.square_customers if c["updated_at"] >= since}
    assert expected and {c.id for c in found} == expected


def test_list_refunds_pages_to_every_refund(client: Any, fixtures: Any) -> None:
    listed = list(client.refunds.list(begin_time="2026-01-01T00:00:00Z", sort_order="ASC", limit=2))
    assert fixtures.square_refunds and len(fixtures.square_refunds) > 2
    assert [r.id for r in listed] == [r["id"] for r in fixtures.square_refunds]
    by_id = {r["id"]: r for r in fixtures.square_refunds}
    assert all(_dump(r) == by_id[r.id] for r in listed)
    payments = {p["id"]: p for p in fixtures.square_payments}
    assert all(r.id in payments[r.payment_id]["refund_ids"] for r in listed)


def test_list_locations(client: Any, fixtures: Any) -> None:
    response = client.locations.list()
    assert [_dump(location) for location in response.locations] == fixtures.square_locations


def test_a_revoked_token_is_the_sdks_unauthorized_error(source_sandbox: SandboxEndpoints) -> None:
    stranger = square_sdk.Square(
        base_url=source_sandbox.square_base_url, token="EAAA-not-a-token", timeout=10
    )
    with pytest.raises(square_sdk.core.api_error.ApiError) as raised:
        stranger.locations.list()
    assert raised.value.status_code == 401
