"""One sandbox with fault injection and settable Qonto rate limits for the source tests (real servers on loopback), fresh
inactive workspaces connected to it, and the set-up the source tests share: the extraction
window, Square access with fast retries, and the sandbox's OAuth clients."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from source_retry_policy import FAST_RETRIES

from ledgerlink.credentials import store_token
from ledgerlink.extraction import ExtractionWindow, SourceAccess
from ledgerlink.sandbox import (
    SandboxEndpoints,
    SandboxOptions,
    SandboxPorts,
    generate_fixtures,
    load_fixtures,
    run_sandbox,
)
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.rate_limits import RateLimitGate
from ledgerlink.sandbox.square import square_oauth_client
from ledgerlink.sources.oauth import QONTO_SCOPES, SQUARE_SCOPES, OAuthClient
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace


@pytest.fixture(scope="session")
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture(scope="session", autouse=True)
def _qonto_unpaced() -> Iterator[None]:
    """The sandbox enforces no rate limits unless a test sets some, so the Qonto client is not
    paced to Qonto's production ones either: the session's thousands of requests to one sandbox
    would otherwise wait on a 10-minute window. A test that paces says so."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEDGERLINK_QONTO_RATE_LIMITS", "off")
        yield


@pytest.fixture(scope="session")
def qonto_rate_limits() -> RateLimitGate:
    """The limits the sandbox's Qonto enforces: none, unless a test sets some."""
    return RateLimitGate()


@pytest.fixture(scope="session")
def source_sandbox(
    tmp_path_factory: pytest.TempPathFactory, faults: FaultInjector, qonto_rate_limits: RateLimitGate
) -> Iterator[SandboxEndpoints]:
    fixtures = generate_fixtures(tmp_path_factory.mktemp("sources") / "fixtures", seed=11)
    options = SandboxOptions(faults=faults, qonto_rate_limits=qonto_rate_limits)
    with run_sandbox(
        fixtures, tmp_path_factory.mktemp("sources-mailbox"), ports=SandboxPorts.ephemeral(), options=options
    ) as endpoints:
        yield endpoints


@pytest.fixture(autouse=True)
def _no_faults_between_tests(faults: FaultInjector, qonto_rate_limits: RateLimitGate) -> Iterator[None]:
    faults.clear()
    yield
    faults.clear()
    qonto_rate_limits.set(())


@pytest.fixture
def new_workspace(warehouse, source_sandbox: SandboxEndpoints) -> Callable[..., str]:  # noqa: ANN001
    """Create an inactive workspace holding the sandbox's tokens; return its id."""

    def create(owner_email: str | None = "owner@example.test") -> str:
        workspace_id = f"src-{uuid.uuid4().hex[:10]}"
        with connect(warehouse) as conn, conn.transaction():
            save_workspace(
                conn,
                Workspace(
                    workspace_id=workspace_id,
                    display_name=f"Test {workspace_id}",
                    email_in_address=source_sandbox.email_in_address,
                    owner_email=owner_email,
                    quickbooks_realm_id=source_sandbox.quickbooks_realm_id,
                    square_location_id=source_sandbox.square_location_id,
                    is_active=False,
                ),
            )
            store_token(conn, workspace_id, "qonto", source_sandbox.qonto_access_token)
            store_token(conn, workspace_id, "square", source_sandbox.square_access_token)
            store_token(conn, workspace_id, "quickbooks", source_sandbox.quickbooks_access_token)
        return workspace_id

    return create


@pytest.fixture
def fixtures_root(source_sandbox: SandboxEndpoints) -> Path:
    return source_sandbox.fixtures_dir


@pytest.fixture
def window_end() -> datetime:
    """Where every extraction window in the source tests ends: after all the generated data."""
    return datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def window(window_end: datetime) -> Callable[[str], ExtractionWindow]:
    """The extraction window of a run, by run id."""
    return lambda run: ExtractionWindow(run_id=run, window_end=window_end)


@pytest.fixture
def square_access(source_sandbox: SandboxEndpoints) -> Callable[..., SourceAccess]:
    """Access to the sandbox's Square with fast retries (the bounds matter, not the waiting)."""

    def access(notifier: Any = None, oauth: OAuthClient | None = None) -> SourceAccess:
        return SourceAccess(
            source_sandbox.square_base_url, notifier=notifier, oauth=oauth, retry_policy=FAST_RETRIES
        )

    return access


@pytest.fixture
def square_payments(fixtures_root: Path) -> list[dict[str, Any]]:
    """The payments the sandbox serves, as the fixture file holds them."""
    return list(json.loads((fixtures_root / "square" / "payments.json").read_text())["payments"])


@pytest.fixture
def qonto_oauth(source_sandbox: SandboxEndpoints) -> OAuthClient:
    """The sandbox's Qonto OAuth application (confidential client, the four scopes)."""
    return OAuthClient(
        authorize_url=f"{source_sandbox.qonto_base_url}/oauth2/auth",
        token_url=source_sandbox.qonto_oauth["token_url"],
        client_id=source_sandbox.qonto_oauth["client_id"],
        client_secret=source_sandbox.qonto_oauth["client_secret"],
        scopes=QONTO_SCOPES,
    )


@pytest.fixture
def square_oauth(source_sandbox: SandboxEndpoints) -> OAuthClient:
    """The sandbox's Square OAuth application for the code flow."""
    client_id, client_secret = square_oauth_client(load_fixtures(source_sandbox.fixtures_dir))
    base = source_sandbox.square_base_url
    return OAuthClient(
        f"{base}/oauth2/authorize", f"{base}/oauth2/token", client_id, client_secret, SQUARE_SCOPES
    )
