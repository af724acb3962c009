"""The condition model shared by exclusion rules, search filters and presets (DOMAIN.md §3):
conditions in explicitly nested AND/OR groups, operators typed by column type, validation and
plain-words descriptions; the row masks live in core.rules.masks."""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidRule
from core.schema import BOOLEAN, COLUMN_TYPE, DATE_TYPE, INTEGER, NUMBER, TEXT, TIMESTAMP

log = logging.getLogger(__name__)

EQUAL_TO, NOT_EQUAL_TO, BETWEEN = "equal_to", "not_equal_to", "between"
LESS_THAN, GREATER_THAN = "less_than", "greater_than"
LESS_THAN_OR_EQUAL_TO = "less_than_or_equal_to"
GREATER_THAN_OR_EQUAL_TO = "greater_than_or_equal_to"
CONTAINS, NOT_CONTAINS = "contains", "not_contains"
STARTS_WITH, ENDS_WITH = "starts_with", "ends_with"
IN_LIST, NOT_IN_LIST = "in_list", "not_in_list"
IS_EMPTY, IS_NOT_EMPTY = "is_empty", "is_not_empty"
BEFORE, AFTER = "before", "after"

# canonical id → (human label, earlier-system and everyday spellings accepted when loading)
_VOCABULARY: dict[str, tuple[str, tuple[str, ...]]] = {
    EQUAL_TO: ("equals", (
        "equal to", "is equal to", "equals", "equal", "eq", "is", "=", "==", "on")),
    NOT_EQUAL_TO: ("does not equal", (
        "not equal to", "is not equal to", "not equals", "not equal", "does not equal", "ne", "neq",
        "is not", "!=", "<>", "not on")),
    LESS_THAN: ("less than", ("less than", "is less than", "lt", "<")),
    GREATER_THAN: ("greater than", ("greater than", "is greater than", "gt", ">")),
    LESS_THAN_OR_EQUAL_TO: ("less than or equal to", (
        "less than or equal to", "less than equal to", "is less than or equal to", "less or equal",
        "lte", "le", "<=")),
    GREATER_THAN_OR_EQUAL_TO: ("greater than or equal to", (
        "greater than or equal to", "greater than equal to", "is greater than or equal to",
        "greater or equal", "gte", "ge", ">=")),
    BETWEEN: ("between", ("between", "is between")),
    CONTAINS: ("contains", ("contains", "contain", "includes")),
    NOT_CONTAINS: ("does not contain", ("not contains", "does not contain", "not contain")),
    STARTS_WITH: ("starts with", ("starts with", "start with", "begins with")),
    ENDS_WITH: ("ends with", ("ends with", "end with")),
    IN_LIST: ("in list", ("in list", "in", "is in", "one of", "is one of")),
    NOT_IN_LIST: ("not in list", ("not in list", "not in", "is not in", "not one of")),
    IS_EMPTY: ("is empty", ("is empty", "empty", "is blank", "is null", "is na")),
    IS_NOT_EMPTY: ("is not empty", ("is not empty", "not empty", "is not blank", "is not null")),
    BEFORE: ("before", ("before", "is before")),
    AFTER: ("after", ("after", "is after")),
}
LABELS: dict[str, str] = {op: label for op, (label, _) in _VOCABULARY.items()}
_DATE_LABELS = {EQUAL_TO: "on", NOT_EQUAL_TO: "not on"}


def _spelling(name: Any) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


_ALIASES = {_spelling(s): op for op, (_, words) in _VOCABULARY.items() for s in (op, *words)}

EMPTY_OPERATORS = (IS_EMPTY, IS_NOT_EMPTY)
_LISTS = (IN_LIST, NOT_IN_LIST)
_ORDERED = (LESS_THAN, GREATER_THAN, LESS_THAN_OR_EQUAL_TO, GREATER_THAN_OR_EQUAL_TO)
# column kind → operator ids in the order the UI offers them
OPERATORS: dict[str, tuple[str, ...]] = {
    "number": (EQUAL_TO, NOT_EQUAL_TO, *_ORDERED, BETWEEN, *_LISTS, *EMPTY_OPERATORS),
    "text": (EQUAL_TO, NOT_EQUAL_TO, CONTAINS, NOT_CONTAINS, STARTS_WITH, ENDS_WITH, *_LISTS,
             *EMPTY_OPERATORS),
    "date": (EQUAL_TO, NOT_EQUAL_TO, BEFORE, AFTER, BETWEEN, *EMPTY_OPERATORS),
    "boolean": (EQUAL_TO, NOT_EQUAL_TO, *EMPTY_OPERATORS),
}
_KINDS = {NUMBER: "number", INTEGER: "number", TEXT: "text", DATE_TYPE: "date", TIMESTAMP: "date",
          BOOLEAN: "boolean"}
# The earlier UI offered gt/lt on dates; on a date column they mean after/before.
_DATE_SYNONYMS = {GREATER_THAN: AFTER, LESS_THAN: BEFORE}
_TRUE, _FALSE = ("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0")


def canonical_operator(name: Any) -> str:
    """The canonical id of an operator spelling (earlier-system aliases included, any case, with
    spaces or underscores); an unknown spelling comes back in snake_case for validation to reject.
    """
    key = _spelling(name)
    return _ALIASES.get(key, key.replace(" ", "_"))


def column_kind(column_type: str) -> str:
    """number, text, date or boolean: the operator family of a core.schema column type."""
    return _KINDS.get(column_type, "text")


def resolve_operator(operator: str, kind: str | None) -> str:
    return _DATE_SYNONYMS.get(operator, operator) if kind == "date" else operator


def operator_label(operator: str, column_type: str | None = None) -> str:
    """Human words for an operator ('on' for equal_to on dates)."""
    kind = column_kind(column_type) if column_type else None
    operator = resolve_operator(operator, kind)
    if kind == "date" and operator in _DATE_LABELS:
        return _DATE_LABELS[operator]
    return LABELS.get(operator, operator.replace("_", " "))


def operators_for(column_type: str) -> list[tuple[str, str]]:
    """(id, label) of the operators a column of this type offers, in UI order."""
    return [(op, operator_label(op, column_type)) for op in OPERATORS[column_kind(column_type)]]


def invalid_rule(rule: str, message: str) -> InvalidRule:
    """InvalidRule naming the rule, or only the message when there is no rule (a filter)."""
    error = InvalidRule(rule, message)
    if not rule:
        error.args = (message,)  # no "rule '':" prefix for search filters and presets
    return error


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):  # pd.Timestamp included; a midnight reads as its day
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Condition:
    """One test on one column: value is a list for in/not in lists (a comma-separated string is
    read as one too), value2 the second bound of between. The operator is stored canonical,
    whatever spelling it was given in."""

    column: str
    operator: str
    value: Any = None
    value2: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "operator", canonical_operator(self.operator))

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "operator": self.operator,
                "value": _jsonable(self.value), "value2": _jsonable(self.value2)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        column = data.get("column", data.get("field"))  # the earlier search API said "field"
        if column is None or data.get("operator") is None:
            raise invalid_rule("", f"not a condition (needs column and operator): {dict(data)!r}")
        value, value2 = data.get("value"), data.get("value2")
        return cls(str(column).strip(), str(data["operator"]), value, value2)


@dataclass(frozen=True)
class Group:
    """Conditions and sub-groups joined by one 'and' or 'or'; nesting is the only precedence."""

    join: str = "and"
    items: list[Condition | Group] = field(default_factory=list)

    def __post_init__(self) -> None:
        join = str(self.join).strip().lower()
        if join not in ("and", "or"):
            raise invalid_rule("", f"a group joins with 'and' or 'or', not {self.join!r}")
        object.__setattr__(self, "join", join)
        object.__setattr__(self, "items", list(self.items))

    def to_dict(self) -> dict[str, Any]:
        return {"join": self.join, "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | list[Any]) -> Group:
        """A group from {"join", "items"}; a bare condition or the earlier system's flat list is
        accepted too (see group_from_legacy)."""
        if isinstance(data, list):
            return group_from_legacy(data)
        node = node_from_dict(data)
        return node if isinstance(node, Group) else cls("and", [node])


def node_from_dict(data: Mapping[str, Any]) -> Condition | Group:
    """A Condition or Group from its dict form."""
    if not isinstance(data, Mapping):
        raise invalid_rule("", f"not a condition or group: {data!r}")
    if "items" in data:
        return Group(data.get("join", "and"), [node_from_dict(i) for i in data["items"]])
    return Condition.from_dict(data)


def group_from_legacy(entries: list[Mapping[str, Any]]) -> Group:
    """Fold the earlier system's flat list ({"type": where|and|or|subgroup, ...}) into a Group.

    The earlier engine folded left to right without precedence (earlier-system.md §3.3):
    `a AND b OR c` meant `(a AND b) OR c` and `a OR b AND c` meant `(a OR b) AND c`. We nest exactly
    so, which keeps what a migrated rule excludes and shows the parentheses in describe(). A `where`
    after the first entry restarted the fold, so the entries before it never had an effect: they are
    dropped with a warning, as are entries of unknown type. Entries without a type join with AND
    (earlier presets and filters). `subgroup` entries, which the earlier engine ignored (a defect),
    become real nested groups, joined to what precedes them by their `join`/`logical_operator`
    (default and).
    """
    result: Condition | Group | None = None
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise invalid_rule("", f"not a condition: {entry!r}")
        kind = _spelling(entry.get("type") or entry.get("logical_operator") or "")
        node: Condition | Group
        if kind == "subgroup" or "conditions" in entry:
            node = group_from_legacy(list(entry.get("conditions") or []))
            kind = _spelling(entry.get("join") or entry.get("logical_operator") or "and")
            if not node.items:
                log.warning("dropping an empty subgroup of an earlier-system rule")
                continue
        elif "items" in entry:
            node = node_from_dict(entry)
        else:
            node = Condition.from_dict(entry)
        if result is None or kind == "where":
            if result is not None:
                log.warning("'where' restarts an earlier rule; dropping %s", describe(result))
            result = node
        elif kind in ("and", "or", ""):
            join = kind or "and"
            if isinstance(result, Group) and result.join == join:
                result = Group(join, [*result.items, node])
            else:
                result = Group(join, [result, node])
        else:
            log.warning("dropping an earlier-system condition of unknown type %r", kind)
    if result is None:
        return Group("and", [])
    return result if isinstance(result, Group) else Group("and", [result])


def iter_conditions(node: Condition | Group) -> Iterator[Condition]:
    """Conditions depth-first, in the order they are numbered in messages (1, 2, ...)."""
    if isinstance(node, Condition):
        yield node
        return
    for item in node.items:
        yield from iter_conditions(item)


# -- values ---------------------------------------------------------------------------------------
class BadValue(ValueError):
    pass


def _show(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, date):
        return f"'{_jsonable(value)}'"
    if isinstance(value, list | tuple | set):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return f"'{value}'"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _list_values(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = [part.strip() for part in re.split(r"[,;\n]", value)]
    elif not isinstance(value, list | tuple | set | np.ndarray):
        value = [] if value is None else [value]
    return [v for v in value if not _is_blank(v)]


def _number(value: Any) -> float:
    try:
        if isinstance(value, bool | np.bool_):
            raise ValueError
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise BadValue(f"{_show(value)} is not a number") from None
    if not math.isfinite(number):
        raise BadValue(f"{_show(value)} is not a number")
    return round(number, 9)  # equality tolerant of binary noise such as 0.1 + 0.2


def _day(value: Any) -> np.datetime64:
    day: date | None = None
    if isinstance(value, datetime):  # pd.Timestamp included
        day = None if pd.isna(value) else value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        for parse in (date.fromisoformat, lambda s: datetime.fromisoformat(s).date()):
            try:
                day = parse(text)
                break
            except ValueError:
                continue
    if day is None:
        raise BadValue(f"{_show(value)} is not a date (use YYYY-MM-DD)")
    return np.datetime64(day, "D")


def _boolean(value: Any) -> float:
    text = _spelling(value)
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    raise BadValue(f"{_show(value)} is not true or false")


def _text(value: Any) -> str:
    return str(value).strip().lower()


# Any: each parser returns values of its own kind, ordered among themselves (BETWEEN sorts them).
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "number": _number, "text": _text, "date": _day, "boolean": _boolean}


def parse_operand(cond: Condition, operator: str, kind: str) -> Any:
    """The condition's value(s) parsed for the column kind; BadValue says what is wrong."""
    if operator in EMPTY_OPERATORS:
        return None
    parse = _PARSERS[kind]
    if operator in _LISTS:
        values = _list_values(cond.value)
        if not values:
            raise BadValue("the list is empty")
        return [parse(v) for v in values]
    if _is_blank(cond.value):
        raise BadValue("a value is required")
    if operator == BETWEEN:
        if _is_blank(cond.value2):
            raise BadValue("between needs a second value")
        low, high = parse(cond.value), parse(cond.value2)
        return (low, high) if low <= high else (high, low)  # bounds in either order
    return parse(cond.value)


def check_operator(cond: Condition, operator: str, kind: str, column_type: str) -> None:
    if operator not in LABELS:
        raise BadValue(f"unknown operator {cond.operator.replace('_', ' ')!r}")
    if operator not in OPERATORS[kind]:
        offered = ", ".join(label for _, label in operators_for(column_type))
        raise BadValue(f"'{operator_label(operator)}' does not apply to {column_type} column "
                        f"{cond.column} (use one of: {offered})")


def _describe_condition(cond: Condition, types: Mapping[str, str]) -> str:
    column_type = types.get(cond.column) or COLUMN_TYPE.get(cond.column)
    label = operator_label(cond.operator, column_type)
    operator = resolve_operator(cond.operator, column_kind(column_type) if column_type else None)
    if operator in EMPTY_OPERATORS:
        return f"{cond.column} {label}"
    if operator == BETWEEN:
        return f"{cond.column} {label} {_show(cond.value)} and {_show(cond.value2)}"
    if operator in _LISTS:
        return f"{cond.column} {label} {_show(_list_values(cond.value))}"
    return f"{cond.column} {label} {_show(cond.value)}"


def describe(node: Condition | Group, column_types: Mapping[str, str] | None = None) -> str:
    """Plain words: "SOURCE equals 'DZ BANK' OR (BIAS equals 'VALUATION' AND CONFIDENCE less than
    5)". Column types default to core.schema's (dates read 'on', 'before', 'after')."""
    types = column_types or {}
    if isinstance(node, Condition):
        return _describe_condition(node, types)
    if not node.items:
        return "(no conditions)"
    parts = []
    for item in node.items:
        text = describe(item, types)
        nested = isinstance(item, Group) and len(item.items) > 1
        parts.append(f"({text})" if nested else text)
    return f" {node.join.upper()} ".join(parts)


def condition_place(number: int, cond: Condition, types: Mapping[str, str]) -> str:
    return f"condition {number} ({_describe_condition(cond, types)})"


def validate_condition(
    cond: Condition, columns: Mapping[str, str], *, number: int = 1, rule: str = ""
) -> None:
    """Raise InvalidRule naming the condition ("condition 2 (PX greater than 'abc'): 'abc' is not a
    number") unless it fits `columns` (name → core.schema type)."""
    try:
        if cond.column not in columns:
            close = [c for c in columns if c.casefold() == str(cond.column).casefold()]
            raise BadValue(f"unknown column {cond.column}"
                            + (f" (did you mean {close[0]}?)" if close else ""))
        kind = column_kind(columns[cond.column])
        operator = resolve_operator(cond.operator, kind)
        check_operator(cond, operator, kind, columns[cond.column])
        parse_operand(cond, operator, kind)
    except BadValue as bad:
        raise invalid_rule(rule, f"{condition_place(number, cond, columns)}: {bad}") from None


def validate_group(group: Condition | Group, columns: Mapping[str, str], *, rule: str = "") -> None:
    """Validate every condition (numbered depth-first) and refuse empty sub-groups."""
    numbers = itertools.count(1)

    def visit(node: Condition | Group, top: bool) -> None:
        if isinstance(node, Condition):
            validate_condition(node, columns, number=next(numbers), rule=rule)
            return
        if not node.items and not top:
            raise invalid_rule(rule, "a group has no conditions")
        for item in node.items:
            visit(item, False)

    visit(group, True)

