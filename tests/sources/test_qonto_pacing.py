"""A first sync paced to Qonto's rate limits, against a sandbox that enforces them like Qonto
(429 over the limit) over real loopback HTTP and the real warehouse: every request is admitted,
nothing is lost, and the task log says that pacing held requests back."""

from __future__ import annotations

import json
import logging

import pytest

from ledgerlink.blobstore import BlobStore
from ledgerlink.extraction import SourceAccess, extract_qonto
from ledgerlink.sandbox.rate_limits import RateLimitGate
from ledgerlink.sources.pacing import parse_rate_limits
from ledgerlink.sources.qonto.client import QontoClient, configured_rate_limits
from ledgerlink.warehouse import connect

#: Qonto's two windows scaled down (1,000/10 s and 10,000/10 min), so the seed's 120 invoices and
#: their attachments (about 125 API requests) cross both within seconds.
LIMITS = "50/1s,100/3s"


def test_a_paced_first_sync_stays_under_qontos_limits_and_lands_everything(
    warehouse,
    faults,
    source_sandbox,
    qonto_rate_limits: RateLimitGate,
    new_workspace,
    window,
    tmp_path,
    caplog,
) -> None:  # noqa: ANN001
    limits = parse_rate_limits(LIMITS)
    # No Retry-After (unconfirmed for Qonto): a refused request would cost the client a blind backoff.
    qonto_rate_limits.set(limits, retry_after=False)
    invoices = json.loads((source_sandbox.fixtures_dir / "qonto" / "supplier_invoices.json").read_text())
    invoices = invoices["supplier_invoices"]
    attachment_ids = {invoice["attachment_id"] for invoice in invoices}
    workspace_id = new_workspace()
    access = SourceAccess(source_sandbox.qonto_base_url, client_options={"rate_limits": limits})
    with caplog.at_level(logging.INFO, logger="ledgerlink.sources.pacing"), connect(warehouse) as conn:
        summary = extract_qonto(conn, workspace_id, access, window("paced-1"), BlobStore(tmp_path / "blobs"))
        landed = conn.execute(
            "select (select count(distinct source_record_id) from raw.qonto_supplier_invoices"
            "         where workspace_id = %(w)s),"
            "       (select count(*) from raw.qonto_attachments where workspace_id = %(w)s)",
            {"w": workspace_id},
        ).fetchone()
    api_requests = [request for request in faults.requests if request[0] == "qonto" and "/v2/" in request[2]]
    assert qonto_rate_limits.refused == 0, "the client went over the sandbox's limits"
    assert qonto_rate_limits.admitted == len(api_requests) > limits[-1].requests
    assert summary["supplier_invoices"] == len(invoices) and summary["attachments"] == len(attachment_ids)
    assert landed == (len(invoices), len(attachment_ids))
    pacing = [record.getMessage() for record in caplog.records if "pacing requests to" in record.getMessage()]
    assert pacing and "50/1s, 100/3s" in pacing[0]


def test_rate_limits_come_from_the_environment_else_qontos_documented_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEDGERLINK_QONTO_RATE_LIMITS", raising=False)
    assert [str(limit) for limit in configured_rate_limits()] == ["1000/10s", "10000/10min"]
    monkeypatch.setenv("LEDGERLINK_QONTO_RATE_LIMITS", "off")
    assert configured_rate_limits() == ()
    monkeypatch.setenv("LEDGERLINK_QONTO_RATE_LIMITS", "600/1min")
    assert [str(limit) for limit in configured_rate_limits()] == ["600/1min"]
    monkeypatch.setenv("LEDGERLINK_QONTO_RATE_LIMITS", "lots")
    with pytest.raises(ValueError, match="LEDGERLINK_QONTO_RATE_LIMITS: 'lots' is not a rate limit"):
        QontoClient("http://127.0.0.1:9", "token")
