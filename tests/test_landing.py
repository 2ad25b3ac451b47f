"""Landing in raw against the real warehouse: exactly once per content, new rows for changes,
markers that move with the landing and only forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.credentials import load_token, store_token
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import SourceRecord, land_records, payload_sha256
from ledgerlink.warehouse.sync_markers import advance_marker, read_marker, rewind_marker
from ledgerlink.workspaces import Workspace, save_workspace

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture()
def conn(warehouse):  # noqa: ANN001
    with connect(warehouse) as connection:
        # inactive: the DAG's per-workspace fan-out must not pick up this test's workspace
        workspace = Workspace(
            workspace_id="landing-ws", display_name="L", email_in_address="l@qbodocs.com", is_active=False
        )
        save_workspace(connection, workspace)
        connection.execute("delete from raw.square_payments where workspace_id = 'landing-ws'")
        connection.execute("delete from ops.sync_markers where workspace_id = 'landing-ws'")
        connection.commit()
        yield connection


def _payment(payment_id: str, status: str) -> SourceRecord:
    return SourceRecord(payment_id, {"id": payment_id, "status": status, "updated_at": AT.isoformat()}, AT)


def test_same_payload_lands_once_and_a_change_lands_as_a_new_row(conn) -> None:  # noqa: ANN001
    assert land_records(conn, "square_payments", "landing-ws", "run-1", [_payment("p1", "APPROVED")]) == 1
    assert land_records(conn, "square_payments", "landing-ws", "run-2", [_payment("p1", "APPROVED")]) == 0
    assert land_records(conn, "square_payments", "landing-ws", "run-3", [_payment("p1", "COMPLETED")]) == 1
    # duplicates inside one batch collapse too
    batch = [_payment("p2", "APPROVED"), _payment("p2", "APPROVED")]
    assert land_records(conn, "square_payments", "landing-ws", "run-4", batch) == 1
    rows = conn.execute(
        "select source_record_id, payload ->> 'status', landed_by_run from raw.square_payments"
        " where workspace_id = 'landing-ws' order by source_record_id, landed_by_run"
    ).fetchall()
    assert rows == [("p1", "APPROVED", "run-1"), ("p1", "COMPLETED", "run-3"), ("p2", "APPROVED", "run-4")]


def test_payload_hash_ignores_key_order() -> None:
    assert payload_sha256({"a": 1, "b": [1, 2]}) == payload_sha256({"b": [1, 2], "a": 1})
    assert payload_sha256({"a": 1}) != payload_sha256({"a": 2})


def test_marker_moves_only_forward_unless_rewound(conn) -> None:  # noqa: ANN001
    assert read_marker(conn, "landing-ws", "square", "payments") is None
    advance_marker(conn, "landing-ws", "square", "payments", AT, "run-1")
    advance_marker(conn, "landing-ws", "square", "payments", AT - timedelta(hours=1), "run-2")
    assert read_marker(conn, "landing-ws", "square", "payments") == AT
    rewind_marker(conn, "landing-ws", "square", "payments", AT - timedelta(days=1))
    assert read_marker(conn, "landing-ws", "square", "payments") == AT - timedelta(days=1)


def test_a_failed_transaction_lands_nothing_and_keeps_the_marker(conn) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError), conn.transaction():
        land_records(conn, "square_payments", "landing-ws", "run-x", [_payment("p9", "APPROVED")])
        advance_marker(conn, "landing-ws", "square", "payments", AT, "run-x")
        raise RuntimeError("crash mid-page")
    assert read_marker(conn, "landing-ws", "square", "payments") is None
    count = conn.execute("select count(*) from raw.square_payments where source_record_id = 'p9'").fetchone()[
        0
    ]
    assert count == 0


def test_tokens_are_encrypted_at_rest(conn) -> None:  # noqa: ANN001
    store_token(conn, "landing-ws", "square", "EAAA-secret-token", refresh_token="refresh-secret")
    stored = conn.execute(
        "select access_token_encrypted, refresh_token_encrypted from ops.source_credentials"
        " where workspace_id = 'landing-ws' and source = 'square'"
    ).fetchone()
    assert b"EAAA-secret-token" not in bytes(stored[0])
    assert b"refresh-secret" not in bytes(stored[1])
    token = load_token(conn, "landing-ws", "square")
    assert token.access_token == "EAAA-secret-token"
    assert "secret" not in repr(token)
