"""The three clients against the sandbox's injected faults, over real HTTP: transient failures
retry within bounds (attempts and time) and honour Retry-After; auth failures never retry; a
body that never parses is reported with its raw text; QuickBooks' own rules hold."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from source_retry_policy import FAST_RETRIES

from ledgerlink.sandbox.faults import Fault
from ledgerlink.sources.http import AuthenticationFailed, MalformedResponse, RetryPolicy, SourceError
from ledgerlink.sources.qonto import QontoClient
from ledgerlink.sources.quickbooks import QuickBooksClient
from ledgerlink.sources.quickbooks.client import QuickBooksFault
from ledgerlink.sources.square import SquareClient

WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)
SHORT_TIMEOUT = httpx.Timeout(0.5, connect=1.0)


def _clients(sandbox, **kwargs):  # noqa: ANN001, ANN202
    return {
        "qonto": (
            QontoClient(sandbox.qonto_base_url, sandbox.qonto_access_token, **kwargs),
            "/v2/supplier_invoices",
        ),
        "square": (
            SquareClient(sandbox.square_base_url, sandbox.square_access_token, **kwargs),
            "/v2/payments",
        ),
        "quickbooks": (
            QuickBooksClient(
                sandbox.quickbooks_base_url,
                sandbox.quickbooks_access_token,
                sandbox.quickbooks_realm_id,
                **kwargs,
            ),
            "/v3/company/",
        ),
    }


def _first_page(service: str, client) -> list:  # noqa: ANN001
    if service == "qonto":
        return next(client.supplier_invoice_pages(None, WINDOW_END))
    if service == "square":
        return next(client.payment_pages(None, WINDOW_END, None))
    return next(client.entity_pages("Vendor", None))


def _calls(faults, service: str, prefix: str) -> int:  # noqa: ANN001
    return sum(1 for s, _, path in faults.requests if s == service and path.startswith(prefix))


SERVICES = ["qonto", "square", "quickbooks"]

TRANSIENT = {
    "429 with Retry-After": Fault(status=429, retry_after="0.3"),
    "429 without Retry-After": Fault(status=429),
    "500": Fault(status=500),
    "503": Fault(status=503),
    "timeout": Fault(latency_seconds=1.0),
    "connection reset": Fault(reset=True),
    "truncated body": Fault(truncate=True),
}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("fault_name", list(TRANSIENT))
def test_transient_faults_are_retried_until_the_page_arrives(
    source_sandbox, faults, service, fault_name
) -> None:  # noqa: ANN001
    policy = RetryPolicy(max_attempts=4, base_delay_seconds=0.01, max_delay_seconds=1.0, max_total_seconds=10.0,
                         throttled_delay_seconds=0.05 if service == "quickbooks" else None)  # fmt: skip
    client, prefix = _clients(source_sandbox, retry_policy=policy, timeout=SHORT_TIMEOUT)[service]
    faults.add(service, prefix, TRANSIENT[fault_name], times=2)
    started = time.monotonic()
    with client:
        page = _first_page(service, client)
    elapsed = time.monotonic() - started
    assert page, "the page arrived after the faults"
    assert _calls(faults, service, prefix) == 3, "two faulted attempts, then the real one"
    if fault_name == "429 with Retry-After":
        assert elapsed >= 0.6, "Retry-After: 0.3 was honoured twice"


@pytest.mark.parametrize("service", SERVICES)
def test_a_fault_that_never_clears_fails_within_the_attempt_bound(source_sandbox, faults, service) -> None:  # noqa: ANN001
    client, prefix = _clients(source_sandbox, retry_policy=FAST_RETRIES, timeout=SHORT_TIMEOUT)[service]
    faults.add(service, prefix, Fault(status=503), times=None)
    started = time.monotonic()
    with client, pytest.raises(SourceError, match="after 4 attempts"):
        _first_page(service, client)
    assert _calls(faults, service, prefix) == FAST_RETRIES.max_attempts
    assert time.monotonic() - started < FAST_RETRIES.max_total_seconds


def test_retries_stop_at_the_total_time_bound(source_sandbox, faults) -> None:  # noqa: ANN001
    policy = RetryPolicy(
        max_attempts=50, base_delay_seconds=0.01, max_delay_seconds=5.0, max_total_seconds=1.0
    )
    client, prefix = _clients(source_sandbox, retry_policy=policy)["square"]
    faults.add("square", prefix, Fault(status=429, retry_after="0.4"), times=None)
    started = time.monotonic()
    with client, pytest.raises(SourceError):
        _first_page("square", client)
    assert time.monotonic() - started < 1.5
    assert _calls(faults, "square", prefix) <= 3


@pytest.mark.parametrize("service", SERVICES)
def test_a_body_that_never_parses_is_reported_with_its_raw_text(source_sandbox, faults, service) -> None:  # noqa: ANN001
    client, prefix = _clients(source_sandbox, retry_policy=FAST_RETRIES)[service]
    faults.add(service, prefix, Fault(truncate=True), times=None)
    with client, pytest.raises(MalformedResponse) as raised:
        _first_page(service, client)
    assert raised.value.raw_body.startswith("{")
    assert _calls(faults, service, prefix) == FAST_RETRIES.max_attempts


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("auth", ["expired", "revoked"])
def test_auth_failures_are_never_retried(source_sandbox, faults, service, auth) -> None:  # noqa: ANN001
    client, prefix = _clients(source_sandbox, retry_policy=FAST_RETRIES)[service]
    faults.add(service, prefix, Fault(auth=auth), times=None)
    with client, pytest.raises(AuthenticationFailed):
        _first_page(service, client)
    assert _calls(faults, service, prefix) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_a_wrong_token_is_an_auth_failure(source_sandbox, faults, service) -> None:  # noqa: ANN001
    clients = {
        "qonto": QontoClient(source_sandbox.qonto_base_url, "wrong"),
        "square": SquareClient(source_sandbox.square_base_url, "wrong"),
        "quickbooks": QuickBooksClient(
            source_sandbox.quickbooks_base_url, "wrong", source_sandbox.quickbooks_realm_id
        ),
    }
    with clients[service] as client, pytest.raises(AuthenticationFailed):
        _first_page(service, client)
    assert len(faults.requests) == 1


def test_quickbooks_fault_with_status_200_is_an_error_not_data(source_sandbox, faults) -> None:  # noqa: ANN001
    fault_body = (
        '{"Fault":{"Error":[{"Message":"Error parsing query","Detail":"QueryParserError","code":"4000",'
        '"element":""}],"type":"ValidationFault"},"time":"2026-11-01T10:00:00.000-07:00"}'
    )
    faults.add("quickbooks", "/v3/company/", Fault(status=200, body=fault_body))
    client, _ = _clients(source_sandbox, retry_policy=FAST_RETRIES)["quickbooks"]
    with client, pytest.raises(QuickBooksFault, match="ValidationFault"):
        _first_page("quickbooks", client)
    assert len(faults.requests) == 1, "a Fault is not retried"


def test_quickbooks_429_waits_the_configured_throttle_time(source_sandbox, faults) -> None:  # noqa: ANN001
    faults.add("quickbooks", "/v3/company/", Fault(status=429), times=1)
    client = QuickBooksClient(
        source_sandbox.quickbooks_base_url,
        source_sandbox.quickbooks_access_token,
        source_sandbox.quickbooks_realm_id,
        throttled_wait_seconds=0.5,
    )
    started = time.monotonic()
    with client:
        assert _first_page("quickbooks", client)
    assert time.monotonic() - started >= 0.5


def test_quickbooks_client_keeps_to_ten_concurrent_requests_per_company(source_sandbox, faults) -> None:  # noqa: ANN001
    # Every request is slow, so 20 threads would overlap; the sandbox answers 429 above 10.
    faults.add("quickbooks", "/v3/company/", Fault(latency_seconds=0.3), times=None)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with QuickBooksClient(
                source_sandbox.quickbooks_base_url,
                source_sandbox.quickbooks_access_token,
                source_sandbox.quickbooks_realm_id,
                retry_policy=RetryPolicy(max_attempts=1),
            ) as client:
                _first_page("quickbooks", client)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _calls(faults, "quickbooks", "/v3/company/") == 20


def test_quickbooks_client_cannot_write(source_sandbox, faults) -> None:  # noqa: ANN001
    client, _ = _clients(source_sandbox)["quickbooks"]
    with client:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with pytest.raises(PermissionError):
                client.request(method, f"/v3/company/{source_sandbox.quickbooks_realm_id}/bill")
            with pytest.raises(PermissionError):
                client.request_json(method, f"/v3/company/{source_sandbox.quickbooks_realm_id}/bill")
    assert faults.requests == [], "nothing reached the network"


def test_quickbooks_reads_inactive_vendors_and_customers(source_sandbox, faults) -> None:  # noqa: ANN001
    client, _ = _clients(source_sandbox)["quickbooks"]
    with client:
        for entity in ("Vendor", "Customer"):
            list(client.entity_pages(entity, None))
    queries = [target for service, _, target in faults.requests if service == "quickbooks"]
    assert len(queries) == 2
    assert all("where Active in (true, false) startposition 1" in query for query in queries), queries


def test_a_sandbox_started_elsewhere_takes_faults_over_http(source_sandbox, faults) -> None:  # noqa: ANN001
    control = f"{source_sandbox.square_base_url}/_sandbox/faults"
    added = httpx.post(control, json={"path": "/v2/payments", "status": 503, "times": 1})
    assert added.status_code == 201
    headers = {"Authorization": f"Bearer {source_sandbox.square_access_token}"}
    assert httpx.get(f"{source_sandbox.square_base_url}/v2/payments", headers=headers).status_code == 503
    assert httpx.get(f"{source_sandbox.square_base_url}/v2/payments", headers=headers).status_code == 200
    assert httpx.post(control, json={"status": 503}).status_code == 400, "a rule needs a path"


def test_real_endpoints_need_tls_1_3() -> None:
    import ssl

    from ledgerlink.sources.http import tls_context

    context = tls_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("service", "body"),
    [
        (
            "qonto",
            '{"errors":[{"code":"forbidden","detail":"missing required oauth scope: attachment.read"}]}',
        ),
        (
            "square",
            '{"errors":[{"category":"AUTHENTICATION_ERROR","code":"INSUFFICIENT_SCOPES","detail":"x"}]}',
        ),
    ],
)
def test_a_missing_scope_is_an_auth_failure(source_sandbox, faults, service, body) -> None:  # noqa: ANN001
    client, prefix = _clients(source_sandbox, retry_policy=FAST_RETRIES)[service]
    faults.add(service, prefix, Fault(status=403, body=body))
    with client, pytest.raises(AuthenticationFailed):
        _first_page(service, client)
    assert _calls(faults, service, prefix) == 1


def test_another_403_is_an_error_but_not_an_auth_failure(source_sandbox, faults) -> None:  # noqa: ANN001
    client, prefix = _clients(source_sandbox, retry_policy=FAST_RETRIES)["qonto"]
    faults.add("qonto", prefix, Fault(status=403, body='{"errors":[{"code":"forbidden","detail":"plan"}]}'))
    with client, pytest.raises(SourceError) as raised:
        _first_page("qonto", client)
    assert not isinstance(raised.value, AuthenticationFailed)
