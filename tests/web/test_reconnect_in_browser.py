"""An operator in a real browser (Playwright driving Debian's Chromium) mends a broken Qonto
connection from the status page: sees it needing re-authorisation with its open incident, clicks
Reconnect, approves ledgerlink at the sandbox's Qonto (its OAuth server on loopback), and lands
back on the status page with the connection healthy and the incident closed. A refusal at the
provider comes back as a clear message that changes nothing. Screenshots are kept."""

from __future__ import annotations

from pathlib import Path

from operations_world import broken_connection, changed_after_delivery
from playwright.sync_api import Browser, expect
from test_review_in_browser import browser, signed_in_page  # noqa: F401 - the module's browser fixture
from web_world import AirflowServer, World

from ledgerlink.credentials import connection_status, load_token
from ledgerlink.incidents import open_incidents
from ledgerlink.sandbox import SandboxEndpoints
from ledgerlink.warehouse import ServerAddress, connect


def test_an_operator_reconnects_qonto_from_the_status_page(
    browser: Browser,  # noqa: F811
    airflow_server: AirflowServer,
    oauth_sandbox: SandboxEndpoints,
    prepared: tuple[object, ServerAddress],
    artifacts: Path,
) -> None:
    warehouse = prepared[1]
    workspace_id = broken_connection(warehouse, "qonto", "alice")
    page = signed_in_page(browser, airflow_server, "alice")
    status_url = f"{airflow_server.base_url}/ledgerlink/status?workspace={workspace_id}"

    # first the person refuses at Qonto: the page says so, and the connection stays broken
    page.goto(status_url)
    page.get_by_role("button", name="Reconnect Qonto").click()
    page.wait_for_url(f"{oauth_sandbox.qonto_base_url}/oauth2/auth**")
    page.get_by_role("button", name="Deny").click()
    expect(page.locator("main")).to_contain_text("Qonto did not authorize ledgerlink (access_denied)")
    expect(page.locator("body")).to_contain_text("nothing was changed")
    page.screenshot(path=artifacts / "13-reconnect-refused-at-provider.png", full_page=True)
    with connect(warehouse) as conn:
        assert connection_status(conn, workspace_id, "qonto") == "needs_reauth"
        assert len(open_incidents(conn, workspace_id, "qonto")) == 1

    page.goto(status_url)
    connection = page.locator("table.list").first
    expect(connection).to_contain_text("needs reauth")
    expect(connection).to_contain_text("Qonto refused the token (401 invalid_grant)")
    expect(page.locator("tr.incident")).to_have_count(1)
    page.screenshot(path=artifacts / "14-status-broken-qonto.png", full_page=True)

    page.get_by_role("button", name="Reconnect Qonto").click()
    page.wait_for_url(f"{oauth_sandbox.qonto_base_url}/oauth2/auth**")
    expect(page.locator("body")).to_contain_text("supplier_invoice.read")
    page.screenshot(path=artifacts / "15-qonto-sandbox-consent.png", full_page=True)
    page.get_by_role("button", name="Allow").click()

    page.wait_for_url("**/ledgerlink/status?**")
    expect(page.locator("#reconnected")).to_contain_text("Qonto is connected again; 1 open incident closed")
    expect(page.locator("table.list").first).to_contain_text("connected")
    expect(page.get_by_role("button", name="Reconnect Qonto")).to_have_count(0)
    expect(page.locator("tr.incident")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("No open incident.")
    page.screenshot(path=artifacts / "16-status-qonto-reconnected.png", full_page=True)
    with connect(warehouse) as conn:
        assert connection_status(conn, workspace_id, "qonto") == "connected"
        assert open_incidents(conn, workspace_id, "qonto") == []
        assert load_token(conn, workspace_id, "qonto").access_token.startswith("ory_at_")
    page.close()


def test_an_operator_marks_a_changed_record_as_checked(
    browser: Browser,  # noqa: F811
    airflow_server: AirflowServer,
    world: World,
    prepared: tuple[object, ServerAddress],
    artifacts: Path,
    tmp_path: Path,
) -> None:
    warehouse = prepared[1]
    changed = changed_after_delivery(warehouse, world.blobs, tmp_path)
    page = signed_in_page(browser, airflow_server, "alice")
    page.goto(f"{airflow_server.base_url}/ledgerlink/status?workspace={changed.workspace_id}")
    row = page.locator("tr.needs-person")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("square sq-changed")
    page.screenshot(path=artifacts / "17-status-changed-after-delivery.png", full_page=True)
    row.get_by_role("button", name="Checked in QuickBooks").click()
    expect(page.locator("#acknowledged")).to_contain_text("square:sq-changed is marked as checked")
    expect(page.locator("tr.needs-person")).to_have_count(0)
    page.goto(f"{airflow_server.base_url}/ledgerlink/records/{changed.workspace_id}/square/sq-changed")
    expect(page.locator("tr.needs-person-note")).to_contain_text("Checked in QuickBooks by alice")
    page.screenshot(path=artifacts / "18-record-changed-checked.png", full_page=True)
    page.close()
