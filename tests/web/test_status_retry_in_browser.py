"""An operator in a real browser: the status page shows a rejected delivery with the inbox's
reason; the operator fixes the field mapping on the settings page (a new version, with its diff),
retries from the status page with one click, and the next delivery step sends the same record
with the fixed mapping. The dashboard then draws its charts. Screenshots are kept."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

from operations_world import deliver, rejected_delivery, start_inbox
from playwright.sync_api import Browser, expect
from test_review_in_browser import browser, signed_in_page  # noqa: F401 - the module's browser fixture
from web_world import AirflowServer, World, outbox_rows

from ledgerlink.warehouse import ServerAddress


def test_an_operator_retries_a_rejected_record_after_fixing_its_mapping(
    browser: Browser,  # noqa: F811
    airflow_server: AirflowServer,
    world: World,
    prepared: tuple[object, ServerAddress],
    artifacts: Path,
    tmp_path: Path,
) -> None:
    warehouse = prepared[1]
    operations = rejected_delivery(warehouse, world.blobs, tmp_path / "rejecting")
    page = signed_in_page(browser, airflow_server, "alice")

    page.goto(f"{airflow_server.base_url}/ledgerlink/status?workspace={operations.workspace_id}")
    failed = page.locator("tr.failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("square sq-retry")
    expect(failed).to_contain_text("documents must carry the company's field mapping")
    page.screenshot(path=artifacts / "07-status-rejected-delivery.png", full_page=True)

    # the fix: a field mapping of the company's own, saved as version 1 on the settings page
    page.locator("header nav").get_by_role("link", name="Settings").click()
    page.select_option("select[name=workspace]", operations.workspace_id)
    page.get_by_role("button", name="Show").click()
    page.locator("textarea[name=computed]").fill("account_code = '706' if source == 'square' else '607'")
    page.locator("textarea[name=overrides]").fill("tax = VAT 20%")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#saved")).to_contain_text("mapping version 1")
    diff = page.locator("#diff")
    expect(diff).to_contain_text("from version 0 to version 1")
    expect(diff.locator("tr.diff-added")).to_have_count(2)
    expect(diff).to_contain_text("computed account_code")
    page.screenshot(path=artifacts / "08-settings-saved-with-diff.png", full_page=True)

    # a bad value is refused with the reason, and nothing is saved
    page.locator("input[name=auto_link_threshold]").fill("0.3")
    page.locator("textarea[name=computed]").fill("account_code = source.__class__")
    page.get_by_role("button", name="Save as a new version").click()
    problems = page.locator("#problems")
    expect(problems).to_contain_text("Nothing was saved")
    expect(problems).to_contain_text("computed field 'account_code' refused")
    expect(problems).to_contain_text("review threshold: must not exceed the auto-link threshold")
    page.screenshot(path=artifacts / "09-settings-refused.png", full_page=True)

    # retry with one click from the status page
    page.locator("header nav").get_by_role("link", name="Integration status").click()
    page.select_option("select[name=workspace]", operations.workspace_id)
    page.get_by_role("button", name="Show").click()
    page.locator("tr.failed").get_by_role("button", name="Retry after fix").click()
    expect(page.locator("#retried")).to_contain_text("square:sq-retry is queued again")
    expect(page.locator("tr.failed")).to_have_count(0)
    page.screenshot(path=artifacts / "10-status-after-retry.png", full_page=True)

    # the next run's delivery step: the same record and Message-ID, now with mapping version 1
    (queued,) = outbox_rows(warehouse, operations.workspace_id)
    assert queued["status"] == "pending" and queued["mapping_version"] == 1
    assert queued["document"]["fields"]["account_code"] == "706"
    inbox = start_inbox(tmp_path / "accepting", operations.workspace_id)
    try:
        assert deliver(warehouse, operations.workspace_id, inbox, world.blobs)["sent"] == 1
        (received,) = [message_from_bytes(path.read_bytes()) for path in inbox.mailbox.messages()]
    finally:
        inbox.stop()
    assert "".join(received["Message-ID"].split()) == queued["message_id"]
    assert received["X-Ledgerlink-Mapping-Version"] == "1"

    # the record's history: the decision with its versions, the rejection, the retry, the send
    page.goto(f"{airflow_server.base_url}/ledgerlink/records/{operations.workspace_id}/square/sq-retry")
    expect(page.locator("table.decision-history tr")).to_have_count(2)  # header + the decision
    expect(page.locator("main")).to_contain_text("retry_requested")
    expect(page.locator("main")).to_contain_text("fellegi-sunter-test")
    page.screenshot(path=artifacts / "11-record-history-after-retry.png", full_page=True)

    page.goto(f"{airflow_server.base_url}/ledgerlink/dashboard?days=30")
    for chart in ("routes", "queue-age", "precision", "failures"):
        expect(page.locator(f"svg.chart-{chart}")).to_have_count(1)
    expect(page.locator("svg.chart-queue-age rect")).not_to_have_count(0)
    page.screenshot(path=artifacts / "12-dashboard.png", full_page=True)
    page.close()
