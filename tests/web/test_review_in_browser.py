"""A reviewer in a real browser (Playwright driving Debian's Chromium): logs in through Airflow's
login page, opens the queue, reads an explanation, searches the ledger and pins an entry, clears
the next record with a keyboard shortcut; the email operator's delivery then sends both to a real
SMTP server, and the record's audit trail shows the Message-ID. Screenshots are kept."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from web_world import PASSWORDS, REPOSITORY, AirflowServer, World, outbox_rows

from ledgerlink.delivery import deliver_pending
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.sandbox.email_in import start_email_in
from ledgerlink.warehouse import ServerAddress, connect

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        # Debian's Chromium, installed by the Makefile; Playwright never downloads a browser
        subprocess.run(["make", "-C", str(REPOSITORY), "browser"], check=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


def _log_in(page: Page, server: AirflowServer, username: str) -> None:
    page.goto(f"{server.base_url}/ledgerlink/queue")
    # not signed in: Airflow's own login page, which brings the reviewer back to the queue
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORDS[username])
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/ledgerlink/queue")


def signed_in_page(browser: Browser, server: AirflowServer, username: str) -> Page:
    """A fresh desktop-sized tab, signed in to Airflow as ``username``."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    _log_in(page, server, username)
    return page


def _screenshot(page: Page, path: Path) -> None:
    """A full-page screenshot, once the PDF viewer (which draws after load) shows the document."""
    if page.locator("object#document").count():
        page.wait_for_timeout(1500)
    page.screenshot(path=path, full_page=True)


def test_a_reviewer_pins_a_candidate_and_the_next_run_delivers_it(
    browser: Browser,
    airflow_server: AirflowServer,
    world: World,
    prepared: tuple[object, ServerAddress],
    artifacts: Path,
    tmp_path: Path,
) -> None:
    warehouse = prepared[1]
    page = signed_in_page(browser, airflow_server, "alice")
    # the pages are part of the Airflow UI: its navigation opens them in place
    page.goto(f"{airflow_server.base_url}/plugin/ledgerlink-review-queue")
    embedded = page.frame_locator("iframe").locator("h1")
    expect(embedded).to_contain_text("Review queue", timeout=30_000)
    page.screenshot(path=artifacts / "00-airflow-ui-review-queue.png")
    page.goto(f"{airflow_server.base_url}/ledgerlink/queue")
    page.select_option("select[name=workspace]", world.workspace_a)
    page.locator("form.filters button").click()
    expect(page.locator("tr.queue-row")).to_have_count(len(world.review_decisions_a))
    expect(page.locator("h1")).to_contain_text(f"{len(world.review_decisions_a)} records waiting")
    page.screenshot(path=artifacts / "01-review-queue.png", full_page=True)

    page.get_by_role("link", name="Blue Bottle Coffee").click()
    page.wait_for_url("**/ledgerlink/decisions/*")
    # the explanation: each feature's contribution in bits, the lead over the runner-up, ranked entries
    explanation = page.locator("table.explanation")
    expect(explanation).to_contain_text("Name similarity")
    expect(explanation).to_contain_text("Amount")
    expect(explanation).to_contain_text("bits")
    expect(explanation).to_contain_text("Lead over the runner-up")
    expect(page.locator("ol.candidates li")).to_have_count(2)
    expect(page.locator("ol.candidates li").nth(1)).to_contain_text("Blue Bottle Coffee Roasters")
    _screenshot(page, artifacts / "02-review-record-explained.png")

    # the right entry is elsewhere in the ledger: search it with "/" and pin it
    page.keyboard.press("/")
    page.keyboard.type("Initech")
    page.keyboard.press("Enter")
    results = page.locator("ul.results li")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("invoice 1003")
    _screenshot(page, artifacts / "03-ledger-search.png")
    results.get_by_role("button", name="Pin").click()

    # the next record opens, with word that the pinned one is saved
    expect(page.locator(".notice.ok")).to_contain_text("Saved your decision")
    expect(page.locator("h1")).to_contain_text("BOULANGERIE DUPONT")
    expect(page.locator("object#document")).to_have_attribute("type", "application/pdf")
    _screenshot(page, artifacts / "04-next-record-qonto.png")
    # its document is the original attachment from the blob store
    document = page.request.get(page.locator("object#document").get_attribute("data") or "")
    assert document.headers["content-type"] == "application/pdf"
    assert document.body().startswith(b"%PDF")
    # the keyboard: "a" accepts the top candidate
    page.keyboard.press("a")
    expect(page.locator(".notice.ok")).to_contain_text("Saved your decision")

    outbox = {row["source_record_id"]: row for row in outbox_rows(warehouse, world.workspace_a)}
    assert outbox["sq-blue"]["status"] == "pending"
    assert outbox["sq-blue"]["document"]["matched_id"] == "1003"
    assert outbox["q-dupont"]["document"]["matched_type"] == "vendor"
    top_vendor = outbox["q-dupont"]["document"]["matched_id"]  # the two vendors tie; either is "top"
    assert top_vendor in {"56", "57"}
    with connect(warehouse) as conn:
        labels = conn.execute(
            "select source_record_id, action, candidate_id, actor, note from ops.review_actions"
            " where workspace_id = %s and source_record_id in ('sq-blue', 'q-dupont') order by action_id",
            (world.workspace_a,),
        ).fetchall()
    assert labels == [
        ("sq-blue", "pin", "1003", "alice", "pinned from a ledger search"),
        ("q-dupont", "accept", top_vendor, "alice", None),
    ]

    # the next run's delivery step, against a real SMTP server
    pending = [row for row in outbox_rows(warehouse, world.workspace_a) if row["status"] == "pending"]
    email_in = start_email_in(tmp_path / "mailbox", f"{world.workspace_a}@qbodocs.com")
    try:
        with connect(warehouse) as conn:
            sent = deliver_pending(
                conn,
                world.workspace_a,
                SmtpEndpoint(email_in.host, email_in.port, "ledgerlink@acme.example"),
                world.blobs,
                "web-test-delivery",
            )
        assert sent["sent"] == len(pending)
        assert sent["failed"] == sent["rejected"] == sent["deferred"] == 0
        received = [message_from_bytes(path.read_bytes()) for path in email_in.mailbox.messages()]
    finally:
        email_in.stop()
    message_ids = {"".join(message["Message-ID"].split()) for message in received}  # unfolded
    assert outbox["sq-blue"]["message_id"] in message_ids

    # the audit trail: landed version, decision, alice's pin, the attempt with its Message-ID
    page.goto(f"{airflow_server.base_url}/ledgerlink/records/{world.workspace_a}/square/sq-blue")
    expect(page.locator("main")).to_contain_text("Landed versions (1)")
    expect(page.locator("main")).to_contain_text("fellegi-sunter")  # the model version that decided it
    expect(page.locator("main")).to_contain_text("pinned from a ledger search")
    expect(page.locator("main")).to_contain_text(outbox["sq-blue"]["message_id"])
    expect(page.locator("main")).to_contain_text("sent")
    page.screenshot(path=artifacts / "05-record-audit-trail.png", full_page=True)

    page.goto(f"{airflow_server.base_url}/ledgerlink/status?workspace={world.workspace_a}")
    expect(page.locator("main")).to_contain_text("Deliveries by state")
    page.screenshot(path=artifacts / "06-integration-status.png", full_page=True)
    page.close()


def test_the_queue_of_another_workspace_is_not_in_the_browser(
    browser: Browser, airflow_server: AirflowServer, world: World
) -> None:
    page = browser.new_page()
    _log_in(page, airflow_server, "bob")
    expect(page.locator("header")).to_contain_text("Beta Coffee")
    expect(page.locator("body")).not_to_contain_text("Acme Bakery")
    expect(page.locator("main")).not_to_contain_text("Blue Bottle")
    response = page.goto(f"{airflow_server.base_url}/ledgerlink/decisions/{world.review_decisions_a[0]}")
    assert response is not None and response.status == 404
    expect(page.locator("[role=alert]")).to_contain_text("No such record in your workspaces.")
    page.close()
