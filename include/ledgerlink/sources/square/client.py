"""Square payments, refunds and customers, paged by opaque cursor (limit silently capped at 100)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from ledgerlink.sources.http import ApiClient, MalformedResponse

SQUARE_VERSION = "2025-08-20"
MAX_LIMIT = 100


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class SquareClient(ApiClient):
    def __init__(self, base_url: str, access_token: str, **kwargs: Any) -> None:
        headers = {"Authorization": f"Bearer {access_token}", "Square-Version": SQUARE_VERSION}
        super().__init__(base_url, headers, **kwargs)

    def payment_pages(
        self, updated_from: datetime | None, updated_to: datetime, location_id: str | None
    ) -> Iterator[list[Any]]:
        """Payments updated in [updated_from, updated_to), oldest change first. ``location_id``
        matters: without it Square returns only the main location's payments."""
        params: dict[str, Any] = {
            "sort_field": "UPDATED_AT",
            "sort_order": "ASC",
            "limit": MAX_LIMIT,
            "updated_at_end_time": _rfc3339(updated_to),
            # Square's default window is the last year; ask for everything before the marker.
            "begin_time": "2000-01-01T00:00:00Z",
        }
        if updated_from is not None:
            params["updated_at_begin_time"] = _rfc3339(updated_from)
        if location_id:
            params["location_id"] = location_id
        yield from self._cursor_pages("GET", "/v2/payments", "payments", params=params)

    def refund_pages(
        self, updated_from: datetime | None, updated_to: datetime, location_id: str | None
    ) -> Iterator[list[Any]]:
        """Refunds (``GET /v2/refunds``, ListPaymentRefunds) updated in [updated_from, updated_to),
        oldest change first. Unlike payments, refunds default to every location: ``location_id``
        keeps the listing to the payments this workspace reads."""
        params: dict[str, Any] = {
            "sort_field": "UPDATED_AT",
            "sort_order": "ASC",
            "limit": MAX_LIMIT,
            "updated_at_end_time": _rfc3339(updated_to),
            "begin_time": "2000-01-01T00:00:00Z",  # the default window is the last year
        }
        if updated_from is not None:
            params["updated_at_begin_time"] = _rfc3339(updated_from)
        if location_id:
            params["location_id"] = location_id
        yield from self._cursor_pages("GET", "/v2/refunds", "refunds", params=params)

    def customer_pages(self, updated_from: datetime | None, updated_to: datetime) -> Iterator[list[Any]]:
        """Customers updated in the window.

        The first sync (no ``updated_from``) lists every profile with ``GET /v2/customers``:
        the listing is the endpoint made for reading a whole directory, and search results can
        lag new or changed profiles by up to a minute (Square's own caveat), which matters least
        for the small windows of later polls. Those use ``POST /v2/customers/search`` by
        ``updated_at``, the only way to ask for just what changed. A listed profile changed after
        ``updated_to`` lands now and again, unchanged, on the next poll (same payload, no new row).
        """
        if updated_from is None:
            params = {"limit": MAX_LIMIT, "sort_field": "CREATED_AT", "sort_order": "ASC"}
            yield from self._cursor_pages("GET", "/v2/customers", "customers", params=params)
            return
        updated_at = {"start_at": _rfc3339(updated_from), "end_at": _rfc3339(updated_to)}
        query = {"query": {"filter": {"updated_at": updated_at}}, "limit": MAX_LIMIT}
        yield from self._cursor_pages("POST", "/v2/customers/search", "customers", json=query)

    def _cursor_pages(
        self, method: str, path: str, key: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Iterator[list[Any]]:
        cursor: str | None = None
        while True:
            if method == "GET":
                page_params = {**(params or {}), **({"cursor": cursor} if cursor else {})}
                body = self.request_json(method, path, params=page_params)
            else:
                body = self.request_json(
                    method, path, json={**json, **({"cursor": cursor} if cursor else {})}
                )
            records = body.get(key) or []
            if not isinstance(records, list):
                raise MalformedResponse(f"{key} is not a list", httpx.Response(200, json=body).text)
            yield records
            cursor = body.get("cursor") or None
            if cursor is None:
                return
