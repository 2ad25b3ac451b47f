"""QuickBooks Online reads through the query endpoint, paged with STARTPOSITION/MAXRESULTS.

There is deliberately no method that sends anything but GET: writes reach QuickBooks only as
email, so this client holds no write path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ledgerlink.sources.http import ApiClient, SourceError

MAX_RESULTS = 1000
MINOR_VERSION = "75"


class QuickBooksFault(SourceError):
    """A ``Fault`` body, which QuickBooks may send even with status 200."""


class QuickBooksClient(ApiClient):
    def __init__(self, base_url: str, access_token: str, realm_id: str, **kwargs: Any) -> None:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        super().__init__(base_url, headers, **kwargs)
        self._realm_id = realm_id

    def entity_pages(
        self, entity: str, updated_from: datetime | None, page_size: int = MAX_RESULTS
    ) -> Iterator[list[dict[str, Any]]]:
        """Every ``entity`` (Vendor, Customer, Invoice, Account, ...) changed since ``updated_from``."""
        where = ""
        if updated_from is not None:
            where = f" where Metadata.LastUpdatedTime >= '{updated_from.isoformat()}'"
        start = 1
        while True:
            # QuickBooks query language, not SQL: the entity comes from code, the bound from a datetime.
            query = f"select * from {entity}{where} startposition {start} maxresults {page_size}"  # noqa: S608
            body = self.request(
                "GET",
                f"/v3/company/{self._realm_id}/query",
                params={"query": query, "minorversion": MINOR_VERSION},
            ).json()
            if "Fault" in body:
                raise QuickBooksFault(f"QuickBooks refused {query!r}: {body['Fault']}")
            rows = (body.get("QueryResponse") or {}).get(entity) or []
            yield rows
            if len(rows) < page_size:
                return
            start += len(rows)
