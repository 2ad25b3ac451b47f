"""Documents as QuickBooks receives them (Qonto originals, converted images with a cover page,
Square receipts with journal lines and converted amounts) and the second line of dedup (replays,
updates after delivery, look-alikes sent to review)."""

from __future__ import annotations

import email
import email.policy
import io
from datetime import date
from email.message import EmailMessage

import psycopg
from delivery_rig import DeliveryRig, decide, land_qonto_invoice, outbox_rows, square_record
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader

from ledgerlink.delivery.sender import deliver_pending


def _supplier_pdf() -> bytes:
    invoice = FPDF()
    invoice.add_page()
    invoice.set_font("Helvetica", size=12)
    invoice.cell(text="Facture F-Q1 Papeterie Dupont 120.00 EUR")
    return bytes(invoice.output())


PDF = _supplier_pdf()


def _received(rig: DeliveryRig) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in rig.email_in.mailbox.messages()
    ]


def _attachment(message: EmailMessage) -> tuple[str, bytes]:
    [part] = list(message.iter_attachments())
    return str(part.get_filename()), part.get_payload(decode=True)  # type: ignore[return-value]


def _send(conn: psycopg.Connection, rig: DeliveryRig) -> dict[str, int]:
    return deliver_pending(conn, rig.workspace.workspace_id, rig.endpoint(), rig.blobs, "run")


def test_a_qonto_original_goes_as_it_is_and_an_unaccepted_image_is_converted_behind_a_cover(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    tiff = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(tiff, format="TIFF")
    decide(conn, rig.workspace, land_qonto_invoice(conn, rig.workspace, rig.blobs, "Q1", "facture.pdf", PDF))
    decide(
        conn,
        rig.workspace,
        land_qonto_invoice(conn, rig.workspace, rig.blobs, "Q2", "scan.tiff", tiff.getvalue()),
    )
    conn.commit()
    assert _send(conn, rig)["sent"] == 2
    original, converted = _received(rig)
    name, pdf = _attachment(original)
    assert name == "facture.pdf"
    cover, invoice_page = PdfReader(io.BytesIO(pdf)).pages
    assert "qonto:Q1" in cover.extract_text() and "mapping version: 0" in cover.extract_text()
    assert invoice_page.extract_text() == PdfReader(io.BytesIO(PDF)).pages[0].extract_text()
    name, pdf = _attachment(converted)
    assert name == "scan.pdf"
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2, "a cover page, then the converted original"
    cover = reader.pages[0].extract_text()
    assert "qonto:Q2" in cover and "mapping version: 0" in cover
    # QuickBooks makes one "for review" item per accepted attachment
    assert [item["file_name"] for item in rig.email_in.mailbox.for_review()] == ["facture.pdf", "scan.pdf"]


def test_a_square_receipt_in_a_foreign_currency_carries_both_amounts_the_rate_and_its_date(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    conn.execute(
        "insert into ops.exchange_rates values (%s, 'USD', 'EUR', 0.9200, '2026-03-13', 'workspace_rule')",
        (rig.workspace.workspace_id,),
    )
    decide(conn, rig.workspace, square_record("FX1", currency="USD", amount_minor=10000))
    decide(conn, rig.workspace, square_record("FX2", currency="GBP", amount_minor=500))
    conn.commit()
    first, second = outbox_rows(conn, rig.workspace.workspace_id)
    assert first["document"]["conversion"] == {
        "home_currency": "EUR",
        "converted_amount_minor": 9200,
        "rate": "0.9200",
        "rate_date": "2026-03-13",
        "rate_source": "workspace_rule",
    }
    assert second["document"]["conversion"] == {"home_currency": "EUR", "missing_rate": True}
    assert _send(conn, rig)["sent"] == 2
    receipt = PdfReader(io.BytesIO(_attachment(_received(rig)[0])[1])).pages[0].extract_text()
    for expected in ("100.00 USD", "92.00 EUR", "0.9200", "2026-03-13", "square:FX1", "Journal lines"):
        assert expected in receipt, expected
    assert "Undeposited Funds" in receipt and "Accounts Receivable" in receipt
    other = PdfReader(io.BytesIO(_attachment(_received(rig)[1])[1])).pages[0].extract_text()
    assert "no GBP/EUR rate on record" in other


def test_a_replay_with_the_same_content_sends_nothing(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    decide(conn, rig.workspace, square_record("D1"))
    conn.commit()
    _send(conn, rig)
    for _ in range(3):  # manual re-import, marker rewind, webhook replay
        decide(conn, rig.workspace, square_record("D1"))
        conn.commit()
        assert _send(conn, rig)["sent"] == 0
    assert len(outbox_rows(conn, rig.workspace.workspace_id)) == 1
    assert len(rig.email_in.mailbox.messages()) == 1


def test_changed_content_after_delivery_is_an_update_referencing_the_original_for_a_person(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("D2"))
    conn.commit()
    _send(conn, rig)
    decide(conn, rig.workspace, square_record("D2", version="v2", amount_minor=4300))
    conn.commit()
    assert _send(conn, rig)["sent"] == 1
    original, update = outbox_rows(conn, rig.workspace.workspace_id)
    assert original["status"] == "sent" and original["needs_person"] is False
    assert update["supersedes_outbox_id"] == original["outbox_id"]
    assert update["needs_person"] is True and "cannot be edited by email" in str(
        update["needs_person_reason"]
    )
    first, second = _received(rig)
    assert str(second["References"]).strip() == original["message_id"]
    assert str(second["Message-ID"]).strip() != str(first["Message-ID"]).strip()


def test_changed_content_before_delivery_replaces_the_queued_document(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("D3"))
    decide(conn, rig.workspace, square_record("D3", version="v2", amount_minor=4300))
    conn.commit()
    assert _send(conn, rig)["sent"] == 1
    old, new = outbox_rows(conn, rig.workspace.workspace_id)
    assert (old["status"], new["status"], new["needs_person"]) == ("superseded", "sent", False)
    assert len(rig.email_in.mailbox.messages()) == 1


def test_content_that_comes_back_before_delivery_is_sent_once_as_it_now_is(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    # v1 is queued, v2 replaces it, then the source reverts to v1 (a corrected edit undone)
    decide(conn, rig.workspace, square_record("D5"))
    decide(conn, rig.workspace, square_record("D5", version="v2", amount_minor=4300))
    decide(conn, rig.workspace, square_record("D5"))
    conn.commit()
    assert _send(conn, rig)["sent"] == 1
    first, second = outbox_rows(conn, rig.workspace.workspace_id)
    assert (first["status"], second["status"]) == ("sent", "superseded")
    assert first["document"]["amount_minor"] == 4250
    (message,) = _received(rig)
    assert str(message["Message-ID"]).strip() == first["message_id"]


def test_distinct_look_alike_records_go_to_review_before_sending(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    decide(conn, rig.workspace, square_record("L1", reference=None))
    twin = decide(
        conn,
        rig.workspace,
        square_record(
            "L2", reference=None, counterparty_name="BOULANGERIE  marchand", occurred_on=date(2026, 3, 16)
        ),
    )
    far = decide(conn, rig.workspace, square_record("L3", reference=None, occurred_on=date(2026, 3, 30)))
    conn.commit()
    assert [row["source_record_id"] for row in outbox_rows(conn, rig.workspace.workspace_id)] == ["L1", "L3"]
    route, explanation = conn.execute(
        "select route, explanation from ops.routing_decisions where decision_id = %s", (twin,)
    ).fetchone()  # type: ignore[misc]
    assert route == "review" and explanation["look_alike_of"] == "L1"
    assert conn.execute(
        "select route from ops.routing_decisions where decision_id = %s", (far,)
    ).fetchone() == ("auto_link",)
    assert _send(conn, rig)["sent"] == 2

    # A reviewer judges the look-alike distinct and accepts it: now it is queued and sent.
    conn.execute(
        "insert into ops.review_actions (workspace_id, decision_id, source, source_record_id,"
        " source_payload_sha256, action, candidate_type, candidate_id, actor)"
        " select workspace_id, decision_id, source, source_record_id, source_payload_sha256, 'accept',"
        " 'invoice', '1042', 'ana' from ops.routing_decisions where decision_id = %s",
        (twin,),
    )
    decide(
        conn, rig.workspace, square_record("L2", reference=None, counterparty_name="BOULANGERIE  marchand")
    )
    conn.commit()
    assert _send(conn, rig)["sent"] == 1
    assert len(rig.email_in.mailbox.messages()) == 3


def test_no_record_value_reaches_a_header(conn: psycopg.Connection, rig: DeliveryRig) -> None:
    hostile = "Evil SARL\r\nBcc: attacker@example.com\r\nX-Injected: yes"
    decide(conn, rig.workspace, square_record("H1", counterparty_name=hostile))
    decide(
        conn,
        rig.workspace,
        land_qonto_invoice(
            conn,
            rig.workspace,
            rig.blobs,
            "H2",
            "bill\r\nBcc: attacker@example.com.pdf",
            PDF,
            counterparty_name=hostile,
        ),
    )
    conn.commit()
    assert _send(conn, rig)["sent"] == 2
    for path in rig.email_in.mailbox.messages():
        raw = path.read_bytes()
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\nBcc:" not in headers and b"\nX-Injected:" not in headers
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Bcc"] is None and message["X-Injected"] is None
        assert message["Delivered-To"] == rig.workspace.email_in_address


def test_documents_rendered_in_worker_processes_arrive_as_rendered_inline(
    conn: psycopg.Connection, rig: DeliveryRig
) -> None:
    ws = rig.workspace.workspace_id
    decide(conn, rig.workspace, land_qonto_invoice(conn, rig.workspace, rig.blobs, "W1", "facture.pdf", PDF))
    decide(conn, rig.workspace, square_record("W2", counterparty_name="Łódź Piekarnia"))
    docx = b"PK\x03\x04 word document"
    decide(conn, rig.workspace, land_qonto_invoice(conn, rig.workspace, rig.blobs, "W3", "bill.docx", docx))
    conn.commit()
    counts = deliver_pending(conn, ws, rig.endpoint(), rig.blobs, "run", render_processes=2)
    assert (counts["sent"], counts["rejected"]) == (2, 1)
    assert "bill.docx" in str(outbox_rows(conn, ws)[2]["rejected_reason"])
    qonto, square = (_attachment(message) for message in _received(rig))
    qonto_pages = PdfReader(io.BytesIO(qonto[1])).pages
    assert qonto[0] == "facture.pdf" and len(qonto_pages) == 2  # the cover page, then the original
    assert "qonto:W1" in qonto_pages[0].extract_text()
    assert "Facture F-Q1" in qonto_pages[1].extract_text()
    receipt = PdfReader(io.BytesIO(square[1])).pages[0].extract_text()
    assert square[0] == "square-W2.pdf"
    assert "square:W2" in receipt and "Łódź Piekarnia" in receipt
