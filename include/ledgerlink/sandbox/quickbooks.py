"""The QuickBooks Online Accounting API, read side only (``apis.md`` §3.3).

* ``GET /v3/company/{realmId}/query?query=...&minorversion=..``: the query language of
  :mod:`ledgerlink.sandbox.qbo_query`; ``{"QueryResponse": {"<Entity>": [...], "startPosition",
  "maxResults"}, "time"}``, ``{"QueryResponse": {}, ...}`` for an empty page and ``{"QueryResponse":
  {"totalCount": n}}`` for ``count(*)``. QuickBooks hides inactive name-list records unless the
  query names ``Active``; the sandbox does so only with
  :attr:`SandboxOptions.quickbooks_hide_inactive`, so ``select *`` reads every fixture record.
* ``GET /v3/company/{realmId}/{entity}/{id}`` for vendor, customer, invoice, account, and
  ``companyinfo/{realmId}``.
* Every write (``POST``/``PUT``/``PATCH``/``DELETE``) answers 405: ledgerlink never writes to
  QuickBooks through the API.

At most :attr:`SandboxOptions.quickbooks_max_concurrent` requests (10) are served at once per
company; one more gets 429, as QuickBooks answers. Faults are injectable (``ledgerlink.sandbox.faults``).

Errors are ``Fault`` bodies: 401 ``AuthenticationFault`` (code 3200) for a wrong realm or token,
400 ``ValidationFault`` for a bad query (4000/4001) or an unknown id (610).
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink.sandbox.common import ListingResponse, SandboxOptions, bearer_token
from ledgerlink.sandbox.faults import FaultMiddleware
from ledgerlink.sandbox.fixtures import Fixtures, Selection
from ledgerlink.sandbox.qbo_query import (
    Query,
    QueryError,
    QueryIndex,
    page_of,
    parse_query,
    select_records,
    selection_key,
    unknown_fields,
)

#: Entities QuickBooks knows that the fixtures hold none of: queries on them return nothing.
_OTHER_ENTITIES = (
    "Attachable", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Department", "Deposit",
    "Employee", "Estimate", "Item", "JournalEntry", "Payment", "PaymentMethod", "Purchase",
    "PurchaseOrder", "RefundReceipt", "SalesReceipt", "TaxCode", "TaxRate", "Term", "TimeActivity",
    "Transfer", "VendorCredit",
)  # fmt: skip

#: Query selections kept for paging (the fixtures never change while a sandbox serves them).
SELECTIONS_KEPT = 16


def _response_time(clock: datetime) -> str:
    # Intuit stamps responses in Pacific time; the offset is what clients see.
    pacific = timezone(timedelta(hours=-7 if 3 <= clock.month <= 10 else -8))
    return clock.astimezone(pacific).isoformat(timespec="milliseconds")


class QuickBooksFault(Exception):
    def __init__(self, status: int, fault_type: str, message: str, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.fault_type, self.message, self.detail, self.code = (
            status,
            fault_type,
            message,
            detail,
            code,
        )


def create_quickbooks_app(fixtures: Fixtures, options: SandboxOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``fixtures``' QuickBooks ledger, read-only."""
    options = options or SandboxOptions()
    app = FastAPI(title="QuickBooks Online sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(ConcurrencyLimit, limit=options.quickbooks_max_concurrent)
    app.add_middleware(
        FaultMiddleware, service="quickbooks", injector=options.faults, error_body=_fault_error
    )
    token = fixtures.access_token("quickbooks")
    realm_id = fixtures.quickbooks_realm_id
    # The records stay where the fixtures keep them (on disk for generated ones).
    entities: dict[str, Sequence[dict[str, Any]]] = {
        **{name: [] for name in (*_OTHER_ENTITIES, "ExchangeRate")},
        **fixtures.quickbooks,
        "CompanyInfo": [_company_info(fixtures)],
    }
    canonical = {name.lower(): name for name in entities}
    # The ids, last-updated times and Active flags, read once: the client's queries (a
    # last-updated bound, STARTPOSITION/MAXRESULTS paging) then read only the records of their page.
    indexes = {name: QueryIndex(records) for name, records in entities.items()}
    # A client pages through a long listing with one query and a moving STARTPOSITION (a
    # 100,000-invoice first sync asks 100 pages): each page is a slice of the query's selection,
    # filtered and ordered once, as QuickBooks' own index would answer it, not a scan of the entity.
    selections: OrderedDict[Hashable, Selection] = OrderedDict()
    selections_lock = threading.Lock()

    def selection(parsed: Query, entity: str) -> Selection:
        key = selection_key(parsed, entity)
        with selections_lock:
            if key in selections:
                selections.move_to_end(key)
                return selections[key]
        selected = select_records(
            parsed,
            entity,
            entities[entity],
            hide_inactive=options.quickbooks_hide_inactive,
            index=indexes[entity],
        )
        with selections_lock:
            selections[key] = selected
            while len(selections) > SELECTIONS_KEPT:
                selections.popitem(last=False)
        return selected

    def fault_response(fault: QuickBooksFault) -> JSONResponse:
        body = {
            "Fault": {
                "Error": [
                    {"Message": fault.message, "Detail": fault.detail, "code": fault.code, "element": ""}
                ],
                "type": fault.fault_type,
            },
            "time": _response_time(options.clock()),
        }
        return JSONResponse(body, status_code=fault.status)

    @app.exception_handler(QuickBooksFault)
    async def quickbooks_fault(_: Request, fault: QuickBooksFault) -> JSONResponse:
        return fault_response(fault)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return fault_response(
            QuickBooksFault(
                error.status_code,
                "ValidationFault",
                "Request failed",
                str(error.detail),
                str(error.status_code),
            )
        )

    def authorize(request: Request, realm: str) -> None:
        presented = bearer_token(request)
        if presented is None or not hmac.compare_digest(presented, token) or realm != realm_id:
            raise QuickBooksFault(
                401,
                "AuthenticationFault",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Token invalid or expired, or not authorized for this realm",
                "3200",
            )

    @app.get("/v3/company/{realm}/query")
    def query(realm: str, request: Request) -> JSONResponse:
        authorize(request, realm)
        text = request.query_params.get("query")
        if not text:
            raise QuickBooksFault(
                400, "ValidationFault", "Error parsing query", "QueryParserError: empty query", "4000"
            )
        try:
            parsed = parse_query(text)
            entity = canonical.get(parsed.entity.lower())
            if entity is None:
                raise QueryError(
                    "Invalid query", f"QueryValidationError: Unsupported Entity: {parsed.entity}", "4001"
                )
            records = entities[entity]
            unknown = unknown_fields(parsed, records)
            if unknown:
                raise QueryError(
                    "Invalid query", f"QueryValidationError: property '{unknown[0]}' is not queryable", "4001"
                )
        except QueryError as error:
            raise QuickBooksFault(400, "ValidationFault", error.message, error.detail, error.code) from error
        result = page_of(parsed, selection(parsed, entity))
        response: dict[str, Any]
        if parsed.count:
            response = {"totalCount": result.total_count}
        elif result.rows:
            response = {
                entity: result.rows,
                "startPosition": parsed.start_position,
                "maxResults": len(result.rows),
            }
        else:
            response = {}
        return ListingResponse({"QueryResponse": response, "time": _response_time(options.clock())})

    @app.get("/v3/company/{realm}/{entity_name}/{record_id}")
    def read_entity(realm: str, entity_name: str, record_id: str, request: Request) -> JSONResponse:
        authorize(request, realm)
        entity = canonical.get(entity_name.lower())
        if entity is None:
            raise QuickBooksFault(400, "ValidationFault", "Unsupported Operation", f"Operation {entity_name} is not supported", "500")  # fmt: skip
        for record in entities[entity]:
            if str(record.get("Id")) == record_id:
                return JSONResponse({entity: record, "time": _response_time(options.clock())})
        raise QuickBooksFault(
            400,
            "ValidationFault",
            "Object Not Found",
            f"Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees. ({entity} {record_id})",  # noqa: E501
            "610",
        )

    @app.api_route("/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"])
    def refuse_write(path: str) -> JSONResponse:
        return fault_response(
            QuickBooksFault(
                405,
                "ValidationFault",
                "Method not allowed",
                "This sandbox is read-only: ledgerlink writes to QuickBooks only through email-in.",
                "405",
            )
        )

    return app


def _fault_body(fault_type: str, message: str, detail: str, code: str) -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": fault_type,
        },
        "time": _response_time(datetime.now(UTC)),
    }


def _fault_error(status: int, auth: str | None, path: str) -> tuple[int, dict[str, Any]]:
    """QuickBooks' answer to an injected fault: a ``Fault`` body."""
    if auth is not None:
        return 401, _fault_body(
            "AuthenticationFault",
            "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            f"Token {auth}",
            "3200",
        )
    if status == 429:
        return 429, _fault_body(
            "ThrottlingFault",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.",
            "3001",
        )
    return status, _fault_body("SystemFault", "An application error has occurred.", f"HTTP {status}", "10000")


class ConcurrencyLimit:
    """QuickBooks refuses more than ``limit`` concurrent requests to one company with a 429."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit, self.in_flight, self.peak = app, limit, 0, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            status, body = _fault_error(429, None, scope["path"])
            await JSONResponse(body, status_code=status)(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _company_info(fixtures: Fixtures) -> dict[str, Any]:
    manifest = fixtures.manifest
    return {
        "Id": fixtures.quickbooks_realm_id,
        "SyncToken": "3",
        "domain": "QBO",
        "sparse": False,
        "MetaData": {
            "CreateTime": "2024-03-01T09:00:00-08:00",
            "LastUpdatedTime": "2026-01-05T10:00:00-08:00",
        },
        "CompanyName": manifest.get("company_name"),
        "LegalName": manifest.get("company_name"),
        "Country": "FR",
        "CompanyAddr": {"Id": "1", "City": "Lyon", "Country": "FR", "PostalCode": "69003"},
        "Email": {"Address": manifest.get("owner_email")},
        "FiscalYearStartMonth": "January",
        "SupportedLanguages": "fr,en",
        "NameValue": [{"Name": "HomeCurrency", "Value": manifest.get("home_currency", "EUR")}],
    }
