"""One sandbox with fault injection for the source tests (real servers on loopback), and fresh
inactive workspaces connected to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledgerlink.credentials import store_token
from ledgerlink.sandbox import SandboxEndpoints, SandboxOptions, SandboxPorts, generate_fixtures, run_sandbox
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.warehouse import connect
from ledgerlink.workspaces import Workspace, save_workspace


@pytest.fixture(scope="session")
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture(scope="session")
def source_sandbox(
    tmp_path_factory: pytest.TempPathFactory, faults: FaultInjector
) -> Iterator[SandboxEndpoints]:
    fixtures = generate_fixtures(tmp_path_factory.mktemp("sources") / "fixtures", seed=11)
    options = SandboxOptions(faults=faults)
    with run_sandbox(
        fixtures, tmp_path_factory.mktemp("sources-mailbox"), ports=SandboxPorts.ephemeral(), options=options
    ) as endpoints:
        yield endpoints


@pytest.fixture(autouse=True)
def _no_faults_between_tests(faults: FaultInjector) -> Iterator[None]:
    faults.clear()
    yield
    faults.clear()


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
