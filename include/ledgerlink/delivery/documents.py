"""The document QuickBooks' OCR reads: the original attachment for a Qonto supplier invoice,
or a PDF receipt rendered from a Jinja2 template for a Square charge.

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
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import TTFFont
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from ledgerlink.blobstore import BlobStore
from ledgerlink.money import format_money

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ledgerlink.delivery", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# The Unicode font for text beyond Latin-1, when the system has one (see _pdf_from_html).
_UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


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
    pdf.add_font("DejaVu", style="B", fname=str(_UNICODE_FONT))
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


def _pdf_from_html(html: str) -> FPDF:
    """The page laid out in the PDF core font (Helvetica: nothing embedded, nothing to subset)
    when every character is Latin-1, as most receipts are; otherwise in the Unicode font, embedded
    (subsetting it is most of such a document's cost); without one, in Helvetica with the text
    transliterated."""
    html = unicodedata.normalize("NFC", html)
    pdf = FPDF()
    pdf.add_page()
    if _is_latin1(html) or not _UNICODE_FONT.exists():
        pdf.set_font("Helvetica", size=11)
        html = html if _is_latin1(html) else _latin1(html)
    else:
        _add_unicode_font(pdf)
        pdf.set_font("DejaVu", size=11)
    pdf.write_html(html)
    return pdf


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def render_square_receipt(document: dict[str, Any], workspace_name: str) -> bytes:
    """A one-page PDF receipt for a Square charge, carrying the ledgerlink source record id and
    mapping version, the journal lines and, for a foreign currency, the converted amount."""
    html = _TEMPLATES.get_template("square_receipt.html.j2").render(
        workspace_name=workspace_name,
        counterparty_name=document.get("counterparty_name"),
        occurred_on=document.get("occurred_on"),
        amount=format_money(document.get("amount_minor"), document.get("currency")),
        currency=document.get("currency"),
        matched_id=document.get("matched_id"),
        matched_name=document.get("matched_name"),
        reference=document.get("reference"),
        score=document.get("score"),
        source_record_id=document["source_record_id"],
        mapping_version=document.get("mapping_version"),
        fields=document.get("fields") or {},
        journal_lines=journal_lines(document),
        conversion=_conversion(document),
    )
    return bytes(_pdf_from_html(html).output())


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


def _conversion(document: dict[str, Any]) -> dict[str, str] | None:
    conversion = document.get("conversion")
    if not conversion:
        return None
    if conversion.get("missing_rate"):
        no_rate = f"no {document.get('currency')}/{conversion['home_currency']} rate on record"
        return {"converted": no_rate, "rate": "none", "rate_date": "none", "rate_source": "none"}
    return {
        "converted": format_money(conversion["converted_amount_minor"], conversion["home_currency"]),
        "rate": str(conversion["rate"]),
        "rate_date": str(conversion["rate_date"]),
        "rate_source": str(conversion["rate_source"]),
    }


def cover_page_pdf(document: dict[str, Any], workspace_name: str, image: bytes | None = None) -> bytes:
    """A cover page naming the source record and mapping version, with the converted original
    on the next page when there is one."""
    html = _TEMPLATES.get_template("qonto_cover.html.j2").render(
        workspace_name=workspace_name,
        counterparty_name=document.get("counterparty_name"),
        amount=format_money(document.get("amount_minor"), document.get("currency")),
        occurred_on=document.get("occurred_on"),
        reference=document.get("reference"),
        source_record_id=document["source_record_id"],
        mapping_version=document.get("mapping_version"),
        conversion=_conversion(document),
    )
    pdf = _pdf_from_html(html)
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
    except (ValueError, jinja2.TemplateError) as error:  # fpdf refuses what it cannot lay out
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
