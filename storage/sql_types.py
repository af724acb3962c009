"""How frames become SQL columns and come back (storage.sql_tables): the SQL type of each Arrow
type, safe SQL names for any column name, and the conversions of values on the way in and out,
so a frame read back has the dtypes it was written with, on PostgreSQL, Oracle and SQLite."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import oracle, postgresql, sqlite

from storage.sql_schema import KEY_TEXT, LONG_TEXT, TIMESTAMP_UTC

# Words no column may be named, on any of the three databases (Oracle's list is the longest, and
# Oracle refuses some unquoted names SQLAlchemy would not quote, such as LEVEL or SIZE).
RESERVED = frozenset(
    {*postgresql.base.RESERVED_WORDS, *oracle.base.RESERVED_WORDS,
     *sqlite.base.SQLiteIdentifierPreparer.reserved_words,
     "level", "size", "comment", "uid", "rowid", "rownum", "session", "user", "access", "audit",
     "file", "mode", "number", "rows", "start", "successful", "validate", "resource", "online",
     "offline", "option", "raw", "share", "synonym", "sysdate", "trigger", "whenever", "long",
     "lock", "minus", "column", "index", "row", "increment", "initial", "type", "date", "time",
     "timestamp", "key", "value", "name"})
_SIMPLE = re.compile(r"^[a-z][a-z0-9_]{0,27}$")
BOOKKEEPING = ("mp_part", "mp_part_no", "mp_seq")  # partition, part (an append), row order

STRING, INTEGER, FLOAT, BOOLEAN, TIMESTAMP, TIMESTAMP_TZ, DATE, TIME, BINARY, DECIMAL, NESTED, \
    NULL = ("string", "integer", "float", "boolean", "timestamp", "timestamptz", "date", "time",
            "binary", "decimal", "nested", "null")


def kind_of(arrow_type: pa.DataType) -> str:
    """The SQL family of an Arrow type; ValueError for one no column can hold."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks: list[tuple[Callable[[pa.DataType], bool], str]] = [
        (pa.types.is_null, NULL), (_is_text, STRING), (pa.types.is_boolean, BOOLEAN),
        (pa.types.is_integer, INTEGER), (pa.types.is_floating, FLOAT),
        (pa.types.is_decimal, DECIMAL), (pa.types.is_date, DATE), (pa.types.is_time, TIME),
        (_is_binary, BINARY), (_is_nested, NESTED),
    ]
    if pa.types.is_timestamp(t):
        return TIMESTAMP_TZ if t.tz else TIMESTAMP
    for check, kind in checks:
        if check(t):
            return kind
    raise ValueError(f"no SQL column holds values of type {arrow_type}")


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or pa.types.is_fixed_size_binary(t))


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t)
                or pa.types.is_map(t) or pa.types.is_fixed_size_list(t))


def sql_type(arrow_type: pa.DataType, *, key: bool = False) -> sa.types.TypeEngine[Any]:
    """The column type for an Arrow type; `key`: a string column that is indexed (CUSIP)."""
    kind = kind_of(arrow_type)
    if kind == DECIMAL:
        t: Any = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
        return sa.Numeric(t.precision, t.scale)
    types: dict[str, sa.types.TypeEngine[Any]] = {
        STRING: KEY_TEXT if key else LONG_TEXT,
        INTEGER: sa.BigInteger(),
        FLOAT: sa.Double().with_variant(oracle.BINARY_DOUBLE(), "oracle"),
        BOOLEAN: sa.Boolean(),
        TIMESTAMP: sa.TIMESTAMP(timezone=False),
        TIMESTAMP_TZ: TIMESTAMP_UTC,
        DATE: sa.Date(),
        TIME: sa.Time(),
        BINARY: sa.LargeBinary(),
        NESTED: LONG_TEXT,  # as JSON text
    }
    return types[kind]


def column_name(name: str, position: int, taken: Sequence[str]) -> str:
    """A SQL name for a frame's column: its name in lower case when that is a plain identifier
    (a reserved word gets a trailing _: DATE → date_), else c_<position>. Never quoted, so the
    same on every database."""
    low = name.lower()
    if _SIMPLE.match(low) and not low.startswith("mp_"):
        candidate = f"{low}_" if low in RESERVED else low
        if candidate not in taken:
            return candidate
    return f"c_{position}"


def table_name(table: str) -> str:
    """The SQL name of a frame table (at most 30 characters, Oracle 12.1's limit)."""
    name = f"mp_t_{table}"
    if len(name) <= 30:
        return name
    return f"mp_t_{table[:16]}_{hashlib.sha1(table.encode()).hexdigest()[:8]}"


def index_name(table_sql: str, suffix: str) -> str:
    """An index's name: the table's name and a suffix, within Oracle 12.1's 30 characters."""
    base = table_sql
    if len(base) > 26:
        base = f"ix_{hashlib.sha1(table_sql.encode()).hexdigest()[:10]}"
    return f"{base}_{suffix}"


def encode_type(field: pa.Field) -> str:
    """An Arrow field as text for the catalog (its IPC schema, base64)."""
    return base64.b64encode(pa.schema([field]).serialize().to_pybytes()).decode("ascii")


def decode_type(text: str) -> pa.DataType:
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
    return schema.field(0).type


def to_sql_values(column: pa.ChunkedArray | pa.Array, kind: str) -> list[Any]:
    """Python values to bind: None for missing, JSON text for nested values, UTC datetimes."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == TIMESTAMP_TZ:
        column = column.cast(pa.timestamp(column.type.unit, "UTC"))
    values = column.to_pylist()
    if kind == NESTED:
        return [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in values]
    return values


def from_sql_values(values: Sequence[Any], arrow_type: pa.DataType, kind: str) -> pa.Array:
    """Values fetched from a column as an Arrow array of the type they were written with."""
    if kind == NULL:
        return pa.nulls(len(values), pa.null())
    if kind == NESTED:
        values = [None if v is None else json.loads(v) for v in values]
    if kind == TIMESTAMP_TZ:  # SQLite hands back naive UTC; servers hand back aware values
        values = [v if v is None or v.tzinfo else v.replace(tzinfo=UTC) for v in values]
    if pa.types.is_dictionary(arrow_type):
        return pa.array(values, arrow_type.value_type).dictionary_encode().cast(arrow_type)
    return pa.array(values, arrow_type)


def common_type(stored: pa.DataType, new: pa.DataType) -> pa.DataType:
    """The type a column keeps when a frame brings `new` for it: the stored one when both are of
    one kind, the new one when the stored column only ever held missing values; else ValueError."""
    old_kind, new_kind = kind_of(stored), kind_of(new)
    if new_kind == NULL or old_kind == new_kind:
        return stored
    if old_kind == NULL:
        return new
    raise ValueError(f"holds {stored} values, not {new}")
