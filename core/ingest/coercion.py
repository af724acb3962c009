"""Raw cell values (text, Excel numbers and dates, parquet types) → canonical typed columns.

One vectorised pass per column; a cell that cannot be read becomes NA and is reported in a
`BadCells` group (never guessed). Used by ingest and by validation of edited frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_integer_dtype,
    is_numeric_dtype,
)

from core.ingest.cusips import restore_zeros
from core.schema import (
    BIAS,
    BIAS_ALIASES,
    BOOLEAN,
    CUSIP,
    DATE_TYPE,
    INTEGER,
    MESSAGE_ID,
    NUMBER,
    PANDAS_DTYPES,
    TIMESTAMP,
)

# Cells meaning "no value" in exports from Bloomberg, Oracle and pandas (Excel's #N/A is an error).
NULL_TOKENS = ("", "#N/A N/A", "N/A", "n/a", "NA", "NULL", "null", "NaN", "nan", "None",
               "<NA>")
# Text date formats accepted, tried in order (a time part after the date is ignored). US m/d/Y
# only: "13/03/2026" is rejected rather than silently read day-first.
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%d-%b-%Y", "%d-%b-%y", "%Y/%m/%d", "%Y%m%d")
EXCEL_EPOCH = pd.Timestamp("1899-12-30")
EXCEL_MAX_SERIAL = 2958465  # 9999-12-31
EXACT_DIGITS = 15  # float64 (and so Excel) keeps every integer of up to 15 significant digits
_TIME_SUFFIX = r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s?([AaPp][Mm])?(Z|[+-]\d{2}:?\d{2})?$"
_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"  # commas only as thousands separators
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_SCIENTIFIC = r"[+-]?\d+(\.\d+)?[eE][+-]?\d+"
_FLOAT_TEXT = r"[+-]?\d+\.0*"
# Excel's error values: a cell holding one is read as blank, with a warning naming the cell.
EXCEL_ERRORS = ("#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!",
                "#CALC!", "#GETTING_DATA", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!",
                "#UNKNOWN!")
SHOWN_CHARS = 60  # longest text quoted whole in a message
INT64_MAX = 2**63 - 1
EXACT_FLOAT_INT = 2**53  # above this a float64 cannot hold every integer
_DATE_TYPES = (dt.datetime, dt.date, pd.Timestamp, np.datetime64)
_NUMBER_TYPES = (float, int, np.floating, np.integer)


@dataclass
class BadCells:
    """Cells of one column that could not be read (or were read with a caveat)."""

    column: str
    positions: np.ndarray  # positional indices into the column
    values: list[Any]  # the raw cell values, for messages
    code: str  # bad_number, bad_date, message_id_rounded, cusip_leading_zero, excel_error
    reason: str  # completes "<value> ..." in a message
    blocking: bool = True
    texts: list[str] | None = None  # one whole text per cell, when it says more than `reason`

    def messages(self) -> list[str]:
        """The text of each cell's problem, in the order of `positions`."""
        if self.texts is not None:
            return list(self.texts)
        return [f"{describe_value(v)} {self.reason}" for v in self.values]


def _split(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Masks of text, number, date and other (bool, time…) cells; NA cells are in none."""
    n = len(raw)
    none = np.zeros(n, dtype=bool)
    present = raw.notna().to_numpy()
    if is_bool_dtype(raw.dtype):
        return none, none, none, present
    if is_numeric_dtype(raw.dtype):
        return none, present, none, none
    if is_datetime64_any_dtype(raw.dtype):
        return none, none, present, none
    if raw.dtype != object:
        return present, none, none, none
    inferred = infer_dtype(raw, skipna=True)
    if inferred == "string":
        return present, none, none, none
    if inferred in ("floating", "integer", "mixed-integer-float"):
        return none, present, none, none
    if inferred in ("datetime", "date", "datetime64"):
        return none, none, present, none
    types = raw.map(type).to_numpy()
    is_text, is_number, is_date = (np.zeros(n, dtype=bool) for _ in range(3))
    for t in set(types[present]):
        if issubclass(t, str):
            is_text |= types == t
        elif issubclass(t, bool | np.bool_):
            continue
        elif issubclass(t, _NUMBER_TYPES):
            is_number |= types == t
        elif issubclass(t, _DATE_TYPES):
            is_date |= types == t
    is_text, is_number, is_date = is_text & present, is_number & present, is_date & present
    return is_text, is_number, is_date, present & ~is_text & ~is_number & ~is_date


def _arrow_text(values: pd.Series) -> pa.Array:
    """Trimmed text as an Arrow array, with the null tokens as nulls (zero-copy from Arrow text)."""
    arr: pa.Array | None = None
    if values.dtype != object and pd.api.types.is_string_dtype(values.dtype):
        try:
            arr = pa.array(values.array)
        except (TypeError, pa.ArrowInvalid):
            arr = None
    if arr is None:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    arr = pc.utf8_trim_whitespace(arr)
    tokens = pa.array(NULL_TOKENS, type=arr.type)
    return pc.if_else(pc.is_in(arr, value_set=tokens), pa.scalar(None, arr.type), arr)


def _string_series(arr: pa.Array, index: pd.Index) -> pd.Series:
    # pandas reads Arrow arrays; pandas-stubs type pd.array's data as a sequence only.
    return pd.Series(pd.array(arr, dtype="string"), index=index)  # type: ignore[call-overload]


def _is_int(values: np.ndarray) -> np.ndarray:
    """Cells holding exact integers (Python or numpy ints), as opposed to floats."""
    types = pd.Series(values, dtype=object).map(type).to_numpy()
    mask = np.zeros(len(values), dtype=bool)
    for t in set(types):
        if issubclass(t, int | np.integer) and not issubclass(t, bool | np.bool_):
            mask |= types == t
    return mask


def _numbers_as_text(values: np.ndarray) -> np.ndarray:
    """Integer-valued numbers as integer strings ("123", never "123.0"); others as repr."""
    out = np.empty(len(values), dtype=object)
    ints = _is_int(values)
    out[ints] = [str(int(v)) for v in values[ints]]
    floats = values[~ints].astype(float)
    integral = np.isfinite(floats) & (np.trunc(floats) == floats) & (np.abs(floats) < 2**63)
    text = np.empty(len(floats), dtype=object)
    text[integral] = floats[integral].astype(np.int64).astype(str)
    text[~integral] = [repr(float(v)) for v in floats[~integral]]
    out[~ints] = text
    return out


def to_text(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Trimmed text (string dtype, blanks as NA) and the mask of cells that were numbers."""
    is_text, is_number, is_date, is_other = _split(raw)
    if is_text.all() or not (is_number.any() or is_date.any() or is_other.any()):
        cells = raw
    else:
        values = raw.to_numpy(dtype=object)
        cells_arr = np.full(len(raw), None, dtype=object)
        cells_arr[is_text] = values[is_text]
        if is_number.any():
            cells_arr[is_number] = _numbers_as_text(values[is_number])
        if is_date.any():
            cells_arr[is_date] = pd.to_datetime(values[is_date]).strftime("%Y-%m-%d").to_numpy()
        cells_arr[is_other] = [str(v) for v in values[is_other]]
        cells = pd.Series(cells_arr, index=raw.index)
    return _string_series(_arrow_text(cells), raw.index), is_number


def to_number(raw: pd.Series, column: str) -> tuple[pd.Series, list[BadCells]]:
    """Float64: numbers as they are; text such as "1,234.5" or " 99.5 " parsed; "" → NA.
    A decimal comma ("99,5") is not guessed: the cell is reported as not a number."""
    if is_numeric_dtype(raw.dtype) and not is_bool_dtype(raw.dtype):
        numbers = raw.astype("Float64")  # NaN (parquet's float null) is blank, as in CSV
        if is_integer_dtype(raw.dtype):
            return numbers, []
        infinite = np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan))
        return numbers.mask(infinite), _bad(column, infinite, raw, "bad_number", "is not a number")
    is_text, is_number, _, _ = _split(raw)
    result = np.full(len(raw), np.nan)
    blank = np.zeros(len(raw), dtype=bool)
    if is_number.any():
        with np.errstate(over="ignore"):
            result[is_number] = raw[is_number].to_numpy(dtype=float)
        result[~np.isfinite(result)] = np.nan  # inf is not a number, whatever the format
    if is_text.any():
        arr = _arrow_text(raw if is_text.all() else raw[is_text])
        blank[is_text] = pc.is_null(arr).to_numpy(zero_copy_only=False)
        try:
            parsed = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            grouped = pc.match_substring_regex(arr, _THOUSANDS)  # "1,234.5"; "99,5" stays bad
            arr = pc.if_else(grouped, pc.replace_substring(arr, ",", ""), arr)
            readable = pc.match_substring_regex(arr, _DECIMAL)
            arr = pc.if_else(readable, arr, pa.scalar(None, arr.type))
            # pyarrow-stubs type if_else as array-or-scalar, so the cast looks like a scalar's.
            parsed = pc.cast(arr, pa.float64()).to_numpy(  # type: ignore[attr-defined]
                zero_copy_only=False)
        result[is_text] = np.where(np.isfinite(parsed), parsed, np.nan)
    unread = raw.notna().to_numpy() & np.isnan(result) & ~blank
    out = pd.Series(result, index=raw.index).astype("Float64")
    return out, _bad(column, unread, raw, "bad_number", "is not a number")


def to_integer(raw: pd.Series, column: str) -> tuple[pd.Series, list[BadCells]]:
    """Int64: like to_number, and a fractional value such as 9.5 is not read. Integers keep
    every digit (parquet int64, text); one beyond Int64's range is not read (never wrapped)."""
    if is_integer_dtype(raw.dtype):
        if raw.dtype.kind == "u" and len(raw) and raw.max() > INT64_MAX:
            over = (raw > INT64_MAX).to_numpy(dtype=bool, na_value=False)
            return (raw.mask(over).astype("Int64"),
                    _bad(column, over, raw, "bad_number", _TOO_LARGE))
        return raw.astype("Int64"), []
    numbers, bad = to_number(raw, column)
    fractional = (numbers.notna() & (numbers != numbers.round(0))).fillna(False).to_numpy()
    if fractional.any():
        bad += _bad(column, fractional, raw, "bad_number", "is not a whole number")
        numbers = numbers.mask(fractional)
    large = (numbers.abs() >= EXACT_FLOAT_INT).fillna(False).to_numpy(dtype=bool)
    if not large.any():
        return numbers.astype("Int64"), bad
    exact = [_exact_integer(v) for v in raw.iloc[np.flatnonzero(large)]]
    over = np.zeros(len(raw), dtype=bool)
    over[np.flatnonzero(large)] = [abs(v) > INT64_MAX for v in exact]
    result = numbers.mask(large).astype("Int64")
    fits = large & ~over
    # pandas-stubs take a scalar or a Series as iloc's value; pandas takes any list-like.
    result.iloc[np.flatnonzero(fits)] = [  # type: ignore[call-overload]
        v for v in exact if abs(v) <= INT64_MAX]
    return result, bad + _bad(column, over, raw, "bad_number", _TOO_LARGE)


_TOO_LARGE = f"is too large for a whole number (the limit is {INT64_MAX:,})"


def _exact_integer(value: Any) -> int:
    """The integer a cell holds, every digit of it (text "12,345" and "1e20" included)."""
    if isinstance(value, str):
        try:
            return int(Decimal(value.strip().replace(",", "")))
        except (InvalidOperation, ValueError):
            pass
    return int(value)


def to_date(raw: pd.Series, column: str) -> tuple[pd.Series, list[BadCells]]:
    """datetime64[us] at midnight from Excel dates or serials, datetimes, or text dates
    (DATE_FORMATS; parsed once per distinct text, so a column of one extract date is cheap)."""
    target = PANDAS_DTYPES[DATE_TYPE]
    if is_datetime64_any_dtype(raw.dtype):
        stamps = raw.dt.tz_localize(None) if getattr(raw.dt, "tz", None) else raw
        return stamps.dt.normalize().astype(target), []
    is_text, is_number, is_date, _ = _split(raw)
    result = pd.Series(pd.NaT, index=raw.index, dtype=target)
    blank = np.zeros(len(raw), dtype=bool)
    if is_date.any():
        dates = pd.to_datetime(raw[is_date].astype(object), errors="coerce", utc=True)
        result.iloc[np.flatnonzero(is_date)] = dates.dt.tz_localize(None).dt.normalize().to_numpy()
    if is_number.any():
        serials = raw[is_number].to_numpy(dtype=float)
        ok = (serials >= 1) & (serials <= EXCEL_MAX_SERIAL)
        days = pd.to_timedelta(np.where(ok, np.floor(serials), np.nan), unit="D")
        result.iloc[np.flatnonzero(is_number)] = (EXCEL_EPOCH + days).to_numpy()
    if is_text.any():
        parsed, blank_text = _parse_text_dates(raw if is_text.all() else raw[is_text])
        result.iloc[np.flatnonzero(is_text)] = parsed
        blank[is_text] = blank_text
    unread = raw.notna().to_numpy() & result.isna().to_numpy() & ~blank
    return result.astype(target), _bad(column, unread, raw, "bad_date", _DATE_HINT)


_DATE_HINT = "is not a date (use 2026-03-13, 03/13/2026, 13-Mar-2026 or 2026/03/13)"


def _parse_text_dates(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parsed dates and the blank mask, parsing each distinct text once."""
    cells = _string_series(_arrow_text(text), text.index)
    codes, uniques = pd.factorize(cells, use_na_sentinel=False)
    distinct = pd.Series(uniques, dtype=PANDAS_DTYPES["text"])
    distinct = distinct.str.replace(_TIME_SUFFIX, "", regex=True)
    parsed = pd.Series(pd.NaT, index=distinct.index, dtype="datetime64[us]")
    for fmt in DATE_FORMATS:
        todo = parsed.isna() & distinct.notna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(distinct[todo], format=fmt, errors="coerce")
    return parsed.to_numpy()[codes], distinct.isna().to_numpy()[codes]


def to_message_id(raw: pd.Series) -> tuple[pd.Series, list[BadCells]]:
    """MESSAGE_ID as exact text. A float-stored id (Excel number, float column) with more than
    15 significant digits, or text in scientific notation, is kept as its integer digits and
    flagged `message_id_rounded` (a warning): its last digits may be wrong."""
    if is_integer_dtype(raw.dtype):  # e.g. parquet int64: exact
        return raw.astype("Int64").astype(PANDAS_DTYPES["text"]), []
    is_text, is_number, _, _ = _split(raw)
    doubtful = np.zeros(len(raw), dtype=bool)
    if is_number.any():
        numbers = raw[is_number].to_numpy(dtype=object)
        floats = np.where(_is_int(numbers), 0.0, numbers.astype(float))
        doubtful[is_number] = ~_is_int(numbers) & (
            (np.abs(floats) >= 10**EXACT_DIGITS) | (np.trunc(floats) != floats))
    text, _ = to_text(raw)
    scientific = np.zeros(len(raw), dtype=bool)
    float_text = np.zeros(len(raw), dtype=bool)
    candidates = text.str.contains(".", regex=False) | text.str.contains("e", case=False,
                                                                          regex=False)
    candidates = candidates.fillna(False).to_numpy(dtype=bool) & is_text
    if candidates.any():  # plain digits (the normal case) skip the regular expressions
        suspects = text[candidates]
        scientific[candidates] = suspects.str.fullmatch(_SCIENTIFIC).fillna(False).to_numpy()
        float_text[candidates] = suspects.str.fullmatch(_FLOAT_TEXT).fillna(False).to_numpy()
    if float_text.any():  # "123.0" → "123"; long ones came from a float, so flag them
        text[float_text] = text[float_text].str.replace(r"\.0*$", "", regex=True)
        long_ = text[float_text].str.lstrip("+-").str.lstrip("0").str.len() > EXACT_DIGITS
        doubtful[np.flatnonzero(float_text)[long_.to_numpy()]] = True
    if scientific.any():
        text[scientific] = [_integer_digits(v) for v in text[scientific]]
    bad = _bad(MESSAGE_ID, doubtful, raw, "message_id_rounded", _ROUNDED, blocking=False)
    bad += _bad(MESSAGE_ID, scientific, raw, "message_id_rounded", _SCIENTIFIC_HINT,
                blocking=False)
    return text, bad


_ROUNDED = ("was stored as a number, so digits after the 15th may be wrong; "
            "store MESSAGE_ID as text in the source")
_SCIENTIFIC_HINT = ("is in scientific notation, so the original digits are lost; "
                    "store MESSAGE_ID as text in the source")


def _integer_digits(text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return str(int(number)) if number == number.to_integral_value() else text


def _bad(column: str, mask: np.ndarray, raw: pd.Series, code: str, reason: str, *,
         blocking: bool = True) -> list[BadCells]:
    if not mask.any():
        return []
    positions = np.flatnonzero(mask)
    return [BadCells(column, positions, raw.iloc[positions].tolist(), code, reason, blocking)]


def coerce_column(raw: pd.Series, column: str, kind: str) -> tuple[pd.Series, list[BadCells]]:
    """One raw column → its canonical dtype (schema.PANDAS_DTYPES), with the unreadable cells.
    Excel error cells (#DIV/0!, #N/A…) are read as blank with a warning, in every format."""
    raw, errors = _excel_errors(raw, column)
    values, bad = _coerce_kind(raw, column, kind)
    return values, errors + bad


def _excel_errors(raw: pd.Series, column: str) -> tuple[pd.Series, list[BadCells]]:
    """The column with its Excel error texts blanked, and the warning naming those cells."""
    if raw.dtype != object and not pd.api.types.is_string_dtype(raw.dtype):
        return raw, []
    errors = raw.isin(EXCEL_ERRORS).to_numpy(dtype=bool, na_value=False)
    if not errors.any():
        return raw, []
    bad = _bad(column, errors, raw, "excel_error", "is an Excel error; read as blank",
               blocking=False)
    return raw.mask(errors), bad


def _coerce_kind(raw: pd.Series, column: str, kind: str) -> tuple[pd.Series, list[BadCells]]:
    if column == MESSAGE_ID:
        return to_message_id(raw)
    if kind == NUMBER:
        return to_number(raw, column)
    if kind == INTEGER:
        return to_integer(raw, column)
    if kind == DATE_TYPE:
        return to_date(raw, column)
    if kind == BOOLEAN:
        text, _ = to_text(raw)
        flags = text.str.upper().map({"TRUE": True, "YES": True, "Y": True, "1": True,
                                      "FALSE": False, "NO": False, "N": False, "0": False})
        unread = (text.notna() & flags.isna()).to_numpy()
        return flags.astype("boolean"), _bad(column, unread, raw, "bad_value", "is not yes/no")
    if kind == TIMESTAMP:
        stamps = pd.to_datetime(raw, errors="coerce", utc=True)
        unread = (raw.notna() & stamps.isna()).to_numpy()
        return stamps.astype(PANDAS_DTYPES[TIMESTAMP]), _bad(
            column, unread, raw, "bad_date", "is not a date and time")
    text, was_number = to_text(raw)
    if column == CUSIP:
        cusips, repaired, texts = restore_zeros(text.str.upper(), was_number)
        return cusips, [BadCells(CUSIP, repaired, raw.iloc[repaired].tolist(),
                                 "cusip_leading_zero", "lost its leading zero", False, texts)
                        ] if len(repaired) else []
    if column == BIAS:
        text = normalise_bias(text)
    return text, []


def normalise_bias(bias: pd.Series) -> pd.Series:
    """Upper case, single spaces, MARKET/BUYER → BID (DOMAIN.md §1.2); per distinct value."""
    codes, uniques = pd.factorize(bias)
    cleaned = [" ".join(str(u).upper().split()) for u in uniques]
    return text_from_codes(codes, [BIAS_ALIASES.get(c, c) or None for c in cleaned], bias.index)


def text_from_codes(codes: np.ndarray, values: Sequence[str | None], index: pd.Index
                    ) -> pd.Series:
    """values[code] per row as a string Series (code -1 → NA), built in Arrow without Python
    objects per row."""
    taken = pc.take(pa.array(list(values), type=pa.string()),
                    pa.array(codes, mask=np.asarray(codes) < 0))
    return _string_series(taken, index)


def describe_value(value: Any) -> str:
    """A cell value as shown in messages: text quoted, numbers as read, dates as ISO."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "blank"
    if isinstance(value, str):  # a hostile 1 MB cell is not copied into every message
        return repr(value) if len(value) <= SHOWN_CHARS else (
            f"{value[:SHOWN_CHARS]!r}… ({len(value):,} characters)")
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):  # a long integral float (an Excel-stored id) shows its digits
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1e15 else repr(value)
    return str(value)
