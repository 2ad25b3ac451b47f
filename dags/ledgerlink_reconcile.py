"""
### ledgerlink_reconcile

Every 15 minutes, for each active workspace: land new Qonto supplier invoices (with their PDF
attachments), Square payments and customers, and the QuickBooks ledger in `raw`; build the match
features with dbt; score and route every new record (`auto_link`, `review`, `refused`); build the
reporting marts; and email each auto-linked record's document to the workspace's QuickBooks
email-in address.

Every task is idempotent: rerunning a run, or backfilling a window twice, lands, decides and sends
nothing twice.

One workspace's failure never stops another's: the shared dbt stage waits for every extraction to
finish, failed or not; scoring is mapped per workspace; delivery is planned once every workspace
is scored, failed or not, and mapped per workspace and shard. The run still ends failed, so the
failure is visible and retried.

Delivery scales out on the executor: `plan_delivery` splits each workspace's due outbox into
shards (one per 500 documents, at most `LEDGERLINK_DELIVERY_SHARDS`, default 3), and each shard
is its own `deliver_documents` task instance, so the LocalExecutor sends them as parallel
processes and the CeleryExecutor spreads them over its workers; each task sends over
`LEDGERLINK_DELIVERY_SESSIONS` SMTP sessions at once (default 4). A workspace whose scoring failed
still sends what was queued for it before.

Each workspace's tasks work in its storage region's database and blob store; dbt builds each
configured region on its own (`dbt_match_features_<region>`; the embedded default has one region,
built by `dbt_match_features`). The region list comes from the environment, never a database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException

from ledgerlink.orchestration.dbt import MATCH_FEATURE_SELECTORS, REPORTING_SELECTORS, dbt_task_group
from ledgerlink.orchestration.operators import (
    EmailDeliveryOperator,
    ExtractSourceOperator,
    PlanDeliveryOperator,
    PrepareWarehouseOperator,
    ScoringOperator,
)
from ledgerlink.warehouse.regions import configured_regions

DEFAULT_ARGS = {
    "owner": "ledgerlink",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def report_failures() -> None:
    """Runs only when a task of the run failed, and fails the run with it."""
    raise AirflowFailException("a task of this run failed: see the failed tasks (other workspaces went on)")


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
    # dbt builds every workspace at once; a workspace whose extraction failed is built from what
    # it landed before, and the others go on.
    extraction_finished = EmptyOperator(task_id="extraction_finished", trigger_rule=TriggerRule.ALL_DONE)
    regions = configured_regions().values()
    match_features = [
        dbt_task_group("dbt_match_features", MATCH_FEATURE_SELECTORS, region) for region in regions
    ]

    scoring = ScoringOperator.partial(task_id="score_and_route").expand(workspace_id=workspace_ids)
    # Airflow cannot map a task inside a mapped group, so the shards of every workspace are one
    # flat list, planned once scoring is done everywhere (failed or not).
    delivery_shards = PlanDeliveryOperator(
        task_id="plan_delivery", workspace_ids=workspace_ids, trigger_rule=TriggerRule.ALL_DONE
    )
    delivery = EmailDeliveryOperator.partial(task_id="deliver_documents").expand_kwargs(
        delivery_shards.output
    )
    delivery_finished = EmptyOperator(task_id="delivery_finished", trigger_rule=TriggerRule.ALL_DONE)
    reporting_marts = [
        dbt_task_group("dbt_reporting_marts", REPORTING_SELECTORS, region) for region in regions
    ]

    extracts >> extraction_finished >> match_features
    for region_features in match_features:
        region_features >> scoring
    scoring >> delivery_shards
    delivery >> delivery_finished >> reporting_marts
    # The gates above succeed even when a workspace failed, so without this the run would look
    # green; any failure anywhere fails the run, after everything else has had its chance.
    [*extracts, *match_features, scoring, delivery_shards, delivery, *reporting_marts] >> report_failures()


ledgerlink_reconcile()
