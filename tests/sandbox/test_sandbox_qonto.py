"""The Qonto sandbox over real HTTP: page/per_page paging, updated_at filters, signed expiring
attachment URLs, bearer auth, OAuth refresh rotation and rate limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ledgerlink.sandbox import SandboxEndpoints, SandboxOptions, SandboxPorts, run_sandbox
from ledgerlink.sandbox.rate_limits import RateLimitGate
from ledgerlink.sources.pacing import parse_rate_limits
from ledgerlink.sources.qonto import QontoClient


def _all_pages(qonto: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records, metas, page = [], [], 1
    while page is not None:
        response = qonto.get("/v2/supplier_invoices", params={**params, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["supplier_invoices"]
        metas.append(body["meta"])
        page = body["meta"]["next_page"]
    return records, metas


def test_paging_reads_every_invoice_exactly_once(
    qonto: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    expected = {i["id"] for i in read_fixture("qonto/supplier_invoices.json")["supplier_invoices"]}
    records, metas = _all_pages(qonto, per_page=7)
    ids = [record["id"] for record in records]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert len(metas) == metas[0]["total_pages"] == -(-len(expected) // 7)
    assert metas[-1]["next_page"] is None and metas[0]["prev_page"] is None
    assert all(meta["per_page"] == 7 and meta["total_count"] == len(expected) for meta in metas)
    assert [m["current_page"] for m in metas] == list(range(1, len(metas) + 1))
    updated = [(r["updated_at"], r["id"]) for r in records]
    assert updated == sorted(updated), "ordered by updated_at, then id"


def test_per_page_above_100_is_capped(qonto: httpx.Client) -> None:
    body = qonto.get("/v2/supplier_invoices", params={"per_page": 500}).json()
    assert body["meta"]["per_page"] == 100 and len(body["supplier_invoices"]) == 100
    assert body["meta"]["next_page"] == 2


def test_updated_at_filters_are_inclusive(qonto: httpx.Client, read_fixture: Callable[[str], Any]) -> None:
    invoices = read_fixture("qonto/supplier_invoices.json")["supplier_invoices"]
    stamps = sorted(i["updated_at"] for i in invoices)
    low, high = stamps[10], stamps[40]
    records, _ = _all_pages(qonto, **{"filter[updated_at_from]": low, "filter[updated_at_to]": high})
    expected = {i["id"] for i in invoices if low <= i["updated_at"] <= high}
    assert {r["id"] for r in records} == expected and len(expected) >= 31
    # The same bounds written with an offset instead of Z select the same records.
    offset_low = datetime.fromisoformat(low.replace("Z", "+00:00")).isoformat()
    records, _ = _all_pages(qonto, **{"filter[updated_at_from]": offset_low, "filter[updated_at_to]": high})
    assert {r["id"] for r in records} == expected


def test_the_client_reads_a_tie_group_larger_than_a_page(
    sandbox: SandboxEndpoints, qonto: httpx.Client, read_fixture: Callable[[str], Any]
) -> None:
    """The fixtures' month-end batch shares one updated_at: the client reads it with a [T, T]
    filter and its total_count (as it asks Qonto), then goes on past it, and misses nothing."""
    invoices = read_fixture("qonto/supplier_invoices.json")["supplier_invoices"]
    tie, size = Counter(i["updated_at"] for i in invoices).most_common(1)[0]
    assert size > 3, "the fixtures hold a tie group larger than the page below"
    group = qonto.get(
        "/v2/supplier_invoices",
        params={"filter[updated_at_from]": tie, "filter[updated_at_to]": tie, "per_page": 1},
    ).json()
    assert group["meta"]["total_count"] == size and group["meta"]["total_pages"] == size
    with QontoClient(sandbox.qonto_base_url, sandbox.qonto_access_token, rate_limits=()) as client:
        window_end = datetime.fromisoformat(max(i["updated_at"] for i in invoices).replace("Z", "+00:00"))
        read = [
            row["id"] for page in client.supplier_invoice_pages(None, window_end, per_page=3) for row in page
        ]
    assert set(read) == {i["id"] for i in invoices}


def test_status_filter_and_single_invoice(qonto: httpx.Client) -> None:
    records, _ = _all_pages(qonto, **{"filter[status][]": ["to_review"]})
    assert records and {r["status"] for r in records} == {"to_review"}
    one = qonto.get(f"/v2/supplier_invoices/{records[0]['id']}")
    assert one.json() == {"supplier_invoice": records[0]}
    missing = qonto.get("/v2/supplier_invoices/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"


def test_attachment_url_downloads_the_pdf(qonto: httpx.Client, fixtures_dir: Path) -> None:
    invoice = qonto.get("/v2/supplier_invoices", params={"per_page": 1}).json()["supplier_invoices"][0]
    attachment = qonto.get(f"/v2/attachments/{invoice['attachment_id']}").json()["attachment"]
    assert (
        attachment["id"] == invoice["attachment_id"] and attachment["file_content_type"] == "application/pdf"
    )
    download = httpx.get(attachment["url"])  # pre-signed: no bearer token
    assert download.status_code == 200 and download.headers["content-type"] == "application/pdf"
    assert (
        download.content == (fixtures_dir / "qonto" / "attachments" / f"{attachment['id']}.pdf").read_bytes()
    )
    tampered = attachment["url"].replace("signature=", "signature=0")
    assert httpx.get(tampered).status_code == 403


def test_expired_attachment_url_is_refused(fixtures_dir: Path, tmp_path: Path) -> None:
    # the sandbox's clock is the test's: expiry is checked without sleeping, so load cannot flake it
    now = [datetime(2026, 11, 1, 12, 0, tzinfo=UTC)]
    options = SandboxOptions(attachment_url_ttl_seconds=60, clock=lambda: now[0])
    with run_sandbox(fixtures_dir, tmp_path, ports=SandboxPorts.ephemeral(), options=options) as endpoints:
        headers = {"Authorization": f"Bearer {endpoints.qonto_access_token}"}
        with httpx.Client(base_url=endpoints.qonto_base_url, headers=headers) as qonto:
            invoice = qonto.get("/v2/supplier_invoices", params={"per_page": 1}).json()["supplier_invoices"][
                0
            ]
            url = qonto.get(f"/v2/attachments/{invoice['attachment_id']}").json()["attachment"]["url"]
            now[0] += timedelta(seconds=61)
            expired = httpx.get(url)
            assert expired.status_code == 403 and b"expired" in expired.content
            fresh = qonto.get(f"/v2/attachments/{invoice['attachment_id']}").json()["attachment"]["url"]
            assert httpx.get(fresh).status_code == 200


def test_missing_or_wrong_token_is_401(sandbox: SandboxEndpoints) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sandbox.qonto_access_token}):
        response = httpx.get(f"{sandbox.qonto_base_url}/v2/supplier_invoices", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"errors": [{"code": "unauthorized", "detail": "Unauthorized"}]}


def test_oauth_refresh_rotates_the_refresh_token(sandbox: SandboxEndpoints) -> None:
    oauth = sandbox.qonto_oauth
    form = {
        "grant_type": "refresh_token",
        "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"],
        "refresh_token": oauth["refresh_token"],
    }
    issued = httpx.post(oauth["token_url"], data=form).json()
    assert issued["token_type"] == "bearer" and issued["expires_in"] == 3600
    assert issued["refresh_token"] != oauth["refresh_token"]
    listed = httpx.get(
        f"{sandbox.qonto_base_url}/v2/supplier_invoices",
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )
    assert listed.status_code == 200
    again = httpx.post(oauth["token_url"], data={**form, "refresh_token": issued["refresh_token"]})
    assert again.status_code == 200
    wrong_client = httpx.post(oauth["token_url"], data={**form, "client_secret": "nope"})
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"


def test_api_requests_over_the_rate_limits_get_429(fixtures_dir: Path, tmp_path: Path) -> None:
    """Over a limit, the API answers 429 in Qonto's error shape, with Retry-After unless that is
    turned off; the pre-signed file downloads do not count. The window is a minute, so the test
    does not depend on how fast it runs."""
    gate = RateLimitGate(parse_rate_limits("3/1min"))
    options = SandboxOptions(qonto_rate_limits=gate)
    with run_sandbox(fixtures_dir, tmp_path, ports=SandboxPorts.ephemeral(), options=options) as endpoints:
        headers = {"Authorization": f"Bearer {endpoints.qonto_access_token}"}
        assert endpoints.as_json()["qonto"]["rate_limits"] == "3/1min"
        with httpx.Client(base_url=endpoints.qonto_base_url, headers=headers) as qonto:
            invoice = qonto.get("/v2/supplier_invoices", params={"per_page": 1}).json()["supplier_invoices"][
                0
            ]
            url = qonto.get(f"/v2/attachments/{invoice['attachment_id']}").json()["attachment"]["url"]
            for _ in range(3):
                assert httpx.get(url).status_code == 200
            assert qonto.get(f"/v2/supplier_invoices/{invoice['id']}").status_code == 200
            refused = qonto.get(f"/v2/supplier_invoices/{invoice['id']}")
            assert refused.status_code == 429
            assert refused.json()["errors"][0]["code"] == "too_many_requests"
            assert 0 < int(refused.headers["retry-after"]) <= 60
            gate.set(parse_rate_limits("1/1min"), retry_after=False)
            assert qonto.get(f"/v2/supplier_invoices/{invoice['id']}").status_code == 200
            refused = qonto.get(f"/v2/supplier_invoices/{invoice['id']}")
            assert refused.status_code == 429 and "retry-after" not in refused.headers
        assert (gate.admitted, gate.refused) == (1, 1)
