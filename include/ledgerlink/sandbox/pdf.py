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


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    """A one-page invoice naming the supplier, number, dates, amounts and currency."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_FIXED_CREATION_DATE)
    pdf.set_title(_latin1(f"Invoice {document.invoice_number or ''}".strip()))
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(
        0, 10, _latin1(document.supplier_name or "(supplier name illegible)"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 6, _latin1(document.supplier_address), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Helvetica", style="B", size=13)
    title = "CREDIT NOTE / AVOIR" if document.is_credit_note else "INVOICE / FACTURE"
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    rows = [
        ("Invoice number", document.invoice_number or "-"),
        ("Issue date", document.issue_date or "-"),
        ("Due date", document.due_date or "-"),
        ("Billed to", document.customer_name),
    ]
    for label, value in rows:
        pdf.cell(45, 6, label)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", style="B", size=10)
    pdf.cell(120, 7, "Description", border=1)
    pdf.cell(0, 7, f"Amount ({document.currency})", border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.cell(120, 7, _latin1(document.description), border=1)
    pdf.cell(0, 7, document.amount_excluding_taxes, border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    totals = [
        ("Total excl. tax", document.amount_excluding_taxes),
        (f"VAT {document.tax_rate_percent}%", document.tax_amount),
        ("Total", f"{document.total_amount} {document.currency}"),
    ]
    for label, value in totals:
        pdf.cell(120, 6, label, align="R")
        pdf.cell(0, 6, value, align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
