"""Extraction's failure handling against the sandbox over real HTTP and the real warehouse:
bad records quarantined while the rest lands, a response that never parses kept for the next
run, auth failures marking the connection needs_reauth with one incident and one email, skipped
runs while broken, a reconnect resolving it, Qonto's rotating refresh serialised per workspace."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from source_retry_policy import FAST_RETRIES

from ledgerlink.blobstore import BlobStore
from ledgerlink.credentials import connection_status, fresh_token, load_token, store_token
from ledgerlink.extraction import (
    SourceAccess,
    extract_qonto,
    extract_quickbooks,
    extract_square,
    retry_rejections,
)
from ledgerlink.incidents import open_incidents
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sandbox.email_in import start_email_in
from ledgerlink.sandbox.faults import Fault
from ledgerlink.sources.oauth import refresher, square_token
from ledgerlink.warehouse import connect
from ledgerlink.warehouse.landing import open_rejections
from ledgerlink.warehouse.sync_markers import read_marker

OWNER = "owner@qbodocs.com"


def _count(conn, sql: str, *params) -> int:  # noqa: ANN001
    return conn.execute(sql, params).fetchone()[0]


def test_bad_records_are_quarantined_and_the_rest_of_the_page_lands(
    warehouse, faults, new_workspace, window, square_access, square_payments
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    good = square_payments[:5]
    good[0] = {**good[0], "brand_new_field": {"kept": True}}  # unknown fields are kept, not rejected
    template = good[1]
    bad = [
        {key: value for key, value in template.items() if key != "id"},  # missing id
        {**template, "id": "BAD-TYPE", "amount_money": {"amount": "12.50", "currency": "EUR"}},  # wrong type
        {**template, "id": "BAD-NUL", "note": "zero\u0000byte"},  # \u0000
        {**template, "id": "BAD-HUGE", "note": "x" * 200_000},  # huge string
        {
            **template,
            "id": "BAD-CCY",
            "amount_money": {"amount": 1250, "currency": "XYZ"},
        },  # unknown currency
        {**template, "id": "BAD-TIME", "updated_at": "yesterday"},  # unparseable timestamp
        "just a string",  # non-object JSON
        42,
        None,
        [1, 2],
    ]
    page = json.dumps({"payments": good + bad})
    faults.add("square", "/v2/payments", Fault(status=200, body=page))
    with connect(warehouse) as conn:
        summary = extract_square(conn, workspace_id, square_access(), window("quarantine-1"))
        assert summary["payments"] == len(good)
        assert summary["payments_rejected"] == len(bad)
        rejections = open_rejections(conn, workspace_id, "square")
        assert len(rejections) == len(bad)
        reasons = " | ".join(rejection["reason"] for rejection in rejections)
        for expected in ("missing required field id", "amount must be an integer", "\\u0000",
                         "exceeds 100000", "unknown currency 'XYZ'", "not an ISO 8601 timestamp",
                         "not a JSON object but str", "but int", "but NoneType", "but list"):  # fmt: skip
            assert expected in reasons
        nul = next(r for r in rejections if r["source_record_id"] == "BAD-NUL")
        assert json.loads(nul["raw_payload"])["note"] == "zero\u0000byte", "the raw payload survives intact"
        landed = conn.execute(
            "select payload from raw.square_payments where workspace_id = %s and source_record_id = %s",
            (workspace_id, good[0]["id"]),
        ).fetchone()[0]
        assert landed["brand_new_field"] == {"kept": True}
        received, new, already, rejected = conn.execute(
            "select received, landed_new, landed_already, rejected from ops.extraction_counts"
            " where workspace_id = %s and entity = 'payments'",
            (workspace_id,),
        ).fetchone()
        assert received == new + already + rejected == len(good) + len(bad)

        # The same bad page again: one more attempt on each rejection, no new rows.
        faults.add("square", "/v2/payments", Fault(status=200, body=page))
        extract_square(conn, workspace_id, square_access(), window("quarantine-2"))
        again = open_rejections(conn, workspace_id, "square")
        assert len(again) == len(bad) and all(r["attempts"] == 2 for r in again)

        # A corrected version of a rejected record lands and closes its rejection.
        fixed = {**template, "id": "BAD-CCY", "amount_money": {"amount": 1250, "currency": "EUR"}}
        faults.add("square", "/v2/payments", Fault(status=200, body=json.dumps({"payments": [fixed]})))
        extract_square(conn, workspace_id, square_access(), window("quarantine-3"))
        assert len(open_rejections(conn, workspace_id, "square")) == len(bad) - 1


def test_a_response_that_never_parses_is_kept_and_read_again_next_run(
    warehouse, faults, new_workspace, window, window_end, square_access, square_payments
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    faults.add("square", "/v2/payments", Fault(truncate=True), times=None)
    with connect(warehouse) as conn:
        summary = extract_square(conn, workspace_id, square_access(), window("malformed-1"))
        assert summary["payments_unreadable_responses"] == 1
        [rejection] = open_rejections(conn, workspace_id, "square")
        assert rejection["reason"].startswith("unreadable response") and rejection["raw_payload"].startswith(
            "{"
        )
        assert read_marker(conn, workspace_id, "square", "payments") is None, "the marker stayed put"
        assert read_marker(conn, workspace_id, "square", "customers") == window_end

        faults.clear()
        summary = extract_square(conn, workspace_id, square_access(), window("malformed-2"))
        assert summary["payments"] == len(square_payments)
        assert read_marker(conn, workspace_id, "square", "payments") == window_end
        assert open_rejections(conn, workspace_id, "square") == [], "read in full: the rejection is closed"


def test_a_fixed_rejection_lands_on_retry(
    warehouse, faults, new_workspace, window, square_access, square_payments
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    template = square_payments[0]
    fixable = {**template, "id": "FIX-ME", "amount_money": {"amount": 990, "currency": "EURO"}}
    hopeless = {**template, "id": "NO-HOPE", "updated_at": None}
    faults.add(
        "square", "/v2/payments", Fault(status=200, body=json.dumps({"payments": [fixable, hopeless]}))
    )
    with connect(warehouse) as conn:
        extract_square(conn, workspace_id, square_access(), window("fix-1"))
        assert len(open_rejections(conn, workspace_id, "square")) == 2
        # A person corrects the currency in the quarantined payload, then retries.
        with conn.transaction():
            conn.execute(
                "update ops.rejected_records set raw_payload = replace(raw_payload, '\"EURO\"', '\"EUR\"')"
                " where workspace_id = %s and source_record_id = 'FIX-ME'",
                (workspace_id,),
            )
        assert retry_rejections(conn, workspace_id, "fix-2") == {"landed": 1, "still_rejected": 1}
        [left] = open_rejections(conn, workspace_id, "square")
        assert left["source_record_id"] == "NO-HOPE" and left["attempts"] == 2
        assert _count(conn, "select count(*) from raw.square_payments where workspace_id = %s"
                      " and source_record_id = 'FIX-ME'", workspace_id) == 1  # fmt: skip


@pytest.mark.parametrize("source", ["qonto", "square", "quickbooks"])
def test_a_refused_token_marks_needs_reauth_once_and_later_runs_skip(
    warehouse, source_sandbox, faults, new_workspace, tmp_path, source, caplog, window
) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    workspace_id = new_workspace(owner_email=OWNER)
    inbox = start_email_in(tmp_path / "owner", OWNER)
    notifier = SmtpEndpoint("127.0.0.1", inbox.port, sender="ledgerlink@example.com")
    base_urls = {
        "qonto": source_sandbox.qonto_base_url,
        "square": source_sandbox.square_base_url,
        "quickbooks": source_sandbox.quickbooks_base_url,
    }
    access = SourceAccess(base_urls[source], notifier=notifier, retry_policy=FAST_RETRIES)
    blobs = BlobStore(tmp_path / "blobs")
    extract = {
        "qonto": lambda conn, run: extract_qonto(conn, workspace_id, access, window(run), blobs),
        "square": lambda conn, run: extract_square(conn, workspace_id, access, window(run)),
        "quickbooks": lambda conn, run: extract_quickbooks(conn, workspace_id, access, window(run)),
    }[source]
    try:
        faults.add(source, "/", Fault(auth="revoked"), times=None)
        with connect(warehouse) as conn:
            assert extract(conn, "auth-1") == {"needs_reauth": 1}
            assert len([r for r in faults.requests if r[0] == source]) == 1, "the 401 was not retried"
            assert connection_status(conn, workspace_id, source) == "needs_reauth"
            for run in ("auth-2", "auth-3"):
                assert extract(conn, run) == {"skipped_needs_reauth": 1}
            assert len([r for r in faults.requests if r[0] == source]) == 1, "no call while broken"
            [incident] = open_incidents(conn, workspace_id, source)
            assert incident.kind == "needs_reauth" and incident.owner_notified_at is not None
            assert len(inbox.mailbox.messages()) == 1

            # A person reconnects: a new token is stored, the next run works and resolves it.
            faults.clear()
            tokens = {"qonto": source_sandbox.qonto_access_token, "square": source_sandbox.square_access_token,
                      "quickbooks": source_sandbox.quickbooks_access_token}  # fmt: skip
            with conn.transaction():
                store_token(conn, workspace_id, source, tokens[source])
            summary = extract(conn, "auth-4")
            assert "needs_reauth" not in summary and sum(summary.values()) > 0
            assert open_incidents(conn, workspace_id, source) == []
            assert len(inbox.mailbox.messages()) == 1
        assert tokens[source] not in caplog.text, "tokens never reach the logs"
        assert tokens[source] not in inbox.mailbox.messages()[0].read_text()
    finally:
        inbox.stop()


def test_an_expired_qonto_token_is_refreshed_and_the_rotated_refresh_token_stored(
    warehouse, source_sandbox, new_workspace, tmp_path, window, qonto_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    oauth = qonto_oauth
    first = refresher("qonto", oauth)(source_sandbox.qonto_oauth["refresh_token"])
    with connect(warehouse) as conn:
        with conn.transaction():
            store_token(conn, workspace_id, "qonto", "expired-access-token", first.refresh_token,
                        datetime.now(UTC) - timedelta(minutes=1))  # fmt: skip
        access = SourceAccess(source_sandbox.qonto_base_url, oauth=oauth, retry_policy=FAST_RETRIES)
        summary = extract_qonto(conn, workspace_id, access, window("refresh-1"), BlobStore(tmp_path / "b"))
        assert summary["supplier_invoices"] > 0
        token = load_token(conn, workspace_id, "qonto")
        assert token.refresh_token not in (None, first.refresh_token), "rotated and stored"
        assert token.access_token_expires_at > datetime.now(UTC) + timedelta(minutes=50)


def test_concurrent_refreshes_of_one_workspace_call_the_token_endpoint_once(
    warehouse, source_sandbox, faults, new_workspace, qonto_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    oauth = qonto_oauth
    first = refresher("qonto", oauth)(source_sandbox.qonto_oauth["refresh_token"])
    with connect(warehouse) as conn, conn.transaction():
        store_token(conn, workspace_id, "qonto", first.access_token, first.refresh_token, datetime.now(UTC))
    faults.clear()
    results: list[str] = []

    def refresh_now() -> None:
        with connect(warehouse) as conn:
            token = fresh_token(conn, workspace_id, "qonto", datetime.now(UTC), refresher("qonto", oauth))
            results.append(token.access_token)

    threads = [threading.Thread(target=refresh_now) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len(set(results)) == 1, "everyone got the one refreshed token"
    assert [r for r in faults.requests if r[2].startswith("/oauth2/token")] == [
        ("qonto", "POST", "/oauth2/token")
    ]


def test_a_revoked_refresh_token_is_needs_reauth(
    warehouse, source_sandbox, faults, new_workspace, tmp_path, window, qonto_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    with connect(warehouse) as conn:
        with conn.transaction():
            store_token(
                conn, workspace_id, "qonto", "old", "ory_rt_revoked", datetime.now(UTC) - timedelta(hours=2)
            )
        access = SourceAccess(source_sandbox.qonto_base_url, oauth=qonto_oauth)
        summary = extract_qonto(conn, workspace_id, access, window("revoked-1"), BlobStore(tmp_path / "b"))
        assert summary == {"needs_reauth": 1}
        assert connection_status(conn, workspace_id, "qonto") == "needs_reauth"
        assert [r[2] for r in faults.requests] == ["/oauth2/token"], "invalid_grant, no API call, no retry"


def test_quickbooks_extraction_only_ever_sends_get(
    warehouse, source_sandbox, faults, new_workspace, window
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    with connect(warehouse) as conn:
        extract_quickbooks(
            conn, workspace_id, SourceAccess(source_sandbox.quickbooks_base_url), window("get-only")
        )
    methods = {method for service, method, _ in faults.requests if service == "quickbooks"}
    assert methods == {"GET"}


def test_a_quickbooks_fault_on_one_entity_keeps_its_marker_and_the_rest_lands(
    warehouse, source_sandbox, faults, new_workspace, window, window_end
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    fault = '{"Fault":{"Error":[{"Message":"x","Detail":"y","code":"4001","element":""}],"type":"ValidationFault"}}'
    # The first query of the run is Vendor's.
    faults.add("quickbooks", "/v3/company/", Fault(status=200, body=fault))
    access = SourceAccess(source_sandbox.quickbooks_base_url, retry_policy=FAST_RETRIES)
    with connect(warehouse) as conn:
        summary = extract_quickbooks(conn, workspace_id, access, window("qbo-fault"))
        assert summary["qbo_vendors_unreadable_responses"] == 1 and summary["qbo_invoices"] > 0
        assert read_marker(conn, workspace_id, "quickbooks", "Vendor") is None
        assert read_marker(conn, workspace_id, "quickbooks", "Invoice") == window_end
        [rejection] = open_rejections(conn, workspace_id, "quickbooks")
        assert "ValidationFault" in rejection["raw_payload"]


def test_a_square_token_refused_as_expired_is_refreshed_once_and_the_run_goes_on(
    warehouse, source_sandbox, faults, new_workspace, window, square_access, square_oauth
) -> None:  # noqa: ANN001
    workspace_id = new_workspace()
    oauth = square_oauth
    redirect_uri = "http://127.0.0.1:9/callback"
    location = httpx.get(
        oauth.authorize_url, params={"client_id": oauth.client_id, "redirect_uri": redirect_uri}
    ).headers["location"]
    issued = square_token(oauth, {"grant_type": "authorization_code", "code": httpx.URL(location).params["code"],
                                  "redirect_uri": redirect_uri})  # fmt: skip
    with connect(warehouse) as conn:
        with conn.transaction():
            store_token(
                conn, workspace_id, "square", issued.access_token, issued.refresh_token, issued.expires_at
            )
        faults.clear()
        faults.add("square", "/v2/customers", Fault(auth="expired"))
        summary = extract_square(conn, workspace_id, square_access(oauth=oauth), window("sq-expired"))
        assert "needs_reauth" not in summary and summary["payments"] > 0
        assert [r[2] for r in faults.requests].count("/oauth2/token") == 1
        token = load_token(conn, workspace_id, "square")
        assert token.access_token != issued.access_token and token.refresh_token == issued.refresh_token
        assert connection_status(conn, workspace_id, "square") == "connected"


def test_a_workspace_never_connected_is_refused_without_a_call(
    warehouse, faults, new_workspace, window, square_access
) -> None:  # noqa: ANN001
    from ledgerlink.credentials import NotConnected

    workspace_id = new_workspace()
    with connect(warehouse) as conn:
        with conn.transaction():
            conn.execute("delete from ops.source_credentials where workspace_id = %s", (workspace_id,))
        with pytest.raises(NotConnected):
            extract_square(conn, workspace_id, square_access(), window("never"))
    assert [r for r in faults.requests if r[0] == "square"] == []
