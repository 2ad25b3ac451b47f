"""A generated fixture directory and a running sandbox (real servers on loopback, free ports),
shared by the sandbox tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.sandbox import SandboxEndpoints, SandboxPorts, generate_fixtures, run_sandbox

SEED = 5
TIMEOUT = httpx.Timeout(10.0, connect=2.0)


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_fixtures(tmp_path_factory.mktemp("sandbox-fixtures") / f"seed-{SEED}", SEED)


@pytest.fixture(scope="session")
def read_fixture(fixtures_dir: Path) -> Callable[[str], Any]:
    def read(relative: str) -> Any:
        return json.loads((fixtures_dir / relative).read_text(encoding="utf-8"))

    return read


@pytest.fixture(scope="session")
def sandbox(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxEndpoints]:
    mailbox = tmp_path_factory.mktemp("sandbox-mailbox")
    with run_sandbox(fixtures_dir, mailbox, ports=SandboxPorts.ephemeral()) as endpoints:
        yield endpoints


@pytest.fixture
def qonto(sandbox: SandboxEndpoints) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.qonto_access_token}"}
    with httpx.Client(base_url=sandbox.qonto_base_url, headers=headers, timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def square(sandbox: SandboxEndpoints) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.square_access_token}", "Square-Version": "2025-08-20"}
    with httpx.Client(base_url=sandbox.square_base_url, headers=headers, timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def quickbooks(sandbox: SandboxEndpoints) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.quickbooks_access_token}", "Accept": "application/json"}
    base_url = f"{sandbox.quickbooks_base_url}/v3/company/{sandbox.quickbooks_realm_id}"
    with httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT) as http:
        yield http
