"""``ledgerlink sandbox``: generate writes fixtures; serve prints exactly one JSON line once all
servers answer, and stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from ledgerlink.cli.sandbox import sandbox


def test_generate_writes_a_fixture_directory(tmp_path: Path) -> None:
    out = tmp_path / "fixtures"
    result = CliRunner().invoke(
        sandbox,
        ["generate", "--seed", "9", "--out", str(out), "--qonto-invoices", "5", "--square-payments", "8"],
    )
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == out.resolve()
    assert json.loads((out / "manifest.json").read_text())["seed"] == 9
    assert len(json.loads((out / "ground_truth.json").read_text())["square"]) == 8


def test_serve_prints_one_json_line_and_stops_on_sigterm(fixtures_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from ledgerlink.cli.sandbox import sandbox; sandbox()", "serve"]
    command += ["--fixtures", str(fixtures_dir), "--mailbox", str(tmp_path / "mailbox")]
    command += ["--qonto-port", "0", "--square-port", "0", "--quickbooks-port", "0", "--smtp-port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        endpoints = json.loads(line)
        assert set(endpoints) == {
            "qonto",
            "square",
            "quickbooks",
            "email_in",
            "owner_inbox",
            "mailbox",
            "fixtures",
            "workspace_id",
        }
        assert endpoints["email_in"]["address"].endswith("@qbodocs.com")
        assert endpoints["owner_inbox"]["smtp_port"] != endpoints["email_in"]["smtp_port"]
        assert endpoints["fixtures"] == str(fixtures_dir.resolve())
        qonto = endpoints["qonto"]
        response = httpx.get(
            f"{qonto['base_url']}/v2/supplier_invoices",
            headers={"Authorization": f"Bearer {qonto['access_token']}"},
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        remaining, _ = process.communicate(timeout=15)
        assert process.returncode == 0
        assert remaining == "", "nothing but the one JSON line goes to stdout"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
