"""Field mappings: which fields a delivered document carries and what they say.

The default mapping prints counterparty, amount, currency, reference and tax. A workspace's
mapping version can override a field with a constant, ignore fields QuickBooks does not need,
and add computed fields (a GL code, a project tag, a tax bucket) as expressions over the record
and its matched entry.

Expressions are Jinja2 expressions evaluated in an immutable sandbox with no globals: no
attribute starting with an underscore, no method that mutates, no range or string beyond a size
limit, no access to Python, the filesystem or SQL. An expression the sandbox refuses is refused
when the mapping is saved, and again (as a missing value) if it fails on a record.

Mappings are versioned with a validity start (``ops.field_mappings``). The version in effect
when a record is reconciled is stamped on its routing decision and outbox row; a later version
never changes what was already queued, delivered or reviewed.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from psycopg.types.json import Jsonb

#: The fields every document carries unless a mapping says otherwise.
DEFAULT_FIELDS = ("counterparty", "amount", "currency", "reference", "tax")
#: Version 0 is the built-in default, in effect before a workspace saves any mapping.
DEFAULT_VERSION = 0
_MAX_EXPRESSION_CHARS = 500
_MAX_VALUE_CHARS = 1000


class MappingError(ValueError):
    """A mapping that cannot be saved; the message says which field and why."""


class _ExpressionSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with size limits on the operators that can blow up memory or time."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if abs(right) > 64 or abs(left) > 10**6:
                raise ValueError("exponent too large")
            return operator.pow(left, right)
        result = operator.mul(left, right)
        if isinstance(result, str | list | tuple) and len(result) > _MAX_VALUE_CHARS:
            raise ValueError("value too long")
        return result


_SANDBOX = _ExpressionSandbox(undefined=StrictUndefined)
_SANDBOX.globals.clear()  # no range, cycler, joiner, namespace, lipsum: data and operators only


@dataclass(frozen=True)
class FieldMapping:
    version: int = DEFAULT_VERSION
    valid_from: datetime | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    computed: dict[str, str] = field(default_factory=dict)

    def apply(self, values: dict[str, Any]) -> dict[str, Any]:
        """The fields printed on the document for a record whose values (``counterparty``,
        ``amount``, ``currency``, ``reference``, ``tax``, ``matched_name``, ...) are given."""
        fields = {name: values.get(name) for name in DEFAULT_FIELDS}
        fields.update(self.overrides)
        for name, expression in self.computed.items():
            fields[name] = evaluate(expression, values)
        return {name: value for name, value in fields.items() if name not in self.ignored}


_EXPRESSION_ERRORS = (TemplateError, ValueError, TypeError, ArithmeticError, LookupError, OverflowError)


def evaluate(expression: str, values: dict[str, Any]) -> str | int | float | bool | None:
    """The expression's value over ``values``, or ``None`` when it fails on them."""
    try:
        return _evaluate(expression, values)
    except _EXPRESSION_ERRORS:
        return None


def _evaluate(expression: str, values: dict[str, Any]) -> str | int | float | bool | None:
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise MappingError(f"expression longer than {_MAX_EXPRESSION_CHARS} characters")
    result = _SANDBOX.compile_expression(expression, undefined_to_none=False)(**values)
    # Only plain values leave the sandbox: an undefined name, a refused attribute (which the
    # sandbox turns into an undefined value), a function or a class is an error.
    if isinstance(result, Undefined) or not isinstance(result, str | int | float | bool | Decimal | None):
        raise ValueError(f"the expression yields {type(result).__name__}, not a plain value")
    if isinstance(result, str) and len(result) > _MAX_VALUE_CHARS:
        raise ValueError("value too long")
    return str(result) if isinstance(result, Decimal) else result


def validate_spec(spec: dict[str, Any], sample: dict[str, Any]) -> FieldMapping:
    """Parse a mapping spec, refusing unknown keys and any computed expression the sandbox
    refuses on a sample record."""
    unknown = set(spec) - {"overrides", "ignored", "computed"}
    if unknown:
        raise MappingError(f"unknown mapping keys: {sorted(unknown)}")
    mapping = FieldMapping(
        overrides=dict(spec.get("overrides") or {}),
        ignored=tuple(spec.get("ignored") or ()),
        computed={str(k): str(v) for k, v in (spec.get("computed") or {}).items()},
    )
    for name, expression in mapping.computed.items():
        try:
            _evaluate(expression, sample)
        except _EXPRESSION_ERRORS as error:
            raise MappingError(f"computed field {name!r} refused: {error}") from error
    return mapping


SAMPLE_VALUES: dict[str, Any] = {
    "counterparty": "Sample Supplier",
    "amount": "100.00",
    "amount_minor": 10000,
    "currency": "EUR",
    "reference": "INV-1",
    "tax": None,
    "occurred_on": "2026-01-01",
    "source": "qonto",
    "matched_type": "vendor",
    "matched_id": "1",
    "matched_name": "Sample Supplier",
}


def save_mapping_version(
    conn: psycopg.Connection, workspace_id: str, spec: dict[str, Any], valid_from: datetime, created_by: str
) -> int:
    """Store a new mapping version valid from ``valid_from``; return its number."""
    validate_spec(spec, SAMPLE_VALUES)
    row = conn.execute(
        """
        insert into ops.field_mappings (workspace_id, mapping_version, valid_from, spec, created_by)
        select %(ws)s, coalesce(max(mapping_version), 0) + 1, %(valid_from)s, %(spec)s, %(by)s
        from ops.field_mappings where workspace_id = %(ws)s
        returning mapping_version
        """,
        {"ws": workspace_id, "valid_from": valid_from, "spec": Jsonb(spec), "by": created_by},
    ).fetchone()
    assert row is not None
    return int(row[0])


def mapping_in_effect(conn: psycopg.Connection, workspace_id: str, at: datetime) -> FieldMapping:
    """The workspace's mapping version valid at ``at`` (the default before any)."""
    row = conn.execute(
        "select mapping_version, valid_from, spec from ops.field_mappings"
        " where workspace_id = %s and valid_from <= %s order by valid_from desc limit 1",
        (workspace_id, at),
    ).fetchone()
    if row is None:
        return FieldMapping()
    spec = row[2]
    return FieldMapping(
        version=row[0],
        valid_from=row[1],
        overrides=dict(spec.get("overrides") or {}),
        ignored=tuple(spec.get("ignored") or ()),
        computed={str(k): str(v) for k, v in (spec.get("computed") or {}).items()},
    )
