"""
### ledgerlink_reconcile

Every 15 minutes, for each active workspace: land new Qonto supplier invoices (with their PDF
attachments), Square payments and customers, and the QuickBooks ledger in `raw`; build the match
features with dbt; score and route every new record (`auto_link`, `review`, `refused`); build the
reporting marts; and email each auto-linked record's document to the workspace's QuickBooks
email-in address.

Every task is idempotent: rerunning a run, or backfilling a window twice, lands, decides and sends
nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag

from ledgerlink.orchestration.dbt import MATCH_FEATURE_SELECTORS, REPORTING_SELECTORS, dbt_task_group
from ledgerlink.orchestration.operators import (
    EmailDeliveryOperator,
    ExtractSourceOperator,
    PrepareWarehouseOperator,
    ScoringOperator,
)

DEFAULT_ARGS = {
    "owner": "ledgerlink",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="ledgerlink_reconcile",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ledgerlink", "reconciliation"],
    doc_md=__doc__,
)
def ledgerlink_reconcile() -> None:
    workspace_ids = PrepareWarehouseOperator(task_id="prepare_warehouse").output
    extracts = [
        ExtractSourceOperator.partial(task_id=f"extract_{source}", source=source).expand(
            workspace_id=workspace_ids
        )
        for source in ("qonto", "square", "quickbooks")
    ]
    match_features = dbt_task_group("dbt_match_features", MATCH_FEATURE_SELECTORS)
    scoring = ScoringOperator.partial(task_id="score_and_route").expand(workspace_id=workspace_ids)
    reporting_marts = dbt_task_group("dbt_reporting_marts", REPORTING_SELECTORS)
    delivery = EmailDeliveryOperator.partial(task_id="deliver_documents").expand(workspace_id=workspace_ids)

    extracts >> match_features >> scoring >> [reporting_marts, delivery]


ledgerlink_reconcile()
