"""The Square Connect v2 API, as far as ledgerlink reads it (``apis.md`` §2, Square's OpenAPI).

* ``GET /v2/payments``: ``begin_time``/``end_time`` on ``created_at`` (inclusive/exclusive,
  default the last year up to now), ``updated_at_begin_time``/``updated_at_end_time`` (same
  convention), ``sort_field`` ``CREATED_AT|UPDATED_AT|OFFLINE_CREATED_AT``, ``sort_order``
  (default ``DESC``), ``location_id`` (default the main location), ``total``, ``last_4``,
  ``card_brand``, ``limit`` (default 100; larger values silently become 100) and an opaque
  ``cursor``. The last page has no ``cursor``; an empty result is ``{}``.
* ``GET /v2/payments/{id}``, ``GET /v2/customers`` (``limit`` 1..100 or 400), ``POST
  /v2/customers/search``, ``GET /v2/customers/{id}``, ``GET /v2/locations[/{id}]``.

Errors use Square's shape ``{"errors": [{"category", "code", "detail", "field"?}]}``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ledgerlink.sandbox.common import (
    SandboxOptions,
    bearer_token,
    decode_cursor,
    encode_cursor,
    parse_timestamp,
    query_fingerprint,
)
from ledgerlink.sandbox.fixtures import Fixtures

MAX_LIMIT = 100
_SQUARE_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SquareError(Exception):
    def __init__(self, status: int, category: str, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.category, self.code, self.detail, self.field = status, category, code, detail, field

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"category": self.category, "code": self.code, "detail": self.detail}
        if self.field is not None:
            error["field"] = self.field
        return JSONResponse({"errors": [error]}, status_code=self.status)


def _invalid(code: str, detail: str, field: str | None = None) -> SquareError:
    return SquareError(400, "INVALID_REQUEST_ERROR", code, detail, field)


def _time_param(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_timestamp(raw)
    except ValueError as error:
        raise _invalid("INVALID_TIME", f"Invalid RFC 3339 timestamp for `{name}`: {raw}", name) from error


def _enum_param(raw: str | None, name: str, allowed: tuple[str, ...], default: str) -> str:
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise _invalid("INVALID_ENUM_VALUE", f"Expected `{name}` to be one of {', '.join(allowed)}.", name)
    return raw


def _limit(raw: Any, *, strict: bool, name: str = "limit") -> int:
    """Square's page size: ``strict`` endpoints refuse out-of-range values, ListPayments caps them."""
    if raw is None or raw == "":
        return MAX_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError) as error:
        raise _invalid("EXPECTED_INTEGER", f"Expected `{name}` to be an integer.", name) from error
    if limit < 1:
        raise _invalid("VALUE_TOO_LOW", f"`{name}` must be greater than or equal to 1.", name)
    if limit > MAX_LIMIT:
        if strict:
            raise _invalid("VALUE_TOO_HIGH", f"`{name}` must be less than or equal to {MAX_LIMIT}.", name)
        return MAX_LIMIT
    return limit


def _page(
    records: list[dict[str, Any]], key: str, limit: int, cursor: str | None, fingerprint: str
) -> dict[str, Any]:
    offset = 0
    if cursor:
        try:
            offset = decode_cursor(cursor, fingerprint)
        except ValueError as error:
            raise _invalid(
                "INVALID_CURSOR", "The pagination cursor is not valid for this request.", "cursor"
            ) from error
    chunk = records[offset : offset + limit]
    body: dict[str, Any] = {key: chunk} if chunk else {}
    if offset + limit < len(records):
        body["cursor"] = encode_cursor(offset + limit, fingerprint)
    return body


def _customer_sort_key(sort_field: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    if sort_field == "CREATED_AT":
        return lambda c: (c.get("created_at", ""), c["id"])

    # DEFAULT: alphabetical by name, then company and email, as Square documents it.
    def by_name(customer: dict[str, Any]) -> tuple[str, ...]:
        fields = ("given_name", "family_name", "company_name", "email_address")
        return (*(str(customer.get(name) or "").casefold() for name in fields), customer["id"])

    return by_name


def _fuzzy_tokens(text: str) -> list[str]:
    return [token for token in re.split(r"[^0-9a-z]+", text.casefold()) if token]


def _text_filter(value: str | None, text_filter: Any, name: str) -> bool:
    if not isinstance(text_filter, dict) or ("exact" in text_filter) == ("fuzzy" in text_filter):
        raise _invalid(
            "INVALID_VALUE", f"`query.filter.{name}` needs exactly one of `exact` or `fuzzy`.", name
        )
    if value is None:
        return False
    if "exact" in text_filter:
        expected = str(text_filter["exact"])
        return value.casefold() == expected.casefold() if name == "email_address" else value == expected
    value_tokens = _fuzzy_tokens(value)
    return all(
        any(query in token for token in value_tokens) for query in _fuzzy_tokens(str(text_filter["fuzzy"]))
    )


def _in_range(value: str | None, time_range: Any, name: str) -> bool:
    if not isinstance(time_range, dict):
        raise _invalid("EXPECTED_OBJECT", f"`query.filter.{name}` must be a time range.", name)
    if value is None:
        return False
    moment = parse_timestamp(value)
    start = _time_param(time_range.get("start_at"), f"query.filter.{name}.start_at")
    end = _time_param(time_range.get("end_at"), f"query.filter.{name}.end_at")
    return (start is None or moment >= start) and (end is None or moment < end)


def create_square_app(fixtures: Fixtures, options: SandboxOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``fixtures``' Square records with Square's paths, paging and errors."""
    options = options or SandboxOptions()
    app = FastAPI(title="Square sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    token = fixtures.access_token("square")
    payments = fixtures.square_payments
    payments_by_id = {str(payment["id"]): payment for payment in payments}
    customers = fixtures.square_customers
    customers_by_id = {str(customer["id"]): customer for customer in customers}
    locations = fixtures.square_locations
    main_location = fixtures.square_location_id

    @app.exception_handler(SquareError)
    async def square_error(_: Request, error: SquareError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return SquareError(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "Resource not found.").response()
        return SquareError(
            error.status_code, "INVALID_REQUEST_ERROR", "BAD_REQUEST", str(error.detail)
        ).response()

    def authorize(request: Request) -> None:
        version = request.headers.get("square-version")
        if version is not None and not _SQUARE_VERSION.match(version):
            raise _invalid("INVALID_SQUARE_VERSION_FORMAT", f"Invalid Square-Version format: {version}")
        presented = bearer_token(request)
        if presented is None or not hmac.compare_digest(presented, token):
            raise SquareError(
                401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."
            )

    @app.get("/v2/payments")
    def list_payments(request: Request) -> JSONResponse:
        authorize(request)
        params = request.query_params
        now = options.clock()
        begin = _time_param(params.get("begin_time"), "begin_time") or now - options.square_default_lookback
        end = _time_param(params.get("end_time"), "end_time") or now
        updated_begin = _time_param(params.get("updated_at_begin_time"), "updated_at_begin_time")
        updated_end = _time_param(params.get("updated_at_end_time"), "updated_at_end_time")
        sort_order = _enum_param(params.get("sort_order"), "sort_order", ("ASC", "DESC"), "DESC")
        sort_field = _enum_param(
            params.get("sort_field"),
            "sort_field",
            ("CREATED_AT", "OFFLINE_CREATED_AT", "UPDATED_AT"),
            "CREATED_AT",
        )
        location_id = params.get("location_id") or main_location
        limit = _limit(params.get("limit"), strict=False)

        def keep(payment: dict[str, Any]) -> bool:
            created = parse_timestamp(payment["created_at"])
            updated = parse_timestamp(payment["updated_at"])
            card = (payment.get("card_details") or {}).get("card") or {}
            return (
                payment.get("location_id") == location_id
                and begin <= created < end
                and (updated_begin is None or updated >= updated_begin)
                and (updated_end is None or updated < updated_end)
                and (not params.get("total") or str(payment["total_money"]["amount"]) == params["total"])
                and (not params.get("last_4") or card.get("last_4") == params["last_4"])
                and (not params.get("card_brand") or card.get("card_brand") == params["card_brand"])
            )

        sort_key = "updated_at" if sort_field == "UPDATED_AT" else "created_at"
        selected = sorted(
            (payment for payment in payments if keep(payment)),
            key=lambda payment: (parse_timestamp(payment[sort_key]), payment["id"]),
            reverse=sort_order == "DESC",
        )
        # A cursor belongs to the filters it was issued for (not to the limit, which may change).
        fingerprint = query_fingerprint(
            sorted((k, v) for k, v in params.multi_items() if k not in ("cursor", "limit"))
        )
        return JSONResponse(_page(selected, "payments", limit, params.get("cursor"), fingerprint))

    @app.get("/v2/payments/{payment_id}")
    def get_payment(payment_id: str, request: Request) -> JSONResponse:
        authorize(request)
        payment = payments_by_id.get(payment_id)
        if payment is None:
            raise SquareError(
                404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Could not find payment with id: {payment_id}"
            )
        return JSONResponse({"payment": payment})

    @app.get("/v2/customers")
    def list_customers(request: Request) -> JSONResponse:
        authorize(request)
        params = request.query_params
        limit = _limit(params.get("limit"), strict=True)
        sort_field = _enum_param(params.get("sort_field"), "sort_field", ("DEFAULT", "CREATED_AT"), "DEFAULT")
        sort_order = _enum_param(params.get("sort_order"), "sort_order", ("ASC", "DESC"), "ASC")
        selected = sorted(customers, key=_customer_sort_key(sort_field), reverse=sort_order == "DESC")
        fingerprint = query_fingerprint({"sort": [sort_field, sort_order]})
        body = _page(selected, "customers", limit, params.get("cursor"), fingerprint)
        if params.get("count", "").lower() == "true":
            body["count"] = len(selected)
        return JSONResponse(body)

    @app.post("/v2/customers/search")
    async def search_customers(request: Request) -> JSONResponse:
        authorize(request)
        try:
            body = await request.json() if await request.body() else {}
        except ValueError as error:
            raise _invalid("EXPECTED_JSON_BODY", "The request body is not valid JSON.") from error
        if not isinstance(body, dict):
            raise _invalid("EXPECTED_OBJECT", "The request body must be a JSON object.")
        limit = _limit(body.get("limit"), strict=True)
        query = body.get("query") or {}
        customer_filter = query.get("filter") or {}
        sort = query.get("sort") or {}
        sort_field = _enum_param(sort.get("field"), "query.sort.field", ("DEFAULT", "CREATED_AT"), "DEFAULT")
        sort_order = _enum_param(sort.get("order"), "query.sort.order", ("ASC", "DESC"), "ASC")

        def keep(customer: dict[str, Any]) -> bool:
            for name in ("email_address", "reference_id", "phone_number"):
                if name in customer_filter and not _text_filter(
                    customer.get(name), customer_filter[name], name
                ):
                    return False
            for name in ("created_at", "updated_at"):
                if name in customer_filter and not _in_range(customer.get(name), customer_filter[name], name):
                    return False
            sources = customer_filter.get("creation_source")
            if isinstance(sources, dict) and sources.get("values"):
                included = customer.get("creation_source") in sources["values"]
                if included != (sources.get("rule", "INCLUDE") == "INCLUDE"):
                    return False
            return True

        selected = sorted(
            (customer for customer in customers if keep(customer)),
            key=_customer_sort_key(sort_field),
            reverse=sort_order == "DESC",
        )
        fingerprint = query_fingerprint({"query": query})
        page = _page(selected, "customers", limit, body.get("cursor"), fingerprint)
        if body.get("count") is True:
            page["count"] = len(selected)
        return JSONResponse(page)

    @app.get("/v2/customers/{customer_id}")
    def get_customer(customer_id: str, request: Request) -> JSONResponse:
        authorize(request)
        customer = customers_by_id.get(customer_id)
        if customer is None:
            raise SquareError(
                404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Customer with ID `{customer_id}` not found."
            )
        return JSONResponse({"customer": customer})

    @app.get("/v2/locations")
    def list_locations(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse({"locations": locations})

    @app.get("/v2/locations/{location_id}")
    def get_location(location_id: str, request: Request) -> JSONResponse:
        authorize(request)
        wanted = main_location if location_id == "main" else location_id
        for location in locations:
            if location["id"] == wanted:
                return JSONResponse({"location": location})
        raise SquareError(
            404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Location with ID `{location_id}` not found."
        )

    return app
