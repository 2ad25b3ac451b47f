"""ledgerlink's pages in the Airflow UI: the review queue, the integration status, the dashboard
and the settings, each a
navigation entry (``external_views``) opening the FastAPI app mounted at ``/ledgerlink``.

The app (``ledgerlink.web.app``) authenticates every route with Airflow's own auth dependency
and authorises per workspace; importing this file touches no database.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ledgerlink.web.app import create_app

URL_PREFIX = "/ledgerlink"


class LedgerlinkPagesPlugin(AirflowPlugin):
    name = "ledgerlink_pages"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ledgerlink pages"}]
    external_views = [
        {
            "name": "Review queue",
            "href": f"{URL_PREFIX}/queue",
            "destination": "nav",
            "category": "ledgerlink",
            "url_route": "ledgerlink-review-queue",
        },
        {
            "name": "Integration status",
            "href": f"{URL_PREFIX}/status",
            "destination": "nav",
            "category": "ledgerlink",
            "url_route": "ledgerlink-integration-status",
        },
        {
            "name": "Reconciliation dashboard",
            "href": f"{URL_PREFIX}/dashboard",
            "destination": "nav",
            "category": "ledgerlink",
            "url_route": "ledgerlink-dashboard",
        },
        {
            "name": "Settings",
            "href": f"{URL_PREFIX}/settings",
            "destination": "nav",
            "category": "ledgerlink",
            "url_route": "ledgerlink-settings",
        },
    ]
