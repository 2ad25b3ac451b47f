"""Exchange rates for documents in a currency other than the workspace's home currency.

Rates come from QuickBooks (its ``ExchangeRate`` entity, read through the read-only client) or
from a workspace's own conversion rule; both land in ``ops.exchange_rates``, and a rule wins
over QuickBooks for the same date. :func:`ledgerlink.delivery.outbox.enqueue_document` applies
the latest rate dated on or before the posting time and keeps the rate and its date beside both
amounts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg

from ledgerlink.sources.quickbooks.client import QuickBooksClient
from ledgerlink.workspaces import Workspace

QUICKBOOKS = "quickbooks"
WORKSPACE_RULE = "workspace_rule"


def save_conversion_rule(
    conn: psycopg.Connection,
    workspace_id: str,
    source_currency: str,
    target_currency: str,
    rate: Decimal,
    rate_date: date,
) -> None:
    """The workspace's own rate for ``source_currency`` from ``rate_date`` on."""
    conn.execute(
        """
        insert into ops.exchange_rates
            (workspace_id, source_currency, target_currency, rate, rate_date, rate_source)
        values (%s, %s, %s, %s, %s, %s)
        on conflict (workspace_id, source_currency, target_currency, rate_date) do update set
            rate = excluded.rate, rate_source = excluded.rate_source
        """,
        (workspace_id, source_currency.upper(), target_currency.upper(), rate, rate_date, WORKSPACE_RULE),
    )


def refresh_quickbooks_rates(conn: psycopg.Connection, workspace: Workspace, client: QuickBooksClient) -> int:
    """Store QuickBooks' rates into the workspace's home currency; return how many rows were
    added or changed (a workspace rule for the same date is left alone)."""
    changed = 0
    for page in client.entity_pages("ExchangeRate", None):
        for rate in page:
            if str(rate.get("TargetCurrencyCode", "")).upper() != workspace.home_currency.upper():
                continue
            cursor = conn.execute(
                """
                insert into ops.exchange_rates
                    (workspace_id, source_currency, target_currency, rate, rate_date, rate_source)
                values (%s, %s, %s, %s, %s, %s)
                on conflict (workspace_id, source_currency, target_currency, rate_date) do update set
                    rate = excluded.rate
                where ops.exchange_rates.rate_source = %s and ops.exchange_rates.rate <> excluded.rate
                """,
                (
                    workspace.workspace_id,
                    str(rate["SourceCurrencyCode"]).upper(),
                    workspace.home_currency.upper(),
                    Decimal(str(rate["Rate"])),
                    date.fromisoformat(str(rate["AsOfDate"])),
                    QUICKBOOKS,
                    QUICKBOOKS,
                ),
            )
            changed += cursor.rowcount
    return changed
