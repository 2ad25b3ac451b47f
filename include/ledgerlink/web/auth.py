"""Who is asking and what they may touch.

Authentication is Airflow's own: :func:`airflow.api_fastapi.core_api.security.get_user` reads the
JWT from the Airflow session cookie (or a bearer token) and refuses a request without a valid one.
A plugin app mounted into Airflow inherits no authentication, so every route of the pages
depends on :func:`current_reviewer`.

Authorisation is per workspace (``ops.workspace_members``): a user sees and acts on the
workspaces they are a member of and nothing else, whatever their Airflow role.

Memberships live in the configuration database; records in each workspace's storage region
(``ledgerlink.warehouse.regions``). A request works in one region: that of the workspace it names
(the ``workspace_id`` path parameter or the ``workspace`` query parameter), else that of the
user's first workspace. ``Reviewer.workspace_ids``, which every query filters by, holds only that
region's workspaces, so a page never mixes regions, and :data:`WarehouseDep` opens that region's
database. With one region (the
embedded default) nothing changes: every workspace is in it.

State-changing requests carry a CSRF token bound to the user's credential: an HMAC, keyed with
Airflow's JWT secret (shared by every api-server worker), of the token that authenticated them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, Form, HTTPException, Request, status

from ledgerlink.warehouse import connect, connect_region, resolve_server
from ledgerlink.warehouse.regions import workspace_regions
from ledgerlink.web import queries

CSRF_FIELD = "csrf_token"


def configuration_connection() -> Iterator[psycopg.Connection]:
    """A connection to the configuration database (memberships, the workspace registry)."""
    with connect(resolve_server()) as conn:
        yield conn


ConfigurationDep = Annotated[psycopg.Connection, Depends(configuration_connection)]


@dataclass(frozen=True)
class Reviewer:
    username: str
    workspaces: list[queries.WorkspaceRef]
    csrf_token: str
    #: the storage region this request works in, and each workspace's region
    region: str = ""
    workspace_regions: dict[str, str] = field(default_factory=dict)

    @property
    def workspace_ids(self) -> list[str]:
        """The workspaces this request may read and act on: the user's, in the request's region
        (``workspaces`` lists them all, e.g. to choose one and so another region)."""
        return [
            workspace.workspace_id
            for workspace in self.workspaces
            if self.workspace_regions.get(workspace.workspace_id, self.region) == self.region
        ]

    @property
    def workspace_names(self) -> dict[str, str]:
        return {workspace.workspace_id: workspace.display_name for workspace in self.workspaces}

    def may_see(self, workspace_id: str) -> bool:
        return workspace_id in self.workspace_ids


def _presented_credential(request: Request) -> str:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")


def _csrf_key() -> bytes:
    from airflow.configuration import conf

    return conf.get("api_auth", "jwt_secret").encode()


def csrf_token_for(username: str, credential: str) -> str:
    message = f"ledgerlink-csrf\x00{username}\x00{credential}".encode()
    return hmac.new(_csrf_key(), message, hashlib.sha256).hexdigest()


def current_reviewer(request: Request, user: GetUserDep, conn: ConfigurationDep) -> Reviewer:
    """The authenticated Airflow user with the workspaces they may work on in this request's
    region."""
    username = user.get_name()
    workspaces = queries.member_workspaces(conn, username)
    regions = workspace_regions(conn, [workspace.workspace_id for workspace in workspaces])
    named = str(request.path_params.get("workspace_id") or request.query_params.get("workspace") or "")
    region = regions.get(named) or next(iter(regions.values()), "")
    return Reviewer(
        username=username,
        workspaces=workspaces,
        csrf_token=csrf_token_for(username, _presented_credential(request)),
        region=region,
        workspace_regions=regions,
    )


ReviewerDep = Annotated[Reviewer, Depends(current_reviewer)]


def warehouse_connection(reviewer: ReviewerDep) -> Iterator[psycopg.Connection]:
    """A connection, for one request, to the database of the region the request works in (a
    user with no workspace gets the configuration database, where they see nothing)."""
    with connect_region(reviewer.region) if reviewer.region else connect(resolve_server()) as conn:
        yield conn


WarehouseDep = Annotated[psycopg.Connection, Depends(warehouse_connection)]


def checked_csrf(reviewer: ReviewerDep, csrf_token: Annotated[str, Form()] = "") -> Reviewer:
    """The reviewer, once the form's CSRF token proves the request came from their own page."""
    if not csrf_token or not hmac.compare_digest(csrf_token, reviewer.csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The form is stale or forged; reload the page.")
    return reviewer


CsrfCheckedReviewerDep = Annotated[Reviewer, Depends(checked_csrf)]
