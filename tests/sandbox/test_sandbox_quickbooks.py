"""The QuickBooks sandbox over real HTTP: the query language with paging inside the query,
entity reads, Fault bodies, and no way to write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ledgerlink.sandbox import SandboxEndpoints


def _query(quickbooks: httpx.Client, text: str) -> httpx.Response:
    return quickbooks.get("/query", params={"query": text, "minorversion": "75"})


def test_open_invoices_page_with_startposition_and_maxresults(
    quickbooks: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    invoices = read_fixture("quickbooks/Invoice.json")["QueryResponse"]["Invoice"]
    expected = {i["Id"] for i in invoices if i["Balance"] > 0}
    assert 0 < len(expected) < len(invoices)
    seen: list[str] = []
    start = 1
    while True:
        body = _query(
            quickbooks,
            f"SELECT * FROM Invoice WHERE Balance > '0' STARTPOSITION {start} MAXRESULTS 40",  # noqa: S608 - QBO, not SQL
        ).json()
        rows = body["QueryResponse"].get("Invoice", [])
        if not rows:
            assert body["QueryResponse"] == {} and "time" in body
            break
        assert body["QueryResponse"]["startPosition"] == start
        assert body["QueryResponse"]["maxResults"] == len(rows) <= 40
        seen += [row["Id"] for row in rows]
        start += len(rows)
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)
    count = _query(quickbooks, "select count(*) from Invoice where Balance > '0'").json()
    assert count["QueryResponse"] == {"totalCount": len(expected)}


def test_where_on_metadata_orderby_and_lowercase_keywords(
    quickbooks: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    customers = read_fixture("quickbooks/Customer.json")["QueryResponse"]["Customer"]
    text = "select * from customer where Metadata.LastUpdatedTime >= '2026-06-01T00:00:00Z' and Active = true orderby DisplayName desc maxresults 1000"  # noqa: E501
    rows = _query(quickbooks, text).json()["QueryResponse"]["Customer"]
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    expected = {
        c["Id"]
        for c in customers
        if c["Active"] and datetime.fromisoformat(c["MetaData"]["LastUpdatedTime"]) >= cutoff
    }
    assert {row["Id"] for row in rows} == expected
    names = [row["DisplayName"].casefold() for row in rows]
    assert names == sorted(names, reverse=True)


def test_read_one_entity_and_unknown_id(quickbooks: httpx.Client, read_fixture: Callable[[str], Any]) -> None:
    vendor = read_fixture("quickbooks/Vendor.json")["QueryResponse"]["Vendor"][0]
    body = quickbooks.get(f"/vendor/{vendor['Id']}").json()
    assert body["Vendor"] == vendor and "time" in body
    missing = quickbooks.get("/invoice/999999")
    assert missing.status_code == 400
    assert (
        missing.json()["Fault"]["type"] == "ValidationFault"
        and missing.json()["Fault"]["Error"][0]["code"] == "610"
    )


def test_a_bad_query_is_a_validation_fault(quickbooks: httpx.Client) -> None:
    for text in ("select from Invoice", "select * from Invoice where Nope = '1'", "select * from Gadget"):
        response = _query(quickbooks, text)
        assert response.status_code == 400, text
        assert response.json()["Fault"]["type"] == "ValidationFault"


def test_wrong_token_or_realm_is_an_authentication_fault(sandbox: SandboxEndpoints) -> None:
    good = f"{sandbox.quickbooks_base_url}/v3/company/{sandbox.quickbooks_realm_id}/query"
    wrong_realm = f"{sandbox.quickbooks_base_url}/v3/company/123/query"
    params = {"query": "select * from Vendor"}
    for url, token in ((good, "nope"), (wrong_realm, sandbox.quickbooks_access_token), (good, None)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 401
        fault = response.json()["Fault"]
        assert fault["type"] == "AuthenticationFault" and fault["Error"][0]["code"] == "3200"


def test_writes_are_refused(quickbooks: httpx.Client) -> None:
    for path in ("/invoice", "/bill", "/query", "/vendor/56"):
        assert quickbooks.post(path, json={}).status_code == 405
