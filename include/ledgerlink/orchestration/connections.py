"""Airflow connections naming the outside world. Pointing at real services means changing these
connections (or their ``AIRFLOW_CONN_*`` variables), never code."""

from __future__ import annotations

from airflow.sdk import BaseHook

from ledgerlink.mail import SmtpEndpoint
from ledgerlink.orchestration.connection_ids import EMAIL_IN_CONN_ID, NOTIFICATIONS_CONN_ID


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
