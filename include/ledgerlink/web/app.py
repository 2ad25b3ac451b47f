"""The people's pages, a FastAPI app mounted into Airflow's api-server by the plugin in
``plugins/ledgerlink_pages.py``: the review queue, one record's review page, its audit trail, the
integration status (with its actions: retry a delivery after a fix, mark a record changed after
delivery as checked, and reconnect a source through the OAuth code flow of
:mod:`ledgerlink.sources.authorization`, whose callback is a route here), settings and dashboard.

Every route depends on :func:`ledgerlink.web.auth.current_reviewer` (Airflow's authentication,
then workspace membership); state-changing routes on the CSRF-checked variant. Reads go through
:mod:`ledgerlink.web.queries`, review actions through :mod:`ledgerlink.review`. Templates are
autoescaped; scripts are static files, so the Content-Security-Policy forbids inline script.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import jinja2
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledgerlink import workspace_settings
from ledgerlink.credentials import CONNECTED, connection_status
from ledgerlink.delivery.acknowledgements import acknowledge_changed_record
from ledgerlink.delivery.documents import DocumentUnavailable, qonto_attachment, render_square_receipt
from ledgerlink.delivery.mappings import DEFAULT_FIELDS, mapping_in_effect
from ledgerlink.delivery.retry import DeliveryNotFound, retry_delivery
from ledgerlink.money import format_money
from ledgerlink.orchestration.connection_ids import SOURCE_CONN_IDS
from ledgerlink.orchestration.connections import oauth_application
from ledgerlink.review import ReviewChoice, ReviewRefused, take_review_action
from ledgerlink.sources.authorization import (
    SOURCES,
    AuthorizationRefused,
    begin_authorization,
    finish_authorization,
    workspace_of_state,
)
from ledgerlink.sources.oauth import OAuthClient
from ledgerlink.warehouse.regions import blob_store_for_workspace, connect_for_workspace
from ledgerlink.web import charts, queries
from ledgerlink.web.auth import CsrfCheckedReviewerDep, Reviewer, ReviewerDep, WarehouseDep

HERE = Path(__file__).parent
ActionResult = TypeVar("ActionResult")
QUEUE_PAGE_SIZE = 50
#: The matcher's comparisons (``explanation.contributions``, match weights in bits).
FEATURE_LABELS = {
    "name": "Name similarity",
    "amount": "Amount",
    "date_lag": "Date lag",
    "currency": "Currency",
    "reference": "Reference",
    "confirmed_before": "Linked by a reviewer before",
    "name_look_alikes": "Name's look-alikes in the ledger",
    "invoice_balance": "Invoice likely paid by another charge",
}


def _content_security_policy(form_targets: tuple[str, ...] = ()) -> str:
    """No inline script; forms post to the pages only, or to ``form_targets`` (origins a form's
    answer redirects to: browsers hold a redirect after a form to ``form-action`` too)."""
    form_action = " ".join(["'self'", *form_targets])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        f" object-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action {form_action};"
        " base-uri 'none'"
    )


_SECURITY_HEADERS = {
    "Content-Security-Policy": _content_security_policy(),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ERROR_TITLES = {
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    400: "That did not work",
    409: "That cannot be done here",
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
    request: Request,
    template: str,
    reviewer: Reviewer,
    code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"reviewer": reviewer, "feature_labels": FEATURE_LABELS, **context},
        status_code=code,
        headers=headers,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class WorkspaceChoice:
    """Which of the reviewer's workspaces a page shows: the one asked for (``?workspace=``, a
    membership checked by :func:`choose_workspace`), else all of them."""

    reviewer: Reviewer
    #: the workspace asked for, ``""`` for all
    asked: str

    @property
    def workspace_ids(self) -> list[str]:
        return [self.asked] if self.asked else self.reviewer.workspace_ids

    @property
    def one(self) -> str:
        """For a page that edits one workspace: the one asked for, or the reviewer's first."""
        if self.asked:
            return self.asked
        if not self.reviewer.workspace_ids:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "You are not a member of any workspace.")
        return self.reviewer.workspace_ids[0]

    def render(
        self, request: Request, template: str, *, filters: dict[str, Any] | None = None, **context: Any
    ) -> HTMLResponse:
        """The page, with the workspace filter (and ``filters``) as the person chose them."""
        return _render(
            request, template, self.reviewer, filters={"workspace": self.asked, **(filters or {})}, **context
        )


def choose_workspace(reviewer: Reviewer, workspace: str | None) -> WorkspaceChoice:
    if workspace and not reviewer.may_see(workspace):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You are not a member of that workspace.")
    return WorkspaceChoice(reviewer, workspace or "")


def _chosen_workspace(reviewer: ReviewerDep, workspace: str | None = None) -> WorkspaceChoice:
    return choose_workspace(reviewer, workspace)


#: the ``?workspace=`` filter of a page, checked against the reviewer's memberships
WorkspaceChoiceDep = Annotated[WorkspaceChoice, Depends(_chosen_workspace)]


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
        chosen: WorkspaceChoiceDep,
        conn: WarehouseDep,
        source: Literal["", "qonto", "square"] = "",
        show: queries.QueueList = "review",
        sort: queries.QueueSort = "score",
        direction: queries.SortDirection = "desc",
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        done: int | None = None,
    ) -> HTMLResponse:
        page_of_items = queries.queue_page(
            conn,
            chosen.workspace_ids,
            show=show,
            source=source or None,
            sort=sort,
            direction=direction,
            page=page,
            page_size=QUEUE_PAGE_SIZE,
        )
        filters = {"source": source, "sort": sort, "direction": direction, "show": show}
        return chosen.render(request, "queue.html.j2", queue=page_of_items, filters=filters, done=done)

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
                file_name = f"square-{found.source_record_id}.pdf"
                content = _square_receipt(conn, found, reviewer)
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
        request: Request,
        chosen: WorkspaceChoiceDep,
        conn: WarehouseDep,
        retried: Annotated[str | None, Query(max_length=200)] = None,
        queued: int | None = None,
        reconnected: Literal["qonto", "square"] | None = None,
        resolved: Annotated[int | None, Query(ge=0)] = None,
        acknowledged: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HTMLResponse:
        report = queries.integration_status(conn, chosen.workspace_ids)
        broken = {
            c["source"] for c in report.connections if c["status"] != CONNECTED and c["source"] in SOURCES
        }
        applications = {source: oauth_application(source) for source in sorted(broken)}
        reconnectable = {source for source, application in applications.items() if application is not None}
        return chosen.render(
            request,
            "status.html.j2",
            headers={
                "Content-Security-Policy": _content_security_policy(
                    tuple(
                        _origin(application.authorize_url)
                        for application in applications.values()
                        if application
                    )
                )
            },
            report=report,
            retried=retried,
            queued=queued,
            reconnectable=reconnectable,
            reconnected=reconnected,
            resolved=resolved,
            acknowledged=acknowledged,
        )

    @app.post("/connections/{workspace_id}/{source}/reconnect")
    def reconnect(
        request: Request,
        reviewer: CsrfCheckedReviewerDep,
        conn: WarehouseDep,
        workspace_id: str,
        source: Literal["qonto", "square"],
    ) -> Response:
        """Start the OAuth code flow: send the person to the source to approve ledgerlink again."""
        if not reviewer.may_see(workspace_id) or connection_status(conn, workspace_id, source) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such connection in your workspaces.")
        application = oauth_application(source)
        if application is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"No OAuth application is configured for {source.capitalize()} in Airflow's connection"
                f" {SOURCE_CONN_IDS[source]}; an administrator reconnects with"
                f" `ledgerlink connect {source} --workspace {workspace_id}`.",
            )
        pending = begin_authorization(
            conn,
            application,
            workspace_id=workspace_id,
            source=source,
            redirect_uri=str(request.url_for("oauth_callback")),
            requested_by=reviewer.username,
            now=datetime.now(UTC),
        )
        return RedirectResponse(pending.authorize_url, status.HTTP_303_SEE_OTHER)

    @app.get("/connections/oauth/callback")
    def oauth_callback(
        request: Request,
        reviewer: ReviewerDep,
        state: Annotated[str, Query(max_length=200)] = "",
        code: Annotated[str | None, Query(max_length=2000)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """Where the source sends the person back: the code is exchanged and the tokens stored,
        only for a state this user started, unused and in time."""
        workspace_id = workspace_of_state(state)
        if workspace_id not in {workspace.workspace_id for workspace in reviewer.workspaces}:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "This authorization was not started by you here; nothing was changed. Start again with"
                " Reconnect.",
            )

        def application_for(source: str) -> OAuthClient:
            application = oauth_application(source)
            if application is None:
                raise AuthorizationRefused(f"No OAuth application is configured for {source}.")
            return application

        try:
            with connect_for_workspace(workspace_id) as conn:
                connected = finish_authorization(
                    conn,
                    application_for,
                    state=state,
                    code=code,
                    provider_error=error,
                    requested_by=reviewer.username,
                    now=datetime.now(UTC),
                    connected_by=reviewer.username,
                )
        except AuthorizationRefused as refusal:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refusal)) from refusal
        target = request.url_for("status_page").include_query_params(
            workspace=connected.workspace_id,
            reconnected=connected.source,
            resolved=connected.incidents_resolved,
        )
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)

    @app.post("/deliveries/{outbox_id}/retry")
    def retry_after_fix(
        request: Request,
        reviewer: CsrfCheckedReviewerDep,
        conn: WarehouseDep,
        outbox_id: int,
        workspace: Annotated[str, Form(max_length=63)] = "",
    ) -> Response:
        """Queue a rejected or failed delivery again, once its cause is fixed; the next run sends it."""
        retried = _act_on_outbox(
            conn,
            reviewer,
            outbox_id,
            "delivery",
            lambda workspace_id: retry_delivery(
                conn, workspace_id, actor=reviewer.username, outbox_id=outbox_id
            ),
        )
        conn.commit()
        return _back_to_status(
            request,
            reviewer,
            workspace,
            retried=f"{retried.source}:{retried.source_record_id}",
            queued=int(retried.queued),
        )

    @app.post("/deliveries/{outbox_id}/acknowledge")
    def acknowledge_changed(
        request: Request,
        reviewer: CsrfCheckedReviewerDep,
        conn: WarehouseDep,
        outbox_id: int,
        workspace: Annotated[str, Form(max_length=63)] = "",
    ) -> Response:
        """A person has checked QuickBooks for a record changed after delivery: record who and when."""
        acknowledgement = _act_on_outbox(
            conn,
            reviewer,
            outbox_id,
            "changed record",
            lambda workspace_id: acknowledge_changed_record(
                conn, workspace_id, outbox_id, actor=reviewer.username, at=datetime.now(UTC)
            ),
        )
        return _back_to_status(
            request,
            reviewer,
            workspace,
            acknowledged=f"{acknowledgement.source}:{acknowledgement.source_record_id}",
        )

    @app.get("/settings", response_class=HTMLResponse)
    def settings_page(
        request: Request,
        chosen: WorkspaceChoiceDep,
        conn: WarehouseDep,
        compare: Literal["thresholds", "mapping"] = "mapping",
        old: Annotated[int | None, Query(ge=0)] = None,
        new: Annotated[int | None, Query(ge=0)] = None,
        saved: str | None = None,
    ) -> HTMLResponse:
        return _settings_page(request, chosen.reviewer, conn, chosen.one, compare, old, new, saved=saved)

    @app.post("/settings", response_class=HTMLResponse)
    def save_settings(
        request: Request,
        reviewer: CsrfCheckedReviewerDep,
        conn: WarehouseDep,
        workspace: Annotated[str, Form(max_length=63)],
        auto_link_threshold: Annotated[str, Form(max_length=20)],
        review_threshold: Annotated[str, Form(max_length=20)],
        overrides: Annotated[str, Form(max_length=5000)] = "",
        ignored: Annotated[str, Form(max_length=1000)] = "",
        computed: Annotated[str, Form(max_length=10000)] = "",
    ) -> Response:
        workspace_id = choose_workspace(reviewer, workspace).one
        form = workspace_settings.SettingsForm(
            auto_link_threshold, review_threshold, overrides, ignored, computed
        )
        try:
            saved = workspace_settings.save_settings(
                conn, workspace_id, form, actor=reviewer.username, saved_at=datetime.now(UTC)
            )
        except workspace_settings.InvalidSettings as invalid:
            return _settings_page(
                request,
                reviewer,
                conn,
                workspace_id,
                "mapping",
                None,
                None,
                form=form,
                problems=invalid.problems,
            )
        conn.commit()
        parts = []
        if saved.threshold_version is not None:
            parts.append(f"thresholds version {saved.threshold_version}")
        if saved.mapping_version is not None:
            parts.append(f"mapping version {saved.mapping_version}")
        compare = "mapping" if saved.mapping_version is not None or not parts else "thresholds"
        target = request.url_for("settings_page").include_query_params(
            workspace=workspace_id, compare=compare, saved=" and ".join(parts) or "nothing changed"
        )
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard_page(
        request: Request,
        chosen: WorkspaceChoiceDep,
        conn: WarehouseDep,
        days: Annotated[int, Query(ge=7, le=366)] = 30,
    ) -> HTMLResponse:
        today = datetime.now(UTC).date()
        board = queries.dashboard(conn, chosen.workspace_ids, today, days)
        return chosen.render(
            request,
            "dashboard.html.j2",
            board=board,
            route_chart=charts.stacked_bars(board.days, board.routes_by_day, charts.ROUTE_COLOURS),
            failure_chart=charts.stacked_bars(board.days, board.failures_by_day, charts.FAILURE_COLOURS),
            age_chart=charts.bars(board.queue_age_buckets, colour="#9a6700"),
            precision_chart=charts.bars(
                [(label, value) for label, value, _measured in board.precision_by_week],
                colour="#1a7f37",
                as_percent=True,
            ),
            filters={"days": days},
        )

    return app


def _act_on_outbox(
    conn: Any, reviewer: Reviewer, outbox_id: int, what: str, act: Callable[[str], ActionResult]
) -> ActionResult:
    """``act(workspace_id)`` on outbox row ``outbox_id`` when the reviewer may act on its workspace;
    another workspace's row, or one the action does not apply to, is as absent as a missing one."""
    row = conn.execute(
        "select workspace_id from ops.delivery_outbox where outbox_id = %s", (outbox_id,)
    ).fetchone()
    if row is None or not reviewer.may_see(row[0]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No such {what} in your workspaces.")
    try:
        return act(str(row[0]))
    except DeliveryNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No such {what} in your workspaces.") from error


def _back_to_status(request: Request, reviewer: Reviewer, workspace: str, **notice: Any) -> RedirectResponse:
    """Back to the status page as the operator was looking at it, with what the action did."""
    shown = {"workspace": workspace} if workspace and reviewer.may_see(workspace) else {}
    target = request.url_for("status_page").include_query_params(**shown, **notice)
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


def _settings_page(
    request: Request,
    reviewer: Reviewer,
    conn: Any,
    workspace_id: str,
    compare: str,
    old: int | None,
    new: int | None,
    *,
    saved: str | None = None,
    form: workspace_settings.SettingsForm | None = None,
    problems: list[str] | None = None,
) -> HTMLResponse:
    thresholds = workspace_settings.threshold_history(conn, workspace_id)
    mappings = workspace_settings.mapping_history(conn, workspace_id)
    if form is None:
        spec = workspace_settings.current_spec(conn, workspace_id, datetime.now(UTC))
        latest = thresholds[0] if thresholds else {"auto_link_threshold": "", "review_threshold": ""}
        form = workspace_settings.SettingsForm(
            str(latest["auto_link_threshold"]),
            str(latest["review_threshold"]),
            "\n".join(f"{name} = {value}" for name, value in spec["overrides"].items()),
            ", ".join(spec["ignored"]),
            "\n".join(f"{name} = {value}" for name, value in spec["computed"].items()),
        )
    history = thresholds if compare == "thresholds" else mappings
    flatten = (
        workspace_settings.flatten_thresholds
        if compare == "thresholds"
        else (lambda version: workspace_settings.flatten_spec(version["spec"]))
    )
    by_version = {version["version"]: version for version in history}
    # by default the latest version against the one before it
    new = new if new in by_version else (history[0]["version"] if history else None)
    older = [version["version"] for version in history if new is not None and version["version"] < new]
    old = old if old in by_version else (older[0] if older else None)
    changes = (
        workspace_settings.diff(flatten(by_version[old]), flatten(by_version[new]))
        if old is not None and new is not None
        else []
    )
    return _render(
        request,
        "settings.html.j2",
        reviewer,
        code=status.HTTP_422_UNPROCESSABLE_ENTITY if problems else status.HTTP_200_OK,
        workspace_id=workspace_id,
        form=form,
        problems=problems or [],
        saved=saved,
        threshold_history=thresholds,
        mapping_history=mappings,
        compare=compare,
        old=old,
        new=new,
        changes=changes,
        field_names=", ".join(DEFAULT_FIELDS),
    )


def _square_receipt(conn: Any, found: queries.Decision, reviewer: Reviewer) -> bytes:
    """The receipt as it would be delivered now: with the mapping version queuing it would stamp."""
    top = found.candidates[0] if found.candidates else {}
    mapping = mapping_in_effect(conn, found.workspace_id, datetime.now(UTC))
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
            "mapping_version": mapping.version,
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
