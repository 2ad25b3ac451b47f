"""Landing in raw against the real warehouse: exactly once per content, new rows for changes,
markers that move with the landing and only forward."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.credentials import load_token, store_token
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import Lander, SourceRecord, canonical_json, land_records, payload_sha256
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


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text()
    # floats the two encoders spell alike (see canonical_json): no exponent form
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or 1e-4 <= abs(x) < 1e16)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON, max_size=6))
def test_canonical_json_is_what_the_stdlib_wrote(payload) -> None:  # noqa: ANN001
    # hashes landed before the switch to msgspec must stay the same for the same content
    expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(payload) == expected


def test_a_lander_flushing_many_times_in_one_transaction_lands_each_content_once(conn) -> None:  # noqa: ANN001
    lander = Lander(conn, "square_payments", "landing-ws", "run-a", flush_rows=3)
    pages = [
        [_payment("a1", "APPROVED"), _payment("a2", "APPROVED")],
        [_payment("a1", "APPROVED"), _payment("a3", "APPROVED"), _payment("a4", "APPROVED")],  # a1 again
        [_payment("a2", "COMPLETED"), _payment("a3", "APPROVED")],  # a2 changed, a3 again
    ]
    for page in pages:
        lander.add(page)
    lander.flush()
    assert lander.landed_new == 5
    # what each flush held, the landed-before ones included (their rejections close too)
    assert sorted(lander.take_landed_ids()) == ["a1", "a2", "a2", "a3", "a3", "a4"]
    # a second lander (a rerun) finds everything landed
    rerun = Lander(conn, "square_payments", "landing-ws", "run-b")
    rerun.add(record for page in pages for record in page)
    assert rerun.flush() == 0
    rows = conn.execute(
        "select source_record_id, count(*) from raw.square_payments where workspace_id = 'landing-ws'"
        " group by 1 order by 1"
    ).fetchall()
    assert rows == [("a1", 1), ("a2", 2), ("a3", 1), ("a4", 1)]


def test_a_lander_refuses_a_column_it_was_not_told_about(conn) -> None:  # noqa: ANN001
    lander = Lander(conn, "square_payments", "landing-ws", "run-c")
    record = SourceRecord("x1", {"id": "x1"}, AT, {"blob_sha256": "abc"})
    with pytest.raises(ValueError, match="blob_sha256"):
        lander.add([record])
