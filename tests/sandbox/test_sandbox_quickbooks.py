"""The QuickBooks sandbox over real HTTP: the query language with paging inside the query,
entity reads, Fault bodies, and no way to write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.sandbox import SandboxEndpoints
from ledgerlink.sandbox.fixtures import QUICKBOOKS_ENTITIES, load_fixtures
from ledgerlink.sandbox.qbo_query import QueryIndex, parse_query, select_records


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


# What the QuickBooks client sends (a last-updated bound, Active on name lists), and neighbours of
# it the index also answers: other comparisons, IN, a bound that is not a timestamp, ORDER BY.
_INDEXED_QUERIES = (
    "select * from {entity}",
    "select * from {entity} where Metadata.LastUpdatedTime >= '{middle}'",
    "select * from {entity} where Active in (true, false) and Metadata.LastUpdatedTime >= '{middle}'",
    "select * from {entity} where MetaData.LastUpdatedTime > '{middle}' orderby Metadata.LastUpdatedTime desc",
    "select * from {entity} where Metadata.LastUpdatedTime < '{middle}' orderby Metadata.LastUpdatedTime",
    "select * from {entity} where Metadata.LastUpdatedTime != '{middle}' and Metadata.LastUpdatedTime <= '2026-06-01'",
    "select * from {entity} where Metadata.LastUpdatedTime = '{middle}'",
    "select * from {entity} where Metadata.LastUpdatedTime in ('{middle}', 'not a time', '2020-01-01T00:00:00Z')",
    "select * from {entity} where Metadata.LastUpdatedTime > 'yesterday'",
    "select * from {entity} where Active = false orderby Active desc, Metadata.LastUpdatedTime",
    "select * from {entity} where Active != true",
)


@pytest.mark.parametrize("hide_inactive", [False, True])
@pytest.mark.parametrize("entity", QUICKBOOKS_ENTITIES)
def test_indexed_queries_select_what_reading_every_record_selects(
    fixtures_dir: Path, entity: str, hide_inactive: bool
) -> None:
    records = load_fixtures(fixtures_dir).quickbooks[entity]
    index = QueryIndex(records)
    middle = records[len(records) // 2]["MetaData"]["LastUpdatedTime"]
    for template in _INDEXED_QUERIES:
        query = parse_query(template.format(entity=entity, middle=middle))
        read_every_record = select_records(query, entity, records, hide_inactive=hide_inactive)
        from_index = select_records(query, entity, records, hide_inactive=hide_inactive, index=index)
        assert index.select(query, hide=hide_inactive) is not None, template  # no record was read
        assert list(from_index.positions) == list(read_every_record.positions), template
        assert from_index[:50] == read_every_record[:50]
    # a field the index does not hold is read from the records
    balance = parse_query(f"select * from {entity} where Balance > '0' orderby DisplayName")  # noqa: S608 - QBO, not SQL
    assert index.select(balance, hide=hide_inactive) is None


def test_a_field_in_another_shape_is_read_from_the_records() -> None:
    records = [
        {"Id": "2", "Active": True, "MetaData": {"LastUpdatedTime": "2026-01-02T00:00:00Z"}},
        {"Id": "1", "Active": "yes", "MetaData": {"LastUpdatedTime": "2026-01-0xT00:00:00Z"}},
        {"Id": "3", "MetaData": {}},
    ]
    index = QueryIndex(records)
    for text in (
        "select * from Customer where Metadata.LastUpdatedTime > '2026-01-01'",
        "select * from Customer where Active = true",
    ):
        query = parse_query(text)
        assert index.select(query, hide=False) is None
        assert list(select_records(query, "Customer", records, index=index)) == [records[0]]


def test_ids_that_are_not_numbers_list_as_reading_every_record_lists_them() -> None:
    records = [{"Id": identifier} for identifier in ("10", "B7", "2", "A1", "3")] + [{"Name": "no id"}]
    query = parse_query("select * from Customer")
    from_index = select_records(query, "Customer", records, index=QueryIndex(records))
    assert list(from_index) == list(select_records(query, "Customer", records))
    assert [record.get("Id") for record in from_index] == ["2", "3", "10", None, "A1", "B7"]
