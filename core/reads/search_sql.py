"""Search's SQL: the shared condition model, a reader's sectors, the search box and bulk ids as
DuckDB WHERE expressions with bound parameters (never interpolated values); column names come from a
whitelist of published columns the reader may see."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.access import Actor
from core.reads.identifiers import CUSIP_ID, MANGLED, MESSAGE_ID_ID, TICKER_ID, Identifier
from core.rules.conditions import (
    BETWEEN,
    EMPTY_OPERATORS,
    IS_EMPTY,
    NOT_CONTAINS,
    NOT_EQUAL_TO,
    NOT_IN_LIST,
    BadValue,
    Condition,
    Group,
    check_operator,
    column_kind,
    condition_place,
    invalid_rule,
    parse_operand,
    resolve_operator,
)
from core.schema import BOOLEAN, COLUMN_TYPE, DATE_TYPE, NUMBER, TEXT, TIMESTAMP


def quote(name: str) -> str:
    """A whitelisted column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def _duck_kind(duck_type: str) -> str:
    upper = duck_type.upper()
    if upper == "BOOLEAN":
        return BOOLEAN
    if upper == "DATE":
        return DATE_TYPE
    if upper.startswith("TIMESTAMP"):
        return TIMESTAMP
    if upper in ("VARCHAR", "BLOB", "UUID") or upper.endswith("[]"):
        return TEXT
    return NUMBER


def column_types(described: list[tuple[str, str]], actor: Actor) -> dict[str, str]:
    """Columns (from published_columns) the actor may see, filter and sort on → schema type."""
    allowed = None if actor.columns is None else set(actor.columns)
    return {name: COLUMN_TYPE.get(name) or _duck_kind(kind) for name, kind in described
            if allowed is None or name in allowed}


def _plain(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").astype(object)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _condition_sql(cond: Condition, columns: Mapping[str, str], number: int, params: list[Any]
                   ) -> str:
    try:
        if cond.column not in columns:
            raise BadValue(f"unknown column {cond.column}")
        column_type = columns[cond.column]
        kind = column_kind(column_type)
        operator = resolve_operator(cond.operator, kind)
        check_operator(cond, operator, kind, column_type)
        operand = _plain(parse_operand(cond, operator, kind))
    except BadValue as bad:
        raise invalid_rule("", f"{condition_place(number, cond, columns)}: {bad}") from None
    col = quote(cond.column)
    if kind == "text":
        value = f"lower(trim(CAST({col} AS VARCHAR)))"
        valid = f"({col} IS NOT NULL AND trim(CAST({col} AS VARCHAR)) <> '')"
        cast = "VARCHAR"
    elif kind == "date":
        value, valid, cast = f"TRY_CAST({col} AS DATE)", f"{col} IS NOT NULL", "DATE"
    else:
        value, valid, cast = f"round(TRY_CAST({col} AS DOUBLE), 9)", f"{col} IS NOT NULL", "DOUBLE"
    if operator in EMPTY_OPERATORS:
        return f"(NOT {valid})" if operator == IS_EMPTY else valid
    if operator == BETWEEN:
        params.extend(operand)
        return f"COALESCE({value} BETWEEN ? AND ?, FALSE)"
    params.append(operand)
    tests = {"equal_to": f"{value} = ?", "not_equal_to": f"{value} <> ?",
             "less_than": f"{value} < ?", "greater_than": f"{value} > ?",
             "less_than_or_equal_to": f"{value} <= ?", "greater_than_or_equal_to": f"{value} >= ?",
             "before": f"{value} < ?", "after": f"{value} > ?",
             "contains": f"contains({value}, ?)", "not_contains": f"contains({value}, ?)",
             "starts_with": f"starts_with({value}, ?)", "ends_with": f"ends_with({value}, ?)",
             "in_list": f"list_contains(?::{cast}[], {value})",
             "not_in_list": f"list_contains(?::{cast}[], {value})"}
    test = tests[operator]
    if operator in (NOT_CONTAINS, NOT_IN_LIST) or (operator == NOT_EQUAL_TO and kind == "text"):
        return f"COALESCE({valid} AND NOT ({test.replace('<>', '=')}), FALSE)"
    return f"COALESCE({test}, FALSE)"


def condition_sql(node: Condition | Group, columns: Mapping[str, str]) -> tuple[str, list[Any]]:
    """A WHERE expression for a condition tree (semantics of core.rules.masks: null cells never
    match) and its bound parameters; columns (name → type) is the whitelist. Raises InvalidRule
    naming the failing condition."""
    numbers = itertools.count(1)
    params: list[Any] = []

    def visit(item: Condition | Group) -> str:
        if isinstance(item, Condition):
            return _condition_sql(item, columns, next(numbers), params)
        parts = [visit(i) for i in item.items]
        if not parts:  # the empty AND is true, the empty OR false
            return "TRUE" if item.join == "and" else "FALSE"
        return "(" + f" {item.join.upper()} ".join(parts) + ")"

    return visit(node), params


def entitlement_sql(actor: Actor) -> tuple[str, list[Any]]:
    """The actor's sectors as a WHERE expression (the SQL twin of access.entitled_rows)."""
    if actor.sectors is None:
        return "TRUE", []
    if not actor.sectors:
        return "FALSE", []
    return "SECTOR IN (SELECT unnest(?::VARCHAR[]))", [list(actor.sectors)]


def text_sql(ident: Identifier, match: str) -> tuple[str, list[Any]]:
    if ident.kind == CUSIP_ID:
        return "CUSIP = ?", [ident.value]
    if ident.kind == MANGLED:
        return "FALSE", []
    column = "MESSAGE_ID" if ident.kind == MESSAGE_ID_ID else "lower(TICKER)"
    value = ident.value if ident.kind == MESSAGE_ID_ID else ident.value.lower()
    test = {"exact": f"{column} = ?", "prefix": f"starts_with({column}, ?)",
            "contains": f"contains({column}, ?)"}[match]
    return f"COALESCE({test}, FALSE)", [value]


def bulk_sql(ids: tuple[Identifier, ...]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for kind, column in ((CUSIP_ID, "CUSIP"), (MESSAGE_ID_ID, "MESSAGE_ID"),
                         (TICKER_ID, "lower(TICKER)")):
        values = [i.value.lower() if kind == TICKER_ID else i.value for i in ids if i.kind == kind]
        if values:
            parts.append(f"{column} IN (SELECT unnest(?::VARCHAR[]))")
            params.append(values)
    return ("(" + " OR ".join(parts) + ")" if parts else "FALSE"), params
