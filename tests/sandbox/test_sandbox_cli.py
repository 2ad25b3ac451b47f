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


def test_generate_writes_a_fixture_directory_and_prints_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "fixtures"
    command = [
        "generate",
        "--seed",
        "9",
        "--out",
        str(out),
        "--qonto-invoices",
        "5",
        "--square-payments",
        "8",
    ]
    result = CliRunner().invoke(sandbox, [*command, "--figures"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == out.resolve()
    figures = json.loads(result.stderr)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 9
    truth = json.loads((out / "ground_truth.json").read_text())
    # eight planned charges, plus the duplicate submissions the generator adds on top
    assert len(truth["square"]) == 8 + len(truth["square_duplicates"])
    assert figures["rows_by_file"]["square/payments.json"] == len(truth["square"])
    assert figures["rows"] == sum(figures["rows_by_file"].values()) and figures["seconds"] > 0
    assert figures["rows_per_second"] > 0


def test_generate_refuses_more_invoiced_charges_than_charges(tmp_path: Path) -> None:
    command = [
        "generate",
        "--out",
        str(tmp_path / "f"),
        "--square-payments",
        "10",
        "--invoiced-payments",
        "11",
    ]
    result = CliRunner().invoke(sandbox, command)
    assert result.exit_code != 0 and "invoiced_payments" in result.output
    assert not (tmp_path / "f" / "manifest.json").exists()


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
