"""Airflow connections naming the outside world. Pointing at real services means changing these
connections (or their ``AIRFLOW_CONN_*`` variables), never code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from ledgerlink.mail import SmtpEndpoint
from ledgerlink.orchestration.connection_ids import EMAIL_IN_CONN_ID, NOTIFICATIONS_CONN_ID

if TYPE_CHECKING:
    from ledgerlink.extraction import SourceAccess
    from ledgerlink.sources.oauth import OAuthClient


def api_base_url(conn_id: str) -> str:
    """The API base URL held by an HTTP connection: a host with its scheme, or schema + host + port."""
    connection = BaseHook.get_connection(conn_id)
    host = connection.host or ""
    if "://" not in host:
        host = f"{connection.schema or 'https'}://{host}"
    if connection.port:
        host = f"{host.rstrip('/')}:{connection.port}"
    return host.rstrip("/")


def smtp_endpoint(conn_id: str = EMAIL_IN_CONN_ID) -> SmtpEndpoint:
    connection = BaseHook.get_connection(conn_id)
    extra = connection.extra_dejson
    return SmtpEndpoint(
        host=connection.host or "127.0.0.1",
        port=int(connection.port or 25),
        sender=str(extra["from_address"]),
        username=connection.login or None,
        password=connection.password or None,
        starttls=bool(extra.get("starttls", False)),
    )


def notifier_endpoint(conn_id: str = NOTIFICATIONS_CONN_ID) -> SmtpEndpoint | None:
    """The SMTP endpoint for owner notices, or ``None`` when no such connection is configured
    (incidents are then recorded and shown, but nobody is emailed)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return smtp_endpoint(conn_id)
    except AirflowNotFoundException:
        return None


def source_access(conn_id: str, source: str, notifier: SmtpEndpoint | None = None) -> SourceAccess:
    """How to reach a source from its HTTP connection: the API base URL, and the OAuth application
    when the connection holds one (login = client id, password = client secret, extras
    ``token_url`` and ``authorize_url``), which ledgerlink needs to refresh tokens."""
    from ledgerlink.extraction import SourceAccess
    from ledgerlink.sources.oauth import QONTO_SCOPES, SQUARE_SCOPES, OAuthClient

    connection = BaseHook.get_connection(conn_id)
    extra = connection.extra_dejson
    oauth = None
    if connection.login and extra.get("token_url"):
        oauth = OAuthClient(
            authorize_url=str(extra.get("authorize_url", "")),
            token_url=str(extra["token_url"]),
            client_id=connection.login,
            client_secret=connection.password or None,
            scopes=QONTO_SCOPES if source == "qonto" else SQUARE_SCOPES,
        )
    return SourceAccess(base_url=api_base_url(conn_id), oauth=oauth, notifier=notifier)


def oauth_application(source: str) -> OAuthClient | None:
    """The source's OAuth application from its Airflow connection (:func:`source_access`), when it
    names one with an ``authorize_url`` a person can be sent to; ``None`` otherwise (then only
    ``ledgerlink connect`` can reconnect the source)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from ledgerlink.orchestration.connection_ids import SOURCE_CONN_IDS

    try:
        oauth = source_access(SOURCE_CONN_IDS[source], source).oauth
    except AirflowNotFoundException:
        return None
    return oauth if oauth is not None and oauth.authorize_url else None
