"""Read-back against the QuickBooks sandbox over HTTP: bills and purchases carrying a ledgerlink
source id are linked to their deliveries (status ``posted`` with the QuickBooks id), and sent
documents never posted after N days are reported."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from delivery_rig import DeliveryRig, decide, outbox_rows, square_record

from ledgerlink.delivery.rates import refresh_quickbooks_rates, save_conversion_rule
from ledgerlink.delivery.readback import never_posted, read_back
from ledgerlink.delivery.sender import deliver_pending
from ledgerlink.sources.quickbooks.client import QuickBooksClient


def test_bills_and_purchases_link_back_and_the_unposted_are_reported(
    conn: psycopg.Connection, rig: DeliveryRig, quickbooks: QuickBooksClient
) -> None:
    ws = rig.workspace.workspace_id
    for record_id in ("RB1", "RB2", "RB3", "RB9"):
        decide(conn, rig.workspace, square_record(record_id))
    conn.commit()
    assert deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run-1")["sent"] == 4
    conn.execute(
        "update ops.delivery_outbox set sent_at = now() - interval '20 days' where workspace_id = %s"
        " and source_record_id in ('RB3', 'RB1')",
        (ws,),
    )
    conn.commit()

    assert read_back(conn, ws, quickbooks) == 2
    assert read_back(conn, ws, quickbooks) == 0, "a rerun links nothing new"
    by_record = {row["source_record_id"]: row for row in outbox_rows(conn, ws)}
    assert (
        by_record["RB1"]["status"],
        by_record["RB1"]["quickbooks_entity"],
        by_record["RB1"]["quickbooks_id"],
    ) == (
        "posted",
        "Bill",
        "501",
    )
    assert (
        by_record["RB2"]["status"],
        by_record["RB2"]["quickbooks_entity"],
        by_record["RB2"]["quickbooks_id"],
    ) == (
        "posted",
        "Purchase",
        "77",
    )
    assert by_record["RB9"]["status"] == "sent", "a note without the ledgerlink marker links nothing"

    overdue = never_posted(conn, ws, older_than_days=14, as_of=datetime.now(UTC))
    assert [record for _, _, record, _ in overdue] == ["RB3"]
    assert never_posted(conn, ws, older_than_days=30, as_of=datetime.now(UTC) + timedelta(days=1)) == []


def test_quickbooks_rates_convert_foreign_documents_and_a_workspace_rule_wins(
    conn: psycopg.Connection, rig: DeliveryRig, quickbooks: QuickBooksClient
) -> None:
    ws = rig.workspace
    save_conversion_rule(conn, ws.workspace_id, "GBP", "EUR", Decimal("1.20"), date(2026, 3, 13))
    assert refresh_quickbooks_rates(conn, ws, quickbooks) == 2, "USD and the earlier GBP rate; the rule stays"
    assert refresh_quickbooks_rates(conn, ws, quickbooks) == 0
    posted_at = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    decide(conn, ws, square_record("FX-USD", currency="USD", amount_minor=10000), decided_at=posted_at)
    decide(conn, ws, square_record("FX-GBP", currency="GBP", amount_minor=10000), decided_at=posted_at)
    conn.commit()
    usd, gbp = (row["document"]["conversion"] for row in outbox_rows(conn, ws.workspace_id))
    assert (usd["converted_amount_minor"], usd["rate"], usd["rate_date"], usd["rate_source"]) == (
        9100,
        "0.91",
        "2026-03-12",
        "quickbooks",
    )
    assert (gbp["converted_amount_minor"], gbp["rate"], gbp["rate_date"], gbp["rate_source"]) == (
        12000,
        "1.20",
        "2026-03-13",
        "workspace_rule",
    )
