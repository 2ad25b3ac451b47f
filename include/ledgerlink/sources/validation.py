"""Whether a record a source sent can land in ``raw.*``, and if not, why.

``raw`` keeps payloads exactly as received, unknown fields included; what it cannot take is a
record that is not a JSON object, one missing the fields ledgerlink keys on (id, ``updated_at``),
one with a wrong-typed key field, a ``\\u0000`` (PostgreSQL's jsonb cannot store it), a string too
large to be data, or money in a currency ISO 4217 does not know. Those go to
``ops.rejected_records`` with the reason returned here; the rest of the page lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

#: Longer strings are not data a source would send (an attack, or a corrupted read).
MAX_STRING_CHARS = 100_000

#: ISO 4217 active codes (2025), plus the few funds/metals codes sources might still send.
KNOWN_CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG""".split()
)

Validator = Callable[[dict[str, Any]], str | None]


def _walk_strings(value: Any) -> str | None:
    """The first problem with any string (key or value) in the document, else ``None``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, dict):
            texts = [str(key) for key in item]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in texts:
            if "\x00" in text:
                return "contains \\u0000, which PostgreSQL cannot store"
            if len(text) > MAX_STRING_CHARS:
                return f"a string of {len(text)} characters exceeds {MAX_STRING_CHARS}"
    return None


def _text(record: dict[str, Any], path: str) -> str | None:
    """A required non-empty string field (dotted path); the reason when it is not one."""
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return f"missing required field {path}"
    if not isinstance(value, str) or not value:
        return f"field {path} must be a non-empty string, got {type(value).__name__}"
    return None


def _timestamp(record: dict[str, Any], path: str) -> str | None:
    problem = _text(record, path)
    if problem:
        return problem
    value: Any = record
    for part in path.split("."):
        value = value[part]
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return f"field {path} is not an ISO 8601 timestamp: {str(value)[:40]!r}"
    return None


def _currency(value: Any, path: str) -> str | None:
    if not isinstance(value, str):
        return f"field {path} must be a currency code, got {type(value).__name__}"
    if value.upper() not in KNOWN_CURRENCIES:
        return f"unknown currency {value[:12]!r} in {path}"
    return None


def _decimal_money(record: dict[str, Any], field: str) -> str | None:
    """Qonto money: ``{value: "120.50", currency: "EUR"}``, optional."""
    money = record.get(field)
    if money is None:
        return None
    if not isinstance(money, dict):
        return f"field {field} must be an object, got {type(money).__name__}"
    value = money.get("value")
    if not isinstance(value, str):
        return f"field {field}.value must be a decimal string, got {type(value).__name__}"
    try:
        if not Decimal(value).is_finite():
            raise InvalidOperation
    except InvalidOperation:
        return f"field {field}.value is not a decimal: {value[:40]!r}"
    return _currency(money.get("currency"), f"{field}.currency")


def _minor_money(record: dict[str, Any], field: str, *, required: bool) -> str | None:
    """Square money: ``{amount: 1250, currency: "USD"}`` in minor units."""
    money = record.get(field)
    if money is None:
        return f"missing required field {field}" if required else None
    if not isinstance(money, dict):
        return f"field {field} must be an object, got {type(money).__name__}"
    amount = money.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        return f"field {field}.amount must be an integer in minor units, got {type(amount).__name__}"
    return _currency(money.get("currency"), f"{field}.currency")


def _first(*checks: str | None) -> str | None:
    return next((problem for problem in checks if problem), None)


def qonto_supplier_invoice(record: dict[str, Any]) -> str | None:
    return _first(
        _text(record, "id"),
        _timestamp(record, "updated_at"),
        _decimal_money(record, "total_amount"),
    )


def square_payment(record: dict[str, Any]) -> str | None:
    return _first(
        _text(record, "id"),
        _timestamp(record, "updated_at"),
        _minor_money(record, "amount_money", required=True),
        _minor_money(record, "total_money", required=False),
    )


def square_refund(record: dict[str, Any]) -> str | None:
    """A PaymentRefund: it must name the payment it gives money back on."""
    return _first(
        _text(record, "id"),
        _text(record, "payment_id"),
        _timestamp(record, "updated_at"),
        _minor_money(record, "amount_money", required=True),
    )


def square_customer(record: dict[str, Any]) -> str | None:
    return _first(_text(record, "id"), _timestamp(record, "updated_at"))


def quickbooks_entity(record: dict[str, Any]) -> str | None:
    currency = (
        (record.get("CurrencyRef") or {}).get("value")
        if isinstance(record.get("CurrencyRef"), dict)
        else None
    )
    return _first(
        _text(record, "Id"),
        _timestamp(record, "MetaData.LastUpdatedTime"),
        _currency(currency, "CurrencyRef.value") if currency is not None else None,
    )


def rejection_reason(record: Any, validator: Validator) -> str | None:
    """Why ``record`` cannot land, or ``None`` when it can."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    return _walk_strings(record) or validator(record)


def quickbooks_rate(record: dict[str, Any]) -> str | None:
    """A QuickBooks ExchangeRate (no ``Id``: a currency pair on a date)."""
    return _first(
        _currency(record.get("SourceCurrencyCode"), "SourceCurrencyCode"),
        _text(record, "AsOfDate"),
        _timestamp(record, "MetaData.LastUpdatedTime"),
    )


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 / RFC 3339 timestamp as sources send it (``Z`` or an offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
