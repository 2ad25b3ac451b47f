"""Serves ledgerlink's webhook receiver inside Airflow's API server, under /ledgerlink/webhooks.

The app is built here, cheaply (no database or network at import); it opens warehouse
connections only when a delivery arrives.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ledgerlink.webhooks.app import create_webhook_app


class LedgerlinkWebhooksPlugin(AirflowPlugin):
    name = "ledgerlink_webhooks"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {"app": create_webhook_app(), "url_prefix": "/ledgerlink/webhooks", "name": "ledgerlink webhooks"}
    ]
