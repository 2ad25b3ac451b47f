"""The Qonto Business API, as far as ledgerlink reads it (``apis.md`` §1).

* ``GET /v2/supplier_invoices``: ``filter[updated_at_from|to]`` and ``filter[created_at_from|to]``
  (ISO 8601, both ends inclusive), ``filter[status][]`` (repeatable), ``sort_by``
  (``updated_at:asc`` default, ties by id), ``page`` (1-based) and ``per_page`` (max 100; above
  that clamped to 100 unless :attr:`SandboxOptions.qonto_per_page_over_max` is ``reject``).
* ``GET /v2/supplier_invoices/{id}``, ``GET /v2/attachments/{id}`` (the ``url`` is a signed link to
  this server's ``/files/{id}``, valid for :attr:`SandboxOptions.attachment_url_ttl_seconds`).
* Rate limits on ``/v2/...`` (:attr:`SandboxOptions.qonto_rate_limits`, off by default): a
  request over them gets 429 ``too_many_requests``, with ``Retry-After`` unless turned off.
* ``GET /oauth2/auth``: the authorize step of the code flow. A browser is shown a consent page
  (Allow / Deny); a program following the URL is taken to have consented. It redirects to a
  loopback ``redirect_uri`` with ``code`` and ``state`` (or ``error=access_denied``).
* ``POST /oauth2/token``: the authorization-code grant and the refresh-token grant, rotating the
  refresh token on every use with a grace period for the old one, as Qonto's OAuth server does.

Errors use Qonto's JSON:API shape ``{"errors": [{"code", "detail", "source"?}]}``.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ledgerlink.sandbox.common import SandboxOptions, bearer_token, consent_answer, parse_timestamp
from ledgerlink.sandbox.faults import FaultMiddleware
from ledgerlink.sandbox.fixtures import Fixtures, Selection
from ledgerlink.sandbox.rate_limits import RateLimitMiddleware

MAX_PER_PAGE = 100


class QontoError(Exception):
    def __init__(self, status: int, code: str, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.parameter = status, code, detail, parameter

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.parameter is not None:
            error["source"] = {"parameter": self.parameter}
        return JSONResponse({"errors": [error]}, status_code=self.status)


_UNAUTHORIZED = QontoError(401, "unauthorized", "Unauthorized")


@dataclass
class _TokenStore:
    """The fixture's long-lived token plus whatever the OAuth endpoint minted (with expiries)."""

    static_token: str
    options: SandboxOptions
    access_expiry: dict[str, float] = field(default_factory=dict)
    refresh_first_used: dict[str, float | None] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (redirect_uri, scope)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def is_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        if hmac.compare_digest(token, self.static_token):
            return True
        with self.lock:
            expiry = self.access_expiry.get(token)
        return expiry is not None and time.time() < expiry

    def refresh(self, refresh_token: str) -> dict[str, Any] | None:
        now = time.time()
        with self.lock:
            if refresh_token not in self.refresh_first_used:
                return None
            first_used = self.refresh_first_used[refresh_token]
            if first_used is not None and now - first_used > self.options.qonto_refresh_grace_seconds:
                return None
            if first_used is None:
                self.refresh_first_used[refresh_token] = now
        return self._issue(now, "offline_access organization.read supplier_invoice.read attachment.read")

    def exchange_code(self, code: str, redirect_uri: str) -> dict[str, Any] | None:
        with self.lock:
            issued_for = self.codes.pop(code, None)  # a code is single-use
        if issued_for is None or issued_for[0] != redirect_uri:
            return None
        return self._issue(time.time(), issued_for[1])

    def _issue(self, now: float, scope: str) -> dict[str, Any]:
        access = f"ory_at_{secrets.token_urlsafe(32)}"
        issued: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(self.options.qonto_access_token_ttl_seconds),
            "scope": scope,
            "token_type": "bearer",
        }
        with self.lock:
            self.access_expiry[access] = now + self.options.qonto_access_token_ttl_seconds
            if "offline_access" in scope.split():
                issued["refresh_token"] = f"ory_rt_{secrets.token_urlsafe(32)}"
                self.refresh_first_used[issued["refresh_token"]] = None
        return issued


def _sign(key: bytes, attachment_id: str, expires: int) -> str:
    return hmac.new(key, f"{attachment_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise QontoError(400, "invalid_parameter", f"{name} must be an integer", name) from error


def create_qonto_app(fixtures: Fixtures, options: SandboxOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``fixtures``' Qonto records with Qonto's paths, paging and errors."""
    options = options or SandboxOptions()
    app = FastAPI(title="Qonto sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    # The fault injector outermost, so it records every request, the refused ones too.
    app.add_middleware(
        RateLimitMiddleware, gate=options.qonto_rate_limits, path_prefix="/v2/", error_body=_fault_error
    )
    app.add_middleware(FaultMiddleware, service="qonto", injector=options.faults, error_body=_fault_error)
    # The invoices stay where the fixtures keep them (on disk for generated ones); the server
    # holds each one's position in (updated_at, id) order, id and timestamps, as Qonto's own
    # index would: a page of a long listing then costs a slice, not a parse of every invoice (a
    # 100,000-invoice first sync asks for 1,000 pages). Updated-at bounds bisect when the listing
    # order is also time order.
    records = fixtures.qonto_supplier_invoices
    keys = [(str(record["updated_at"]), str(record["id"])) for record in records]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    invoices = Selection(records, order)
    by_id = {keys[position][1]: position for position in order}
    del keys
    stamps: dict[str, list[datetime]] = {"updated_at": [], "created_at": []}
    for record in invoices:
        for field_name, times in stamps.items():
            times.append(parse_timestamp(record[field_name]))
    updated_in_order = all(a <= b for a, b in itertools.pairwise(stamps["updated_at"]))
    oauth_client = fixtures.qonto_oauth_client
    tokens = _TokenStore(fixtures.access_token("qonto"), options)
    tokens.refresh_first_used[oauth_client.refresh_token] = None
    signing_key = secrets.token_bytes(32)

    @app.exception_handler(QontoError)
    async def qonto_error(_: Request, error: QontoError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "error")
        return QontoError(error.status_code, code, str(error.detail)).response()

    def authorize(request: Request) -> None:
        if not tokens.is_valid(bearer_token(request)):
            raise _UNAUTHORIZED

    @app.get("/v2/supplier_invoices")
    def list_supplier_invoices(request: Request) -> JSONResponse:
        authorize(request)
        params = request.query_params
        positions: range | list[int] = range(len(invoices))
        bounds = {
            "filter[updated_at_from]": ("updated_at", ">="),
            "filter[updated_at_to]": ("updated_at", "<="),
            "filter[created_at_from]": ("created_at", ">="),
            "filter[created_at_to]": ("created_at", "<="),
        }
        for name, (field_name, direction) in bounds.items():
            raw = params.get(name)
            if not raw:
                continue
            try:
                bound = parse_timestamp(raw)
            except ValueError as error:
                raise QontoError(
                    400, "invalid_parameter", f"{name} is not an ISO 8601 timestamp", name
                ) from error
            times = stamps[field_name]
            if field_name == "updated_at" and updated_in_order and isinstance(positions, range):
                if direction == ">=":
                    positions = range(
                        bisect.bisect_left(times, bound, positions.start, positions.stop), positions.stop
                    )
                else:
                    positions = range(
                        positions.start, bisect.bisect_right(times, bound, positions.start, positions.stop)
                    )
            elif direction == ">=":
                positions = [i for i in positions if times[i] >= bound]
            else:
                positions = [i for i in positions if times[i] <= bound]
        statuses = [*params.getlist("filter[status][]")]
        for raw in params.getlist("filter[status]"):
            statuses += [part for part in raw.split(",") if part]
        attachment_ids = params.getlist("filter[attachment_id][]") + params.getlist("filter[attachment_id]")

        def kept(record: dict[str, Any]) -> bool:
            return (not statuses or record.get("status") in statuses) and (
                not attachment_ids or record.get("attachment_id") in attachment_ids
            )

        if statuses or attachment_ids:
            positions = [i for i in positions if kept(invoices[i])]
        sort_by = params.get("sort_by") or "updated_at:asc"
        sort_field, _, direction = sort_by.partition(":")
        if sort_field not in ("updated_at", "created_at", "issue_date", "due_date") or direction not in (
            "asc",
            "desc",
        ):
            raise QontoError(400, "invalid_parameter", f"sort_by {sort_by!r} is not supported", "sort_by")
        if sort_by != "updated_at:asc":

            def sort_key(position: int) -> tuple[Any, Any]:
                record = invoices[position]
                return (record.get(sort_field) or "", record["id"])

            positions = sorted(positions, key=sort_key, reverse=direction == "desc")
        selected = Selection(invoices, positions)

        page = _int_param(request, "page", 1)
        per_page = _int_param(request, "per_page", options.qonto_default_per_page)
        if page < 1:
            raise QontoError(400, "invalid_parameter", "page must be 1 or more", "page")
        if per_page < 1:
            raise QontoError(400, "invalid_parameter", "per_page must be 1 or more", "per_page")
        if per_page > MAX_PER_PAGE:
            if options.qonto_per_page_over_max == "reject":
                raise QontoError(
                    422, "invalid_parameter", f"per_page must be at most {MAX_PER_PAGE}", "per_page"
                )
            per_page = MAX_PER_PAGE
        total = len(selected)
        total_pages = math.ceil(total / per_page)
        start = (page - 1) * per_page
        return JSONResponse(
            {
                "supplier_invoices": selected[start : start + per_page],
                "meta": {
                    "current_page": page,
                    "next_page": page + 1 if page < total_pages else None,
                    "prev_page": page - 1 if page > 1 else None,
                    "total_pages": total_pages,
                    "total_count": total,
                    "per_page": per_page,
                },
            }
        )

    @app.get("/v2/supplier_invoices/{invoice_id}")
    def get_supplier_invoice(invoice_id: str, request: Request) -> JSONResponse:
        authorize(request)
        position = by_id.get(invoice_id)
        record = None if position is None else records[position]
        if record is None:
            raise QontoError(404, "not_found", f"Supplier invoice {invoice_id} not found")
        return JSONResponse({"supplier_invoice": record})

    @app.get("/v2/attachments/{attachment_id}")
    def get_attachment(attachment_id: str, request: Request) -> JSONResponse:
        authorize(request)
        attachment = fixtures.qonto_attachments.get(attachment_id)
        if attachment is None or not fixtures.attachment_file(attachment_id).is_file():
            raise QontoError(404, "not_found", f"Attachment {attachment_id} not found")
        expires = int(options.clock().timestamp() + options.attachment_url_ttl_seconds)
        signature = _sign(signing_key, attachment_id, expires)
        url = f"{str(request.base_url).rstrip('/')}/files/{attachment_id}?expires={expires}&signature={signature}"
        return JSONResponse({"attachment": {**attachment, "url": url}})

    @app.get("/files/{attachment_id}")
    def download_file(attachment_id: str, request: Request) -> Response:
        # Pre-signed like the storage links Qonto hands out: no bearer token, an expiring signature.
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            return _access_denied("Query-string authentication requires the expires and signature parameters")
        signature = request.query_params.get("signature", "")
        if not hmac.compare_digest(signature, _sign(signing_key, attachment_id, expires)):
            return _access_denied(
                "The request signature we calculated does not match the signature you provided"
            )
        if options.clock().timestamp() >= expires:
            return _access_denied("Request has expired")
        path = fixtures.attachment_file(attachment_id)
        if not path.is_file():
            return Response(status_code=404)
        attachment = fixtures.qonto_attachments.get(attachment_id, {})
        file_name = str(attachment.get("file_name") or f"{attachment_id}.pdf").replace('"', "")
        return Response(
            path.read_bytes(),
            media_type=str(attachment.get("file_content_type") or "application/pdf"),
            headers={"Content-Disposition": f'inline; filename="{file_name}"'},
        )

    @app.get("/oauth2/auth")
    def oauth_authorize(request: Request) -> Response:
        # The sandbox's user is always logged in; a browser is asked to consent first.
        params = request.query_params
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") != oauth_client.client_id or not _is_loopback(redirect_uri):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Unknown client or redirect_uri."},
                status_code=400,
            )
        if params.get("response_type") != "code":
            return JSONResponse({"error": "unsupported_response_type"}, status_code=400)
        consent = consent_answer(request, "Qonto")
        if consent is not None:
            return consent
        code = f"ory_ac_{secrets.token_urlsafe(24)}"
        with tokens.lock:
            tokens.codes[code] = (redirect_uri, params.get("scope", ""))
        separator = "&" if "?" in redirect_uri else "?"
        state = params.get("state", "")
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode({'code': code, 'state': state})}")

    @app.post("/oauth2/token")
    async def oauth_token(request: Request) -> JSONResponse:
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        client_ok = hmac.compare_digest(
            form.get("client_id", ""), oauth_client.client_id
        ) and hmac.compare_digest(form.get("client_secret", ""), oauth_client.client_secret)
        if not client_ok:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed."},
                status_code=401,
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            issued = tokens.exchange_code(form.get("code", ""), form.get("redirect_uri", ""))
        elif grant_type == "refresh_token":
            issued = tokens.refresh(form.get("refresh_token", ""))
        else:
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Use authorization_code or refresh_token.",
                },
                status_code=400,
            )
        if issued is None:
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_description": "The refresh token is invalid, expired or revoked.",
                },
                status_code=400,
            )
        return JSONResponse(issued, headers={"Cache-Control": "no-store"})

    return app


def _is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _fault_error(status: int, auth: str | None, path: str) -> tuple[int, dict[str, Any]]:
    """Qonto's answer to an injected fault, in its JSON:API error shape."""
    if auth is not None:
        if path.startswith("/oauth2/"):
            return 400, {"error": "invalid_grant", "error_description": f"The token is {auth}."}
        return 401, {"errors": [{"code": "unauthorized", "detail": "Unauthorized"}]}
    code = {429: "too_many_requests"}.get(status, "internal_error" if status >= 500 else "error")
    return status, {"errors": [{"code": code, "detail": f"injected HTTP {status}"}]}


def _access_denied(message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=403, media_type="application/xml")
