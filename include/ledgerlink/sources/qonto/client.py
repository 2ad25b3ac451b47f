"""Qonto supplier invoices (page/per_page paging) and attachments (30-minute download URLs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from ledgerlink.sources.http import ApiClient

MAX_PER_PAGE = 100


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class QontoClient(ApiClient):
    def __init__(self, base_url: str, access_token: str, **kwargs: Any) -> None:
        super().__init__(base_url, {"Authorization": f"Bearer {access_token}"}, **kwargs)

    def supplier_invoice_pages(
        self, updated_from: datetime | None, updated_to: datetime, per_page: int = MAX_PER_PAGE
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of supplier invoices updated in [updated_from, updated_to], read to the end.
        A missing or null ``meta.next_page`` means the last page."""
        params: dict[str, Any] = {
            "filter[updated_at_to]": _iso(updated_to),
            "per_page": min(per_page, MAX_PER_PAGE),
        }
        if updated_from is not None:
            params["filter[updated_at_from]"] = _iso(updated_from)
        page: int | None = 1
        while page is not None:
            body = self.request("GET", "/v2/supplier_invoices", params={**params, "page": page}).json()
            yield body.get("supplier_invoices") or []
            page = (body.get("meta") or {}).get("next_page")

    def attachment(self, attachment_id: str) -> dict[str, Any]:
        """The attachment's metadata, with a download URL valid for 30 minutes."""
        body = self.request("GET", f"/v2/attachments/{attachment_id}").json()
        return dict(body["attachment"])

    def download_attachment(self, attachment_id: str) -> tuple[dict[str, Any], bytes]:
        """Metadata and file bytes. An expired URL (403/404 from the file host) is fetched anew once."""
        for _ in range(2):
            attachment = self.attachment(attachment_id)
            url = str(attachment["url"]).replace("\\u0026", "&")
            response = httpx.get(url, timeout=httpx.Timeout(60.0, connect=5.0))
            if response.status_code in (403, 404, 410):
                continue
            response.raise_for_status()
            return attachment, response.content
        response.raise_for_status()
        raise AssertionError("unreachable")
