"""The Square sandbox over real HTTP: cursor paging with the silent limit cap, time filters,
customers' strict limit, search, and Square's error shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ledgerlink.sandbox import SandboxEndpoints

EVERYTHING = {"begin_time": "2000-01-01T00:00:00Z"}


def _pages(square: httpx.Client, path: str, key: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        response = square.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body.get(key, []))
        cursor = body.get("cursor")
        if not cursor:
            return pages


def test_payments_cursor_paging_caps_limit_at_100(
    square: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    expected = [p["id"] for p in read_fixture("square/payments.json")["payments"]]
    pages = _pages(square, "/v2/payments", "payments", limit=500, sort_order="ASC", **EVERYTHING)
    assert [len(page) for page in pages] == [100] * (len(expected) // 100) + [len(expected) % 100]
    ids = [p["id"] for page in pages for p in page]
    assert len(ids) == len(set(ids)) and set(ids) == set(expected)
    created = [p["created_at"] for page in pages for p in page]
    assert created == sorted(created)


def test_payments_default_to_newest_first_and_honour_time_windows(
    square: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    payments = read_fixture("square/payments.json")["payments"]
    newest = square.get("/v2/payments", params={"limit": 3, **EVERYTHING}).json()["payments"]
    assert [p["created_at"] for p in newest] == sorted((p["created_at"] for p in payments), reverse=True)[:3]
    stamps = sorted(p["updated_at"] for p in payments)
    low, high = stamps[20], stamps[60]
    window = {
        "updated_at_begin_time": low,
        "updated_at_end_time": high,
        "sort_field": "UPDATED_AT",
        **EVERYTHING,
    }
    ids = {p["id"] for page in _pages(square, "/v2/payments", "payments", **window) for p in page}
    assert ids == {
        p["id"] for p in payments if low <= p["updated_at"] < high
    }  # begin inclusive, end exclusive
    created = sorted(p["created_at"] for p in payments)
    by_created = {"begin_time": created[5], "end_time": created[9]}
    ids = {p["id"] for page in _pages(square, "/v2/payments", "payments", **by_created) for p in page}
    assert ids == {p["id"] for p in payments if created[5] <= p["created_at"] < created[9]}


def test_payments_of_another_location_or_no_match_give_an_empty_object(square: httpx.Client) -> None:
    locations = square.get("/v2/locations").json()["locations"]
    other = next(location["id"] for location in locations if location["type"] == "MOBILE")
    assert square.get("/v2/payments", params={"location_id": other, **EVERYTHING}).json() == {}


def test_single_payment_and_not_found(square: httpx.Client, read_fixture: Callable[[str], Any]) -> None:
    payment = read_fixture("square/payments.json")["payments"][0]
    assert square.get(f"/v2/payments/{payment['id']}").json() == {"payment": payment}
    missing = square.get("/v2/payments/nope")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NOT_FOUND"


def test_a_cursor_from_another_query_is_refused(square: httpx.Client) -> None:
    cursor = square.get("/v2/payments", params={"limit": 5, **EVERYTHING}).json()["cursor"]
    reused = square.get(
        "/v2/payments", params={"limit": 5, "sort_order": "ASC", "cursor": cursor, **EVERYTHING}
    )
    assert reused.status_code == 400 and reused.json()["errors"][0]["code"] == "INVALID_CURSOR"


def test_customers_limit_out_of_range_is_400(square: httpx.Client) -> None:
    for limit, code in ((0, "VALUE_TOO_LOW"), (101, "VALUE_TOO_HIGH")):
        response = square.get("/v2/customers", params={"limit": limit})
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert (error["category"], error["code"], error["field"]) == ("INVALID_REQUEST_ERROR", code, "limit")


def test_customers_list_and_search(square: httpx.Client, read_fixture: Callable[[str], Any]) -> None:
    customers = read_fixture("square/customers.json")["customers"]
    pages = _pages(square, "/v2/customers", "customers", limit=25)
    assert sorted(c["id"] for page in pages for c in page) == sorted(c["id"] for c in customers)
    target = next(c for c in customers if c.get("email_address"))
    query = {"query": {"filter": {"email_address": {"exact": target["email_address"].upper()}}}}
    found = square.post("/v2/customers/search", json=query).json()["customers"]
    assert target in found
    updated = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"}
    everything = square.post(
        "/v2/customers/search", json={"query": {"filter": {"updated_at": updated}}, "count": True}
    )
    assert everything.json()["count"] == len(customers)
    assert square.get(f"/v2/customers/{target['id']}").json() == {"customer": target}


def _search_pages(square: httpx.Client, query: dict[str, Any]) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        body = square.post(
            "/v2/customers/search",
            json={"query": query, "limit": 7, **({"cursor": cursor} if cursor else {})},
        ).json()
        found += body.get("customers", [])
        cursor = body.get("cursor")
        if not cursor:
            return found


def test_customer_listings_keep_their_order_across_pages_and_filters(
    square: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    """Each sort field and direction lists the directory in Square's documented order, page
    after page, and a search lists the customers it keeps in that same order."""
    customers = read_fixture("square/customers.json")["customers"]

    def by_name(customer: dict[str, Any]) -> tuple[str, ...]:
        names = ("given_name", "family_name", "company_name", "email_address")
        return (*(str(customer.get(name) or "").casefold() for name in names), customer["id"])

    orders = {
        "DEFAULT": [c["id"] for c in sorted(customers, key=by_name)],
        "CREATED_AT": [c["id"] for c in sorted(customers, key=lambda c: (c["created_at"], c["id"]))],
    }
    for sort_field, ascending in orders.items():
        for sort_order, expected in (("ASC", ascending), ("DESC", ascending[::-1])):
            pages = _pages(
                square, "/v2/customers", "customers", limit=9, sort_field=sort_field, sort_order=sort_order
            )
            assert [c["id"] for page in pages for c in page] == expected
    cutoff = sorted(c["updated_at"] for c in customers)[len(customers) // 2]
    for sort_field, ascending in orders.items():
        kept = {c["id"] for c in customers if c["updated_at"] >= cutoff}
        query = {
            "filter": {"updated_at": {"start_at": cutoff}},
            "sort": {"field": sort_field, "order": "DESC"},
        }
        assert 0 < len(kept) < len(customers)
        assert [c["id"] for c in _search_pages(square, query)] == [i for i in ascending[::-1] if i in kept]


def test_bad_token_is_401_in_square_shape(sandbox: SandboxEndpoints) -> None:
    for path in ("/v2/payments", "/v2/customers", "/v2/locations"):
        response = httpx.get(f"{sandbox.square_base_url}{path}", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
        assert response.json() == {
            "errors": [
                {
                    "category": "AUTHENTICATION_ERROR",
                    "code": "UNAUTHORIZED",
                    "detail": "This request could not be authorized.",
                }
            ]
        }
