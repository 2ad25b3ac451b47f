"""The document QuickBooks' OCR reads: the original attachment for a Qonto supplier invoice,
or a PDF receipt rendered from a Jinja2 template for a Square charge."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from fpdf import FPDF

from ledgerlink.blobstore import BlobStore
from ledgerlink.money import format_money

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ledgerlink.delivery", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# A Unicode font when the system has one; otherwise the PDF core font with names transliterated.
_UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class DocumentUnavailable(LookupError):
    """The record's original attachment is not in the blob store."""


def _latin1(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("latin-1", "ignore").decode("latin-1")


def render_square_receipt(document: dict[str, Any], workspace_name: str) -> bytes:
    """A one-page PDF receipt for a Square charge, carrying the ledgerlink source record id."""
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
    )
    pdf = FPDF()
    pdf.add_page()
    if _UNICODE_FONT.exists():
        pdf.add_font("DejaVu", fname=str(_UNICODE_FONT))
        pdf.add_font("DejaVu", style="B", fname=str(_UNICODE_FONT))
        pdf.set_font("DejaVu", size=11)
    else:
        pdf.set_font("Helvetica", size=11)
        html = _latin1(html)
    pdf.write_html(html)
    return bytes(pdf.output())


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
