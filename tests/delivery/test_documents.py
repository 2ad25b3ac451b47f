"""Documents and messages: the receipt carries the source record id, no header can be injected."""

from __future__ import annotations

import io
import re
import time
import unicodedata
from collections.abc import Callable

import fpdf.fpdf
import pytest
from PIL import Image
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


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


FOREIGN = {
    **DOCUMENT,
    "counterparty_name": "Boulangerie Dupont",
    "amount_minor": 10000,
    "currency": "USD",
    "mapping_version": 4,
    "fields": {"deposit_account": "Stripe Clearing", "class": "Retail"},
    "conversion": {
        "home_currency": "EUR",
        "converted_amount_minor": 9200,
        "rate": "0.9200",
        "rate_date": "2026-03-13",
        "rate_source": "workspace_rule",
    },
}


def test_a_foreign_currency_receipt_shows_every_field_with_its_name() -> None:
    lines = _text(render_square_receipt(FOREIGN, "Acme SAS")).splitlines()

    for expected in (
        "Card payment receipt",
        "Reconciled by ledgerlink for Acme SAS.",
        "Customer Boulangerie Dupont",
        "Date 2026-04-02",
        "Amount 100.00 USD",
        "Currency USD",
        "Converted 92.00 EUR at 0.9200 (workspace_rule, 2026-03-13)",
        "Matched invoice Café Zoë (QuickBooks invoice 77)",
        "Payment reference INV-9",
        "Match score 0.93",
        "deposit_account Stripe Clearing",
        "class Retail",
        "Journal lines",
        "Account Debit Credit",
        "Stripe Clearing 100.00 USD",  # the mapping's deposit account, debited
        "Accounts Receivable 100.00 USD",  # the default receivable account, credited
        "Payment: 100.00 USD by card on 2026-04-02",
        "ledgerlink source record id: square:PAY123",
        "ledgerlink mapping version: 4",
    ):
        assert expected in lines, expected


def test_a_missing_rate_is_said_on_the_receipt_and_the_cover_page() -> None:
    document = {**FOREIGN, "conversion": {"home_currency": "EUR", "missing_rate": True}}
    for pdf in (render_square_receipt(document, "Acme"), documents.cover_page_pdf(document, "Acme")):
        assert "Converted no USD/EUR rate on record" in _text(pdf).splitlines()


def test_long_values_wrap_inside_their_cell_and_are_cut_at_a_word() -> None:
    name = " ".join(f"Boulangerie{n}" for n in range(20))  # 259 characters
    text = _text(render_square_receipt({**DOCUMENT, "counterparty_name": name}, "Acme"))
    shown = " ".join(text[text.index("Customer") + len("Customer ") : text.index("\nDate")].split())

    assert shown.endswith("...") and name.startswith(shown.removesuffix("..."))
    assert 100 < len(shown) <= 120
    assert len(PdfReader(io.BytesIO(render_square_receipt(FOREIGN, "Acme"))).pages) == 1


def test_a_line_break_in_a_name_stays_inside_its_cell() -> None:
    text = _text(render_square_receipt(DOCUMENT, "Acme"))
    assert "Customer Café Zoë Bcc: attacker@example.com" in text.splitlines()


def test_the_cover_page_names_the_supplier_invoice_and_the_image_follows_it() -> None:
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(png, format="PNG")
    cover = {**FOREIGN, "counterparty_name": "Łódź Piekarnia", "reference": "F-2026-7"}
    reader = PdfReader(io.BytesIO(documents.cover_page_pdf(cover, "Acme", png.getvalue())))

    lines = reader.pages[0].extract_text().splitlines()
    for expected in (
        "Supplier invoice",
        "Supplier Łódź Piekarnia",
        "Amount 100.00 USD",
        "Converted 92.00 EUR at 0.9200 (workspace_rule, 2026-03-13)",
        "Invoice number F-2026-7",
        "ledgerlink source record id: qonto:PAY123",
        "ledgerlink mapping version: 4",
        "The original document follows this cover page.",
    ):
        assert expected in lines, expected
    assert len(reader.pages) == 2 and len(reader.pages[1].images) == 1


def test_render_document_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    """A micro-benchmark of rendering alone: prints documents/s per kind (run with ``-s``);
    it asserts only that each document carries its record id."""
    kinds = {
        "Latin-1 receipt": documents.DocumentSource("square", "PAY123", FOREIGN),
        "Unicode receipt": documents.DocumentSource(
            "square", "PAY123", {**FOREIGN, "counterparty_name": "Łódź Piekarnia"}
        ),
        "Qonto cover page": documents.DocumentSource("qonto", "PAY123", FOREIGN, ("scan.pdf", _ONE_PAGE_PDF)),
    }
    for kind, source in kinds.items():
        documents.render_document(source, "Acme")  # the first parses the Unicode font
        started = time.perf_counter()
        rendered = [documents.render_document(source, "Acme") for _ in range(10)]
        elapsed = time.perf_counter() - started
        with capsys.disabled():
            print(
                f"\n{kind}: {len(rendered) / elapsed:.1f} documents/s ({elapsed / len(rendered) * 1000:.1f} ms each)"
            )
        assert all(f"{source.source}:PAY123" in _text(pdf) for _, pdf, _ in rendered)


def _one_page_pdf() -> bytes:
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(text="Facture F-1")
    return bytes(pdf.output())


_ONE_PAGE_PDF = _one_page_pdf()


@pytest.mark.parametrize("y", [40.0, 284.0], ids=["mid-page", "at-the-bottom-margin"])
def test_a_line_that_fits_is_drawn_where_fpdf_cell_draws_it(y: float) -> None:
    """Receipts draw their one-line cells without ``cell``'s machinery; the page must not move:
    the same text at the same places, the same page breaks, the cursor left where it leaves it."""

    def drawn(draw_line: Callable[[fpdf.FPDF, float, str], None]) -> tuple[list[bytes], int, float, float]:
        pdf = fpdf.FPDF()
        pdf.compress = False
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.set_xy(30, y)
        draw_line(pdf, 40, "Amount")
        pdf.set_font(style="B")
        draw_line(pdf, 60, "12,50 EUR (Café de la Gare)")
        draw_line(pdf, 20, "")
        content = bytes(pdf.output())
        return re.findall(rb"BT [^\n]*? ET", content), pdf.pages_count, round(pdf.x, 6), round(pdf.y, 6)

    def with_cell(pdf: fpdf.FPDF, width: float, text: str) -> None:
        pdf.cell(width, 7, text)

    def with_one_line(pdf: fpdf.FPDF, width: float, text: str) -> None:
        documents._one_line(pdf, width, 7, text)

    assert drawn(with_one_line) == drawn(with_cell)
