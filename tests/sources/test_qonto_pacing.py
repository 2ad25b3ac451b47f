"""A first sync paced to Qonto's rate limits, against a sandbox that enforces them like Qonto
(429 over the limit) over real loopback HTTP and the real warehouse: every request is admitted,
nothing is lost, and the task log says that pacing held requests back. Two processes of one
machine (two workspaces' tasks at once) stay under the limits together."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from ledgerlink.blobstore import BlobStore
from ledgerlink.extraction import SourceAccess, extract_qonto
from ledgerlink.sandbox.rate_limits import RateLimitGate
from ledgerlink.settings import STATE_DIR_VARIABLE
from ledgerlink.sources.pacing import parse_rate_limits
from ledgerlink.sources.qonto.client import RATE_LIMITS_VARIABLE, QontoClient, configured_rate_limits
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


#: One process of a workspace's Qonto task: ``requests`` first pages, each one API request.
_ONE_WORKSPACE_TASK = """
import sys
from datetime import UTC, datetime
from ledgerlink.sources.qonto.client import QontoClient

base_url, token, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = QontoClient(base_url, token)
for _ in range(requests):
    next(client.supplier_invoice_pages(None, datetime.now(UTC), per_page=1))
"""


def test_two_processes_of_one_machine_stay_under_qontos_limits_together(
    source_sandbox, qonto_rate_limits: RateLimitGate, tmp_path
) -> None:  # noqa: ANN001
    """Qonto counts per IP address: each process pacing on its own would send twice the limit."""
    limits = "20/1s,40/3s"
    qonto_rate_limits.set(parse_rate_limits(limits), retry_after=False)
    environment = {**os.environ, STATE_DIR_VARIABLE: str(tmp_path / "state"), RATE_LIMITS_VARIABLE: limits}
    arguments = [source_sandbox.qonto_base_url, source_sandbox.qonto_access_token, "45"]
    tasks = [
        subprocess.Popen(
            [sys.executable, "-c", _ONE_WORKSPACE_TASK, *arguments],
            env=environment,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for task in tasks:
        _, errors = task.communicate(timeout=300)
        assert task.returncode == 0, errors[-4000:]
    assert qonto_rate_limits.refused == 0, "the two processes together went over the sandbox's limits"
    assert qonto_rate_limits.admitted == 90
