"""Qonto supplier invoices (page/per_page paging) and attachments (30-minute download URLs)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ledgerlink.sources.http import ApiClient, MalformedResponse, tls_context
from ledgerlink.sources.pacing import RateLimit, parse_rate_limits, shared_pacer

MAX_PER_PAGE = 100
#: Attachments fetched at once. Each costs an API call (for a fresh URL) and a download from the
#: file host; one at a time, a first sync spends its time waiting on round trips. Qonto allows
#: 1,000 API requests per 10 s (``apis.md`` §1.6), far above what four downloads in flight ask.
PARALLEL_DOWNLOADS = 4
#: The environment variable holding the API's rate limits the client paces to
#: (:mod:`ledgerlink.sources.pacing`); ``off`` turns pacing off.
RATE_LIMITS_VARIABLE = "LEDGERLINK_QONTO_RATE_LIMITS"
#: Qonto's documented limits (``apis.md`` §1.6, from Qonto's rate-limitations page), per IP address.
DOCUMENTED_RATE_LIMITS = "1000/10s,10000/10min"


def configured_rate_limits() -> tuple[RateLimit, ...]:
    """The limits from ``LEDGERLINK_QONTO_RATE_LIMITS``, Qonto's documented ones when unset."""
    text = os.environ.get(RATE_LIMITS_VARIABLE) or DOCUMENTED_RATE_LIMITS
    try:
        return parse_rate_limits(text)
    except ValueError as error:
        raise ValueError(f"{RATE_LIMITS_VARIABLE}: {error}") from error


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _updated_ats(invoices: list[Any]) -> list[str]:
    """The ``updated_at`` of each invoice that has one, in page order."""
    return [
        row["updated_at"]
        for row in invoices
        if isinstance(row, dict) and isinstance(row.get("updated_at"), str)
    ]


def _total_count(invoices: list[Any], meta: dict[str, Any]) -> int:
    total = meta.get("total_count")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedResponse(
            "meta.total_count is not a count",
            httpx.Response(200, json={"supplier_invoices": invoices, "meta": meta}).text,
        )
    return total


def _served_per_page(meta: dict[str, Any], asked: int) -> int:
    """The page size the API used: ``meta.per_page`` (it may serve fewer than asked)."""
    served = meta.get("per_page")
    return served if isinstance(served, int) and not isinstance(served, bool) and served >= 1 else asked


class QontoClient(ApiClient):
    """Qonto's API with its requests paced to ``rate_limits`` (default: the environment's, see
    :func:`configured_rate_limits`; ``()`` for none). The limits count per IP address, so every
    client of the process for the same host shares one pacer. They cover the API (invoice pages,
    and the attachment calls that hand out download URLs), not the file host the URLs point to."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        parallel_downloads: int = PARALLEL_DOWNLOADS,
        rate_limits: Sequence[RateLimit] | None = None,
        **kwargs: Any,
    ) -> None:
        limits = configured_rate_limits() if rate_limits is None else tuple(rate_limits)
        pacer = shared_pacer(f"qonto {urlsplit(base_url).netloc}", limits)
        super().__init__(base_url, {"Authorization": f"Bearer {access_token}"}, pacer=pacer, **kwargs)
        if parallel_downloads < 1:
            raise ValueError("parallel_downloads must be 1 or more")
        self._parallel_downloads = parallel_downloads
        # The file host's pre-signed links carry their own signature: no bearer token goes there.
        # One client for every download keeps its connections (and TLS sessions) alive.
        self._files = httpx.Client(
            timeout=httpx.Timeout(60.0, connect=5.0),
            verify=tls_context(),
            limits=httpx.Limits(max_connections=parallel_downloads),
        )

    def close(self) -> None:
        self._files.close()
        super().close()

    def supplier_invoice_pages(
        self, updated_from: datetime | None, updated_to: datetime, per_page: int = MAX_PER_PAGE
    ) -> Iterator[list[Any]]:
        """Every supplier invoice updated in [updated_from, updated_to], oldest change first, page
        by page, read to the end (a missing or null ``meta.next_page`` is the last page).

        Page numbers shift when a record changes during the read (it leaves its place and the
        ones after it move up one), which would skip a record. So each page restarts at the
        newest ``updated_at`` seen, inclusive (keyset paging), as page 1: one response is one
        consistent view, and everything older than its newest record came in it.

        Keyset paging cannot get past a tie group (a full page sharing one ``updated_at``, T).
        Such a group is read on its own, filtered to [T, T], by page number: a record can only
        leave that listing (a change moves it to a later ``updated_at``), which shrinks
        ``meta.total_count``, so a smaller count steps back as many places as records left. Then
        the page of [T, updated_to] that starts the rest (position: the group's count) is read,
        and the group counted once more: the same count proves no record of the group left in
        between, so that page sits where it should; else it is read again at the new count. Only
        a change back-dated to exactly T could enter the group and mask a leave. A change made
        during the read is dated at most the lookback before the read's upper bound, so that can
        happen only to a group within the lookback, which the next run reads again
        (``ledgerlink.extraction``). Records read twice are absorbed by landing's dedup. Items
        are returned as sent, objects or not: validation is the caller's."""
        per_page = min(per_page, MAX_PER_PAGE)
        upper = _iso(updated_to)
        lower = _iso(updated_from) if updated_from is not None else None
        page = 1
        while True:
            invoices, meta = self._invoice_page(lower, upper, page, per_page)
            yield invoices
            if not meta.get("next_page") or not invoices:
                return
            stamps = _updated_ats(invoices)
            newest = max(stamps, default=None)
            if newest is not None and stamps[0] == newest and len(stamps) == len(invoices):
                tie = newest
                count, served_per_page = yield from self._tie_group_pages(tie, per_page)
                while True:  # the page of [tie, upper] where the records after the group start
                    invoices, meta = self._invoice_page(tie, upper, count // served_per_page + 1, per_page)
                    yield invoices
                    recount = self._tie_group_count(tie)
                    if recount == count:
                        break
                    count = recount
                if not meta.get("next_page") or not invoices:
                    return
                stamps = _updated_ats(invoices)
                newest = max(stamps, default=None)
                page = count // served_per_page + 1
                lower = tie
            if newest is None or newest == lower:
                page += 1  # no later timestamp to page by (or the group grew): page numbers
            else:
                lower, page = newest, 1

    def _tie_group_pages(self, tie: str, per_page: int) -> Generator[list[Any], None, tuple[int, int]]:
        """The invoices updated at exactly ``tie``, page by page. Returns the group's count as of
        its last page and the page size the API served."""
        page, count = 1, None
        while True:
            invoices, meta = self._invoice_page(tie, tie, page, per_page)
            total = _total_count(invoices, meta)
            served_per_page = _served_per_page(meta, per_page)
            yield invoices
            if count is not None and total < count:
                # Records read on earlier pages left: the rest moved up by as many places.
                page = max(1, page - -(-(count - total) // served_per_page))
                count = total
                continue
            count = total
            if not meta.get("next_page") or not invoices:
                return count, served_per_page
            page += 1

    def _tie_group_count(self, tie: str) -> int:
        """How many invoices are updated at exactly ``tie`` now (one request, one record)."""
        invoices, meta = self._invoice_page(tie, tie, 1, 1)
        return _total_count(invoices, meta)

    def _invoice_page(
        self, lower: str | None, upper: str, page: int, per_page: int
    ) -> tuple[list[Any], dict[str, Any]]:
        params: dict[str, Any] = {
            "filter[updated_at_to]": upper,
            "sort_by": "updated_at:asc",
            "per_page": per_page,
            "page": page,
        }
        if lower is not None:
            params["filter[updated_at_from]"] = lower
        body = self.request_json("GET", "/v2/supplier_invoices", params=params)
        invoices = body.get("supplier_invoices")
        if invoices is None:
            invoices = []
        if not isinstance(invoices, list):
            raise MalformedResponse("supplier_invoices is not a list", httpx.Response(200, json=body).text)
        meta = body.get("meta")
        return invoices, meta if isinstance(meta, dict) else {}

    def attachment(self, attachment_id: str) -> dict[str, Any]:
        """The attachment's metadata, with a download URL valid for 30 minutes."""
        body = self.request_json("GET", f"/v2/attachments/{attachment_id}")
        return dict(body["attachment"])

    def download_attachment(self, attachment_id: str) -> tuple[dict[str, Any], bytes]:
        """Metadata and file bytes. An expired URL (403/404 from the file host) is fetched anew once."""
        for _ in range(2):
            attachment = self.attachment(attachment_id)
            url = str(attachment["url"]).replace("\\u0026", "&")
            response = self._files.get(url)
            if response.status_code in (403, 404, 410):
                continue
            response.raise_for_status()
            return attachment, response.content
        response.raise_for_status()
        raise AssertionError("unreachable")

    def download_attachments(
        self, attachment_ids: Iterable[str]
    ) -> Iterator[tuple[str, dict[str, Any], bytes]]:
        """``(id, metadata, bytes)`` for each attachment, in the order given, fetched
        ``parallel_downloads`` at a time. The first failure is raised when its turn comes."""
        ids = list(attachment_ids)
        if len(ids) <= 1 or self._parallel_downloads == 1:
            for attachment_id in ids:
                yield (attachment_id, *self.download_attachment(attachment_id))
            return
        with ThreadPoolExecutor(self._parallel_downloads, thread_name_prefix="qonto-download") as pool:
            for attachment_id, (attachment, content) in zip(
                ids, pool.map(self.download_attachment, ids), strict=True
            ):
                yield attachment_id, attachment, content
