"""ledgerlink's operators. ``__init__`` stays cheap; clients and connections are built in
``execute``. Each is a transaction keyed on natural keys, so a retry or rerun changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator

from ledgerlink.orchestration.connection_ids import EMAIL_IN_CONN_ID, SOURCE_CONN_IDS


class PrepareWarehouseOperator(BaseOperator):
    """Apply pending migrations to the configuration database and every region's, forget old OAuth
    authorization requests in every region, and return the active workspace ids (for fan-out)."""

    def execute(self, context: Any) -> list[str]:
        from ledgerlink.sources.authorization import forget_old_authorizations
        from ledgerlink.warehouse import connect
        from ledgerlink.warehouse.migrations import migrate
        from ledgerlink.warehouse.regions import configured_regions, connect_region, migrate_every_region
        from ledgerlink.workspaces import active_workspace_ids

        for region, applied in migrate_every_region().items():
            if applied:
                self.log.info("region %s: applied migrations: %s", region, ", ".join(applied))
        with connect() as conn:
            applied = migrate(conn)
            if applied:
                self.log.info("applied migrations: %s", ", ".join(applied))
            workspace_ids = active_workspace_ids(conn)
        now = datetime.now(UTC)
        for name, storage_region in configured_regions().items():
            with connect_region(storage_region) as conn:
                forgotten = forget_old_authorizations(conn, now)
            if forgotten:
                self.log.info("region %s: deleted %d old OAuth authorization requests", name, forgotten)
        return workspace_ids


class ExtractSourceOperator(BaseOperator):
    """Read one source for one workspace and land its records in ``raw.*``."""

    template_fields: Sequence[str] = ("workspace_id",)

    def __init__(self, *, source: str, workspace_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if source not in SOURCE_CONN_IDS:
            raise ValueError(f"unknown source {source!r}; expected one of {sorted(SOURCE_CONN_IDS)}")
        self.source = source
        self.workspace_id = workspace_id

    def execute(self, context: Any) -> dict[str, int]:
        from airflow.sdk.exceptions import AirflowFailException

        from ledgerlink import extraction
        from ledgerlink.credentials import NotConnected
        from ledgerlink.orchestration.connections import notifier_endpoint, source_access
        from ledgerlink.orchestration.runtime import extraction_window
        from ledgerlink.warehouse.regions import blob_store_for_workspace, connect_for_workspace

        access = source_access(SOURCE_CONN_IDS[self.source], self.source, notifier_endpoint())
        window = extraction_window(context)
        with connect_for_workspace(self.workspace_id) as conn:
            try:
                if self.source == "qonto":
                    blobs = blob_store_for_workspace(self.workspace_id)
                    landed = extraction.extract_qonto(conn, self.workspace_id, access, window, blobs)
                elif self.source == "square":
                    landed = extraction.extract_square(conn, self.workspace_id, access, window)
                else:
                    landed = extraction.extract_quickbooks(conn, self.workspace_id, access, window)
            except NotConnected as error:
                raise AirflowFailException(str(error)) from error  # never connected: retrying cannot help
        # A connection that broke (refused token) is recorded, announced once and skipped: the task
        # succeeds, so Airflow's retries do not hammer a source that refuses the token.
        self.log.info("workspace %s, %s: landed %s", self.workspace_id, self.source, landed)
        return landed


class ScoringOperator(BaseOperator):
    """Score the workspace's undecided records from ``marts.match_features`` and write routing
    decisions (and outbox rows for auto-links) to ``ops``."""

    template_fields: Sequence[str] = ("workspace_id",)

    def __init__(self, *, workspace_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id

    def execute(self, context: Any) -> dict[str, int]:
        from ledgerlink.matching import route_workspace, routing_progress
        from ledgerlink.orchestration.runtime import extraction_window, scoring_chunking
        from ledgerlink.progress import progress_while
        from ledgerlink.warehouse.regions import connect_for_workspace

        window = extraction_window(context)
        # route_workspace notes each step's seconds and chunks as it goes: the progress lines say
        # which steps are behind it and how far the current one is
        timings: dict[str, float] = {}
        with (
            connect_for_workspace(self.workspace_id) as conn,
            progress_while(
                self.log, f"workspace {self.workspace_id}: scoring", lambda: routing_progress(timings)
            ),
        ):
            counts = route_workspace(
                conn, self.workspace_id, window.run_id, window.window_end, timings, **scoring_chunking()
            )
        self.log.info("workspace %s: routed %s; %s", self.workspace_id, counts, timings)
        return counts


class PlanDeliveryOperator(BaseOperator):
    """Split each workspace's due outbox into shards (``ledgerlink.delivery.shards``) and return
    one set of keyword arguments per shard, for the email operator to be mapped over: each shard
    is its own task instance, so the executor sends them in parallel."""

    template_fields: Sequence[str] = ("workspace_ids",)

    def __init__(self, *, workspace_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_ids = workspace_ids

    def execute(self, context: Any) -> list[dict[str, Any]]:
        import psycopg

        from ledgerlink.delivery.shards import DeliveryShard, configured_max_shards, plan_delivery_shards
        from ledgerlink.warehouse.regions import connect_for_workspace

        max_shards = configured_max_shards()
        plan: list[dict[str, Any]] = []
        for workspace_id in self.workspace_ids:
            try:
                with connect_for_workspace(workspace_id) as conn:
                    shards = plan_delivery_shards(conn, workspace_id, max_shards)
            except (psycopg.Error, LookupError) as error:
                # one shard, whose task fails on its own: the other workspaces are still planned
                self.log.warning("workspace %s: delivery not planned (%s); one shard", workspace_id, error)
                shards = [DeliveryShard()]
            plan.extend(
                {"workspace_id": workspace_id, "shard_index": shard.index, "shard_count": shard.count}
                for shard in shards
            )
            self.log.info("workspace %s: delivery in %d shard(s)", workspace_id, len(shards))
        return plan


class EmailDeliveryOperator(BaseOperator):
    """Send one shard of the workspace's pending outbox rows (by default the whole outbox) to
    its QuickBooks email-in address."""

    template_fields: Sequence[str] = ("workspace_id",)

    def __init__(
        self,
        *,
        workspace_id: str,
        shard_index: int = 0,
        shard_count: int = 1,
        email_conn_id: str = EMAIL_IN_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.email_conn_id = email_conn_id

    def execute(self, context: Any) -> dict[str, int]:
        from ledgerlink.delivery import DeliveryShard, deliver_pending
        from ledgerlink.delivery.shards import configured_sessions
        from ledgerlink.orchestration.connections import notifier_endpoint, smtp_endpoint
        from ledgerlink.warehouse.regions import blob_store_for_workspace, connect_for_workspace

        shard = DeliveryShard(self.shard_index, self.shard_count)
        smtp = smtp_endpoint(self.email_conn_id)
        with connect_for_workspace(self.workspace_id) as conn:
            # A refused login opens an incident and notifies the owner once; the task itself
            # succeeds, since retrying it cannot fix credentials and nothing was lost.
            counts = deliver_pending(
                conn,
                self.workspace_id,
                smtp,
                blob_store_for_workspace(self.workspace_id),
                str(context["run_id"]),
                notifier=notifier_endpoint(),
                shard=shard,
                sessions=configured_sessions(),
            )
            # once per workspace, not per shard
            counts["posted"] = self._read_back(conn) if shard.index == 0 else 0
        self.log.info("workspace %s, %s: delivery %s", self.workspace_id, shard, counts)
        return counts

    def _read_back(self, conn: Any) -> int:
        """Link QuickBooks bills and purchases drafted from earlier documents to their deliveries.
        Best effort: a QuickBooks outage must not fail the sending, and the extract task already
        raises the QuickBooks incident when its token is refused."""
        from airflow.exceptions import AirflowNotFoundException

        from ledgerlink.credentials import load_token
        from ledgerlink.delivery.readback import read_back
        from ledgerlink.orchestration.connections import api_base_url
        from ledgerlink.sources.http import SourceError
        from ledgerlink.sources.quickbooks import QuickBooksClient
        from ledgerlink.workspaces import load_workspace

        realm_id = load_workspace(conn, self.workspace_id).quickbooks_realm_id
        if not realm_id:
            return 0
        try:
            base_url = api_base_url(SOURCE_CONN_IDS["quickbooks"])
            token = load_token(conn, self.workspace_id, "quickbooks")
            with QuickBooksClient(base_url, token.access_token, realm_id) as client:
                return read_back(conn, self.workspace_id, client)
        except (AirflowNotFoundException, LookupError, SourceError) as error:
            self.log.warning("workspace %s: read-back skipped: %s", self.workspace_id, error)
            return 0
