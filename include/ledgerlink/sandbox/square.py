"""The Square Connect v2 API, as far as ledgerlink reads it (``apis.md`` §2, Square's OpenAPI).

* ``GET /v2/payments``: ``begin_time``/``end_time`` on ``created_at`` (inclusive/exclusive,
  default the last year up to now), ``updated_at_begin_time``/``updated_at_end_time`` (same
  convention), ``sort_field`` ``CREATED_AT|UPDATED_AT|OFFLINE_CREATED_AT``, ``sort_order``
  (default ``DESC``), ``location_id`` (default the main location), ``total``, ``last_4``,
  ``card_brand``, ``limit`` (default 100; larger values silently become 100) and an opaque
  ``cursor``. The last page has no ``cursor``; an empty result is ``{}``.
* ``GET /v2/payments/{id}``, ``GET /v2/customers`` (``limit`` 1..100 or 400), ``POST
  /v2/customers/search``, ``GET /v2/customers/{id}``, ``GET /v2/locations[/{id}]``.

* OAuth (``apis.md`` §2.6-2.7): ``GET /oauth2/authorize`` (a browser gets a consent page, a program
  following the URL consents; redirects
  to a loopback ``redirect_uri`` with ``code`` and ``state``), ``POST /oauth2/token`` with the
  ``authorization_code`` grant (30-day access tokens; PKCE with ``code_verifier`` for clients
  without a secret) and the ``refresh_token`` grant (code flow: the same refresh token comes back,
  no rotation), ``POST /oauth2/revoke``; and RFC 7591 Dynamic Client Registration as the MCP
  server's authorization server does it: ``GET /.well-known/oauth-authorization-server``, ``POST
  /oauth2/register`` (loopback redirect URIs only, like the hosted server's allowlist).

Errors use Square's shape ``{"errors": [{"category", "code", "detail", "field"?}]}``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ledgerlink.sandbox.common import (
    SandboxOptions,
    bearer_token,
    consent_answer,
    decode_cursor,
    encode_cursor,
    epoch_microseconds,
    parse_timestamp,
    query_fingerprint,
)
from ledgerlink.sandbox.faults import FaultMiddleware
from ledgerlink.sandbox.fixtures import Fixtures, Records, Selection

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


def _page(records: Records, key: str, limit: int, cursor: str | None, fingerprint: str) -> dict[str, Any]:
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


ACCESS_TOKEN_TTL = timedelta(days=30)


def square_oauth_client(fixtures: Fixtures) -> tuple[str, str]:
    """The sandbox application's (client_id, client_secret), derived from the fixtures."""
    material = hashlib.sha256(f"{fixtures.access_token('square')}:oauth".encode()).hexdigest()
    return f"sandbox-sq0idb-{material[:22]}", f"sandbox-sq0csb-{material[22:62]}"


@dataclass
class _Authorization:
    """OAuth state of the sandbox's authorization server: clients, codes, tokens."""

    clients: dict[str, tuple[str | None, list[str]]]  # client_id -> (secret, redirect uris)
    codes: dict[str, tuple[str, str, str | None]] = field(
        default_factory=dict
    )  # code -> client, uri, challenge
    access_tokens: dict[str, datetime] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh -> client_id
    lock: threading.Lock = field(default_factory=threading.Lock)


def _oauth_error(status: int, code: str, detail: str) -> JSONResponse:
    body = {"errors": [{"category": "AUTHENTICATION_ERROR", "code": code, "detail": detail}]}
    return JSONResponse(body, status_code=status)


def _is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _fault_error(status: int, auth: str | None, path: str) -> tuple[int, dict[str, Any]]:
    """Square's answer to an injected fault, in its ``errors[]`` shape."""
    if auth is not None:
        code = "ACCESS_TOKEN_EXPIRED" if auth == "expired" else "ACCESS_TOKEN_REVOKED"
        detail = f"The access token has been {auth}."
        return 401, {"errors": [{"category": "AUTHENTICATION_ERROR", "code": code, "detail": detail}]}
    if status == 429:
        error = {"category": "RATE_LIMIT_ERROR", "code": "RATE_LIMITED", "detail": "Rate limit exceeded."}
        return 429, {"errors": [error]}
    code = {502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}.get(
        status, "INTERNAL_SERVER_ERROR"
    )
    return status, {"errors": [{"category": "API_ERROR", "code": code, "detail": f"injected HTTP {status}"}]}


class _TimeIndex:
    """Each record's created_at and updated_at (microseconds since the epoch) and id read once,
    and the selections of recent queries as positions, so paging through a million records costs
    a slice per page, not a sort per page, and holds no record between requests."""

    _KEPT_SELECTIONS = 16

    def __init__(self, records: Records) -> None:
        self.records = records
        self.created: array[int] = array("q")
        self.updated: array[int] = array("q")
        self.ids: list[str] = []
        # a location filter is on every listing: answered from here, it reads no record
        self.locations: list[str | None] = []
        for record in records:
            self.created.append(epoch_microseconds(parse_timestamp(record["created_at"])))
            self.updated.append(epoch_microseconds(parse_timestamp(record["updated_at"])))
            self.ids.append(str(record["id"]))
            location = record.get("location_id")
            self.locations.append(None if location is None else sys.intern(str(location)))
        self.positions_by_id = {record_id: position for position, record_id in enumerate(self.ids)}
        self.first_created = min(self.created) if self.created else None
        self.last_created = max(self.created) if self.created else None
        self._selections: dict[Any, Selection] = {}
        self._lock = threading.Lock()

    def by_id(self, record_id: str) -> dict[str, Any] | None:
        position = self.positions_by_id.get(record_id)
        return None if position is None else self.records[position]

    def select(
        self,
        query: str,
        begin: datetime,
        end: datetime,
        updated_begin: datetime | None,
        updated_end: datetime | None,
        location_id: str | None,
        keep: Callable[[dict[str, Any]], bool] | None,
        sort_by_updated: bool,
        descending: bool,
    ) -> Selection:
        """Records created in [begin, end) and updated in [updated_begin, updated_end), at
        ``location_id`` when one is given, that ``keep`` accepts (when there are other filters),
        sorted by (time, id); ``query`` names the location and the other filters."""
        begin_at, end_at = epoch_microseconds(begin), epoch_microseconds(end)
        # Bounds outside the data select the same records as no bound: the default window moves
        # with the clock between pages, and the selection must not.
        open_begin = self.first_created is None or begin_at <= self.first_created
        open_end = self.last_created is None or end_at > self.last_created
        key = (
            query,
            None if open_begin else begin,
            None if open_end else end,
            updated_begin,
            updated_end,
            sort_by_updated,
            descending,
        )
        with self._lock:
            selected = self._selections.get(key)
        if selected is not None:
            return selected
        updated_from = None if updated_begin is None else epoch_microseconds(updated_begin)
        updated_to = None if updated_end is None else epoch_microseconds(updated_end)
        created, updated, locations = self.created, self.updated, self.locations
        chosen = [
            position
            for position in range(len(created))
            if (open_begin or begin_at <= created[position])
            and (open_end or created[position] < end_at)
            and (updated_from is None or updated[position] >= updated_from)
            and (updated_to is None or updated[position] < updated_to)
            and (location_id is None or locations[position] == location_id)
        ]
        if keep is not None:  # the other filters read the record, and only inside the window
            chosen = [position for position in chosen if keep(self.records[position])]
        times, ids = (updated if sort_by_updated else created), self.ids
        chosen.sort(key=lambda position: (times[position], ids[position]), reverse=descending)
        selected = Selection(self.records, chosen)
        with self._lock:
            if len(self._selections) >= self._KEPT_SELECTIONS:
                self._selections.pop(next(iter(self._selections)))
            self._selections[key] = selected
        return selected

    def list_page(
        self,
        params: QueryParams,
        now: datetime,
        lookback: timedelta,
        sort_fields: tuple[str, ...],
        filters: list[str | None],
        location_id: str | None,
        keep: Callable[[dict[str, Any]], bool] | None,
        key: str,
    ) -> dict[str, Any]:
        """One page of a Square list endpoint over these records (``{key: [...], "cursor"}``): the
        created and updated windows, sort order and field, limit and cursor read from ``params``
        as Square reads them; ``filters`` (the location and the values ``keep`` looks at), the
        location and ``keep`` (``None`` when no other filter is given) are the endpoint's own."""
        begin = _time_param(params.get("begin_time"), "begin_time") or now - lookback
        end = _time_param(params.get("end_time"), "end_time") or now
        updated_begin = _time_param(params.get("updated_at_begin_time"), "updated_at_begin_time")
        updated_end = _time_param(params.get("updated_at_end_time"), "updated_at_end_time")
        sort_order = _enum_param(params.get("sort_order"), "sort_order", ("ASC", "DESC"), "DESC")
        sort_field = _enum_param(params.get("sort_field"), "sort_field", sort_fields, "CREATED_AT")
        limit = _limit(params.get("limit"), strict=False)
        selected = self.select(
            query_fingerprint(filters),
            begin,
            end,
            updated_begin,
            updated_end,
            location_id,
            keep,
            sort_by_updated=sort_field == "UPDATED_AT",
            descending=sort_order == "DESC",
        )
        # A cursor belongs to the filters it was issued for (not to the limit, which may change).
        fingerprint = query_fingerprint(
            sorted((k, v) for k, v in params.multi_items() if k not in ("cursor", "limit"))
        )
        return _page(selected, key, limit, params.get("cursor"), fingerprint)


def create_square_app(fixtures: Fixtures, options: SandboxOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``fixtures``' Square records with Square's paths, paging and errors."""
    options = options or SandboxOptions()
    app = FastAPI(title="Square sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(FaultMiddleware, service="square", injector=options.faults, error_body=_fault_error)
    token = fixtures.access_token("square")
    client_id, client_secret = square_oauth_client(fixtures)
    oauth = _Authorization(clients={client_id: (client_secret, [])})
    # The records stay where the fixtures keep them (on disk for generated ones); the servers
    # hold indexes of positions into them.
    payment_times = _TimeIndex(fixtures.square_payments)
    refund_times = _TimeIndex(fixtures.square_refunds)
    customers = fixtures.square_customers
    customer_positions = {str(customer["id"]): position for position, customer in enumerate(customers)}

    def payment_source_type(payment_id: str) -> Any:
        payment = payment_times.by_id(payment_id)
        return None if payment is None else payment.get("source_type")

    @functools.cache
    def customers_in_order(sort_field: str, sort_order: str) -> Selection:
        """The directory in one of its four orders, sorted once: a first sync of 100,000 customers
        pages through it 1,000 times, and each page used to sort the whole directory again."""
        sort_key = _customer_sort_key(sort_field)
        keys = [sort_key(customer) for customer in customers]
        order = sorted(range(len(keys)), key=keys.__getitem__, reverse=sort_order == "DESC")
        return Selection(customers, order)

    locations = list(fixtures.square_locations)  # two or three: held, not read per request
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
        if presented is not None and not hmac.compare_digest(presented, token):
            with oauth.lock:
                expires_at = oauth.access_tokens.get(presented)
            if expires_at is not None and options.clock() < expires_at:
                return
            if expires_at is not None:
                raise SquareError(
                    401, "AUTHENTICATION_ERROR", "ACCESS_TOKEN_EXPIRED", "The access token has expired."
                )
        if presented is None or not hmac.compare_digest(presented, token):
            raise SquareError(
                401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."
            )

    @app.get("/v2/payments")
    def list_payments(request: Request) -> JSONResponse:
        authorize(request)
        params = request.query_params
        location_id = params.get("location_id") or main_location

        def keep(payment: dict[str, Any]) -> bool:
            card = (payment.get("card_details") or {}).get("card") or {}
            return (
                (not params.get("total") or str(payment["total_money"]["amount"]) == params["total"])
                and (not params.get("last_4") or card.get("last_4") == params["last_4"])
                and (not params.get("card_brand") or card.get("card_brand") == params["card_brand"])
            )

        others = [params.get("total"), params.get("last_4"), params.get("card_brand")]
        page = payment_times.list_page(
            params,
            options.clock(),
            options.square_default_lookback,
            ("CREATED_AT", "OFFLINE_CREATED_AT", "UPDATED_AT"),
            [location_id, *others],
            location_id,
            keep if any(others) else None,
            "payments",
        )
        return JSONResponse(page)

    @app.get("/v2/payments/{payment_id}")
    def get_payment(payment_id: str, request: Request) -> JSONResponse:
        authorize(request)
        payment = payment_times.by_id(payment_id)
        if payment is None:
            raise SquareError(
                404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Could not find payment with id: {payment_id}"
            )
        return JSONResponse({"payment": payment})

    @app.get("/v2/refunds")
    def list_refunds(request: Request) -> JSONResponse:
        """ListPaymentRefunds: like payments, except every location by default and a status filter."""
        authorize(request)
        params = request.query_params

        def keep(refund: dict[str, Any]) -> bool:
            return (not params.get("status") or refund.get("status") == params["status"]) and (
                not params.get("source_type")
                or payment_source_type(str(refund.get("payment_id"))) == params["source_type"]
            )

        others = [params.get("status"), params.get("source_type")]
        page = refund_times.list_page(
            params,
            options.clock(),
            options.square_default_lookback,
            ("CREATED_AT", "UPDATED_AT"),
            [params.get("location_id"), *others],
            params.get("location_id") or None,
            keep if any(others) else None,
            "refunds",
        )
        return JSONResponse(page)

    @app.get("/v2/refunds/{refund_id}")
    def get_refund(refund_id: str, request: Request) -> JSONResponse:
        authorize(request)
        refund = refund_times.by_id(refund_id)
        if refund is None:
            raise SquareError(
                404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Could not find refund with id: {refund_id}"
            )
        return JSONResponse({"refund": refund})

    @app.get("/v2/customers")
    def list_customers(request: Request) -> JSONResponse:
        authorize(request)
        params = request.query_params
        limit = _limit(params.get("limit"), strict=True)
        sort_field = _enum_param(params.get("sort_field"), "sort_field", ("DEFAULT", "CREATED_AT"), "DEFAULT")
        sort_order = _enum_param(params.get("sort_order"), "sort_order", ("ASC", "DESC"), "ASC")
        selected = customers_in_order(sort_field, sort_order)
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

        # The sort keys end with the id, so the order is total and filtering keeps it.
        ordered = customers_in_order(sort_field, sort_order)
        selected = Selection(customers, [p for p in ordered.positions if keep(customers[p])])
        fingerprint = query_fingerprint({"query": query})
        page = _page(selected, "customers", limit, body.get("cursor"), fingerprint)
        if body.get("count") is True:
            page["count"] = len(selected)
        return JSONResponse(page)

    @app.get("/v2/customers/{customer_id}")
    def get_customer(customer_id: str, request: Request) -> JSONResponse:
        authorize(request)
        position = customer_positions.get(customer_id)
        customer = None if position is None else customers[position]
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

    @app.get("/.well-known/oauth-authorization-server")
    def authorization_server_metadata(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth2/authorize",
                "token_endpoint": f"{base}/oauth2/token",
                "registration_endpoint": f"{base}/oauth2/register",
                "revocation_endpoint": f"{base}/oauth2/revoke",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
            }
        )

    @app.post("/oauth2/register")
    async def register_client(request: Request) -> JSONResponse:
        try:
            metadata = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_client_metadata"}, status_code=400)
        uris = metadata.get("redirect_uris") if isinstance(metadata, dict) else None
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return JSONResponse(
                {"error": "invalid_redirect_uri", "error_description": "redirect_uris is required."}, 400
            )
        if not all(_is_loopback(uri) for uri in uris):
            return JSONResponse(
                {"error": "invalid_redirect_uri", "error_description": "domain not in allowlist"}, 400
            )
        public = metadata.get("token_endpoint_auth_method") == "none"
        new_id = f"sandbox-sq0idp-dcr-{secrets.token_urlsafe(12)}"
        new_secret = None if public else f"sandbox-sq0csp-{secrets.token_urlsafe(24)}"
        with oauth.lock:
            oauth.clients[new_id] = (new_secret, list(uris))
        registered: dict[str, Any] = {
            "client_id": new_id,
            "client_id_issued_at": int(options.clock().timestamp()),
            "redirect_uris": uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none" if public else "client_secret_post",
            "client_name": metadata.get("client_name"),
        }
        if new_secret is not None:
            registered |= {"client_secret": new_secret, "client_secret_expires_at": 0}
        # RFC 7592 management credentials, as servers commonly return them: a secret to keep safe
        registered["registration_access_token"] = secrets.token_urlsafe(32)
        registered["registration_client_uri"] = (
            f"{str(request.base_url).rstrip('/')}/oauth2/register/{new_id}"
        )
        return JSONResponse(registered, status_code=201)

    @app.get("/oauth2/authorize")
    def oauth_authorize(request: Request) -> Response:
        # The sandbox's seller is always logged in; a browser is asked to consent first.
        params = request.query_params
        redirect_uri = params.get("redirect_uri", "")
        with oauth.lock:
            client = oauth.clients.get(params.get("client_id", ""))
        if client is None or not _is_loopback(redirect_uri) or (client[1] and redirect_uri not in client[1]):
            return _oauth_error(400, "BAD_REQUEST", "Unknown client_id or redirect_uri.")
        consent = consent_answer(request, "Square")
        if consent is not None:
            return consent
        code = f"sq0cgb-{secrets.token_urlsafe(24)}"
        with oauth.lock:
            oauth.codes[code] = (params["client_id"], redirect_uri, params.get("code_challenge"))
        query = urlencode({"code": code, "state": params.get("state", ""), "response_type": "code"})
        return RedirectResponse(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}")

    @app.post("/oauth2/token")
    async def oauth_token(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _oauth_error(400, "BAD_REQUEST", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _oauth_error(400, "BAD_REQUEST", "The request body must be a JSON object.")
        with oauth.lock:
            client = oauth.clients.get(str(body.get("client_id", "")))
        secret = client[0] if client else None
        presented_secret = str(body.get("client_secret", ""))
        if client is None or (secret is not None and not hmac.compare_digest(presented_secret, secret)):
            return _oauth_error(401, "UNAUTHORIZED", "Invalid client_id or client_secret.")
        grant = body.get("grant_type")
        if grant == "authorization_code":
            with oauth.lock:
                issued_for = oauth.codes.pop(str(body.get("code", "")), None)  # single use
            if issued_for is None or issued_for[:2] != (body["client_id"], body.get("redirect_uri")):
                return _oauth_error(401, "UNAUTHORIZED", "The authorization code is invalid or expired.")
            challenge = issued_for[2]
            if challenge is not None:
                verifier = str(body.get("code_verifier", ""))
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                if not hmac.compare_digest(digest.decode(), challenge):
                    return _oauth_error(401, "UNAUTHORIZED", "code_verifier does not match.")
            refresh = f"EQAA{secrets.token_urlsafe(40)}"
        elif grant == "refresh_token":
            # Code-flow refresh tokens are multi-use: the same one comes back.
            refresh = str(body.get("refresh_token", ""))
            with oauth.lock:
                owner = oauth.refresh_tokens.get(refresh)
            if owner != body["client_id"]:
                return _oauth_error(401, "UNAUTHORIZED", "The refresh token is invalid or revoked.")
        else:
            return _oauth_error(400, "BAD_REQUEST", "Unsupported grant_type.")
        access = f"EAAA{secrets.token_urlsafe(48)}"
        expires_at = options.clock() + ACCESS_TOKEN_TTL
        with oauth.lock:
            oauth.access_tokens[access] = expires_at
            oauth.refresh_tokens[refresh] = str(body["client_id"])
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "merchant_id": str(fixtures.manifest.get("square_merchant_id", "")),
                "refresh_token": refresh,
                "short_lived": False,
            }
        )

    @app.post("/oauth2/revoke")
    async def oauth_revoke(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict):
            return _oauth_error(400, "BAD_REQUEST", "The request body must be a JSON object.")
        with oauth.lock:
            oauth.access_tokens.pop(str(body.get("access_token", "")), None)
            for refresh, owner in list(oauth.refresh_tokens.items()):
                if owner == body.get("client_id"):
                    del oauth.refresh_tokens[refresh]
        return JSONResponse({"success": True})

    return app
