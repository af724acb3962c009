"""The SQL colors source of an automated run (DOMAIN.md §4, DESIGN.md §4): a table or view of an
Oracle (or any SQLAlchemy) database, its columns mapped to ours, read incrementally past a
watermark column (core.intake.watermarks) at most a row limit per run, into one Parquet file the
pipeline reads, validates and publishes like any other. The job names a connection; its URL,
password included, comes from the secrets file or the environment (core.config), never the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from core.access import EDIT_JOBS, Actor, require
from core.config import SOURCE_NAME, Settings, source_key
from core.errors import InvalidInput, MarketPulseError
from core.ingest.columns import load_column_config
from core.intake.watermarks import describe_value, load_watermark, save_watermark
from core.schema import DERIVABLE, TEXT, ColumnSpec, default_column_config, header_lookup
from core.schema import normalise_header as _header
from storage import Store

if TYPE_CHECKING:  # core.intake.sql_reader brings SQLAlchemy: imported when a source is read
    import sqlalchemy as sa

    from core.intake.sql_reader import Target

SQL = "sql"  # the source kind
PREVIEW_ROWS = 5
# An identifier as Oracle, PostgreSQL and SQLite take it unquoted: never formatted into SQL (the
# statements quote it), but checked so a typo is caught when the job is saved.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}$")


class SourceUnavailable(MarketPulseError):
    """A source could not be read: folder missing, database unreachable, table or column missing
    (every kind of source raises it; it is defined here, the lowest of the source modules)."""


class Collecting(Protocol):
    """Where a source puts what it read (core.intake.sources.Collected)."""

    descriptions: list[str]
    warnings: list[str]
    notes: dict[str, str]

    def add(self, name: str, data: bytes, source: str) -> str: ...

    def settle_with(self, on_success: Callable[[Any], list[str]]) -> None: ...


# -- validation ------------------------------------------------------------------------------------
def check_sql_source(source: Mapping[str, Any], columns: list[ColumnSpec], where: str
                     ) -> dict[str, Any]:
    """A job's SQL source validated and normalised: connection name, table, column map (every
    required column of `columns` mapped, each once), watermark column and row limit (None: the
    sources.sql_row_limit setting). InvalidInput names `where`.field."""
    if source.get("query") and not source.get("table"):
        raise InvalidInput(f"{where}.table", "the SQL source reads a table or view now, not a "
                                             "query: make the query a view and name it here")
    secret = str(source.get("secret") or "").strip().lower()
    if not SOURCE_NAME.match(secret):
        raise InvalidInput(f"{where}.secret", f"{secret!r} is not a connection name: letters, "
                           "digits and _ (its URL is sources.<name>.url in the secrets file)")
    table = str(source.get("table") or "").strip()
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise InvalidInput(f"{where}.table", f"{table!r} is not a table name: TABLE or "
                           "SCHEMA.TABLE, each letters, digits and _ (a view works too)")
    watermark = str(source.get("watermark_column") or "").strip()
    if not _IDENTIFIER.match(watermark):
        raise InvalidInput(f"{where}.watermark_column", f"{watermark!r} is not a column name: "
                           "name a timestamp or increasing id column")
    limit = source.get("row_limit") or None
    if limit is not None and (not str(limit).isdigit() or int(limit) < 1):
        raise InvalidInput(f"{where}.row_limit", f"{limit!r}: a whole number of rows, at least 1")
    return {"kind": SQL, "secret": secret, "table": table,
            "column_map": _check_map(source.get("column_map"), columns, f"{where}.column_map"),
            "watermark_column": watermark, "row_limit": None if limit is None else int(limit)}


def _check_map(column_map: Any, columns: list[ColumnSpec], where: str) -> dict[str, str]:
    if not isinstance(column_map, Mapping) or not column_map:
        raise InvalidInput(where, "map the table's columns to ours: SOURCE_COLUMN = CUSIP, ...")
    ours = {spec.name.casefold(): spec.name for spec in columns}
    mapped: dict[str, str] = {}  # ours → the source column mapped to it
    sources: dict[str, str] = {}  # source column, case-folded → as typed
    for column, given in column_map.items():
        column, target = str(column).strip(), ours.get(str(given).strip().casefold(), "")
        if not _IDENTIFIER.match(column):
            raise InvalidInput(where, f"{column!r} is not a column name (letters, digits, _)")
        if not target:
            raise InvalidInput(where, f"{column} → {given!r}: not one of our columns ("
                                      f"{', '.join(sorted(ours.values()))})")
        if target in mapped:
            raise InvalidInput(where, f"{mapped[target]} and {column} both map to {target}")
        if column.casefold() in sources:
            raise InvalidInput(where, f"{sources[column.casefold()]} and {column} are one column")
        mapped[target], sources[column.casefold()] = column, column
    missing = [s.name for s in columns if s.required and not _present(s.name, set(mapped))]
    if missing:
        raise InvalidInput(where, f"map a column to {', '.join(missing)} (required)")
    return {column: target for target, column in mapped.items()}


def _present(name: str, mapped: set[str]) -> bool:
    """Mapped, or derivable from mapped columns (RANK from BIAS, PX from BID and ASK...)."""
    derived = DERIVABLE.get(name, ())
    return name in mapped or (bool(derived) and all(_present(d, mapped) for d in derived))


def source_label(source: Mapping[str, Any]) -> str:
    """How run records and messages name the source: "sql:desk DESK.COLORS"."""
    return f"sql:{source.get('secret', '')} {source.get('table', '')}"


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class Read:
    """What one read gave: the rows as our columns, and the watermark they reach."""

    frame: pd.DataFrame
    rows: int
    last: Any  # the watermark column's value of the last row kept
    limited: bool  # the row limit cut the read: newer rows are left for the next run


def _open(source: Mapping[str, Any], settings: Settings, timeout: float | None = None
          ) -> sa.Engine:
    from core.intake.sql_reader import make_engine

    label = source_label(source)
    url = settings.source_url(source["secret"])
    if not url:
        raise SourceUnavailable(f"{label}: no connection named {source['secret']!r}: set "
                                f"{source_key(source['secret'])} (the URL with its password)")
    return make_engine(url, label, **({"timeout": timeout} if timeout else {}))


def _target(connection: sa.Connection, source: Mapping[str, Any]) -> Target:
    from core.intake.sql_reader import find_target

    schema, _, table = source["table"].rpartition(".")
    return find_target(connection, source_label(source), schema or None, table,
                       list(source["column_map"]), source["watermark_column"])


def _read(connection: sa.Connection, target: Target, source: Mapping[str, Any], start: Any,
          limit: int, columns: list[ColumnSpec], warnings: list[str], *, whole: bool = True
          ) -> Read:
    """At most `limit` rows after `start`; whole: never end inside a run of rows sharing one
    watermark (a preview may)."""
    from core.intake.sql_reader import fetch_chunks, select_rows

    names = list(target.columns.values())
    column_map = {target.columns[c]: ours for c, ours in source["column_map"].items()}
    frames, marks = [], []
    for chunk in fetch_chunks(connection, select_rows(target, start, limit + 1)):
        frames.append(rows_to_frame(names, [row[:-1] for row in chunk], column_map, columns,
                                    warnings))
        marks += [row[-1] for row in chunk]
    keep, limited = min(len(marks), limit), len(marks) > limit
    if limited and whole:  # the next run reads on from the last watermark kept
        keep = limit
        while keep and marks[keep - 1] == marks[limit]:
            keep -= 1
        if not keep:
            raise SourceUnavailable(
                f"{source_label(source)}: more than {limit} rows have {target.watermark} = "
                f"{describe_value(marks[limit])}; raise the row limit to read them in one run")
    frame = _concat(frames).iloc[:keep] if frames else pd.DataFrame()
    return Read(frame, keep, marks[keep - 1] if keep else start, limited)


def collect_sql(store: Store, collected: Collecting, source: dict[str, Any], settings: Settings,
                *, job_id: str, now: datetime) -> None:
    """Read the rows newer than the job's watermark (at most the row limit) into `collected` as
    one Parquet file; the watermark moves on when the run publishes (on_success).
    SourceUnavailable names the source and what is wrong."""
    from core.intake.sql_reader import reading

    label = source_label(source)
    mark = load_watermark(store, job_id, source)
    start = mark.value if mark else None
    limit = source.get("row_limit") or settings["sources.sql_row_limit"]
    with reading(_open(source, settings), label) as connection:
        read = _read(connection, _target(connection, source), source, start, limit,
                     load_column_config(store), collected.warnings)
    if not read.rows:
        collected.descriptions.append(f"{label}: no rows after watermark {describe_value(start)}")
        return
    buffer = BytesIO()
    read.frame.to_parquet(buffer, index=False)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{source['secret']}-{source['table']}")
    name = collected.add(f"sql-{slug}.parquet", buffer.getvalue(), label)
    note = (f"{label}: rows {read.rows}, watermark {describe_value(start)} → "
            f"{describe_value(read.last)}")
    if read.limited:
        note += f"; row limit {limit} reached: the next run reads on"
    collected.notes[name] = note
    collected.descriptions.append(note)

    def advance(run_id: int) -> list[str]:  # a Manual Color fetch never publishes as the job
        if job_id:
            save_watermark(store, job_id, source, read.last, run_id=run_id, at=now)
        return []

    collected.settle_with(advance)


@dataclass
class Probe:
    """What "Test the connection" found: the table, the rows a run would read, a preview."""

    table: str
    newer: int
    watermark: str
    preview: pd.DataFrame


def probe_sql_source(store: Store, actor: Actor, source: dict[str, Any], settings: Settings,
                     *, job_id: str = "") -> Probe:
    """Connect (short timeouts), find the table and mapped columns, count the rows newer than the
    job's watermark and read the first 5 of them as our columns; SourceUnavailable otherwise.
    Those who edit jobs may (the connection is the desk's)."""
    from core.intake.sql_reader import TEST_TIMEOUT_S, count_rows, reading

    require(actor, EDIT_JOBS)

    mark = load_watermark(store, job_id, source)
    start = mark.value if mark else None
    with reading(_open(source, settings, TEST_TIMEOUT_S), source_label(source),
                 timeout=TEST_TIMEOUT_S) as connection:
        target = _target(connection, source)
        newer = int(connection.execute(count_rows(target, start)).scalar_one())
        read = _read(connection, target, source, start, PREVIEW_ROWS,
                     load_column_config(store), [], whole=False)
    return Probe(target.shown, newer, describe_value(start), read.frame)


# -- rows → frame ----------------------------------------------------------------------------------
def rows_to_frame(names: list[str], rows: Sequence[Sequence[Any]], column_map: Mapping[str, str],
                  columns: list[ColumnSpec] | None = None,
                  warnings: list[str] | None = None) -> pd.DataFrame:
    """Rows as a frame with mapped column names. Text columns (MESSAGE_ID, CUSIP…) become exact
    text (17-digit ids never pass through float); Decimal numbers become int or float."""
    wanted = {k.casefold(): v for k, v in column_map.items()}
    renamed = [wanted.get(n.casefold(), n) for n in names]
    config = columns or default_column_config()
    lookup = header_lookup(config)
    types = {spec.name: spec.type for spec in config}
    data: dict[str, Any] = {}
    for position, name in enumerate(renamed):
        values = [row[position] for row in rows]
        if types.get(lookup.get(_header(name), ""), TEXT) == TEXT:
            if warnings is not None and any(isinstance(v, float) and abs(v) >= 2**53
                                            for v in values):
                warnings.append(f"SQL source: {name} came back as floating point and may have "
                                "lost digits; select it as text (TO_CHAR)")
            data[name] = pd.array([None if v is None else _as_text(v) for v in values],
                                  dtype="string")
        else:
            data[name] = _numbers([_as_number(v) for v in values])
    return pd.DataFrame(data, columns=renamed)


def _numbers(values: list[Any]) -> list[Any]:
    values = [None if isinstance(v, float) and v != v else v for v in values]  # NaN: a blank
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) > 1 and not kinds <= {int, float}:  # mixed: let ingest coerce the text
        return [None if v is None else str(v) for v in values]
    return values


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks as one frame; a column one chunk gave as text and another as numbers (a
    loosely typed database) becomes text, as within a chunk."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for name in frame.columns:
        if frame[name].dtype == "object":
            frame[name] = _numbers(frame[name].tolist())
    return frame


def _as_text(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        whole = value.to_integral_value()
        return format(whole if value == whole else value, "f")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    return value
