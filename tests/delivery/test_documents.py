"""Documents and messages: the receipt carries the source record id, no header can be injected."""

from __future__ import annotations

import io
import unicodedata

import fpdf.fpdf
import pytest
from pypdf import PdfReader

from ledgerlink.delivery import documents
from ledgerlink.delivery.documents import render_square_receipt
from ledgerlink.delivery.sender import build_message

DOCUMENT = {
    "source": "square",
    "source_record_id": "PAY123",
    "counterparty_name": "Café Zoë\r\nBcc: attacker@example.com",
    "amount_minor": 150000,
    "currency": "JPY",
    "occurred_on": "2026-04-02",
    "reference": "INV-9",
    "matched_type": "invoice",
    "matched_id": "77",
    "matched_name": "Café Zoë",
    "score": 0.93,
}
ROW = {
    "source": "square",
    "source_record_id": "PAY123",
    "recipient": "acme@qbodocs.com",
    "message_id": "<ws.square.PAY123.abcd@ledgerlink.invalid>",
    "document": DOCUMENT,
}


def test_square_receipt_shows_the_record_and_money_in_its_own_exponent() -> None:
    pdf = render_square_receipt(DOCUMENT, "Acme SAS")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "square:PAY123" in text
    assert "150,000 JPY" in text
    assert "77" in text


@pytest.mark.skipif(not documents._UNICODE_FONT.exists(), reason="no Unicode font on this system")
def test_receipts_parse_the_font_once_and_each_embeds_its_own_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    class CountingFont(fpdf.fpdf.TTFFont):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            parsed.append(str(args[2]))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(fpdf.fpdf, "TTFFont", CountingFont)
    documents._unicode_font_prototypes.cache_clear()
    names = ["Łódź Piekarnia", "Ωmega Σ Ltd", "Ærøskøbing Café", "Łódź Piekarnia"]
    texts = [
        PdfReader(io.BytesIO(render_square_receipt({**DOCUMENT, "counterparty_name": name}, "Acme")))
        .pages[0]
        .extract_text()
        for name in names
    ]
    documents._unicode_font_prototypes.cache_clear()

    assert parsed == ["dejavu", "dejavuB"]  # regular and bold, once for all four receipts
    for name, text in zip(names, texts, strict=True):
        assert name in text  # a later receipt's glyphs neither miss nor leak into another's


def _embedded_fonts(pdf: bytes) -> set[str]:
    fonts = PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"]
    return {str(font.get_object()["/BaseFont"]) for font in fonts.values()}


@pytest.mark.skipif(not documents._UNICODE_FONT.exists(), reason="no Unicode font on this system")
def test_latin1_receipts_use_the_core_font_and_others_embed_the_unicode_one() -> None:
    # "Café Zoë" typed with combining accents (NFD) is still Latin-1 once composed
    decomposed = unicodedata.normalize("NFD", "Café Zoë")
    latin = render_square_receipt({**DOCUMENT, "counterparty_name": decomposed}, "Acme")
    polish = render_square_receipt({**DOCUMENT, "counterparty_name": "Łódź Piekarnia"}, "Acme")

    assert all(font.startswith("/Helvetica") for font in _embedded_fonts(latin))
    assert b"/FontFile2" not in latin, "a Latin-1 receipt embeds no font"
    assert "Café Zoë" in PdfReader(io.BytesIO(latin)).pages[0].extract_text()
    assert any("DejaVu" in font for font in _embedded_fonts(polish))
    assert "Łódź Piekarnia" in PdfReader(io.BytesIO(polish)).pages[0].extract_text()


def test_control_characters_never_reach_a_header() -> None:
    message = build_message(ROW, "ledgerlink@acme.example", ("receipt.pdf", b"%PDF-1.4"))
    raw = message.as_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers
    assert message["Bcc"] is None
    assert message["Message-ID"] == ROW["message_id"]
    assert "square:PAY123" in str(message["Subject"])
