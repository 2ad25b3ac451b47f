"""The QuickBooks Online query language, the subset the Accounting API documents for reads:

``SELECT * | COUNT(*) | Field[, Field] FROM Entity [WHERE cond AND cond ...]
[ORDERBY Field [ASC|DESC][, ...]] [STARTPOSITION n] [MAXRESULTS n]``

with ``cond`` one of ``Field op value`` (``=``, ``<``, ``>``, ``<=``, ``>=``, ``!=``), ``Field IN
(v, ...)`` or ``Field LIKE '%text%'``. Keywords, entity and field names are case-insensitive, so
the query's ``Metadata.LastUpdatedTime`` finds the JSON's ``MetaData.LastUpdatedTime``. There is
no ``OR``, as in QuickBooks.
"""

from __future__ import annotations

import functools
import operator
import re
from array import array
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerlink.sandbox.common import epoch_microseconds, parse_timestamp
from ledgerlink.sandbox.fixtures import Records, Selection

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


class QueryError(ValueError):
    """A query QuickBooks would refuse; ``code`` is its Fault error code."""

    def __init__(self, message: str, detail: str, code: str = "4000") -> None:
        super().__init__(detail)
        self.message, self.detail, self.code = message, detail, code


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # =, <, >, <=, >=, !=, IN, LIKE
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool = False
    fields: tuple[str, ...] = ()  # empty: all fields
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


@dataclass
class _Tokens:
    items: list[tuple[str, str, int]]
    position: int = 0
    text: str = field(default="")

    def peek(self) -> tuple[str, str, int] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def next(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise _parse_error(self.text, len(self.text), "<EOF>")
        self.position += 1
        return token

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == value

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() in words:
            self.position += 1
            return token[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        token = self.next()
        if token[0] != "word" or token[1].upper() != word:
            raise _parse_error(self.text, token[2], token[1])

    def expect(self, kind: str, value: str | None = None) -> str:
        token = self.next()
        if token[0] != kind or (value is not None and token[1] != value):
            raise _parse_error(self.text, token[2], token[1])
        return token[1]


def _parse_error(text: str, column: int, found: str) -> QueryError:
    return QueryError(
        "Error parsing query",
        f'QueryParserError: Encountered " {found} " at line 1, column {column + 1}.',
    )


def _tokenize(text: str) -> _Tokens:
    items: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            stripped = len(text[position:]) - len(text[position:].lstrip())
            raise _parse_error(text, position + stripped, text[position + stripped])
        kind = match.lastgroup or ""
        items.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return _Tokens(items, text=text)


def _literal(token: tuple[str, str, int]) -> Any:
    kind, value, _ = token
    if kind == "string":
        return value[1:-1].replace("''", "'").replace("\\'", "'")
    if kind == "number":
        return Decimal(value)
    if kind == "word" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise QueryError("Error parsing query", f'QueryParserError: Encountered " {value} " (expected a value).')


def parse_query(text: str) -> Query:
    """Parse one query; raise :class:`QueryError` with QuickBooks' wording when it is malformed."""
    tokens = _tokenize(text)
    tokens.expect_keyword("SELECT")
    count = False
    fields: list[str] = []
    if tokens.keyword("COUNT"):
        tokens.expect("punct", "(")
        tokens.expect("punct", "*")
        tokens.expect("punct", ")")
        count = True
    elif tokens.at("*"):
        tokens.next()
    else:
        fields.append(tokens.expect("word"))
        while tokens.at(","):
            tokens.next()
            fields.append(tokens.expect("word"))
    tokens.expect_keyword("FROM")
    entity = tokens.expect("word")
    conditions: list[Condition] = []
    if tokens.keyword("WHERE"):
        while True:
            conditions.append(_condition(tokens))
            if tokens.keyword("AND"):
                continue
            if tokens.keyword("OR"):
                raise QueryError(
                    "Error parsing query", "QueryParserError: OR is not supported in QuickBooks queries."
                )
            break
    order_by: list[tuple[str, bool]] = []
    start_position, max_results = 1, DEFAULT_MAX_RESULTS
    while tokens.peek() is not None:
        word = tokens.keyword("ORDERBY", "ORDER", "STARTPOSITION", "MAXRESULTS")
        if word is None:
            token = tokens.next()
            raise _parse_error(text, token[2], token[1])
        if word in ("ORDERBY", "ORDER"):
            if word == "ORDER":
                tokens.expect_keyword("BY")
            while True:
                name = tokens.expect("word")
                direction = tokens.keyword("ASC", "DESC")
                order_by.append((name, direction == "DESC"))
                if tokens.at(","):
                    tokens.next()
                    continue
                break
        elif word == "STARTPOSITION":
            start_position = int(tokens.expect("number"))
        else:
            max_results = int(tokens.expect("number"))
    if start_position < 1:
        raise QueryError("Invalid query", "QueryValidationError: STARTPOSITION must be 1 or more.", "4001")
    if max_results < 0:
        raise QueryError("Invalid query", "QueryValidationError: MAXRESULTS must be 0 or more.", "4001")
    return Query(
        entity=entity,
        count=count,
        fields=tuple(fields),
        conditions=tuple(conditions),
        order_by=tuple(order_by),
        start_position=start_position,
        max_results=min(max_results, MAX_MAX_RESULTS),
    )


def _condition(tokens: _Tokens) -> Condition:
    name = tokens.expect("word")
    if tokens.keyword("IN"):
        tokens.expect("punct", "(")
        values = [_literal(tokens.next())]
        while tokens.at(","):
            tokens.next()
            values.append(_literal(tokens.next()))
        tokens.expect("punct", ")")
        return Condition(name, "IN", tuple(values))
    if tokens.keyword("LIKE"):
        return Condition(name, "LIKE", (_literal(tokens.next()),))
    operator = tokens.expect("op")
    return Condition(name, "!=" if operator == "<>" else operator, (_literal(tokens.next()),))


# ------------------------------------------------------------------------------------------
# Evaluation over JSON records
# ------------------------------------------------------------------------------------------

_MISSING = object()


def field_value(record: dict[str, Any], path: str) -> Any:
    """The value at a dotted, case-insensitive path, or ``_MISSING``."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return _MISSING
        lowered = part.lower()
        key = next((key for key in current if key.lower() == lowered), None)
        if key is None:
            return _MISSING
        current = current[key]
    return current


def _comparable(value: Any, literal: Any) -> tuple[Any, Any] | None:
    """Both sides in one comparable type, following the record value's type."""
    if isinstance(value, bool):
        if isinstance(literal, bool):
            return value, literal
        return value, str(literal).lower() == "true"
    if isinstance(value, int | float | Decimal):
        try:
            return Decimal(str(value)), Decimal(str(literal))
        except InvalidOperation:
            return None
    if isinstance(value, str):
        text = str(literal)
        if len(value) > 10 and value[10] == "T":  # a timestamp field
            try:
                return parse_timestamp(value), parse_timestamp(text)
            except ValueError:
                return None
        return value.casefold(), text.casefold()
    if isinstance(value, dict) and "value" in value:  # a reference: compare its id
        return str(value["value"]), str(literal)
    return None


def _like(value: Any, pattern: Any) -> bool:
    if not isinstance(value, str):
        return False
    regex = ".*".join(re.escape(part) for part in str(pattern).split("%"))
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _matches(record: dict[str, Any], condition: Condition) -> bool:
    value = field_value(record, condition.field)
    if value is _MISSING or value is None:
        return False
    if condition.operator == "LIKE":
        return _like(value, condition.values[0])
    if condition.operator == "IN":
        for literal in condition.values:
            pair = _comparable(value, literal)
            if pair is not None and pair[0] == pair[1]:
                return True
        return False
    pair = _comparable(value, condition.values[0])
    if pair is None:
        return False
    try:
        return bool(_COMPARISONS[condition.operator](*pair))
    except TypeError:
        return False


_COMPARISONS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _sort_key(record: dict[str, Any], path: str) -> tuple[int, Any]:
    value = field_value(record, path)
    if value is _MISSING or value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, Decimal(str(value)))
    if isinstance(value, str):
        if len(value) > 10 and value[10] == "T":
            try:
                return (1, parse_timestamp(value).timestamp())
            except ValueError:
                pass
        if value.isdigit():  # Ids sort as numbers
            return (1, Decimal(value))
        return (2, value.casefold())
    return (3, str(value))


_NON_NUMERIC_ID = 1 << 62


def _id_key(record: dict[str, Any]) -> tuple[int, str]:
    identifier = str(record.get("Id", ""))
    return (int(identifier), "") if identifier.isdigit() else (_NON_NUMERIC_ID, identifier)


#: Entities whose inactive records QuickBooks hides unless the query names ``Active``.
NAME_LIST_ENTITIES = frozenset(
    {"Vendor", "Customer", "Account", "Employee", "Item", "Class", "Department", "Term"}
)


@dataclass(frozen=True)
class QueryResult:
    rows: list[dict[str, Any]]
    total_count: int


def unknown_fields(query: Query, records: Sequence[dict[str, Any]]) -> list[str]:
    """Fields the query names that no record of the entity has (QuickBooks refuses those)."""
    if not records:
        return []
    named = [condition.field for condition in query.conditions] + [name for name, _ in query.order_by]
    named += list(query.fields)
    return [name for name in named if all(field_value(record, name) is _MISSING for record in records)]


def _hides_inactive(query: Query, entity: str, hide_inactive: bool) -> bool:
    return (
        hide_inactive
        and entity in NAME_LIST_ENTITIES
        and not any(c.field.lower() == "active" for c in query.conditions)
    )


def select_records(
    query: Query,
    entity: str,
    records: Sequence[dict[str, Any]],
    *,
    hide_inactive: bool = True,
    index: QueryIndex | None = None,
) -> Selection:
    """Every record of ``records`` (all of ``entity``) the query selects, filtered and ordered as
    QuickBooks would, before paging (:func:`page_of`); with ``hide_inactive``, inactive name-list
    records only when the query names ``Active``. It depends only on the query's entity,
    conditions and order (:func:`selection_key`). The selection holds positions into ``records``,
    not the records: a listing of a million invoices stays on disk between its pages.

    With ``index`` (a :class:`QueryIndex` of these ``records``), a query that filters and sorts
    only on what the index holds reads no record; any other query reads every record."""
    hide = _hides_inactive(query, entity, hide_inactive)
    if index is not None:
        indexed = index.select(query, hide=hide)
        if indexed is not None:
            return indexed
    order_by = [(functools.partial(_sort_key, path=name), descending) for name, descending in query.order_by]
    # One read of each record: whether it is selected, and the keys it sorts on if it is.
    id_keys: dict[int, tuple[int, str]] = {}
    sort_keys: dict[int, list[tuple[int, Any]]] = {}
    for position, record in enumerate(records):
        if hide and record.get("Active", True) is False:
            continue
        if not all(_matches(record, condition) for condition in query.conditions):
            continue
        id_keys[position] = _id_key(record)
        if order_by:
            sort_keys[position] = [sort_key(record) for sort_key, _ in order_by]
    positions = sorted(id_keys, key=id_keys.__getitem__)
    for index_of_key in reversed(range(len(order_by))):  # stable sorts, last key first
        positions.sort(
            key=lambda position: sort_keys[position][index_of_key], reverse=order_by[index_of_key][1]
        )
    return Selection(records, positions)


#: Timestamp fields the index holds, lower-cased: the client's incremental reads filter on this.
INDEXED_TIMESTAMPS = ("metadata.lastupdatedtime",)
#: Boolean fields the index holds, lower-cased: the client names ``Active`` on name lists.
INDEXED_FLAGS = ("active",)

# A record without the field (or with null) matches no condition and sorts first, as in
# _matches and _sort_key; no real timestamp is this far from the epoch.
_ABSENT = -(1 << 63)
# Up to 2**32 seconds from the epoch a float timestamp (what _sort_key sorts on) is finer than a
# microsecond, so whole microseconds sort the same; past it the fallback decides.
_FLOAT_EXACT_MICROSECONDS = (1 << 32) * 1_000_000
_FLAG_SORT_KEYS = {0: 0, 1: 1, 2: -1}  # False, True, absent


class QueryIndex:
    """What the QuickBooks client's queries filter and sort on, read once from every record of
    one entity: the order of the ids, each record's :data:`INDEXED_TIMESTAMPS` (microseconds
    since the epoch) and :data:`INDEXED_FLAGS`, and whether it is inactive. About 18 bytes a
    record, so a million invoices stay on disk while ``select * from Invoice where
    Metadata.LastUpdatedTime > '...'`` is answered from memory.

    A field some record holds in another shape (a timestamp that does not parse, a flag that is
    not a boolean) is left out of the index, and queries naming it read the records."""

    def __init__(self, records: Records) -> None:
        self.records = records
        # Numeric ids (the usual) are sorted from 8 bytes each, not from a tuple a record.
        numeric_ids: array[int] = array("q")
        id_keys: list[tuple[int, str]] | None = None
        self.inactive = bytearray()
        timestamps: dict[str, array[int] | None] = {name: array("q") for name in INDEXED_TIMESTAMPS}
        flags: dict[str, bytearray | None] = {name: bytearray() for name in INDEXED_FLAGS}
        self._sortable = set(INDEXED_TIMESTAMPS) | set(INDEXED_FLAGS)
        for record in records:
            id_key = _id_key(record)
            if id_keys is None and id_key[1] == "" and id_key[0] < _NON_NUMERIC_ID:
                numeric_ids.append(id_key[0])
            else:
                if id_keys is None:
                    id_keys = [(numeric_id, "") for numeric_id in numeric_ids]
                id_keys.append(id_key)
            self.inactive.append(record.get("Active", True) is False)
            for name, times in timestamps.items():
                if times is not None:
                    moment = _timestamp_micros(field_value(record, name))
                    if moment is None:
                        timestamps[name] = None
                    else:
                        times.append(moment)
                        if abs(moment) >= _FLOAT_EXACT_MICROSECONDS and moment != _ABSENT:
                            self._sortable.discard(name)
            for name, codes in flags.items():
                if codes is not None:
                    value = field_value(record, name)
                    if value is _MISSING or value is None:
                        codes.append(2)
                    elif isinstance(value, bool):
                        codes.append(int(value))
                    else:
                        flags[name] = None
        self.timestamps = {name: times for name, times in timestamps.items() if times is not None}
        self.flags = {name: codes for name, codes in flags.items() if codes is not None}
        #: positions in the order select_records lists them before any ORDER BY
        keys: Sequence[Any] = numeric_ids if id_keys is None else id_keys
        self.by_id = array("q", sorted(range(len(keys)), key=keys.__getitem__))

    def select(self, query: Query, *, hide: bool) -> Selection | None:
        """The query's selection, as :func:`select_records` would make it, or ``None`` when the
        query names a field (or an operator on it) the index cannot answer."""
        keeps: list[Callable[[int], bool]] = []
        for condition in query.conditions:
            keep = self._condition(condition)
            if keep is None:
                return None
            keeps.append(keep)
        sort_keys: list[tuple[Callable[[int], int], bool]] = []
        for name, descending in query.order_by:
            sort_key = self._sort_key(name.lower())
            if sort_key is None:
                return None
            sort_keys.append((sort_key, descending))
        positions: list[int] = list(self.by_id)
        if hide:
            inactive = self.inactive
            positions = [position for position in positions if not inactive[position]]
        for keep in keeps:
            positions = [position for position in positions if keep(position)]
        for sort_key, descending in reversed(sort_keys):  # stable sorts, last key first
            positions.sort(key=sort_key, reverse=descending)
        # kept between pages: 8 bytes a record selected
        return Selection(self.records, array("q", positions))

    def _condition(self, condition: Condition) -> Callable[[int], bool] | None:
        name = condition.field.lower()
        if name in self.flags:
            # the condition's answer for each value a flag takes, by _matches itself
            codes = self.flags[name]
            accepted = {
                code
                for code, value in ((0, False), (1, True))
                if _matches({"flag": value}, _renamed(condition))
            }
            return lambda position: codes[position] in accepted
        times = self.timestamps.get(name)
        if times is None or condition.operator == "LIKE":
            return None
        literals: list[int] = []
        for literal in condition.values:
            try:  # as _comparable reads a literal against a timestamp
                literals.append(epoch_microseconds(parse_timestamp(str(literal))))
            except ValueError:
                continue  # it matches no record
        if condition.operator == "IN":
            wanted = set(literals)
            return lambda position: times[position] in wanted
        if not literals:
            return lambda position: False
        compare, bound = _COMPARISONS[condition.operator], literals[0]
        return lambda position: times[position] != _ABSENT and bool(compare(times[position], bound))

    def _sort_key(self, name: str) -> Callable[[int], int] | None:
        if name not in self._sortable:
            return None
        if name in self.timestamps:
            return self.timestamps[name].__getitem__
        if name in self.flags:
            codes = self.flags[name]
            return lambda position: _FLAG_SORT_KEYS[codes[position]]
        return None


def _renamed(condition: Condition) -> Condition:
    return Condition("flag", condition.operator, condition.values)


def _timestamp_micros(value: Any) -> int | None:
    """A record's timestamp as the index holds it: :data:`_ABSENT` when it has none, ``None``
    when it is not a timestamp _comparable would parse (the index then leaves the field out)."""
    if value is _MISSING or value is None:
        return _ABSENT
    if not (isinstance(value, str) and len(value) > 10 and value[10] == "T"):
        return None
    try:
        return epoch_microseconds(parse_timestamp(value))
    except ValueError:
        return None


def selection_key(query: Query, entity: str) -> Hashable:
    """What :func:`select_records` depends on: equal keys select the same records in the same
    order. Each literal is tagged with its type: ``Active = true`` and ``Active = 1`` compare equal
    as Python values but select different records."""
    conditions = tuple(
        (condition.field.lower(), condition.operator, tuple((type(v), v) for v in condition.values))
        for condition in query.conditions
    )
    order = tuple((name.lower(), descending) for name, descending in query.order_by)
    return (entity, conditions, order)


def page_of(query: Query, selected: Sequence[dict[str, Any]]) -> QueryResult:
    """The query's page (``STARTPOSITION``, ``MAXRESULTS``, chosen fields) of its selection."""
    total = len(selected)
    start = query.start_position - 1
    page = list(selected[start : start + query.max_results])
    if query.fields:
        wanted = {name.lower() for name in query.fields} | {"id", "synctoken", "metadata", "domain"}
        page = [
            {**{k: v for k, v in record.items() if k.lower() in wanted}, "sparse": True} for record in page
        ]
    return QueryResult(page, total)
