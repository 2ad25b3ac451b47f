"""Small, real supplier-invoice PDFs for the Qonto attachments, byte-identical for the same input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fpdf import FPDF

# fpdf2 stamps the creation date into the file; a fixed one keeps the output reproducible.
_FIXED_CREATION_DATE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class InvoiceDocument:
    supplier_name: str | None
    supplier_address: str
    customer_name: str
    invoice_number: str | None
    issue_date: str | None
    due_date: str | None
    description: str
    amount_excluding_taxes: str
    tax_amount: str
    tax_rate_percent: str
    total_amount: str
    currency: str
    is_credit_note: bool = False


def _latin1(text: str) -> str:
    # The core fonts cover Latin-1 only; anything else becomes '?', as a poor scan would show it.
    return text.encode("latin-1", errors="replace").decode("latin-1")


_LEFT = 10.0  # mm, fpdf's default margins on A4
_RIGHT = 200.0


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    """A one-page invoice naming the supplier, number, dates, amounts and currency.

    Text is placed at fixed positions (``text``) rather than laid out in cells: a hundred thousand
    attachments must render in minutes, and cell layout costs about ten times as much.
    """
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_FIXED_CREATION_DATE)
    pdf.set_title(_latin1(f"Invoice {document.invoice_number or ''}".strip()))
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()

    def right(x: float, y: float, text: str) -> None:
        pdf.text(x - pdf.get_string_width(text), y, text)

    pdf.set_font("Helvetica", style="B", size=16)
    pdf.text(_LEFT, 17, _latin1(document.supplier_name or "(supplier name illegible)"))
    pdf.set_font("Helvetica", size=10)
    pdf.text(_LEFT, 24, _latin1(document.supplier_address))
    pdf.set_font("Helvetica", style="B", size=13)
    pdf.text(_LEFT, 40, "CREDIT NOTE / AVOIR" if document.is_credit_note else "INVOICE / FACTURE")
    pdf.set_font("Helvetica", size=10)
    rows = [
        ("Invoice number", document.invoice_number or "-"),
        ("Issue date", document.issue_date or "-"),
        ("Due date", document.due_date or "-"),
        ("Billed to", document.customer_name),
    ]
    for line, (label, value) in enumerate(rows):
        pdf.text(_LEFT, 50 + 6 * line, label)
        pdf.text(_LEFT + 45, 50 + 6 * line, _latin1(value))
    # The line table: a header row and one line, boxed.
    pdf.rect(_LEFT, 80, _RIGHT - _LEFT, 14)
    pdf.line(_LEFT, 87, _RIGHT, 87)
    pdf.line(_LEFT + 120, 80, _LEFT + 120, 94)
    pdf.set_font("Helvetica", style="B", size=10)
    pdf.text(_LEFT + 1, 85, "Description")
    right(_RIGHT - 1, 85, f"Amount ({document.currency})")
    pdf.set_font("Helvetica", size=10)
    pdf.text(_LEFT + 1, 92, _latin1(document.description))
    right(_RIGHT - 1, 92, document.amount_excluding_taxes)
    totals = [
        ("Total excl. tax", document.amount_excluding_taxes),
        (f"VAT {document.tax_rate_percent}%", document.tax_amount),
        ("Total", f"{document.total_amount} {document.currency}"),
    ]
    for line, (label, value) in enumerate(totals):
        right(_LEFT + 120, 102 + 6 * line, label)
        right(_RIGHT, 102 + 6 * line, value)
    return bytes(pdf.output())
