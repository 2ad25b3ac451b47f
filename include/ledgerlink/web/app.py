"""The people's pages, a FastAPI app mounted into Airflow's api-server by the plugin in
``plugins/ledgerlink_pages.py``: the review queue, one record's review page, its audit trail and
the integration status.

Every route depends on :func:`ledgerlink.web.auth.current_reviewer` (Airflow's authentication,
then workspace membership); state-changing routes on the CSRF-checked variant. Reads go through
:mod:`ledgerlink.web.queries`, review actions through :mod:`ledgerlink.review`. Templates are
autoescaped; scripts are static files, so the Content-Security-Policy forbids inline script.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
from fastapi import FastAPI, Form, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledgerlink.delivery.documents import DocumentUnavailable, qonto_attachment, render_square_receipt
from ledgerlink.money import format_money
from ledgerlink.review import ReviewChoice, ReviewRefused, take_review_action
from ledgerlink.warehouse.regions import blob_store_for_workspace
from ledgerlink.web import queries
from ledgerlink.web.auth import CsrfCheckedReviewerDep, Reviewer, ReviewerDep, WarehouseDep

HERE = Path(__file__).parent
QUEUE_PAGE_SIZE = 50
#: The matcher's comparisons (``explanation.contributions``, match weights in bits).
FEATURE_LABELS = {
    "name": "Name similarity",
    "amount": "Amount",
    "date_lag": "Date lag",
    "currency": "Currency",
    "reference": "Reference",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " object-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ERROR_TITLES = {
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    422: "That request is not valid",
}

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)
_environment.globals["money"] = format_money
_environment.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
_environment.filters["percent"] = lambda value: f"{float(value) * 100:.0f}%"
templates = Jinja2Templates(env=_environment)


def _render(
    request: Request, template: str, reviewer: Reviewer, code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"reviewer": reviewer, "feature_labels": FEATURE_LABELS, **context},
        status_code=code,
    )


def _workspace_filter(reviewer: Reviewer, workspace: str | None) -> list[str]:
    if workspace is None or workspace == "":
        return reviewer.workspace_ids
    if not reviewer.may_see(workspace):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You are not a member of that workspace.")
    return [workspace]


def _decision_or_404(conn: Any, reviewer: Reviewer, decision_id: int) -> queries.Decision:
    # another workspace's decision is as absent as a missing one: its existence is not disclosed
    found = queries.decision(conn, reviewer.workspace_ids, decision_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such record in your workspaces.")
    return found


def create_app() -> FastAPI:
    app = FastAPI(title="ledgerlink pages", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for header, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def errors_for_people(request: Request, error: StarletteHTTPException) -> Response:
        """A browser gets a page (without a session: Airflow's login, then back); API clients JSON."""
        if "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, error)
        if error.status_code == 401 and request.method == "GET":
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status.HTTP_303_SEE_OTHER)
        title = _ERROR_TITLES.get(error.status_code, "Something went wrong")
        return templates.TemplateResponse(
            request, "error.html.j2", {"title": title, "detail": error.detail}, status_code=error.status_code
        )

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", include_in_schema=False)
    def index(request: Request, reviewer: ReviewerDep) -> RedirectResponse:
        return RedirectResponse(request.url_for("queue_page"), status.HTTP_303_SEE_OTHER)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(
        request: Request,
        reviewer: ReviewerDep,
        conn: WarehouseDep,
        workspace: str | None = None,
        source: Literal["", "qonto", "square"] = "",
        show: Literal["review", "refused"] = "review",
        sort: queries.QueueSort = "score",
        direction: queries.SortDirection = "desc",
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        done: int | None = None,
    ) -> HTMLResponse:
        read_page = queries.refused_records_page if show == "refused" else queries.review_queue_page
        page_of_items = read_page(
            conn,
            _workspace_filter(reviewer, workspace),
            source=source or None,
            sort=sort,
            direction=direction,
            page=page,
            page_size=QUEUE_PAGE_SIZE,
        )
        filters = {
            "workspace": workspace or "",
            "source": source,
            "sort": sort,
            "direction": direction,
            "show": show,
        }
        return _render(request, "queue.html.j2", reviewer, queue=page_of_items, filters=filters, done=done)

    @app.get("/decisions/{decision_id}", response_class=HTMLResponse)
    def review_page(
        request: Request,
        reviewer: ReviewerDep,
        conn: WarehouseDep,
        decision_id: int,
        q: Annotated[str, Query(max_length=100)] = "",
        done: int | None = None,
    ) -> HTMLResponse:
        return _review_page(request, reviewer, conn, decision_id, q, done=done)

    @app.get("/decisions/{decision_id}/document")
    def document(reviewer: ReviewerDep, conn: WarehouseDep, decision_id: int) -> Response:
        found = _decision_or_404(conn, reviewer, decision_id)
        try:
            if found.source == "qonto":
                blobs = blob_store_for_workspace(found.workspace_id)
                file_name, content = qonto_attachment(
                    conn, blobs, found.workspace_id, found.source_record_id, found.source_payload_sha256
                )
            else:
                file_name, content = f"square-{found.source_record_id}.pdf", _square_receipt(found, reviewer)
        except (DocumentUnavailable, FileNotFoundError) as error:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, "The document is not in the blob store."
            ) from error
        safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in file_name)
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{safe_name}"'},
        )

    @app.post("/decisions/{decision_id}/actions")
    def review_action(
        request: Request,
        reviewer: CsrfCheckedReviewerDep,
        conn: WarehouseDep,
        decision_id: int,
        choice: Annotated[ReviewChoice, Form()],
        candidate_type: Annotated[str | None, Form(max_length=20)] = None,
        candidate_id: Annotated[str | None, Form(max_length=100)] = None,
    ) -> Response:
        found = _decision_or_404(conn, reviewer, decision_id)
        try:
            take_review_action(
                conn,
                workspace_id=found.workspace_id,
                decision_id=decision_id,
                choice=choice,
                actor=reviewer.username,
                acted_at=datetime.now(UTC),
                candidate_type=candidate_type,
                candidate_id=candidate_id,
            )
        except ReviewRefused as refusal:
            return _review_page(request, reviewer, conn, decision_id, "", error=str(refusal))
        following = queries.next_in_queue(conn, [found.workspace_id], decision_id)
        target = (
            request.url_for("review_page", decision_id=following).include_query_params(
                done=decision_id, workspace=found.workspace_id
            )
            if following is not None
            else request.url_for("queue_page").include_query_params(done=decision_id)
        )
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)

    @app.get("/records/{workspace_id}/{source}/{source_record_id}", response_class=HTMLResponse)
    def audit_trail_page(
        request: Request,
        reviewer: ReviewerDep,
        conn: WarehouseDep,
        workspace_id: str,
        source: Literal["qonto", "square"],
        source_record_id: str,
    ) -> HTMLResponse:
        if not reviewer.may_see(workspace_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such record in your workspaces.")
        trail = queries.audit_trail(conn, workspace_id, source, source_record_id)
        if trail is None or (not trail.landed_versions and trail.decision is None):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such record in your workspaces.")
        return _render(
            request,
            "record.html.j2",
            reviewer,
            trail=trail,
            workspace_id=workspace_id,
            source=source,
            source_record_id=source_record_id,
        )

    @app.get("/status", response_class=HTMLResponse)
    def status_page(
        request: Request, reviewer: ReviewerDep, conn: WarehouseDep, workspace: str | None = None
    ) -> HTMLResponse:
        report = queries.integration_status(conn, _workspace_filter(reviewer, workspace))
        return _render(
            request, "status.html.j2", reviewer, report=report, filters={"workspace": workspace or ""}
        )

    return app


def _square_receipt(found: queries.Decision, reviewer: Reviewer) -> bytes:
    top = found.candidates[0] if found.candidates else {}
    workspace_name = next(
        (w.display_name for w in reviewer.workspaces if w.workspace_id == found.workspace_id),
        found.workspace_id,
    )
    return render_square_receipt(
        {
            "source_record_id": found.source_record_id,
            "counterparty_name": found.counterparty_name,
            "amount_minor": found.amount_minor,
            "currency": found.currency,
            "occurred_on": found.occurred_on.isoformat() if found.occurred_on else None,
            "reference": found.reference,
            "matched_id": top.get("candidate_id"),
            "matched_name": top.get("candidate_name"),
            "score": float(found.score),
        },
        workspace_name,
    )


def _review_page(
    request: Request,
    reviewer: Reviewer,
    conn: Any,
    decision_id: int,
    search_text: str,
    *,
    done: int | None = None,
    error: str | None = None,
) -> HTMLResponse:
    found = _decision_or_404(conn, reviewer, decision_id)
    search_text = search_text.strip()
    results = queries.search_ledger(conn, found.workspace_id, search_text) if search_text else []
    return _render(
        request,
        "review.html.j2",
        reviewer,
        code=status.HTTP_409_CONFLICT if error else status.HTTP_200_OK,
        decision=found,
        actions=queries.review_actions(conn, decision_id),
        search_text=search_text,
        search_results=results,
        done=done,
        error=error,
    )
