"""Square refunds land raw like payments (same landing, quarantine and counts), and customers are
listed with ``GET /v2/customers`` on the first sync and searched by ``updated_at`` afterwards;
against the sandbox over real HTTP and the real warehouse."""

from __future__ import annotations

import json

from psycopg import sql

from ledgerlink.extraction import extract_square
from ledgerlink.sandbox import load_fixtures
from ledgerlink.sandbox.faults import Fault
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import open_rejections


def _ids(conn, table: str, workspace_id: str) -> set[str]:  # noqa: ANN001
    query = sql.SQL("select source_record_id from {} where workspace_id = %s").format(
        sql.Identifier("raw", table)
    )
    rows = conn.execute(query, (workspace_id,))
    return {row[0] for row in rows}


def _counts(conn, workspace_id: str, entity: str, run: str) -> tuple[int, int, int, int]:  # noqa: ANN001
    return conn.execute(
        "select received, landed_new, landed_already, rejected from ops.extraction_counts"
        " where workspace_id = %s and source = 'square' and entity = %s and run_id = %s",
        (workspace_id, entity, run),
    ).fetchone()


def _customer_calls(faults, since: int) -> list[tuple[str, str]]:  # noqa: ANN001
    return [
        (method, path)
        for service, method, path in faults.requests[since:]
        if path.startswith("/v2/customers")
    ]


def test_refunds_land_and_customers_are_listed_first_then_searched(
    warehouse, source_sandbox, faults, new_workspace, window, square_access
) -> None:  # noqa: ANN001
    fixtures = load_fixtures(source_sandbox.fixtures_dir)
    refunds = fixtures.square_refunds
    assert refunds, "the generator writes refunds"
    workspace_id = new_workspace()
    with connect(warehouse) as conn:
        before = len(faults.requests)
        summary = extract_square(conn, workspace_id, square_access(), window("refunds-1"))
        calls = _customer_calls(faults, before)
        assert calls and all(method == "GET" for method, _ in calls), "the first sync lists customers"
        assert _ids(conn, "square_customers", workspace_id) == {c["id"] for c in fixtures.square_customers}
        assert summary["refunds"] == len(refunds)
        assert _ids(conn, "square_refunds", workspace_id) == {r["id"] for r in refunds}
        assert _counts(conn, workspace_id, "refunds", "refunds-1") == (len(refunds), len(refunds), 0, 0)
        # The payment shows what was refunded on it.
        refund = refunds[0]
        refunded = conn.execute(
            "select payload -> 'refunded_money' ->> 'amount' from raw.square_payments"
            " where workspace_id = %s and source_record_id = %s",
            (workspace_id, refund["payment_id"]),
        ).fetchone()
        assert refunded is not None and int(refunded[0]) >= refund["amount_money"]["amount"]

        # A later poll searches by updated_at and re-reads (lookback) without landing anything twice.
        before = len(faults.requests)
        again = extract_square(conn, workspace_id, square_access(), window("refunds-2"))
        calls = _customer_calls(faults, before)
        assert calls and all(call == ("POST", "/v2/customers/search") for call in calls)
        assert again["refunds"] == 0 and again["customers"] == 0
        received, new, already, rejected = _counts(conn, workspace_id, "refunds", "refunds-2")
        assert new == rejected == 0 and received == already


def test_a_bad_refund_is_quarantined_and_the_rest_of_the_page_lands(
    warehouse, source_sandbox, faults, new_workspace, window, square_access
) -> None:  # noqa: ANN001
    good = load_fixtures(source_sandbox.fixtures_dir).square_refunds[:3]
    template = good[0]
    bad = [
        {key: value for key, value in template.items() if key != "payment_id"} | {"id": "BAD-ORPHAN"},
        {**template, "id": "BAD-AMOUNT", "amount_money": {"amount": 12.5, "currency": "EUR"}},
        {**template, "id": "BAD-NUL", "reason": "nul\u0000"},
        "not a refund",
    ]
    faults.add("square", "/v2/refunds", Fault(status=200, body=json.dumps({"refunds": good + bad})))
    workspace_id = new_workspace()
    with connect(warehouse) as conn:
        summary = extract_square(conn, workspace_id, square_access(), window("bad-refunds"))
        assert summary["refunds"] == len(good) and summary["refunds_rejected"] == len(bad)
        reasons = " | ".join(r["reason"] for r in open_rejections(conn, workspace_id, "square"))
        for expected in (
            "missing required field payment_id",
            "amount must be an integer",
            "\\u0000",
            "but str",
        ):
            assert expected in reasons
        received, new, already, rejected = _counts(conn, workspace_id, "refunds", "bad-refunds")
        assert received == new + already + rejected == len(good) + len(bad)
