"""The document QuickBooks' OCR reads: the original attachment for a Qonto supplier invoice,
or a PDF receipt laid out for a Square charge.

QuickBooks' email-in takes JPG, PNG, GIF and PDF files. A Qonto PDF original gets a cover page
in front (source record id, mapping version, amounts), its own pages untouched; a JPG, PNG or GIF
goes as it is (the source record id travels in the subject). An image in another format (TIFF,
BMP, WebP) is converted into a PDF behind the cover page; anything else is refused with the
reason, and the outbox row is kept as a rejection.
"""

from __future__ import annotations

import copy
import functools
import io
import mimetypes
import multiprocessing
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg
from fontTools import ttLib
from fpdf import FPDF
from fpdf.errors import FPDFException
from fpdf.fonts import TTFFont
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from ledgerlink.blobstore import BlobStore
from ledgerlink.money import format_money

# The Unicode font for text beyond Latin-1, when the system has one (see _pdf_from_blocks), and its
# bold face for labels and headings (the regular face stands in when the bold one is missing).
_UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_UNICODE_BOLD_FONT = _UNICODE_FONT.with_name("DejaVuSans-Bold.ttf")


#: File types QuickBooks' email-in accepts, by content type.
QUICKBOOKS_FILE_TYPES = {"image/jpeg", "image/png", "image/gif", "application/pdf"}


class DocumentRefused(ValueError):
    """No document QuickBooks accepts can be made for the record; the message says why."""


class DocumentUnavailable(DocumentRefused, LookupError):
    """The record's original attachment is not in the blob store."""


def _latin1(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("latin-1", "ignore").decode("latin-1")


@functools.cache
def _unicode_font_prototypes() -> dict[str, TTFFont]:
    """The Unicode font, regular and bold, parsed once per process: fpdf's ``add_font`` reads
    every glyph's width and id, which was half of a receipt's rendering time."""
    pdf = FPDF()
    pdf.add_font("DejaVu", fname=str(_UNICODE_FONT))
    bold = _UNICODE_BOLD_FONT if _UNICODE_BOLD_FONT.exists() else _UNICODE_FONT
    pdf.add_font("DejaVu", style="B", fname=str(bold))
    return {key: font for key, font in pdf.fonts.items() if isinstance(font, TTFFont)}


def _add_unicode_font(pdf: FPDF) -> None:
    """Give ``pdf`` the Unicode font as ``add_font`` would, from the parsed prototypes. fpdf's own
    deep copy of a font shares what never changes and copies what one document fills in (the
    glyphs it uses); writing the PDF subsets the fontTools object in place, so each document
    opens its own (lazily: only the tables the subset needs are read)."""
    for fontkey, prototype in _unicode_font_prototypes().items():
        font = copy.deepcopy(prototype)
        font.i = len(pdf.fonts) + 1
        font.ttfont = ttLib.TTFont(font.ttffile, recalcTimestamp=False, lazy=True)
        pdf.fonts[fontkey] = font


# The page's layout: text sizes and heights in points and millimetres.
_TEXT_SIZE = 11
_LINE_HEIGHT = 7.0
_HEADINGS = {1: (22, 12.0), 2: (16, 9.0)}  # level: size, line height
_TRUNCATED_AT = 120  # characters of a name, reference or mapping value shown


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class _Line:
    """A line of text, after a bold label when there is one."""

    text: str
    label: str = ""


@dataclass(frozen=True)
class _Table:
    """Rows of bordered cells, ``widths`` in percent of the text width. The first column is in
    bold (a field table's names), or the first row when ``headings`` (a table's column names)."""

    widths: tuple[int, ...]
    rows: Sequence[tuple[str, ...]]
    headings: bool = False


_Block = _Heading | _Line | _Table


def _texts(blocks: list[_Block]) -> Iterator[str]:
    for block in blocks:
        if isinstance(block, _Table):
            yield from (text for row in block.rows for text in row)
        else:
            yield block.text
            if isinstance(block, _Line):
                yield block.label


def _pdf_from_blocks(blocks: list[_Block]) -> FPDF:
    """The page laid out cell by cell (fpdf's HTML layout and its tables cost 5-15 times as
    much): in the PDF core font (Helvetica: nothing embedded, nothing to subset) when every
    character is Latin-1, as most documents are; otherwise in the Unicode font, embedded
    (subsetting it is most of such a document's cost); without one, in Helvetica with the text
    transliterated."""
    pdf = FPDF()
    pdf.add_page()
    all_latin1 = all(_is_latin1(unicodedata.normalize("NFC", text)) for text in _texts(blocks))
    unicode_font = not all_latin1 and _UNICODE_FONT.exists()
    if unicode_font:
        _add_unicode_font(pdf)
        pdf.set_font("DejaVu", size=_TEXT_SIZE)
    else:
        pdf.set_font("Helvetica", size=_TEXT_SIZE)

    def shown(text: str) -> str:
        # whitespace collapsed, as a browser shows it; a line break in a name is no line break here
        text = " ".join(unicodedata.normalize("NFC", text).split())
        return text if all_latin1 or unicode_font else _latin1(text)

    for block in blocks:
        if isinstance(block, _Heading):
            size, line_height = _HEADINGS[block.level]
            pdf.set_font(style="B", size=size)
            pdf.ln(_LINE_HEIGHT / 2)
            _write(pdf, shown(block.text), pdf.epw, line_height)
            pdf.set_font(style="", size=_TEXT_SIZE)
        elif isinstance(block, _Line):
            pdf.ln(_LINE_HEIGHT / 2)
            if block.label:
                pdf.set_font(style="B")
                label = shown(block.label)
                _one_line(pdf, pdf.get_string_width(label) + 2 * pdf.c_margin, _LINE_HEIGHT, label)
                pdf.set_font(style="")
            _write(pdf, shown(block.text), pdf.l_margin + pdf.epw - pdf.x, _LINE_HEIGHT)
        else:
            _table(pdf, block, shown)
    return pdf


def _fits(pdf: FPDF, text: str, width: float) -> bool:
    return bool(pdf.get_string_width(text) <= width - 2 * pdf.c_margin)


def _line_count(pdf: FPDF, text: str, width: float) -> int:
    if _fits(pdf, text, width):
        return 1
    wrapped = pdf.multi_cell(width, _LINE_HEIGHT, text, dry_run=True, output="LINES")
    return len(cast(list[str], wrapped))  # fpdf types every output= choice's return value as one


def _write(pdf: FPDF, text: str, width: float, height: float) -> None:
    """``text`` from the cursor, wrapped within ``width`` when it must be (a ``multi_cell`` costs
    six ``cell`` calls), then a new line at the left margin."""
    if _fits(pdf, text, width):
        _one_line(pdf, width, height, text)
        pdf.ln(height)
    else:
        pdf.multi_cell(width, height, text, align="L", new_x="LMARGIN", new_y="NEXT")


def _one_line(pdf: FPDF, width: float, height: float, text: str) -> None:
    """What ``pdf.cell(width, height, text)`` draws for a line that fits (left-aligned, no
    border), placed as it places it, at a quarter of its cost (most of a receipt's rendering
    went to ``cell``'s general machinery): a new page first when the line would cross the
    bottom margin, the text on the cell's baseline after the cell margin, then the cursor to the
    cell's right."""
    if pdf.will_page_break(height):
        x = pdf.x
        pdf.add_page(same=True)
        pdf.x = x
    if text:
        pdf.text(pdf.x + pdf.c_margin, pdf.y + 0.5 * height + 0.3 * pdf.font_size, text)
    pdf.x += width


def _table(pdf: FPDF, table: _Table, shown: Callable[[str], str]) -> None:
    pdf.ln(_LINE_HEIGHT / 2)
    widths = [pdf.epw * percent / 100 for percent in table.widths]
    for row_index, row in enumerate(table.rows):
        cells = []
        for column, (text, width) in enumerate(zip(row, widths, strict=True)):
            style = "B" if (row_index == 0 if table.headings else column == 0) else ""
            pdf.set_font(style=style)
            text = shown(text)
            lines = _line_count(pdf, text, width)
            cells.append((text, width, style, lines))
        height = max(lines for *_, lines in cells) * _LINE_HEIGHT
        if pdf.will_page_break(height):
            pdf.add_page()
        for text, width, style, lines in cells:  # each cell's text from the top of the row
            pdf.set_font(style=style)
            pdf.rect(pdf.x, pdf.y, width, height)
            if lines == 1:
                _one_line(pdf, width, _LINE_HEIGHT, text)
            else:
                pdf.multi_cell(width, _LINE_HEIGHT, text, align="L", new_x="RIGHT", new_y="TOP")
        pdf.ln(height)
    pdf.set_font(style="")


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _truncated(value: object) -> str:
    """The value, cut at a word before ``_TRUNCATED_AT`` characters with "..." when it is longer
    (by more than a few characters), as Jinja's ``truncate`` filter did."""
    text = str(value)
    if len(text) <= _TRUNCATED_AT + 5:
        return text
    return text[: _TRUNCATED_AT - 3].rsplit(" ", 1)[0] + "..."


def render_square_receipt(document: dict[str, Any], workspace_name: str) -> bytes:
    """A one-page PDF receipt for a Square charge, carrying the ledgerlink source record id and
    mapping version, the journal lines and, for a foreign currency, the converted amount."""
    amount = format_money(document.get("amount_minor"), document.get("currency"))
    fields = document.get("fields") or {}
    blocks: list[_Block] = [
        _Heading("Card payment receipt"),
        _Line(f"Reconciled by ledgerlink for {workspace_name}."),
        _Table(
            (35, 65),
            [
                ("Customer", _truncated(document.get("counterparty_name") or "unknown customer")),
                ("Date", str(document.get("occurred_on"))),
                ("Amount", amount),
                ("Currency", str(document.get("currency"))),
                *_converted_rows(document),
                (
                    "Matched invoice",
                    f"{_truncated(document.get('matched_name') or '')}"
                    f" (QuickBooks invoice {document.get('matched_id')})",
                ),
                ("Payment reference", _truncated(document.get("reference") or "none")),
                ("Match score", str(document.get("score"))),
                *((str(name), _truncated(value)) for name, value in fields.items()),
            ],
        ),
        _Heading("Journal lines", level=2),
        _Table(
            (50, 25, 25),
            [("Account", "Debit", "Credit")]
            + [(line["account"], line["debit"], line["credit"]) for line in journal_lines(document)],
            headings=True,
        ),
        _Line(f"{amount} by card on {document.get('occurred_on')}", label="Payment:"),
        _Line(f"square:{document['source_record_id']}", label="ledgerlink source record id:"),
        _Line(str(document.get("mapping_version")), label="ledgerlink mapping version:"),
    ]
    return bytes(_pdf_from_blocks(blocks).output())


def journal_lines(document: dict[str, Any]) -> list[dict[str, str]]:
    """The receipt's two journal lines: the deposit account debited and the receivable credited,
    accounts as the mapping names them."""
    fields = document.get("fields") or {}
    amount = format_money(document.get("amount_minor"), document.get("currency"))
    return [
        {"account": str(fields.get("deposit_account", "Undeposited Funds")), "debit": amount, "credit": ""},
        {
            "account": str(fields.get("receivable_account", "Accounts Receivable")),
            "debit": "",
            "credit": amount,
        },
    ]


def _converted_rows(document: dict[str, Any]) -> list[tuple[str, str]]:
    """A foreign-currency document's "Converted" row: the amount in the home currency with the
    rate, its source and date, or that no rate is on record."""
    conversion = document.get("conversion")
    if not conversion:
        return []
    if conversion.get("missing_rate"):
        return [("Converted", f"no {document.get('currency')}/{conversion['home_currency']} rate on record")]
    converted = format_money(conversion["converted_amount_minor"], conversion["home_currency"])
    return [
        (
            "Converted",
            f"{converted} at {conversion['rate']} ({conversion['rate_source']}, {conversion['rate_date']})",
        )
    ]


def cover_page_pdf(document: dict[str, Any], workspace_name: str, image: bytes | None = None) -> bytes:
    """A cover page naming the source record and mapping version, with the converted original
    on the next page when there is one."""
    blocks: list[_Block] = [
        _Heading("Supplier invoice"),
        _Line(f"Reconciled by ledgerlink for {workspace_name}."),
        _Table(
            (35, 65),
            [
                ("Supplier", _truncated(document.get("counterparty_name") or "unknown supplier")),
                ("Date", str(document.get("occurred_on"))),
                ("Amount", format_money(document.get("amount_minor"), document.get("currency"))),
                *_converted_rows(document),
                ("Invoice number", _truncated(document.get("reference") or "none")),
            ],
        ),
        _Line(f"qonto:{document['source_record_id']}", label="ledgerlink source record id:"),
        _Line(str(document.get("mapping_version")), label="ledgerlink mapping version:"),
        _Line("The original document follows this cover page."),
    ]
    pdf = _pdf_from_blocks(blocks)
    if image is not None:
        pdf.add_page()
        pdf.image(io.BytesIO(image), x=10, y=10, w=pdf.epw)
    return bytes(pdf.output())


def qonto_document(
    file_name: str, content: bytes, document: dict[str, Any], workspace_name: str
) -> tuple[str, bytes, str]:
    """The Qonto original when QuickBooks takes its format, converted to a PDF behind a cover
    page when it is an image QuickBooks refuses; otherwise :class:`DocumentRefused`."""
    content_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    if content_type == "application/pdf":
        return file_name, _with_cover_page(content, document, workspace_name), content_type
    if content_type in QUICKBOOKS_FILE_TYPES:
        return file_name, content, content_type
    try:
        with Image.open(io.BytesIO(content)) as original:
            png = io.BytesIO()
            original.convert("RGB").save(png, format="PNG")
    except (UnidentifiedImageError, OSError) as error:
        raise DocumentRefused(
            f"attachment {file_name} ({content_type}) is not a format QuickBooks accepts"
            " (JPG, PNG, GIF, PDF) and cannot be converted"
        ) from error
    converted = cover_page_pdf(document, workspace_name, png.getvalue())
    return f"{Path(file_name).stem}.pdf", converted, "application/pdf"


def _with_cover_page(original_pdf: bytes, document: dict[str, Any], workspace_name: str) -> bytes:
    """The cover page followed by the original's pages. An original pypdf cannot read goes as it
    is: QuickBooks, not ledgerlink, decides whether it can read it."""
    try:
        original = PdfReader(io.BytesIO(original_pdf))
        pages = list(original.pages)
    except (PdfReadError, ValueError, KeyError):
        return original_pdf
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover_page_pdf(document, workspace_name))))
    for page in pages:
        writer.add_page(page)
    merged = io.BytesIO()
    writer.write(merged)
    return merged.getvalue()


@dataclass(frozen=True)
class DocumentSource:
    """What an outbox row's document is made from, read from the warehouse and the blob store
    beforehand, so that rendering needs neither and can run in another process."""

    source: str
    source_record_id: str
    document: dict[str, Any]
    #: the Qonto original's file name and bytes
    original: tuple[str, bytes] | None = None


def document_source(conn: psycopg.Connection, blobs: BlobStore, outbox_row: dict[str, Any]) -> DocumentSource:
    """The row's document and, for Qonto, its original file (:class:`DocumentUnavailable` when
    it was never landed)."""
    original = None
    if outbox_row["source"] == "qonto":
        original = qonto_attachment(
            conn,
            blobs,
            outbox_row["workspace_id"],
            outbox_row["source_record_id"],
            outbox_row["source_payload_sha256"],
        )
    return DocumentSource(
        outbox_row["source"], outbox_row["source_record_id"], outbox_row["document"], original
    )


def render_document(source: DocumentSource, workspace_name: str) -> tuple[str, bytes, str]:
    """The file to attach: (name, bytes, content type); :class:`DocumentRefused` when none
    QuickBooks accepts can be made."""
    if source.original is not None:
        return qonto_document(*source.original, source.document, workspace_name)
    try:
        pdf = render_square_receipt(source.document, workspace_name)
    except (ValueError, FPDFException) as error:  # fpdf refuses what it cannot lay out
        raise DocumentRefused(f"the receipt could not be rendered: {error}") from error
    return f"square-{source.source_record_id}.pdf", pdf, "application/pdf"


class DocumentRenderer:
    """Renders documents while the sender sends others: in ``processes`` worker processes
    (rendering is CPU-bound Python, so threads would wait on each other), or in this process
    when ``processes`` is 0. :meth:`submit` returns a future either way; a refusal is raised
    by its ``result()``."""

    def __init__(self, workspace_name: str, processes: int) -> None:
        self.workspace_name = workspace_name
        self._pool: ProcessPoolExecutor | None = None
        if processes > 0:
            # spawn: a forked copy of an Airflow task process would inherit its sockets and threads
            self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, source: DocumentSource) -> Future[tuple[str, bytes, str]]:
        if self._pool is not None:
            return self._pool.submit(render_document, source, self.workspace_name)
        future: Future[tuple[str, bytes, str]] = Future()
        try:
            future.set_result(render_document(source, self.workspace_name))
        except DocumentRefused as refusal:
            future.set_exception(refusal)
        return future

    def __enter__(self) -> DocumentRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def qonto_attachment(
    conn: psycopg.Connection, blobs: BlobStore, workspace_id: str, source_record_id: str, payload_sha256: str
) -> tuple[str, bytes]:
    """The original supplier-invoice file (name and bytes) for this version of the record."""
    row = conn.execute(
        """
        select a.payload ->> 'file_name', a.blob_sha256
        from raw.qonto_supplier_invoices as i
        join raw.qonto_attachments as a
            on a.workspace_id = i.workspace_id and a.source_record_id = i.payload ->> 'attachment_id'
        where i.workspace_id = %s and i.source_record_id = %s and i.payload_sha256 = %s
        order by a.landed_at desc
        limit 1
        """,
        (workspace_id, source_record_id, payload_sha256),
    ).fetchone()
    if row is None:
        raise DocumentUnavailable(f"qonto:{source_record_id} has no landed attachment")
    return row[0] or f"{source_record_id}.pdf", blobs.get(row[1])
