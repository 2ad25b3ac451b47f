"""QuickBooks Online reads through the query endpoint, paged with STARTPOSITION/MAXRESULTS.

ledgerlink never writes to QuickBooks through the API (writes reach it only as email): this
client sends GET and nothing else, and refuses any other method before it reaches the network.

QuickBooks specifics (``apis.md`` §3.3): a ``Fault`` body can come with status 200; a 429 means
wait 60 s; more than 10 concurrent requests to one company are refused, so requests per realm
share a semaphore of 10 within the process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from ledgerlink.sources.http import (
    ApiClient,
    AuthenticationFailed,
    MalformedResponse,
    RetryPolicy,
    UnreadableResponse,
)

MAX_RESULTS = 1000
MINOR_VERSION = "75"
MAX_CONCURRENT_PER_COMPANY = 10
THROTTLED_WAIT_SECONDS = 60.0

#: Name-list entities QuickBooks hides when inactive unless the query names ``Active``.
NAME_LISTS = frozenset({"Vendor", "Customer", "Account"})

_company_slots: dict[str, threading.BoundedSemaphore] = {}
_company_slots_lock = threading.Lock()


def company_slots(realm_id: str) -> threading.BoundedSemaphore:
    """The process-wide limit of concurrent requests to one QuickBooks company."""
    with _company_slots_lock:
        return _company_slots.setdefault(realm_id, threading.BoundedSemaphore(MAX_CONCURRENT_PER_COMPANY))


class QuickBooksFault(UnreadableResponse):
    """A ``Fault`` body, which QuickBooks may send even with status 200."""


class QuickBooksClient(ApiClient):
    def __init__(
        self,
        base_url: str,
        access_token: str,
        realm_id: str,
        *,
        throttled_wait_seconds: float = THROTTLED_WAIT_SECONDS,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        policy = retry_policy or RetryPolicy(
            throttled_delay_seconds=throttled_wait_seconds,
            max_delay_seconds=max(30.0, throttled_wait_seconds),
            max_total_seconds=max(120.0, 3 * throttled_wait_seconds),
        )
        super().__init__(
            base_url, headers, retry_policy=policy, concurrency=company_slots(realm_id), **kwargs
        )
        self._realm_id = realm_id

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._refuse_writes(method)
        return super().request(method, url, **kwargs)

    def request_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        self._refuse_writes(method)
        return super().request_json(method, url, **kwargs)

    @staticmethod
    def _refuse_writes(method: str) -> None:
        if method.upper() != "GET":
            raise PermissionError(f"ledgerlink never writes to QuickBooks through the API (refused {method})")

    def entity_pages(
        self, entity: str, updated_from: datetime | None, page_size: int = MAX_RESULTS
    ) -> Iterator[list[Any]]:
        """Every ``entity`` (Vendor, Customer, Invoice, Account, TaxCode, ExchangeRate, Bill,
        Purchase) changed since ``updated_from``; inactive name-list records included."""
        conditions = []
        if entity in NAME_LISTS:
            conditions.append("Active in (true, false)")
        # ExchangeRate is filtered by date and currency only; its rates are read whole.
        if updated_from is not None and entity != "ExchangeRate":
            conditions.append(f"Metadata.LastUpdatedTime >= '{updated_from.isoformat()}'")
        where = f" where {' and '.join(conditions)}" if conditions else ""
        start = 1
        while True:
            # QuickBooks query language, not SQL: the entity comes from code, the bound from a datetime.
            query = f"select * from {entity}{where} startposition {start} maxresults {page_size}"  # noqa: S608
            body = self.request_json(
                "GET",
                f"/v3/company/{self._realm_id}/query",
                params={"query": query, "minorversion": MINOR_VERSION},
            )
            fault = body.get("Fault")
            if fault is not None:
                if isinstance(fault, dict) and fault.get("type") == "AuthenticationFault":
                    raise AuthenticationFailed(f"QuickBooks refused the token: {fault}")
                raise QuickBooksFault(f"QuickBooks refused {query!r}: {fault}", json.dumps(body))
            rows = (body.get("QueryResponse") or {}).get(entity) or []
            if not isinstance(rows, list):
                raise MalformedResponse(
                    f"QueryResponse.{entity} is not a list", httpx.Response(200, json=body).text
                )
            yield rows
            if len(rows) < page_size:
                return
            start += len(rows)
