"""Money in integer minor units, with each currency's own exponent (JPY has none)."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 exponents that differ from the usual 2.
_EXPONENTS = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def minor_to_decimal(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-currency_exponent(currency))


def format_money(amount_minor: int | None, currency: str | None) -> str:
    if amount_minor is None or not currency:
        return "unknown amount"
    exponent = currency_exponent(currency)
    return f"{minor_to_decimal(amount_minor, currency):,.{exponent}f} {currency.upper()}"
