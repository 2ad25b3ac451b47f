"""The delivery marts built by dbt over real deliveries: states (with a rejection and its
reason), the resolved mapping version agreeing with the stamp, and an open email-in incident
in connection health."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from dbt_cli import run_dbt
from delivery_rig import DeliveryRig, decide, square_record

from ledgerlink.delivery.mappings import save_mapping_version
from ledgerlink.delivery.sender import RetryPolicy, deliver_pending
from ledgerlink.warehouse.database import dbt_environment


def test_status_marts_show_states_rejections_versions_and_incidents(
    conn: psycopg.Connection,
    rig: DeliveryRig,
    warehouse,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    ws = rig.workspace.workspace_id
    start = datetime.now(UTC) - timedelta(days=30)
    decide(conn, rig.workspace, square_record("S1"), decided_at=start)
    save_mapping_version(conn, ws, {"ignored": ["tax"]}, start + timedelta(days=1), "ana")
    decide(conn, rig.workspace, square_record("S2"), decided_at=start + timedelta(days=2))
    conn.commit()
    rig.proxy.plan.add("END_OF_DATA", "reply", "554 5.6.1 unsupported content")
    assert deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-1")["rejected"] == 1
    conn.execute(  # sent three weeks ago and never read back
        "update ops.delivery_outbox set sent_at = now() - interval '21 days' where workspace_id = %s"
        " and status = 'sent'",
        (ws,),
    )
    decide(conn, rig.workspace, square_record("S3"))
    conn.commit()
    refused = replace(rig.endpoint(), password="revoked")
    assert deliver_pending(conn, ws, refused, rig.blobs, "run-2", retry=RetryPolicy())["auth_refused"] == 1

    build = run_dbt(
        "build",
        "--select",
        "+tag:delivery",
        "reconciliation_status",
        env={**os.environ, **dbt_environment(warehouse)},
        work_dir=tmp_path,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-2000:]

    states = conn.execute(
        "select source_record_id, delivery_state, rejected_reason, mapping_version, is_never_posted"
        " from marts.delivery_status where workspace_id = %s order by source_record_id",
        (ws,),
    ).fetchall()
    assert states == [
        ("S1", "rejected", "554 5.6.1 unsupported content", 0, False),
        ("S2", "sent", None, 1, True),
        ("S3", "pending", None, 1, False),
    ]
    resolved = conn.execute(
        "select d.source_record_id, r.mapping_version from intermediate.int_routing_decisions_mapping_versions_resolved r"
        " join ops.routing_decisions d using (decision_id) where d.workspace_id = %s order by 1",
        (ws,),
    ).fetchall()
    assert resolved == [("S1", 0), ("S2", 1), ("S3", 1)]
    by_state = dict(
        conn.execute(
            "select delivery_state, delivery_count from marts.deliveries_by_state where workspace_id = %s",
            (ws,),
        ).fetchall()
    )
    assert by_state == {"rejected": 1, "sent": 1, "pending": 1}
    health = conn.execute(
        "select open_incident_count, is_healthy, last_success_at is not null from marts.connection_health"
        " where workspace_id = %s and channel = 'email_in'",
        (ws,),
    ).fetchone()
    assert health == (1, False, True)
    reconciliation = conn.execute(
        "select sum(record_count), sum(sent_count), sum(pending_count), sum(failed_count)"
        " from marts.reconciliation_status where workspace_id = %s",
        (ws,),
    ).fetchone()
    assert reconciliation == (3, 1, 1, 1)
