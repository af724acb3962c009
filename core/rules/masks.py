"""Vectorised evaluation of the condition model (core.rules.conditions): a frame's columns
converted once
per kind, then plain-bool row masks for a condition or a nested AND/OR group."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.rules.conditions import (
    _FALSE,
    _LISTS,
    _TRUE,
    AFTER,
    BEFORE,
    BETWEEN,
    CONTAINS,
    EMPTY_OPERATORS,
    ENDS_WITH,
    EQUAL_TO,
    GREATER_THAN,
    GREATER_THAN_OR_EQUAL_TO,
    IN_LIST,
    IS_NOT_EMPTY,
    LESS_THAN,
    LESS_THAN_OR_EQUAL_TO,
    NOT_CONTAINS,
    NOT_EQUAL_TO,
    NOT_IN_LIST,
    STARTS_WITH,
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
from core.schema import BOOLEAN, COLUMN_TYPE, DATE_TYPE, NUMBER, TEXT


def _flags(values: Any) -> np.ndarray:
    """Plain numpy bools from a pandas or numpy result; missing counts as False."""
    if isinstance(values, pd.Series):
        return values.to_numpy() if values.dtype == bool else values.fillna(False).to_numpy(bool)
    return np.asarray(values, dtype=bool)


class PreparedFrame:
    """A frame whose columns are converted once per kind (numbers, trimmed lower-case text, days),
    so many conditions and rules share the work. Column types: given > core.schema > the dtype."""

    def __init__(self, frame: pd.DataFrame, column_types: Mapping[str, str] | None = None) -> None:
        self.frame = frame
        self.types = dict(column_types or {})
        self._cache: dict[tuple[str, str], Any] = {}

    def column_type(self, column: str, operator: str) -> str:
        known = self.types.get(column) or COLUMN_TYPE.get(column)
        if known:
            return known
        dtype = self.frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return BOOLEAN
        if pd.api.types.is_numeric_dtype(dtype):
            return NUMBER
        if pd.api.types.is_datetime64_any_dtype(dtype) or operator in (BEFORE, AFTER):
            return DATE_TYPE
        return TEXT

    def _get(self, column: str, kind: str) -> Any:
        key = (column, kind)
        if key not in self._cache:
            self._cache[key] = getattr(self, f"_convert_{kind}")(self.frame[column])
        return self._cache[key]

    @staticmethod
    def _convert_number(series: pd.Series) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series):
            series = pd.to_numeric(series.astype(object), errors="coerce")
        return np.round(series.to_numpy(dtype="float64", na_value=np.nan), 9)

    @staticmethod
    def _convert_text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
        if series.dtype != "str":
            series = series.astype("str")
        text = series.str.strip().str.lower()
        return text, _flags(text.notna() & (text != ""))  # blank text counts as empty

    @staticmethod
    def _convert_date(series: pd.Series) -> np.ndarray:
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)  # days are UTC days
        elif not pd.api.types.is_datetime64_dtype(series.dtype):
            series = pd.to_datetime(series.astype(object), errors="coerce", format="ISO8601")
        return series.to_numpy()

    def _convert_boolean(self, series: pd.Series) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.to_numpy(dtype="float64", na_value=np.nan)
        text, _ = self._convert_text(series)
        is_true, is_false = _flags(text.isin(_TRUE)), _flags(text.isin(_FALSE))
        return np.select([is_true, is_false], [1.0, 0.0], np.nan)

    def flags(self, cond: Condition, operator: str, kind: str, operand: Any) -> np.ndarray:
        """Rows matching an already checked condition (operator resolved, operand parsed)."""
        if kind == "text":
            text, valid = self._get(cond.column, "text")
            tests = {EQUAL_TO: lambda: text == operand, NOT_EQUAL_TO: lambda: text == operand,
                     CONTAINS: lambda: text.str.contains(operand, regex=False),
                     NOT_CONTAINS: lambda: text.str.contains(operand, regex=False),
                     STARTS_WITH: lambda: text.str.startswith(operand),
                     ENDS_WITH: lambda: text.str.endswith(operand),
                     IN_LIST: lambda: text.isin(operand), NOT_IN_LIST: lambda: text.isin(operand)}
            if operator in EMPTY_OPERATORS:
                return valid if operator == IS_NOT_EMPTY else ~valid
            hit = _flags(tests[operator]())
            negated = operator in (NOT_EQUAL_TO, NOT_CONTAINS, NOT_IN_LIST)
            return valid & (~hit if negated else hit)
        if kind == "date":
            days = self._get(cond.column, "date")
            valid = ~np.isnat(days)
            if operator in (EQUAL_TO, NOT_EQUAL_TO):
                low, high = operand, operand + 1
            elif operator == BETWEEN:
                low, high = operand[0], operand[1] + 1
            elif operator in (BEFORE, AFTER):
                return days < operand if operator == BEFORE else days >= operand + 1
            else:
                return valid if operator == IS_NOT_EMPTY else ~valid
            inside = (days >= low) & (days < high)  # a day covers every time within it
            return valid & ~inside if operator == NOT_EQUAL_TO else inside
        values = self._get(cond.column, "boolean" if kind == "boolean" else "number")
        valid = ~np.isnan(values)
        if operator in EMPTY_OPERATORS:
            return valid if operator == IS_NOT_EMPTY else ~valid
        if operator == BETWEEN:
            return (values >= operand[0]) & (values <= operand[1])
        if operator in _LISTS:
            hit = np.isin(values, operand)
            return valid & ~hit if operator == NOT_IN_LIST else hit
        compare = {EQUAL_TO: np.equal, NOT_EQUAL_TO: np.not_equal, LESS_THAN: np.less,
                   GREATER_THAN: np.greater, LESS_THAN_OR_EQUAL_TO: np.less_equal,
                   GREATER_THAN_OR_EQUAL_TO: np.greater_equal}[operator]
        return valid & compare(values, operand)


def _condition_flags(
    cond: Condition, prepared: PreparedFrame, number: int, rule: str
) -> np.ndarray:
    try:
        if cond.column not in prepared.frame.columns:
            raise BadValue(f"column {cond.column} is not in the data")
        column_type = prepared.column_type(cond.column, cond.operator)
        kind = column_kind(column_type)
        operator = resolve_operator(cond.operator, kind)
        check_operator(cond, operator, kind, column_type)
        operand = parse_operand(cond, operator, kind)
    except BadValue as bad:
        place = condition_place(number, cond, prepared.types)
        raise invalid_rule(rule, f"{place}: {bad}") from None
    return prepared.flags(cond, operator, kind, operand)


def _node_flags(
    node: Condition | Group, prepared: PreparedFrame, numbers: Iterator[int], rule: str
) -> np.ndarray:
    if isinstance(node, Condition):
        return _condition_flags(node, prepared, next(numbers), rule)
    parts = [_node_flags(item, prepared, numbers, rule) for item in node.items]
    if not parts:  # the empty AND is true, the empty OR false
        return np.full(len(prepared.frame), node.join == "and")
    return (np.logical_and if node.join == "and" else np.logical_or).reduce(parts)


def _prepare(frame: pd.DataFrame | PreparedFrame, types: Mapping[str, str] | None) -> PreparedFrame:
    return frame if isinstance(frame, PreparedFrame) else PreparedFrame(frame, types)


def condition_mask(
    cond: Condition,
    frame: pd.DataFrame | PreparedFrame,
    *,
    column_types: Mapping[str, str] | None = None,
    number: int = 1,
    rule: str = "",
) -> pd.Series:
    """Which rows the condition matches (plain bool, null cells never match a comparison)."""
    prepared = _prepare(frame, column_types)
    flags = _condition_flags(cond, prepared, number, rule)
    return pd.Series(flags, index=prepared.frame.index, dtype=bool)


def group_mask(
    group: Condition | Group,
    frame: pd.DataFrame | PreparedFrame,
    *,
    column_types: Mapping[str, str] | None = None,
    rule: str = "",
) -> pd.Series:
    """Which rows the group matches; an InvalidRule names the failing condition's number."""
    prepared = _prepare(frame, column_types)
    flags = _node_flags(group, prepared, itertools.count(1), rule)
    return pd.Series(flags, index=prepared.frame.index, dtype=bool)
