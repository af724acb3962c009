"""The checksum of a frame's rows that `store copy` compares between two stores: SHA-256 over the
column names and the multiset of the rows' SHA-256 digests, each over the row's canonical text.
Computed in DuckDB, in parallel, so it is independent of row and column order and of how a
backend types a value: 1 and 1.0, True and 1, a date and its midnight, naive UTC and aware UTC
read the same; a missing value (None, NaN, NA, NaT) is missing.

Cell text: "~" missing; "n" + digits for an integral number (|x| < 2**53), else "n" + %.17g; "t" +
microseconds since the epoch (UTC); "s" + UTF-8 length + ":" + the text; "x" + hex of bytes; "o" +
JSON of anything else. Untyped (object) columns are made into that text in Python, the same way."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from core.runs.published import duckdb_session

MISSING = "~"  # no other cell text is a bare "~": each starts with its kind's letter
_ROWS = "\x1e"
_EXACT = 2**53  # integral doubles below this print as integers
# The rows' digests combined without sorting them (so in parallel): the count and the sums of
# four 60-bit slices of each row's SHA-256, exact in HUGEINT (a multiset hash: a change to any
# row changes the sums, short of a collision).
_SUMS = "count(*), " + ", ".join(
    f"sum(CAST(CAST('0x' || substr(h, {1 + 15 * i}, 15) AS BIGINT) AS HUGEINT))"
    for i in range(4))


def rows_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of the column names (sorted) and the rows as canonical text, in any order."""
    columns = sorted(map(str, frame.columns))
    header = _ROWS.join(columns).encode()
    if len(frame) == 0:
        return hashlib.sha256(header).hexdigest()
    rows = pd.DataFrame({f"c{i}": _typed_or_text(frame[name]) for i, name in enumerate(columns)})
    made = {f"c{i}" for i, name in enumerate(columns) if frame[name].dtype == object}
    with duckdb_session() as con:
        con.register("checked_rows", rows)
        types = dict(zip(rows.columns, con.sql("SELECT * FROM checked_rows").dtypes, strict=True))
        cells = ", ".join(name if name in made else _cell_sql(name, str(kind))
                          for name, kind in types.items())
        [sums] = con.sql(
            f"SELECT {_SUMS} FROM (SELECT sha256(concat_ws(chr(31), {cells})) AS h "
            "FROM checked_rows)").fetchall()
    return hashlib.sha256(header + _ROWS.encode() + repr(tuple(sums)).encode()).hexdigest()


def _cell_sql(column: str, kind: str) -> str:
    """SQL of one column's canonical cell text (see the module's docstring)."""
    kind = kind.upper()
    if kind == "BOOLEAN":
        text = f"'n' || CAST(CAST({column} AS INTEGER) AS VARCHAR)"
    elif kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT"):
        text = f"'n' || CAST({column} AS VARCHAR)"
    elif kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        d = f"CAST({column} AS DOUBLE)"
        text = (f"CASE WHEN isnan({d}) THEN NULL WHEN isfinite({d}) AND {d} = floor({d}) AND "
                f"abs({d}) < {_EXACT} THEN 'n' || CAST(CAST({d} AS BIGINT) AS VARCHAR) "
                f"ELSE 'n' || printf('%.17g', {d}) END")
    elif kind == "TIMESTAMP WITH TIME ZONE":
        text = f"'t' || CAST(epoch_us({column}) AS VARCHAR)"
    elif kind.startswith(("TIMESTAMP", "DATE")):
        text = f"'t' || CAST(epoch_us(CAST({column} AS TIMESTAMP)) AS VARCHAR)"
    elif kind == "VARCHAR":
        text = f"'s' || CAST(strlen({column}) AS VARCHAR) || ':' || {column}"
    elif kind == "BLOB":
        text = f"'x' || lower(hex({column}))"
    else:
        text = f"'o' || CAST({column} AS VARCHAR)"
    return f"coalesce({text}, '{MISSING}')"


def _typed_or_text(series: pd.Series) -> pd.Series:
    """A typed column as it is (DuckDB reads it by its type); an object column (mixed or Python
    values, as a SQL driver may give) as its cells' canonical text, used as it is."""
    if series.dtype != object:
        return series.reset_index(drop=True)
    return pd.Series([_cell(v) for v in series.to_numpy()], dtype="object")


def _cell(value: Any) -> str:
    """Canonical text of one Python value, as _cell_sql makes it of a typed column."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "n1" if value else "n0"
    if isinstance(value, int | np.integer):
        return f"n{int(value)}"
    if isinstance(value, float | np.floating | decimal.Decimal):
        return _number(float(value))
    if isinstance(value, dt.date | np.datetime64):  # datetimes, dates, pandas Timestamps
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return f"t{stamp.value // 1000}"
    if isinstance(value, str):
        return f"s{len(value.encode())}:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return "x" + bytes(value).hex()
    return "o" + json.dumps(value, sort_keys=True, default=str)


def _number(value: float) -> str:
    if math.isnan(value):
        return MISSING
    if math.isfinite(value) and value == math.floor(value) and abs(value) < _EXACT:
        return f"n{int(value)}"
    return f"n{value:.17g}"
