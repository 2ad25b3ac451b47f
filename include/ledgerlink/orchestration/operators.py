"""ledgerlink's operators. ``__init__`` stays cheap; clients and connections are built in
``execute``. Each is a transaction keyed on natural keys, so a retry or rerun changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ledgerlink.orchestration.connection_ids import EMAIL_IN_CONN_ID, SOURCE_CONN_IDS


class PrepareWarehouseOperator(BaseOperator):
    """Apply pending warehouse migrations and return the active workspace ids (for fan-out)."""

    def execute(self, context: Any) -> list[str]:
        from ledgerlink.warehouse import connect
        from ledgerlink.warehouse.migrations import migrate
        from ledgerlink.workspaces import active_workspace_ids

        with connect() as conn:
            applied = migrate(conn)
            if applied:
                self.log.info("applied migrations: %s", ", ".join(applied))
            return active_workspace_ids(conn)


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
        from ledgerlink.blobstore import BlobStore
        from ledgerlink.credentials import NotConnected
        from ledgerlink.orchestration.connections import api_base_url
        from ledgerlink.orchestration.runtime import extraction_window
        from ledgerlink.settings import load_settings
        from ledgerlink.warehouse import connect

        base_url = api_base_url(SOURCE_CONN_IDS[self.source])
        window = extraction_window(context)
        with connect() as conn:
            try:
                if self.source == "qonto":
                    blobs = BlobStore(load_settings().blob_dir)
                    landed = extraction.extract_qonto(conn, self.workspace_id, base_url, window, blobs)
                elif self.source == "square":
                    landed = extraction.extract_square(conn, self.workspace_id, base_url, window)
                else:
                    landed = extraction.extract_quickbooks(conn, self.workspace_id, base_url, window)
            except NotConnected as error:
                raise AirflowFailException(str(error)) from error  # retrying cannot connect it
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
        from ledgerlink.matching import route_workspace
        from ledgerlink.orchestration.runtime import extraction_window
        from ledgerlink.warehouse import connect

        window = extraction_window(context)
        with connect() as conn:
            counts = route_workspace(conn, self.workspace_id, window.run_id, window.window_end)
        self.log.info("workspace %s: routed %s", self.workspace_id, counts)
        return counts


class EmailDeliveryOperator(BaseOperator):
    """Send the workspace's pending outbox rows to its QuickBooks email-in address."""

    template_fields: Sequence[str] = ("workspace_id",)

    def __init__(self, *, workspace_id: str, email_conn_id: str = EMAIL_IN_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.email_conn_id = email_conn_id

    def execute(self, context: Any) -> dict[str, int]:
        from ledgerlink.blobstore import BlobStore
        from ledgerlink.delivery import deliver_pending
        from ledgerlink.orchestration.connections import smtp_endpoint
        from ledgerlink.settings import load_settings
        from ledgerlink.warehouse import connect

        smtp = smtp_endpoint(self.email_conn_id)
        with connect() as conn:
            counts = deliver_pending(
                conn, self.workspace_id, smtp, BlobStore(load_settings().blob_dir), str(context["run_id"])
            )
        self.log.info("workspace %s: delivery %s", self.workspace_id, counts)
        return counts
