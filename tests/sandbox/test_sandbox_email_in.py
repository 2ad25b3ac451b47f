"""Email-in: a real SMTP round trip stores each accepted message as one .eml file."""

from __future__ import annotations

import email
import smtplib
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from ledgerlink.sandbox import SandboxEndpoints
from ledgerlink.sandbox.email_in import start_email_in


def _message(sender: str, recipient: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, recipient, subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@ledgerlink.invalid>"
    message.set_content("Bill attached.")
    message.add_attachment(b"%PDF-1.3 test", maintype="application", subtype="pdf", filename="bill.pdf")
    return message


def test_smtp_round_trip_writes_one_eml(sandbox: SandboxEndpoints) -> None:
    before = set(sandbox.mailbox_dir.glob("*.eml"))
    sent = _message(sandbox.registered_sender, sandbox.email_in_address, "round trip")
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=10) as smtp:
        assert smtp.send_message(sent) == {}
    new = set(sandbox.mailbox_dir.glob("*.eml")) - before
    assert len(new) == 1
    received = email.message_from_bytes(new.pop().read_bytes(), policy=default_policy)
    assert received["Message-ID"] == sent["Message-ID"]
    assert received["Delivered-To"] == sandbox.email_in_address
    attachments = [part.get_filename() for part in received.iter_attachments()]  # type: ignore[attr-defined]
    assert attachments == ["bill.pdf"]
    assert not list(sandbox.mailbox_dir.glob(".*.tmp")), "no temporary file is left behind"


def test_other_recipients_are_refused(sandbox: SandboxEndpoints) -> None:
    before = set(sandbox.mailbox_dir.glob("*.eml"))
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(_message(sandbox.registered_sender, "someone@qbodocs.com", "stray"))
    assert set(sandbox.mailbox_dir.glob("*.eml")) == before


def test_the_sandbox_email_in_refuses_unregistered_senders_and_other_file_types(
    sandbox: SandboxEndpoints,
) -> None:
    before = set(sandbox.mailbox_dir.glob("*.eml"))
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused, match="not registered"):
            smtp.send_message(_message("intruder@example.com", sandbox.email_in_address, "intruder"))
    word = _message(sandbox.registered_sender, sandbox.email_in_address, "word file")
    word.get_payload()[1].replace_header("Content-Disposition", 'attachment; filename="bill.docx"')  # type: ignore[index, union-attr]
    with smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError, match="JPG, PNG, GIF and PDF"):
            smtp.send_message(word)
    assert set(sandbox.mailbox_dir.glob("*.eml")) == before


def test_the_owner_inbox_takes_notices_for_the_owner_only(sandbox: SandboxEndpoints) -> None:
    notice = EmailMessage()
    notice["From"], notice["To"], notice["Subject"] = "ledgerlink@example.com", sandbox.owner_email, "notice"
    notice.set_content("Qonto needs attention.")
    with smtplib.SMTP(sandbox.smtp_host, sandbox.owner_smtp_port, timeout=10) as smtp:
        assert smtp.send_message(notice) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(_message("ledgerlink@example.com", sandbox.email_in_address, "wrong door"))
    assert len(list(sandbox.owner_mailbox_dir.glob("*.eml"))) == 1
    assert not set(sandbox.mailbox_dir.glob("*.eml")) & set(sandbox.owner_mailbox_dir.glob("*.eml"))


def test_file_names_keep_arrival_order_across_restarts(tmp_path: Path) -> None:
    address = "acme-1234@qbodocs.com"
    for round_number in range(2):
        server = start_email_in(tmp_path, address)
        try:
            with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
                smtp.send_message(_message("a@example.com", address, f"round {round_number}"))
                # the newer domain reaches the same mailbox
                smtp.send_message(
                    _message("a@example.com", "ACME-1234@assist.intuit.com", f"twin {round_number}")
                )
        finally:
            server.stop()
    names = sorted(path.name for path in tmp_path.glob("*.eml"))
    assert [name.split("-")[0] for name in names] == ["000001", "000002", "000003", "000004"]


def test_a_reply_delay_holds_every_reply_like_a_distant_server(tmp_path: Path) -> None:
    """The option plays QuickBooks across the internet: each command waits one delayed reply (a
    multi-line EHLO reply counts once), and the message still arrives whole. Only the lower bound
    is checked: the delay is the feature, not a speed goal."""
    import time

    delay = 0.2
    server = start_email_in(tmp_path / "distant", "far@qbodocs.com", reply_delay_seconds=delay)
    try:
        started = time.perf_counter()
        with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
            greeted = time.perf_counter()
            code, _ = smtp.ehlo()
            assert code == 250 and smtp.has_extn("size")  # every line of the reply arrived
            ehlo_done = time.perf_counter()
            assert smtp.send_message(_message("a@example.com", "far@qbodocs.com", "far away")) == {}
            sent = time.perf_counter()
        assert greeted - started >= delay  # the greeting
        assert ehlo_done - greeted >= delay
        assert sent - ehlo_done >= 4 * delay  # MAIL, RCPT, DATA and the end of the message
        assert len(server.mailbox.messages()) == 1
    finally:
        server.stop()
    with pytest.raises(ValueError, match="negative"):
        start_email_in(tmp_path / "bad", "far@qbodocs.com", reply_delay_seconds=-1)
