"""A deterministic fixture generator: the same seed writes a byte-identical directory.

It builds a QuickBooks ledger (vendors, customers, invoices, accounts) first, then the Qonto
supplier invoices and Square charges that refer to it, each with a designed difficulty:

* ``clean``: the counterparty name, amount and date agree with the ledger (expected: auto-link);
* ``noisy``: OCR misreads, abbreviations, nicknames, a fee off the amount, a missing customer on
  the charge, a near-namesake in the ledger (expected: review);
* ``unmatched``: the counterparty is not in the ledger, the name is missing, or no open invoice
  fits the charge (expected: refused).

``ground_truth.json`` records the right answer for every record.
Every timestamp lies in 2026-01-01..2026-10-31 and comes from the seed, never from the clock.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import itertools
import multiprocessing
import os
import random
import re
import shutil
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ledgerlink.sandbox.fixtures import (
    STREAMED_LIST,
    STREAMED_OBJECT,
    write_bytes_atomically,
    write_json,
    write_json_streaming,
)
from ledgerlink.sandbox.names import (
    CUSTOMER_COMPANIES,
    FAMILY_NAMES,
    GIVEN_NAMES,
    LEDGER_VENDOR_SIBLINGS,
    LEDGER_VENDORS,
    LEGAL_FORM_VARIANTS,
    NICKNAMES,
    UNKNOWN_VENDORS,
    VendorSeed,
    abbreviate,
    ocr_noise,
    strip_diacritics,
    truncate,
)
from ledgerlink.sandbox.pdf import InvoiceDocument, render_invoice_pdf

WORKSPACE_ID = "demo"
HOME_CURRENCY = "EUR"
PERIOD_START = date(2026, 1, 1)
PERIOD_END = date(2026, 10, 31)
#: The instant the fixtures describe: every record was last touched before it.
AS_OF = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)

CURRENCY_NAMES = {"EUR": "Euro", "USD": "United States Dollar", "GBP": "British Pound Sterling"}
COUNTRY_CURRENCY = {"FR": "EUR", "DE": "EUR", "NL": "EUR", "ES": "EUR", "IT": "EUR", "BE": "EUR", "GB": "GBP", "US": "USD"}  # fmt: skip
VAT_RATES = {"FR": "20", "DE": "19", "NL": "21", "ES": "21", "IT": "22", "BE": "21", "GB": "20", "US": "0"}
# Home-currency units per foreign unit, the range the year moved in.
EXCHANGE_RATE_RANGES = {"EUR": (Decimal(1), Decimal(1)), "USD": (Decimal("0.86"), Decimal("0.93")), "GBP": (Decimal("1.14"), Decimal("1.19"))}  # fmt: skip
# QuickBooks writes timestamps in the company's time zone; Pacific, as Intuit's servers do.
_PACIFIC_STANDARD = timezone(timedelta(hours=-8))
_PACIFIC_DAYLIGHT = timezone(timedelta(hours=-7))

# Designed shares of each difficulty (the remainder of a share goes to the last bucket).
QONTO_MIX = {"clean": 0.52, "noisy": 0.31, "unknown_vendor": 0.11, "missing_name": 0.06}
SQUARE_MIX = {"clean": 0.55, "noisy": 0.28, "no_invoice": 0.15, "failed": 0.02}


@dataclass(slots=True)
class _Vendor:
    id: str
    seed: VendorSeed
    display_name: str
    currency: str
    active: bool = True
    sibling_of: str | None = None


@dataclass(slots=True)
class _Customer:
    id: str
    given_name: str | None
    family_name: str | None
    company_name: str | None
    display_name: str
    currency: str
    email: str
    active: bool = True
    square_profile: str = "clean"  # clean | noisy | absent
    square_id: str | None = None


@dataclass(slots=True)
class _Invoice:
    customer: _Customer
    txn_date: date
    total: Decimal
    balance: Decimal
    currency: str
    exchange_rate: Decimal
    description: str
    id: str = ""
    doc_number: str = ""
    paid_on: date | None = None


def _allocate(total: int, mix: dict[str, float], rng: random.Random) -> list[str]:
    """Exactly ``round(share * total)`` of each kind (the last takes the rest), shuffled."""
    kinds: list[str] = []
    names = list(mix)
    for name in names[:-1]:
        kinds += [name] * round(mix[name] * total)
    kinds += [names[-1]] * max(0, total - len(kinds))
    kinds = kinds[:total]
    rng.shuffle(kinds)
    return kinds


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _decimal_string(value: Decimal) -> str:
    return f"{_money(value):.2f}"


def _number(value: Decimal) -> float | int:
    """A JSON number the way QuickBooks writes amounts (120.5, 300)."""
    quantized = _money(value)
    return int(quantized) if quantized == quantized.to_integral_value() else float(quantized)


def _minor(value: Decimal, currency: str) -> int:
    exponent = 0 if currency == "JPY" else 2
    return int((value * (10**exponent)).to_integral_value(rounding=ROUND_HALF_UP))


def _utc(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, the way Qonto and Square write timestamps."""
    # isoformat is several times faster than strftime, and this runs a few times per record.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _pacific(moment: datetime) -> str:
    """QuickBooks' ``MetaData`` style: local Pacific time with its offset, no fraction."""
    moment = moment.astimezone(UTC)
    # US daylight time: second Sunday of March to first Sunday of November (close enough by date).
    offset = (
        _PACIFIC_DAYLIGHT
        if date(moment.year, 3, 8) <= moment.date() < date(moment.year, 11, 1)
        else _PACIFIC_STANDARD
    )
    return moment.astimezone(offset).isoformat(timespec="seconds")


def _qbo_response_time(moment: datetime) -> str:
    """The ``time`` field of a QuickBooks response: Pacific time with milliseconds."""
    local = datetime.fromisoformat(_pacific(moment)).replace(microsecond=moment.microsecond)
    return local.isoformat(timespec="milliseconds")


_DAYS: dict[date, date] = {}


def _day(day: date) -> date:
    """One shared object per calendar day: a million charges and invoices refer to a few hundred
    days, and a date object apiece cost 64 MB at that scale."""
    return _DAYS.setdefault(day, day)


class _Random:
    """Every random choice of one generation, from one seeded source."""

    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(seed)

    def day(self, start: date = PERIOD_START, end: date = PERIOD_END) -> date:
        return _day(start + timedelta(days=self.rng.randint(0, max(0, (end - start).days))))

    def moment(self, on: date, first_hour: int = 7, last_hour: int = 19) -> datetime:
        seconds = self.rng.randint(first_hour * 3600, last_hour * 3600)
        millis = self.rng.randint(0, 999)
        return datetime(on.year, on.month, on.day, tzinfo=UTC) + timedelta(
            seconds=seconds, milliseconds=millis
        )

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, alphabet: str, length: int) -> str:
        """``length`` characters of ``alphabet``: exactly what ``length`` calls of
        ``rng.choice(alphabet)`` give, drawn in bulk (this is the generator's hottest path)."""
        table, rejected = _token_tables(alphabet)
        drawn = b""
        while len(drawn) < length:
            # choice() takes the top bit_length(n) bits of one 32-bit word per try and retries a
            # value >= n. getrandbits(32 * m) is m such words, least significant first, so the
            # top byte of each word, translated (rejections deleted), is the same characters.
            need = length - len(drawn)
            words = self.rng.getrandbits(32 * need).to_bytes(4 * need, "little")
            drawn += words[3::4].translate(table, rejected)
        return drawn.decode("ascii")

    def amount(self, low: float, high: float) -> Decimal:
        # Log-uniform: many small bills, a few large ones.
        value = Decimal(str(round(low * (high / low) ** self.rng.random(), 2)))
        return _money(value)

    def exchange_rate(self, currency: str, on: date) -> Decimal:
        low, high = EXCHANGE_RATE_RANGES[currency]
        if low == high:
            return low
        # Drifts through the year, plus a little daily noise.
        progress = Decimal((on - PERIOD_START).days) / Decimal(365)
        noise = Decimal(self.rng.randint(-50, 50)) / Decimal(10000)
        return (low + (high - low) * progress + noise).quantize(Decimal("0.000001"))


@functools.cache
def _token_tables(alphabet: str) -> tuple[bytes, bytes]:
    """For a byte holding a word's top 8 bits: the character ``choice`` picks, and the rejects."""
    size = len(alphabet)
    bits = size.bit_length()
    if not 0 < size or bits > 8 or not alphabet.isascii():
        raise ValueError("token alphabets are 1 to 255 ASCII characters")
    table = bytearray(256)
    rejected = bytearray()
    for top_byte in range(256):
        index = top_byte >> (8 - bits)
        if index < size:
            table[top_byte] = ord(alphabet[index])
        else:
            rejected.append(top_byte)
    return bytes(table), bytes(rejected)


_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits


def _legal_name(core: str, legal_form: str) -> str:
    return f"{core} {legal_form}".strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", strip_diacritics(text).lower()).strip("-")


def _domain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", strip_diacritics(name).lower())[:24] + ".example"


def _iban(country: str, r: _Random) -> str | None:
    lengths = {"FR": 23, "DE": 18, "NL": 14, "ES": 20, "IT": 23, "BE": 12, "GB": 18}
    if country not in lengths:
        return None
    if country == "GB":
        bban = r.token(string.ascii_uppercase, 4) + r.token(string.digits, 14)
    elif country == "NL":
        bban = r.token(string.ascii_uppercase, 4) + r.token(string.digits, 10)
    else:
        bban = r.token(string.digits, lengths[country])
    # ISO 13616 check digits: move the country code and "00" to the end, letters to numbers, mod 97.
    rearranged = bban + country + "00"
    digits = "".join(str(int(char, 36)) for char in rearranged)
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


# --------------------------------------------------------------------------------------------
# QuickBooks ledger
# --------------------------------------------------------------------------------------------


def _meta(created: datetime, updated: datetime | None = None) -> dict[str, str]:
    return {"CreateTime": _pacific(created), "LastUpdatedTime": _pacific(max(created, updated or created))}


def _currency_ref(currency: str) -> dict[str, str]:
    return {"value": currency, "name": CURRENCY_NAMES[currency]}


def _build_vendors(r: _Random) -> list[_Vendor]:
    seeds = list(LEDGER_VENDORS)
    vendors: list[_Vendor] = []
    next_id = 56
    for seed in seeds:
        vendors.append(
            _Vendor(
                str(next_id), seed, _legal_name(seed.core, seed.legal_form), COUNTRY_CURRENCY[seed.country]
            )
        )
        next_id += 1
    for core, sibling in LEDGER_VENDOR_SIBLINGS:
        original = next(vendor for vendor in vendors if vendor.seed.core == core)
        vendors.append(
            _Vendor(
                str(next_id),
                sibling,
                _legal_name(sibling.core, sibling.legal_form),
                COUNTRY_CURRENCY[sibling.country],
                sibling_of=original.id,
            )
        )
        next_id += 1
    # Merged duplicates: QuickBooks keeps them inactive, renamed with "(deleted)".
    for seed in r.rng.sample(seeds, 3):
        name = f"{_legal_name(seed.core, seed.legal_form)} (deleted)"
        vendors.append(_Vendor(str(next_id), seed, name, COUNTRY_CURRENCY[seed.country], active=False))
        next_id += 1
    return vendors


def _vendor_record(vendor: _Vendor, r: _Random) -> dict[str, Any]:
    created = r.moment(r.day(date(2024, 3, 1), date(2025, 12, 15)))
    updated = created if r.rng.random() < 0.7 else r.moment(r.day(PERIOD_START, PERIOD_END))
    record: dict[str, Any] = {
        "Id": vendor.id,
        "SyncToken": str(0 if updated == created else r.rng.randint(1, 4)),
        "domain": "QBO",
        "sparse": False,
        "MetaData": _meta(created, updated),
        "DisplayName": vendor.display_name,
        "PrintOnCheckName": vendor.display_name.replace(" (deleted)", ""),
        "CompanyName": vendor.display_name.replace(" (deleted)", ""),
        "Active": vendor.active,
        "Vendor1099": False,
        "CurrencyRef": _currency_ref(vendor.currency),
        "Balance": 0,
        "PrimaryEmailAddr": {"Address": f"billing@{_domain(vendor.seed.core)}"},
        "BillAddr": {"Id": str(int(vendor.id) + 200), "Country": vendor.seed.country},
    }
    if vendor.seed.country != "US":
        record["AcctNum"] = f"401{int(vendor.id):03d}"
    return record


#: Distinct first-and-last-name pairs drawn by redrawing; beyond, namesakes get a middle initial.
_UNIQUE_NAME_DRAWS = len(GIVEN_NAMES) * len(FAMILY_NAMES) // 2


def _build_customers(count: int, r: _Random) -> list[_Customer]:
    customers: list[_Customer] = []
    companies = list(CUSTOMER_COMPANIES)
    r.rng.shuffle(companies)
    company_count = min(len(companies), round(count * 0.4))
    used_names: set[str] = set()
    for index in range(count):
        given = r.rng.choice(GIVEN_NAMES)
        family = r.rng.choice(FAMILY_NAMES)
        if len(used_names) < _UNIQUE_NAME_DRAWS:
            while f"{given} {family}" in used_names:
                given, family = r.rng.choice(GIVEN_NAMES), r.rng.choice(FAMILY_NAMES)
        elif f"{given} {family}" in used_names:
            # Past half the pairs, redrawing costs more each time (and runs out): a big book has
            # namesakes, told apart the way people do, with a middle initial.
            given = f"{given} {r.rng.choice(string.ascii_uppercase)}."
            namesake = 1
            while f"{given} {family}" in used_names:  # as QuickBooks users do: "Léa M. Martin 2"
                namesake += 1
                family = f"{family.rsplit(' ', 1)[0] if namesake > 2 else family} {namesake}"
        used_names.add(f"{given} {family}")
        if index < company_count:
            core, legal_form = companies[index]
            company = _legal_name(core, legal_form)
            currency = "GBP" if legal_form == "Ltd" else "USD" if legal_form in ("LLC", "Inc") else "EUR"
            customers.append(
                _Customer(
                    str(index + 1), given, family, company, company, currency, f"contact@{_domain(core)}"
                )
            )
        else:
            email = f"{_slug(given)}.{_slug(family)}@{r.rng.choice(['mail', 'post', 'inbox'])}.example"
            customers.append(
                _Customer(str(index + 1), given, family, None, f"{given} {family}", "EUR", email)
            )
    r.rng.shuffle(customers)
    for position, customer in enumerate(customers):
        customer.id = str(position + 1)
    # Square profiles: most are tidy, some are typed by hand at the counter, a few are never created.
    profiles = _allocate(len(customers), {"clean": 0.65, "noisy": 0.27, "absent": 0.08}, r.rng)
    for customer, profile in zip(customers, profiles, strict=True):
        customer.square_profile = profile
    return customers


def _customer_record(customer: _Customer, balance: Decimal, r: _Random) -> dict[str, Any]:
    created = r.moment(r.day(date(2024, 6, 1), date(2026, 2, 1)))
    updated = max(created, r.moment(r.day(PERIOD_START, PERIOD_END)))
    record: dict[str, Any] = {
        "Id": customer.id,
        "SyncToken": str(r.rng.randint(0, 6)),
        "domain": "QBO",
        "sparse": False,
        "MetaData": _meta(created, updated),
        "Taxable": customer.currency == "EUR",
        "Job": False,
        "BillWithParent": False,
        "Balance": _number(balance),
        "BalanceWithJobs": _number(balance),
        "CurrencyRef": _currency_ref(customer.currency),
        "PreferredDeliveryMethod": "Email",
        "IsProject": False,
        "DisplayName": customer.display_name,
        "FullyQualifiedName": customer.display_name,
        "PrintOnCheckName": customer.display_name.replace(" (deleted)", ""),
        "GivenName": customer.given_name,
        "FamilyName": customer.family_name,
        "Active": customer.active,
        "PrimaryEmailAddr": {"Address": customer.email},
    }
    if customer.company_name:
        record["CompanyName"] = customer.company_name
    return record


_SERVICES = (
    "Consulting services",
    "Website maintenance",
    "Catering for event",
    "Annual subscription",
    "Design workshop",
    "Equipment rental",
    "Training session",
    "Photography package",
    "Monthly retainer",
    "Installation and setup",
)


def _invoice_record(invoice: _Invoice, r: _Random) -> dict[str, Any]:
    customer = invoice.customer
    created = r.moment(invoice.txn_date, 8, 18)
    updated = created
    linked: list[dict[str, str]] = []
    if invoice.paid_on is not None:
        updated = r.moment(invoice.paid_on, 8, 20)
        linked = [{"TxnId": str(3000 + int(invoice.id)), "TxnType": "Payment"}]
    elif invoice.balance < invoice.total:
        updated = r.moment(min(PERIOD_END, invoice.txn_date + timedelta(days=r.rng.randint(5, 20))))
        linked = [{"TxnId": str(3000 + int(invoice.id)), "TxnType": "Payment"}]
    record: dict[str, Any] = {
        "Id": invoice.id,
        "SyncToken": str(len(linked)),
        "domain": "QBO",
        "sparse": False,
        "MetaData": _meta(created, updated),
        "CustomField": [],
        "DocNumber": invoice.doc_number,
        "TxnDate": invoice.txn_date.isoformat(),
        "CurrencyRef": _currency_ref(invoice.currency),
        "ExchangeRate": _number(invoice.exchange_rate)
        if invoice.currency == HOME_CURRENCY
        else float(invoice.exchange_rate),
        "LinkedTxn": linked,
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Description": invoice.description,
                "Amount": _number(invoice.total),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1", "name": "Services"},
                    "UnitPrice": _number(invoice.total),
                    "Qty": 1,
                    "ItemAccountRef": {"value": "30", "name": "Services Income"},
                    "TaxCodeRef": {"value": "NON"},
                },
            },
            {"Amount": _number(invoice.total), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "TxnTaxDetail": {"TotalTax": 0},
        "CustomerRef": {"value": customer.id, "name": customer.display_name},
        "BillEmail": {"Address": customer.email},
        "DueDate": (invoice.txn_date + timedelta(days=30)).isoformat(),
        "TotalAmt": _number(invoice.total),
        "ApplyTaxAfterDiscount": False,
        "PrintStatus": "NotSet",
        "EmailStatus": "EmailSent",
        "Balance": _number(invoice.balance),
        "AllowOnlineCreditCardPayment": True,
        "AllowOnlineACHPayment": False,
    }
    if invoice.currency != HOME_CURRENCY:
        record["HomeTotalAmt"] = _number(invoice.total * invoice.exchange_rate)
        record["HomeBalance"] = _number(invoice.balance * invoice.exchange_rate)
    return record


_ACCOUNTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    # name, AcctNum, AccountType, AccountSubType, Classification, currency
    ("Qonto Main Account", "512100", "Bank", "Checking", "Asset", "EUR"),
    ("Qonto USD Account", "512110", "Bank", "Checking", "Asset", "USD"),
    ("Square Clearing", "512200", "Bank", "CashOnHand", "Asset", "EUR"),
    ("Undeposited Funds", "511000", "Other Current Asset", "UndepositedFunds", "Asset", "EUR"),
    ("Accounts Receivable (A/R)", "411000", "Accounts Receivable", "AccountsReceivable", "Asset", "EUR"),
    (
        "Accounts Receivable (A/R) - GBP",
        "411100",
        "Accounts Receivable",
        "AccountsReceivable",
        "Asset",
        "GBP",
    ),
    (
        "Accounts Receivable (A/R) - USD",
        "411200",
        "Accounts Receivable",
        "AccountsReceivable",
        "Asset",
        "USD",
    ),
    ("Accounts Payable (A/P)", "401000", "Accounts Payable", "AccountsPayable", "Liability", "EUR"),
    ("Accounts Payable (A/P) - GBP", "401100", "Accounts Payable", "AccountsPayable", "Liability", "GBP"),
    ("Accounts Payable (A/P) - USD", "401200", "Accounts Payable", "AccountsPayable", "Liability", "USD"),
    ("VAT Control", "445700", "Other Current Liability", "GlobalTaxPayable", "Liability", "EUR"),
    ("Services Income", "706000", "Income", "ServiceFeeIncome", "Revenue", "EUR"),
    ("Sales of Goods", "707000", "Income", "SalesOfProductIncome", "Revenue", "EUR"),
    ("Office Supplies", "606400", "Expense", "OfficeGeneralAdministrativeExpenses", "Expense", "EUR"),
    ("Rent", "613200", "Expense", "RentOrLeaseOfBuildings", "Expense", "EUR"),
    ("Equipment Rental", "613500", "Expense", "EquipmentRental", "Expense", "EUR"),
    ("Insurance", "616000", "Expense", "Insurance", "Expense", "EUR"),
    ("Legal & Professional Fees", "622600", "Expense", "LegalProfessionalFees", "Expense", "EUR"),
    ("Advertising & Marketing", "623000", "Expense", "AdvertisingPromotional", "Expense", "EUR"),
    ("Shipping & Delivery", "624100", "Expense", "ShippingFreightDelivery", "Expense", "EUR"),
    ("Travel", "625100", "Expense", "Travel", "Expense", "EUR"),
    ("Meals & Entertainment", "625700", "Expense", "EntertainmentMeals", "Expense", "EUR"),
    ("Software & Subscriptions", "651000", "Expense", "OtherMiscellaneousServiceCost", "Expense", "EUR"),
    ("Utilities", "606100", "Expense", "Utilities", "Expense", "EUR"),
    ("Bank Charges", "627000", "Expense", "BankCharges", "Expense", "EUR"),
    ("Card Processing Fees", "627100", "Expense", "BankCharges", "Expense", "EUR"),
    ("Cleaning & Maintenance", "615000", "Expense", "RepairMaintenance", "Expense", "EUR"),
    ("Owner's Equity", "101000", "Equity", "OwnersEquity", "Equity", "EUR"),
)


def _account_records(r: _Random) -> list[dict[str, Any]]:
    records = []
    for index, (name, number, account_type, sub_type, classification, currency) in enumerate(_ACCOUNTS):
        created = r.moment(r.day(date(2024, 3, 1), date(2024, 3, 31)))
        updated = created if r.rng.random() < 0.6 else r.moment(r.day())
        balance = (
            r.amount(100, 80000) if account_type in ("Bank", "Accounts Receivable", "Accounts Payable") else 0
        )
        records.append(
            {
                "Id": str(index + 1 if index < 24 else index + 80),
                "SyncToken": "0" if updated == created else "1",
                "domain": "QBO",
                "sparse": False,
                "MetaData": _meta(created, updated),
                "Name": name,
                "AcctNum": number,
                "SubAccount": False,
                "FullyQualifiedName": name,
                "Active": True,
                "Classification": classification,
                "AccountType": account_type,
                "AccountSubType": sub_type,
                "CurrentBalance": _number(Decimal(balance)),
                "CurrentBalanceWithSubAccounts": _number(Decimal(balance)),
                "CurrencyRef": _currency_ref(currency),
            }
        )
    return records


# --------------------------------------------------------------------------------------------
# Qonto supplier invoices
# --------------------------------------------------------------------------------------------

_QONTO_STATUSES = (("paid", 50), ("awaiting_payment", 18), ("to_approve", 12), ("scheduled", 8), ("archived", 6), ("rejected", 2))  # fmt: skip
_QONTO_SOURCES = (("email", "email_forward", 5), ("file_upload", "web_upload", 3), ("file_upload", "mobile_upload", 1), ("e_invoicing", "pdp", 1))  # fmt: skip
_QONTO_DESCRIPTIONS = {
    "FR": ("Prestation de services", "Fournitures", "Maintenance mensuelle", "Transport", "Impression"),
    "DE": ("Dienstleistung", "Wartung", "Lieferung", "Softwarelizenz"),
    "GB": ("Professional services", "Monthly hosting", "Courier services", "Office supplies"),
    "US": ("Software license", "Consulting hours", "Freight charges", "Marketing campaign"),
}


def _light_noise(name: str, legal_form: str, r: _Random) -> str:
    """Variations any sensible normaliser undoes: case, diacritics, the spelling of the legal form."""
    choice = r.rng.randrange(6)
    if choice == 0 or not legal_form:
        return name
    if choice == 1:
        return name.upper()
    if choice == 2:
        return strip_diacritics(name)
    if choice == 3:
        return name.replace(legal_form, r.rng.choice(LEGAL_FORM_VARIANTS.get(legal_form, (legal_form,))))
    if choice == 4:
        return name[: -len(legal_form)].strip()  # legal form left off the letterhead
    return strip_diacritics(name).upper()


def _heavy_noise(core: str, legal_form: str, r: _Random) -> str:
    """Variations that leave a person sure and a string comparison unsure."""
    choice = r.rng.randrange(5)
    if choice == 0:  # a bad scan
        return ocr_noise(f"{core} {legal_form}".strip(), r.rng, errors=4).upper()
    if choice == 1:  # abbreviated on the letterhead, then misread once
        short = abbreviate(core)
        if short == core:
            short = truncate(core, max(6, len(core) * 2 // 3))
        return ocr_noise(short, r.rng, errors=1)
    if choice == 2:  # a fixed-width field cut the name, and OCR misread two characters
        return ocr_noise(truncate(core.upper(), max(7, len(core) // 2 + 2)), r.rng, errors=2)
    if choice == 3:  # a different legal form and a typo
        forms = [form for form in LEGAL_FORM_VARIANTS if form != legal_form]
        return ocr_noise(f"{strip_diacritics(core)} {r.rng.choice(forms)}", r.rng, errors=2)
    # words run together and misread, as a text layer without spaces reads
    return ocr_noise(strip_diacritics(core).replace(" ", "").replace("&", "et"), r.rng, errors=2)


def _invoice_number(seed: VendorSeed, issue: date, r: _Random) -> str:
    style = int(hashlib.sha256(seed.core.encode()).hexdigest(), 16) % 4
    serial = r.rng.randint(10, 9999)
    if style == 0:
        return f"FA-{issue.year}-{serial:04d}"
    if style == 1:
        return f"INV-{r.rng.randint(10000, 99999)}"
    if style == 2:
        return f"RE{issue:%y%m}/{serial:03d}"
    return f"{issue.year}{serial:05d}"


def _qonto_invoices(
    count: int,
    vendors: list[_Vendor],
    organization_id: str,
    company_name: str,
    r: _Random,
) -> tuple[list[dict[str, Any]], dict[str, str | None], list[tuple[dict[str, Any], InvoiceDocument]]]:
    active = [vendor for vendor in vendors if vendor.active and vendor.sibling_of is None]
    with_siblings = {vendor.sibling_of for vendor in vendors if vendor.sibling_of}
    # Some suppliers bill every month, most now and then.
    weights = [r.rng.choice((1, 1, 1, 2, 4)) for _ in active]
    kinds = _allocate(count, QONTO_MIX, r.rng)
    invoices: list[dict[str, Any]] = []
    truth: dict[str, str | None] = {}
    documents: list[tuple[dict[str, Any], InvoiceDocument]] = []
    for kind in kinds:
        vendor: _Vendor | None = None
        if kind in ("clean", "noisy", "missing_name"):
            vendor = r.rng.choices(active, weights)[0]
            if kind == "noisy" and r.rng.random() < 0.2:
                # A near-namesake in the ledger: exactly the vendor's name, but two candidates.
                vendor = r.rng.choice([v for v in active if v.id in with_siblings])
            seed = vendor.seed
        else:
            seed = r.rng.choice(UNKNOWN_VENDORS)
        legal = _legal_name(seed.core, seed.legal_form)
        supplier_name: str | None
        if kind == "clean":
            supplier_name = _light_noise(legal, seed.legal_form, r)
        elif kind == "noisy":
            supplier_name = (
                _light_noise(legal, seed.legal_form, r)
                if vendor is not None and vendor.id in with_siblings and r.rng.random() < 0.5
                else _heavy_noise(seed.core, seed.legal_form, r)
            )
        elif kind == "unknown_vendor":
            supplier_name = _light_noise(legal, seed.legal_form, r)
        else:
            supplier_name = None
        currency = COUNTRY_CURRENCY[seed.country]
        if kind == "noisy" and r.rng.random() < 0.1:
            currency = HOME_CURRENCY if currency != HOME_CURRENCY else "USD"  # billed in another currency
        issue = r.day(PERIOD_START, PERIOD_END - timedelta(days=5))
        created = r.moment(min(PERIOD_END, issue + timedelta(days=r.rng.randint(0, 6))), 0, 23)
        excluding = r.amount(15, 6000)
        rate = Decimal(VAT_RATES[seed.country])
        tax = _money(excluding * rate / 100)
        total = excluding + tax
        invoice_number: str | None = _invoice_number(seed, issue, r)
        if kind == "noisy" and r.rng.random() < 0.25:
            invoice_number = None  # OCR found none
        status = r.rng.choices([s for s, _ in _QONTO_STATUSES], [w for _, w in _QONTO_STATUSES])[0]
        due = issue + timedelta(days=r.rng.choice((0, 15, 30, 30, 45)))
        source_type, source = r.rng.choices(
            [(t, s) for t, s, _ in _QONTO_SOURCES], [w for *_, w in _QONTO_SOURCES]
        )[0]
        updated = created + timedelta(minutes=r.rng.randint(1, 30))
        if status in ("paid", "scheduled", "archived", "rejected") or r.rng.random() < 0.3:
            updated = min(
                AS_OF, created + timedelta(days=r.rng.randint(1, 40), seconds=r.rng.randint(0, 86399))
            )
        invoice_id = r.uuid()
        attachment_id = r.uuid()
        file_stem = invoice_number or f"scan_{issue:%Y%m%d}"
        file_name = (
            f"{'Facture' if seed.country in ('FR', 'BE') else 'Invoice'}_{file_stem.replace('/', '-')}.pdf"
        )
        record: dict[str, Any] = {
            "id": invoice_id,
            "organization_id": organization_id,
            "status": status,
            "source_type": source_type,
            "source": source,
            "attachment_id": attachment_id,
            "display_attachment_id": attachment_id,
            "file_name": file_name,
            "invoice_number": invoice_number,
            "supplier_name": supplier_name,
            "supplier_id": None,
            "description": None,
            "total_amount": {"value": _decimal_string(total), "currency": currency},
            "total_amount_excluding_taxes": {"value": _decimal_string(excluding), "currency": currency},
            "total_tax_amount": {"value": _decimal_string(tax), "currency": currency},
            "payable_amount": {
                "value": "0.00" if status == "paid" else _decimal_string(total),
                "currency": currency,
            },
            "issue_date": issue.isoformat(),
            "due_date": due.isoformat(),
            "payment_date": (updated.date().isoformat() if status == "paid" else None),
            "scheduled_date": (due.isoformat() if status == "scheduled" else None),
            "iban": _iban(seed.country, r),
            "is_einvoice": source_type == "e_invoicing",
            "is_attachment_invoice": True,
            "is_attachment_non_financial": False,
            "has_duplicates": False,
            "has_discrepancies": False,
            "is_credit_note": False,
            "has_suggested_credit_notes": False,
            "attachment_category": "invoice",
            "analyzed_at": _utc(created + timedelta(seconds=r.rng.randint(20, 600))),
            "created_at": _utc(created),
            "updated_at": _utc(updated),
        }
        invoices.append(record)
        truth[invoice_id] = vendor.id if kind in ("clean", "noisy") and vendor is not None else None
        documents.append(
            (
                record,
                InvoiceDocument(
                    supplier_name=legal if supplier_name is not None else None,
                    supplier_address=f"{r.rng.randint(1, 140)} rue du Commerce, {seed.country}",
                    customer_name=company_name,
                    invoice_number=invoice_number,
                    issue_date=issue.isoformat(),
                    due_date=due.isoformat(),
                    description=r.rng.choice(
                        _QONTO_DESCRIPTIONS.get(seed.country, _QONTO_DESCRIPTIONS["FR"])
                    ),
                    amount_excluding_taxes=_decimal_string(excluding),
                    tax_amount=_decimal_string(tax),
                    tax_rate_percent=str(rate),
                    total_amount=_decimal_string(total),
                    currency=currency,
                ),
            )
        )
    _add_qonto_quirks(invoices, r)
    return invoices, truth, documents


def _add_qonto_quirks(invoices: list[dict[str, Any]], r: _Random) -> None:
    """Document Review items, a forwarded-twice duplicate and credit notes, as Qonto shows them."""
    picks = r.rng.sample(range(len(invoices)), min(len(invoices), 8))
    for index in picks[:4]:  # still waiting for a person to say whether they are invoices
        record = invoices[index]
        record.update(status="to_review", payable_amount=None, payment_date=None, scheduled_date=None)
        record["due_date"] = None
        record["is_attachment_invoice"] = None
        record["attachment_category"] = None
    for index in picks[4:6]:  # Qonto's own duplicate flag: the same document forwarded twice
        invoices[index]["has_duplicates"] = True
    for index in picks[6:8]:
        invoices[index]["is_credit_note"] = True
        invoices[index]["attachment_category"] = "credit_note"


# --------------------------------------------------------------------------------------------
# Square charges
# --------------------------------------------------------------------------------------------


def _square_profile_names(customer: _Customer, r: _Random) -> dict[str, str]:
    """The names a Square profile carries for a ledger customer, clean or typed at the counter."""
    given, family, company = customer.given_name or "", customer.family_name or "", customer.company_name
    names: dict[str, str] = {}
    if customer.square_profile == "clean":
        names = {"given_name": given, "family_name": family}
        if company:
            names["company_name"] = company
        return names
    choice = r.rng.randrange(4)
    if company:
        if choice in (0, 1):  # only the contact person; the business name never typed
            return {"given_name": given, "family_name": family}
        core = company.rsplit(" ", 1)[0]
        return {
            "given_name": given,
            "family_name": family,
            "company_name": ocr_noise(abbreviate(core), r.rng, 1),
        }
    if choice == 0 and given in NICKNAMES:
        return {"given_name": NICKNAMES[given], "family_name": family}
    if choice == 1:
        return {"given_name": given[0] + ".", "family_name": strip_diacritics(family).upper()}
    if choice == 2:
        return {
            "given_name": strip_diacritics(given).lower(),
            "family_name": ocr_noise(family.lower(), r.rng, 2),
        }
    return {"family_name": f"{strip_diacritics(family)} {given[:1]}"}


def _square_customer_record(
    square_id: str, names: dict[str, str], email: str | None, reference_id: str | None, r: _Random
) -> dict[str, Any]:
    created = r.moment(r.day(date(2025, 6, 1), date(2026, 1, 31)))
    updated = max(created, r.moment(r.day(PERIOD_START, date(2026, 4, 30))))
    record: dict[str, Any] = {
        "id": square_id,
        "created_at": _utc(created),
        "updated_at": _utc(updated),
        **names,
    }
    if email:
        record["email_address"] = email
    record["phone_number"] = f"+33 6 {r.token(string.digits, 2)} {r.token(string.digits, 2)} {r.token(string.digits, 2)} {r.token(string.digits, 2)}"  # fmt: skip
    if reference_id:
        record["reference_id"] = reference_id
    record["preferences"] = {"email_unsubscribed": r.rng.random() < 0.1}
    record["creation_source"] = r.rng.choice(("DIRECTORY", "THIRD_PARTY", "INVOICES", "INSTANT_PROFILE"))
    record["segment_ids"] = ["ML0FQ1QG1D4NR2AR.REACHABLE"]
    record["version"] = r.rng.randint(0, 5)
    return record


def _noisy_reference(doc_number: str, r: _Random) -> str:
    choice = r.rng.randrange(4)
    if choice == 0:
        return f"INV-{doc_number}"
    if choice == 1:
        return f"#{doc_number}"
    if choice == 2 and len(doc_number) > 2:  # two digits swapped
        return doc_number[:-2] + doc_number[-1] + doc_number[-2]
    return f"Facture {doc_number}"


@dataclass(slots=True)
class _Charge:
    kind: str
    customer: _Customer | None
    square_customer_id: str | None
    invoice: _Invoice | None
    amount: Decimal
    currency: str
    paid_on: date
    reference_id: str | None
    note: str | None
    status: str = "COMPLETED"
    detail: str = ""


def _square_mix(count: int, invoiced: int | None) -> dict[str, float]:
    """The designed mix, or one where ``invoiced`` charges pay an invoice (clean and noisy in the
    designed proportion) and the rest are counter sales, besides the usual declines."""
    if invoiced is None or count == 0:
        return SQUARE_MIX
    invoiced_share = invoiced / count
    designed = SQUARE_MIX["clean"] + SQUARE_MIX["noisy"]
    return {
        "clean": invoiced_share * SQUARE_MIX["clean"] / designed,
        "noisy": invoiced_share * SQUARE_MIX["noisy"] / designed,
        "failed": SQUARE_MIX["failed"],
        "no_invoice": 1.0 - invoiced_share - SQUARE_MIX["failed"],
    }


def _plan_square(
    count: int, customers: list[_Customer], r: _Random, mix: dict[str, float] = SQUARE_MIX
) -> tuple[list[_Charge], list[_Invoice]]:
    """Decide every charge and the invoices of the ledger around them."""
    kinds = _allocate(count, mix, r.rng)
    with_profile = [c for c in customers if c.square_profile != "absent"]
    clean_profiles = [c for c in customers if c.square_profile == "clean"]
    noisy_profiles = [c for c in customers if c.square_profile == "noisy"]
    invoices: list[_Invoice] = []
    charges: list[_Charge] = []

    def open_invoice(customer: _Customer, paid_on: date, amount: Decimal | None = None) -> _Invoice:
        lag = r.rng.choice((1, 2, 3, 5, 7, 10, 14, 21))
        txn = _day(max(PERIOD_START, paid_on - timedelta(days=lag)))
        total = amount if amount is not None else r.amount(40, 4000)
        rate = r.exchange_rate(customer.currency, txn)
        invoice = _Invoice(customer, txn, total, total, customer.currency, rate, r.rng.choice(_SERVICES))
        if r.rng.random() < 0.1:  # a deposit was already paid: the open balance is what is left
            invoice.total = _money(total * Decimal(r.rng.choice(("1.25", "1.5", "2"))))
        invoices.append(invoice)
        return invoice

    for kind in kinds:
        paid_on = r.day(date(2026, 1, 20), PERIOD_END)
        if kind == "clean":
            customer = r.rng.choice(clean_profiles)
            invoice = open_invoice(customer, paid_on)
            reference = invoice_doc_placeholder if r.rng.random() < 0.5 else None
            charges.append(_Charge(kind, customer, customer.square_id, invoice, invoice.balance, invoice.currency, paid_on, reference, None))  # fmt: skip
        elif kind == "noisy":
            variant = r.rng.randrange(5)
            if variant == 0 and noisy_profiles:  # the profile's name is not the ledger's
                customer = r.rng.choice(noisy_profiles)
                invoice = open_invoice(customer, paid_on)
                charges.append(_Charge(kind, customer, customer.square_id, invoice, invoice.balance, invoice.currency, paid_on, None, None, detail="profile name"))  # fmt: skip
            elif variant == 1:  # card surcharge or a fee taken off: a little more or less than the balance
                customer = r.rng.choice(with_profile)
                invoice = open_invoice(customer, paid_on)
                factor = Decimal(1) + Decimal(r.rng.choice((-3, -2, 2, 3))) / Decimal(100)
                charges.append(_Charge(kind, customer, customer.square_id, invoice, _money(invoice.balance * factor), invoice.currency, paid_on, None, None, detail="amount off"))  # fmt: skip
            elif variant == 2:  # keyed without a customer, but with the invoice number
                customer = r.rng.choice(customers)
                invoice = open_invoice(customer, paid_on)
                charges.append(_Charge(kind, customer, None, invoice, invoice.balance, invoice.currency, paid_on, invoice_doc_placeholder, f"Invoice {invoice_doc_placeholder}", detail="no customer"))  # fmt: skip
            elif variant == 3:  # two open invoices of the same customer, nearly the same amount
                customer = r.rng.choice(with_profile)
                invoice = open_invoice(customer, paid_on)
                twin = open_invoice(customer, paid_on, _money(invoice.balance * Decimal("1.01")))
                twin.txn_date = _day(
                    max(PERIOD_START, invoice.txn_date - timedelta(days=r.rng.randint(0, 4)))
                )
                charges.append(_Charge(kind, customer, customer.square_id, invoice, invoice.balance, invoice.currency, paid_on, None, None, detail="twin invoice"))  # fmt: skip
            else:  # paid late, with a mistyped reference
                customer = r.rng.choice(with_profile)
                invoice = open_invoice(customer, paid_on)
                invoice.txn_date = _day(max(PERIOD_START, paid_on - timedelta(days=r.rng.randint(40, 75))))
                charges.append(_Charge(kind, customer, customer.square_id, invoice, invoice.balance, invoice.currency, paid_on, noisy_reference_placeholder, None, detail="late, noisy reference"))  # fmt: skip
        elif kind == "no_invoice":
            variant = r.rng.randrange(3)
            amount = r.amount(8, 900)
            if variant == 0:  # a counter sale to a known customer: nothing was invoiced
                customer = r.rng.choice(with_profile)
                charges.append(_Charge(kind, customer, customer.square_id, None, amount, customer.currency, paid_on, None, r.rng.choice((None, "Vente comptoir"))))  # fmt: skip
            elif variant == 1:  # a walk-in with a Square profile the ledger never heard of
                charges.append(
                    _Charge(kind, None, "walk-in", None, amount, HOME_CURRENCY, paid_on, None, None)
                )
            else:  # an anonymous card charge
                charges.append(_Charge(kind, None, None, None, amount, HOME_CURRENCY, paid_on, None, None))
        else:  # declined card: the invoice it tried to pay stays open and unpaid
            customer = r.rng.choice(clean_profiles)
            invoice = open_invoice(customer, paid_on)
            charges.append(_Charge(kind, customer, customer.square_id, None, invoice.balance, invoice.currency, paid_on, None, None, status="FAILED"))  # fmt: skip
    return charges, invoices


# Markers replaced by the DocNumber once invoices are numbered in date order.
invoice_doc_placeholder = "\x00doc"
noisy_reference_placeholder = "\x00noisy"


def _distractor_invoices(
    customers: list[_Customer], open_count: int, paid_count: int, r: _Random
) -> list[_Invoice]:
    invoices = []
    for index in range(open_count + paid_count):
        customer = r.rng.choice(customers)
        txn = r.day(PERIOD_START, PERIOD_END - timedelta(days=3))
        total = r.amount(40, 4000)
        rate = r.exchange_rate(customer.currency, txn)
        invoice = _Invoice(customer, txn, total, total, customer.currency, rate, r.rng.choice(_SERVICES))
        if index >= open_count:
            invoice.balance = Decimal(0)
            invoice.paid_on = min(PERIOD_END, txn + timedelta(days=r.rng.randint(3, 30)))
        invoices.append(invoice)
    return invoices


def _payment_record(charge: _Charge, location_id: str, merchant_label: str, r: _Random) -> dict[str, Any]:
    created = r.moment(charge.paid_on, 8, 21)
    payment_id = r.token(_ALNUM, 29)
    currency = charge.currency
    amount = _minor(charge.amount, currency)
    tip = 0
    if charge.invoice is None and charge.status == "COMPLETED" and r.rng.random() < 0.25:
        tip = _minor(_money(charge.amount * Decimal("0.1")), currency)
    captured = created + timedelta(seconds=r.rng.randint(1, 4))
    updated = captured if charge.status == "COMPLETED" else created + timedelta(seconds=1)
    brand, bin_prefix = r.rng.choice(
        (("VISA", "4"), ("MASTERCARD", "5"), ("AMERICAN_EXPRESS", "37"), ("VISA", "4"))
    )
    bin_number = bin_prefix + r.token(string.digits, 6 - len(bin_prefix))
    card: dict[str, Any] = {
        "card_brand": brand,
        "last_4": r.token(string.digits, 4),
        "exp_month": r.rng.randint(1, 12),
        "exp_year": r.rng.randint(2027, 2031),
        "fingerprint": f"sq-1-{r.token(_ALNUM + '-_', 64)}",
        "card_type": r.rng.choice(("CREDIT", "DEBIT")),
        "prepaid_type": "NOT_PREPAID",
        "bin": bin_number,
    }
    entry = r.rng.choice(("KEYED", "ON_FILE", "EMV", "CONTACTLESS"))
    timeline: dict[str, str] = {"authorized_at": _utc(created + timedelta(milliseconds=400))}
    if charge.status == "COMPLETED":
        timeline["captured_at"] = _utc(captured)
    card_details: dict[str, Any] = {
        "status": "CAPTURED" if charge.status == "COMPLETED" else "FAILED",
        "card": card,
        "entry_method": entry,
        "cvv_status": "CVV_ACCEPTED" if entry == "KEYED" else "CVV_NOT_CHECKED",
        "avs_status": "AVS_ACCEPTED" if entry == "KEYED" else "AVS_NOT_CHECKED",
        "auth_result_code": r.token(_ALNUM, 6),
        "statement_description": f"SQ *{merchant_label}"[:22],
        "card_payment_timeline": timeline,
    }
    if charge.status == "FAILED":
        card_details["errors"] = [{"category": "PAYMENT_METHOD_ERROR", "code": "GENERIC_DECLINE", "detail": "Authorization error: 'GENERIC_DECLINE'"}]  # fmt: skip
        card_details.pop("auth_result_code")
    record: dict[str, Any] = {
        "id": payment_id,
        "created_at": _utc(created),
        "updated_at": _utc(updated),
        "amount_money": {"amount": amount, "currency": currency},
    }
    if tip:
        record["tip_money"] = {"amount": tip, "currency": currency}
    record["total_money"] = {"amount": amount + tip, "currency": currency}
    record["approved_money"] = {
        "amount": amount + tip if charge.status == "COMPLETED" else 0,
        "currency": currency,
    }
    if charge.status == "COMPLETED":
        fee = _minor(_money(charge.amount * Decimal("0.0175")), currency) + (
            0 if entry in ("EMV", "CONTACTLESS") else 25
        )
        record["processing_fee"] = [{"effective_at": _utc(created + timedelta(seconds=r.rng.randint(30, 120))), "type": "INITIAL", "amount_money": {"amount": fee, "currency": currency}}]  # fmt: skip
    record.update(
        {
            "status": charge.status,
            "delay_duration": "PT168H",
            "delay_action": "CANCEL",
            "delayed_until": _utc(created + timedelta(days=7)),
            "source_type": "CARD",
            "card_details": card_details,
            "location_id": location_id,
            "order_id": r.token(_ALNUM, 28),
            "risk_evaluation": {
                "created_at": _utc(created + timedelta(milliseconds=600)),
                "risk_level": "NORMAL",
            },
        }
    )
    if charge.reference_id:
        record["reference_id"] = charge.reference_id
    if charge.square_customer_id:
        record["customer_id"] = charge.square_customer_id
    if charge.note:
        record["note"] = charge.note
    if charge.customer is not None and charge.square_customer_id and r.rng.random() < 0.4:
        record["buyer_email_address"] = charge.customer.email
    if charge.status == "COMPLETED":
        record["receipt_number"] = payment_id[:4]
        record["receipt_url"] = f"https://squareup.com/receipt/preview/{payment_id}"
    record["application_details"] = {
        "square_product": "ECOMMERCE_API" if entry in ("KEYED", "ON_FILE") else "SQUARE_POS",
        "application_id": "sq0idp-wGVapF8sNt9PLrdj5znuKA",
    }
    record["capabilities"] = (
        ["EDIT_AMOUNT_UP", "EDIT_AMOUNT_DOWN", "EDIT_TIP_AMOUNT_UP", "EDIT_TIP_AMOUNT_DOWN"]
        if charge.status == "COMPLETED"
        else []
    )
    record["version_token"] = r.token(_ALNUM, 45)
    return record


def _location_record(location_id: str, merchant_id: str, name: str, email: str, main: bool, r: _Random) -> dict[str, Any]:  # fmt: skip
    return {
        "id": location_id,
        "name": name if main else f"{name} - Marché",
        "address": {
            "address_line_1": "12 rue des Lilas" if main else "Place du Marché",
            "locality": "Lyon",
            "postal_code": "69003",
            "country": "FR",
        },
        "timezone": "Europe/Paris",
        "capabilities": ["CREDIT_CARD_PROCESSING", "AUTOMATIC_TRANSFERS"],
        "status": "ACTIVE",
        "created_at": _utc(r.moment(date(2025, 5, 12) if main else date(2025, 9, 2))),
        "merchant_id": merchant_id,
        "country": "FR",
        "language_code": "fr-FR",
        "currency": "EUR",
        "business_name": name,
        "type": "PHYSICAL" if main else "MOBILE",
        "business_email": email,
        "mcc": "7299",
    }


# --------------------------------------------------------------------------------------------
# What real feeds add: duplicate submissions, partial payments, refunds, common price points
# --------------------------------------------------------------------------------------------
# These draw from their own seeded streams, so the records above stay what they have always been
# for a seed and these come on top (about 1% more payments and Qonto invoices).

#: Counter prices that many sales share (one amount, many records).
PRICE_POINTS = {
    "EUR": ("4.50", "12.00", "25.00", "49.00"),
    "GBP": ("10.00", "39.00"),
    "USD": ("15.00", "49.00"),
}
_REFUND_REASONS = ("Returned goods", "Customer request", "Duplicate charge", "Service not provided", "Goodwill gesture")  # fmt: skip


def _pick(positions: list[int], share: float, rng: random.Random) -> set[int]:
    """``share`` of ``positions`` (at least one when there are any), chosen by ``rng``."""
    if not positions:
        return set()
    return set(rng.sample(positions, max(1, round(share * len(positions)))))


def _shifted(stamp: str, delta: timedelta) -> str:
    return _utc(min(AS_OF, datetime.fromisoformat(stamp) + delta))


class _SquareRealism:
    """Partial payments, duplicate submissions, refunds and shared price points on the charges."""

    def __init__(self, seed: int, charges: list[_Charge]) -> None:
        self.r = _Random(f"{seed}:square-realism")
        completed = [i for i, charge in enumerate(charges) if charge.status == "COMPLETED"]
        self.partial = _pick([i for i in completed if charges[i].invoice is not None], 0.02, self.r.rng)
        self.duplicate = _pick([i for i in completed if charges[i].square_customer_id], 0.01, self.r.rng)
        self.refunded = _pick(completed, 0.03, self.r.rng)
        self.refunds: list[dict[str, Any]] = []
        self.duplicates: dict[str, str] = {}  # duplicate payment id -> the payment it repeats

    def adjust(self, position: int, charge: _Charge) -> None:
        """Before the payment is made: what the charge really took."""
        if position in self.partial:  # the customer pays part now, the rest later or never
            charge.amount = _money(charge.amount * Decimal(self.r.rng.choice(("0.3", "0.4", "0.5"))))
            charge.detail = "partial payment"
        elif charge.invoice is None and charge.status == "COMPLETED" and self.r.rng.random() < 0.3:
            prices = PRICE_POINTS.get(charge.currency)
            if prices:
                charge.amount = Decimal(self.r.rng.choice(prices))

    def follow_up(self, position: int, charge: _Charge, payment: dict[str, Any]) -> dict[str, Any] | None:
        """After the payment is made: its refunds, and a duplicate submission if there is one."""
        duplicate = None
        if position in self.duplicate:
            duplicate = self._duplicate_of(payment)
            if self.r.rng.random() < 0.75:  # the merchant notices and refunds the second charge
                self._refund(duplicate, duplicate["amount_money"]["amount"], "Duplicate charge")
        if position in self.refunded:
            amount = payment["amount_money"]["amount"]
            if charge.invoice is None and self.r.rng.random() < 0.6:
                self._refund(payment, amount, self.r.rng.choice(_REFUND_REASONS))
            else:
                share = Decimal(self.r.rng.choice(("0.1", "0.2", "0.25", "0.5")))
                self._refund(payment, max(1, int(amount * share)), self.r.rng.choice(_REFUND_REASONS))
        return duplicate

    def _duplicate_of(self, payment: dict[str, Any]) -> dict[str, Any]:
        """The same card and amount submitted again a minute later (a double click, a retry)."""
        delay = timedelta(seconds=self.r.rng.randint(20, 120))
        duplicate = copy.deepcopy(payment)
        duplicate_id = self.r.token(_ALNUM, 29)
        duplicate.update(
            id=duplicate_id,
            created_at=_shifted(payment["created_at"], delay),
            updated_at=_shifted(payment["updated_at"], delay),
            delayed_until=_shifted(payment["delayed_until"], delay),
            order_id=self.r.token(_ALNUM, 28),
            version_token=self.r.token(_ALNUM, 45),
        )
        timeline = duplicate["card_details"]["card_payment_timeline"]
        for key in timeline:
            timeline[key] = _shifted(timeline[key], delay)
        for fee in duplicate.get("processing_fee", []):
            fee["effective_at"] = _shifted(fee["effective_at"], delay)
        duplicate["risk_evaluation"]["created_at"] = _shifted(
            duplicate["risk_evaluation"]["created_at"], delay
        )
        if "receipt_number" in duplicate:
            duplicate["receipt_number"] = duplicate_id[:4]
            duplicate["receipt_url"] = f"https://squareup.com/receipt/preview/{duplicate_id}"
        self.duplicates[duplicate_id] = payment["id"]
        return duplicate

    def _refund(self, payment: dict[str, Any], amount: int, reason: str) -> None:
        currency = payment["amount_money"]["currency"]
        created = min(AS_OF, datetime.fromisoformat(payment["created_at"]) + timedelta(hours=self.r.rng.randint(2, 240)))  # fmt: skip
        updated = min(AS_OF, created + timedelta(seconds=self.r.rng.randint(2, 40)))
        refund: dict[str, Any] = {
            "id": f"{payment['id']}_{self.r.token(_ALNUM, 40)}",
            "status": "COMPLETED",
            "location_id": payment["location_id"],
            "unlinked": False,
            "destination_type": "CARD",
            "amount_money": {"amount": amount, "currency": currency},
            "payment_id": payment["id"],
            "order_id": payment["order_id"],
            "reason": reason,
            "created_at": _utc(created),
            "updated_at": _utc(updated),
        }
        fees = payment.get("processing_fee")
        if fees:  # Square gives back the fee in proportion to what is refunded
            returned = -round(fees[0]["amount_money"]["amount"] * amount / payment["amount_money"]["amount"])
            refund["processing_fee"] = [{"effective_at": _utc(updated), "type": "INITIAL", "amount_money": {"amount": returned, "currency": currency}}]  # fmt: skip
        self.refunds.append(refund)
        payment["refunded_money"] = {"amount": amount, "currency": currency}
        payment["refund_ids"] = [*payment.get("refund_ids", []), refund["id"]]
        payment["updated_at"] = max(payment["updated_at"], refund["updated_at"])


def _add_qonto_duplicates(
    seed: int,
    invoices: list[dict[str, Any]],
    truth: dict[str, str | None],
    documents: list[tuple[dict[str, Any], InvoiceDocument]],
) -> dict[str, str]:
    """The same document submitted twice (forwarded by email and uploaded, say): a second record
    with its own id and attachment, both flagged ``has_duplicates`` as Qonto flags them. Returns
    duplicate id -> original id."""
    r = _Random(f"{seed}:qonto-realism")
    document_of = {id(record): document for record, document in documents}
    duplicates: dict[str, str] = {}
    for position in sorted(_pick(list(range(len(invoices))), 0.01, r.rng)):
        original = invoices[position]
        delay = timedelta(minutes=r.rng.randint(2, 600))
        duplicate = copy.deepcopy(original)
        duplicate.update(
            id=r.uuid(),
            attachment_id=(attachment_id := r.uuid()),
            display_attachment_id=attachment_id,
            source_type="file_upload",
            source="web_upload",
            has_duplicates=True,
            created_at=_shifted(original["created_at"], delay),
            updated_at=_shifted(original["updated_at"], delay),
            analyzed_at=_shifted(original["analyzed_at"], delay),
        )
        original["has_duplicates"] = True
        invoices.append(duplicate)
        truth[duplicate["id"]] = truth[original["id"]]
        documents.append((duplicate, document_of[id(original)]))
        duplicates[duplicate["id"]] = original["id"]
    return duplicates


# --------------------------------------------------------------------------------------------
# The whole directory
# --------------------------------------------------------------------------------------------

_COMPANY_NAMES = (
    "Maison Verdier",
    "Atelier Beaumont",
    "Studio Colibri",
    "Les Ateliers Rivière",
    "Comptoir Lemaire",
)


def _write_query_response(
    out_dir: Path, entity: str, count: int, records: Iterable[dict[str, Any]], response_time: str
) -> int:
    """A QuickBooks query answer holding every ``entity`` record (the server pages through it)."""
    envelope = {
        "QueryResponse": {
            entity: STREAMED_LIST,
            "startPosition": 1,
            "maxResults": count,
            "totalCount": count,
        },
        "time": response_time,
    }
    written = write_json_streaming(out_dir / "quickbooks" / f"{entity}.json", envelope, records)
    assert written == count, f"{entity}: {written} records written, {count} announced"
    return written


_PARALLEL_RENDERING_FROM = 2000


def _write_attachments(
    attachments_dir: Path, documents: list[tuple[dict[str, Any], InvoiceDocument]]
) -> None:
    attachments_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        contents: Iterable[bytes]
        if len(documents) < _PARALLEL_RENDERING_FROM:
            contents = map(render_invoice_pdf, (document for _, document in documents))
        else:  # rendering is most of a big Qonto side's time, and each document stands alone
            executor = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")
            )
            stack.enter_context(executor)
            contents = executor.map(render_invoice_pdf, (d for _, d in documents), chunksize=200)
        _write_attachment_files(attachments_dir, documents, contents)


def _write_attachment_files(
    attachments_dir: Path, documents: list[tuple[dict[str, Any], InvoiceDocument]], contents: Iterable[bytes]
) -> None:
    for (record, _), content in zip(documents, contents, strict=True):
        attachment_id = record["attachment_id"]
        write_bytes_atomically(attachments_dir / f"{attachment_id}.pdf", content)
        write_json(
            attachments_dir / f"{attachment_id}.json",
            {
                "attachment": {
                    "id": attachment_id,
                    "file_name": record["file_name"],
                    "file_size": str(len(content)),
                    "file_content_type": "application/pdf",
                    "url": f"https://sandbox.invalid/qonto/attachments/{attachment_id}.pdf",
                    "created_at": record["created_at"],
                }
            },
        )


def _spent(plan: list[_Charge]) -> Iterator[_Charge]:
    """The plan's charges in order, each taken out of the list as it is handed on: with the
    charges (and the invoices only they refer to) freed as their payments are written, a
    million-payment plan is not held beside the ground truth the payments build up."""
    plan.reverse()
    while plan:
        yield plan.pop()


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NotADirectoryError(out_dir)
        if any(out_dir.iterdir()):
            if not (out_dir / "manifest.json").exists():
                raise FileExistsError(
                    f"{out_dir} is not empty and holds no sandbox fixtures; refusing to overwrite"
                )
            shutil.rmtree(out_dir)  # a previous generation: regenerate from scratch, leaving nothing stale
    out_dir.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class GenerationFigures:
    """What one generation wrote and how long it took."""

    out_dir: Path
    seconds: float
    rows: dict[str, int]  # records per fixture file, e.g. "square/payments.json"

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0


def generate_fixtures(
    out_dir: Path,
    seed: int = 7,
    *,
    qonto_invoices: int = 120,
    square_payments: int = 150,
    customers: int = 60,
    open_invoices_without_charge: int = 30,
    paid_invoices: int = 30,
    invoiced_payments: int | None = None,
) -> Path:
    """Write a complete fixture directory for ``seed`` into ``out_dir`` and return its path.

    The same arguments always give byte-identical files. An existing fixture directory at
    ``out_dir`` is replaced; any other non-empty folder is refused. ``invoiced_payments`` is how
    many of the charges pay a QuickBooks invoice (default: the designed mix, about 83%); a big
    shop sells mostly over the counter, so at scale it keeps the ledger to a realistic size.
    """
    return measure_generation(
        out_dir,
        seed,
        qonto_invoices=qonto_invoices,
        square_payments=square_payments,
        customers=customers,
        open_invoices_without_charge=open_invoices_without_charge,
        paid_invoices=paid_invoices,
        invoiced_payments=invoiced_payments,
    ).out_dir


def measure_generation(
    out_dir: Path,
    seed: int = 7,
    *,
    qonto_invoices: int = 120,
    square_payments: int = 150,
    customers: int = 60,
    open_invoices_without_charge: int = 30,
    paid_invoices: int = 30,
    invoiced_payments: int | None = None,
) -> GenerationFigures:
    """:func:`generate_fixtures`, returning how many records each file holds and the seconds taken."""
    if min(qonto_invoices, square_payments, open_invoices_without_charge, paid_invoices) < 0 or customers < 4:
        raise ValueError("sizes must be non-negative, with at least 4 customers")
    if invoiced_payments is not None and not 0 <= invoiced_payments <= square_payments * 0.98:
        raise ValueError("invoiced_payments must be between 0 and 98% of square_payments (2% are declined)")
    started = time.perf_counter()
    rows: dict[str, int] = {}
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    r = _Random(seed)

    core_name = r.rng.choice(_COMPANY_NAMES)
    company_name = f"{core_name} SAS"
    company_domain = _domain(core_name)
    email_slug = f"{_slug(core_name)}-{r.token(string.digits, 4)}"
    organization_id = r.uuid()
    location_id = "L" + r.token(_UPPER_ALNUM, 12)
    merchant_id = "ML" + r.token(_UPPER_ALNUM, 11)
    manifest: dict[str, Any] = {
        "seed": seed,
        "workspace_id": WORKSPACE_ID,
        "company_name": company_name,
        "home_currency": HOME_CURRENCY,
        "quickbooks_realm_id": "9341" + r.token(string.digits, 12),
        "square_location_id": location_id,
        "square_merchant_id": merchant_id,
        "email_in_address": f"{email_slug}@qbodocs.com",
        "owner_email": f"finance@{company_domain}",
        "registered_sender": f"ledgerlink@{company_domain}",
        "access_tokens": {
            "qonto": "qonto_sbx_" + r.token(_ALNUM, 40),
            "square": "EAAA" + r.token(_ALNUM + "-_", 60),
            "quickbooks": "qbo_sbx_" + r.token(_ALNUM, 48),
        },
        "square_webhook_signature_key": r.token(_ALNUM + "-_", 22),
    }

    # QuickBooks ledger: vendors and customers first, invoices once the charges are planned.
    vendors = _build_vendors(r)
    ledger_customers = _build_customers(customers, r)
    for customer in ledger_customers:
        if customer.square_profile != "absent":
            customer.square_id = r.token(_UPPER_ALNUM, 26)
    inactive = r.rng.sample(ledger_customers, 2)
    deleted_customers = [
        _Customer(
            str(len(ledger_customers) + i + 1),
            c.given_name,
            c.family_name,
            c.company_name,
            f"{c.display_name} (deleted)",
            c.currency,
            c.email,
            active=False,
            square_profile="absent",
        )  # fmt: skip
        for i, c in enumerate(inactive)
    ]

    charges, charged_invoices = _plan_square(
        square_payments, ledger_customers, r, _square_mix(square_payments, invoiced_payments)
    )
    all_invoices = charged_invoices + _distractor_invoices(
        ledger_customers, open_invoices_without_charge, paid_invoices, r
    )
    del charged_invoices  # the charges hold theirs; the ledger's list goes once it is written
    all_invoices.sort(key=lambda invoice: (invoice.txn_date, invoice.customer.id, invoice.total))
    for position, invoice in enumerate(all_invoices):
        invoice.id = str(130 + position)
        invoice.doc_number = str(1001 + position)
    for charge in charges:
        if charge.invoice is not None:
            if charge.reference_id == invoice_doc_placeholder:
                charge.reference_id = charge.invoice.doc_number
            elif charge.reference_id == noisy_reference_placeholder:
                charge.reference_id = _noisy_reference(charge.invoice.doc_number, r)
            if charge.note:
                charge.note = charge.note.replace(invoice_doc_placeholder, charge.invoice.doc_number)
    for charge in charges:  # any placeholder left (a failed charge has no invoice) goes away
        if charge.reference_id in (invoice_doc_placeholder, noisy_reference_placeholder):
            charge.reference_id = None

    balances: Counter[str] = Counter()
    for invoice in all_invoices:
        balances[invoice.customer.id] += invoice.balance  # type: ignore[assignment]
    response_time = _qbo_response_time(AS_OF)
    # Records are written as they are made (the draws stay in the same order as ever), so a
    # million of them never sit in memory at once.
    rows["quickbooks/Invoice.json"] = _write_query_response(
        out_dir, "Invoice", len(all_invoices), (_invoice_record(i, r) for i in all_invoices), response_time
    )
    customer_records = [
        _customer_record(customer, Decimal(balances.get(customer.id, 0)), r)
        for customer in ledger_customers + deleted_customers
    ]
    customer_records.sort(key=lambda record: int(record["Id"]))
    vendor_records = [_vendor_record(vendor, r) for vendor in vendors]
    account_records = _account_records(r)
    for entity, records in (
        ("Vendor", vendor_records),
        ("Customer", customer_records),
        ("Account", account_records),
    ):
        rows[f"quickbooks/{entity}.json"] = _write_query_response(
            out_dir, entity, len(records), records, response_time
        )
    del customer_records, all_invoices

    # Square: profiles for ledger customers, plus walk-ins the ledger does not know.
    square_customers: list[dict[str, Any]] = []
    for customer in ledger_customers:
        if customer.square_id is None:
            continue
        reference = customer.id if r.rng.random() < 0.15 else None
        email = customer.email if r.rng.random() < 0.8 else None
        names = _square_profile_names(customer, r)
        square_customers.append(_square_customer_record(customer.square_id, names, email, reference, r))
    for charge in charges:
        if charge.square_customer_id == "walk-in":
            charge.square_customer_id = r.token(_UPPER_ALNUM, 26)
            given, family = r.rng.choice(GIVEN_NAMES), r.rng.choice(FAMILY_NAMES)
            email = f"{_slug(given)}{r.rng.randint(1, 99)}@mail.example"
            names = {"given_name": given, "family_name": family}
            square_customers.append(_square_customer_record(charge.square_customer_id, names, email, None, r))
    square_customers.sort(key=lambda record: record["id"])
    rows["square/customers.json"] = write_json_streaming(
        out_dir / "square" / "customers.json", {"customers": STREAMED_LIST}, square_customers
    )
    del square_customers

    charges.sort(key=lambda charge: charge.paid_on)
    square_truth: dict[str, tuple[str | None, str | None]] = {}
    realism = _SquareRealism(seed, charges)

    def payments_in_time_order() -> Iterator[dict[str, Any]]:
        # A charge's payment is created on the day it is paid (a duplicate a minute later), so
        # sorting each day's payments by (created_at, id) sorts them all; one day is held at a time.
        position = 0
        for _, day in itertools.groupby(_spent(charges), key=lambda charge: charge.paid_on):
            charged: list[tuple[_Charge | None, dict[str, Any]]] = []
            for charge in day:
                realism.adjust(position, charge)
                payment = _payment_record(charge, location_id, core_name.upper(), r)
                charged.append((charge, payment))
                duplicate = realism.follow_up(position, charge, payment)
                if duplicate is not None:
                    charged.append((None, duplicate))
                    # It pays nothing: the first submission paid the invoice, if there was one.
                    square_truth[duplicate["id"]] = (None, charge.customer.id if charge.customer else None)
                position += 1
            charged.sort(key=lambda pair: (pair[1]["created_at"], pair[1]["id"]))
            for charge_or_duplicate, payment in charged:
                if charge_or_duplicate is not None:
                    square_truth[payment["id"]] = (
                        charge_or_duplicate.invoice.id if charge_or_duplicate.invoice is not None else None,
                        charge_or_duplicate.customer.id if charge_or_duplicate.customer is not None else None,
                    )
                yield payment

    rows["square/payments.json"] = write_json_streaming(
        out_dir / "square" / "payments.json", {"payments": STREAMED_LIST}, payments_in_time_order()
    )
    assert not charges  # the plan is spent (each charge freed once its day is written)
    realism.refunds.sort(key=lambda refund: (refund["created_at"], refund["id"]))
    rows["square/refunds.json"] = write_json_streaming(
        out_dir / "square" / "refunds.json", {"refunds": STREAMED_LIST}, realism.refunds
    )
    locations = [
        _location_record(location_id, merchant_id, core_name, manifest["owner_email"], True, r),
        _location_record(
            "L" + r.token(_UPPER_ALNUM, 12), merchant_id, core_name, manifest["owner_email"], False, r
        ),
    ]
    rows["square/locations.json"] = write_json_streaming(
        out_dir / "square" / "locations.json", {"locations": STREAMED_LIST}, locations
    )

    supplier_invoices, qonto_truth, documents = _qonto_invoices(
        qonto_invoices, vendors, organization_id, company_name, r
    )
    qonto_duplicates = _add_qonto_duplicates(seed, supplier_invoices, qonto_truth, documents)
    supplier_invoices.sort(key=lambda record: (record["updated_at"], record["id"]))

    write_json(out_dir / "manifest.json", manifest)
    qonto_dir = out_dir / "qonto"
    rows["qonto/supplier_invoices.json"] = write_json_streaming(
        qonto_dir / "supplier_invoices.json",
        {
            "supplier_invoices": STREAMED_LIST,
            "meta": {
                "current_page": 1,
                "next_page": None,
                "prev_page": None,
                "total_pages": 1,
                "total_count": len(supplier_invoices),
                "per_page": len(supplier_invoices),
            },
        },
        supplier_invoices,
    )
    _write_attachments(qonto_dir / "attachments", documents)
    rows["qonto/attachments"] = len(documents)
    write_json_streaming(
        out_dir / "ground_truth.json",
        {
            "qonto": {key: qonto_truth[key] for key in sorted(qonto_truth)},
            # Duplicate submissions: the copy -> the record it repeats (neither should be booked twice).
            "qonto_duplicates": dict(sorted(qonto_duplicates.items())),
            "square_duplicates": dict(sorted(realism.duplicates.items())),
            "square": STREAMED_OBJECT,
        },
        (
            (payment_id, {"invoice_id": invoice_id, "customer_id": customer_id})
            for payment_id, (invoice_id, customer_id) in sorted(square_truth.items())
        ),
    )
    return GenerationFigures(out_dir, time.perf_counter() - started, rows)
