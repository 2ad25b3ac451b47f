"""The integration status page: connection health, open incidents, deliveries by state and every
failed delivery with its reason, for the reviewer's own workspaces only; no secret is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from web_world import AirflowServer, World, outbox_rows

from ledgerlink.credentials import store_token
from ledgerlink.delivery import deliver_pending
from ledgerlink.incidents import open_incident
from ledgerlink.mail import SmtpEndpoint
from ledgerlink.review import ReviewRefused, take_review_action
from ledgerlink.sandbox.email_in import AcceptancePolicy, start_email_in
from ledgerlink.warehouse import ServerAddress, connect


class UnregisteredSender(AcceptancePolicy):
    def check_sender(self, mail_from: str) -> str | None:
        return "550 5.7.1 sender is not registered with this QuickBooks company"


def test_status_shows_what_failed_and_only_to_its_workspace(
    airflow_server: AirflowServer, world: World, prepared: tuple[object, ServerAddress], tmp_path: Path
) -> None:
    warehouse = prepared[1]
    with connect(warehouse) as conn:
        try:  # linked already when the review-action tests ran first
            take_review_action(
                conn,
                workspace_id=world.workspace_b,
                decision_id=world.review_decisions_b[0],
                choice="accept",
                actor="bob",
                acted_at=datetime.now(UTC),
            )
        except ReviewRefused:
            pass
        store_token(conn, world.workspace_b, "square", "sq-secret-access-token")
        open_incident(conn, world.workspace_b, "square", "auth_failed", "Square refused the token (401)")
        conn.commit()
        email_in = start_email_in(tmp_path, f"{world.workspace_b}@qbodocs.com", policy=UnregisteredSender())
        try:
            counts = deliver_pending(
                conn,
                world.workspace_b,
                SmtpEndpoint(email_in.host, email_in.port, "stranger@example.com"),
                world.blobs,
                "web-test-rejected",
            )
        finally:
            email_in.stop()
    assert counts["rejected"] == 1
    (rejected,) = outbox_rows(warehouse, world.workspace_b)
    assert rejected["status"] == "rejected"

    with airflow_server.login("bob") as bob:
        status = bob.get("/ledgerlink/status").text
    assert "auth failed" in status and "Square refused the token (401)" in status
    assert "5.7.1 sender is not registered" in status  # the reason, as the server gave it
    assert f"square {rejected['source_record_id']}" in status  # linked to the record's history
    assert "state-rejected" in status and "connected" in status
    assert "sq-secret-access-token" not in status
    with airflow_server.login("alice") as alice:
        theirs = alice.get("/ledgerlink/status").text
    assert "Square refused the token" not in theirs and "5.7.1" not in theirs
