"""The email operator as the DAG runs it: connections from Airflow (``AIRFLOW_CONN_*``), a
refused login raising the incident and the owner notice through the notifications connection,
and the next run with fixed credentials resolving it."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from delivery_rig import QUICKBOOKS_TOKEN, REALM, SMTP_LOGIN, DeliveryRig, decide, outbox_rows, square_record

from ledgerlink.cli.environment import connection_variable
from ledgerlink.credentials import store_token
from ledgerlink.incidents import open_incidents
from ledgerlink.orchestration.connection_ids import (
    EMAIL_IN_CONN_ID,
    NOTIFICATIONS_CONN_ID,
    QUICKBOOKS_CONN_ID,
)
from ledgerlink.workspaces import save_workspace


def _smtp_connection(port: int, sender: str, password: str | None = None) -> dict[str, object]:
    connection: dict[str, object] = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"from_address": sender},
    }
    if password is not None:
        connection.update(login=SMTP_LOGIN[0], password=password)
    return connection


def test_the_operator_notifies_the_owner_once_recovers_and_reads_back(
    conn: psycopg.Connection, rig: DeliveryRig, quickbooks_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerlink.orchestration.operators import EmailDeliveryOperator

    decide(conn, rig.workspace, square_record("O1"))
    conn.commit()
    monkeypatch.setenv(
        *connection_variable(
            NOTIFICATIONS_CONN_ID, _smtp_connection(rig.owner_inbox.port, "notices@ledgerlink.invalid")
        )
    )
    operator = EmailDeliveryOperator(task_id="deliver", workspace_id=rig.workspace.workspace_id)
    for run in range(2):
        monkeypatch.setenv(
            *connection_variable(
                EMAIL_IN_CONN_ID, _smtp_connection(rig.proxy.port, rig.sender_address, "revoked")
            )
        )
        counts = operator.execute({"run_id": f"scheduled-{run}"})
        assert counts["auth_refused"] == 1
    assert len(open_incidents(conn, rig.workspace.workspace_id, "email_in")) == 1
    assert len(rig.owner_inbox.mailbox.messages()) == 1

    monkeypatch.setenv(
        *connection_variable(
            EMAIL_IN_CONN_ID, _smtp_connection(rig.proxy.port, rig.sender_address, SMTP_LOGIN[1])
        )
    )
    assert operator.execute({"run_id": "scheduled-fixed"})["sent"] == 1
    assert open_incidents(conn, rig.workspace.workspace_id, "email_in") == []
    assert [row["status"] for row in outbox_rows(conn, rig.workspace.workspace_id)] == ["sent"]
    assert len(rig.owner_inbox.mailbox.messages()) == 1

    # A later run reads QuickBooks back: the bill drafted from the document marks it posted.
    with conn.transaction():
        save_workspace(conn, replace(rig.workspace, quickbooks_realm_id=REALM))
        store_token(conn, rig.workspace.workspace_id, "quickbooks", QUICKBOOKS_TOKEN)
    monkeypatch.setenv(
        *connection_variable(QUICKBOOKS_CONN_ID, {"conn_type": "http", "host": quickbooks_url})
    )
    counts = operator.execute({"run_id": "scheduled-later"})
    assert (counts["sent"], counts["posted"]) == (0, 1)
    [row] = outbox_rows(conn, rig.workspace.workspace_id)
    assert (row["status"], row["quickbooks_entity"], row["quickbooks_id"]) == ("posted", "Bill", "501")
