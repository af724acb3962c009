"""SQL sources of an automated run (DESIGN.md §4): checking a job's query and connection, running
it read-only with :since bound, and turning the rows into a parquet file for the pipeline, with
exact text for id columns. core.intake.sources collects every kind of source through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from core.config import ENV_PREFIX, Settings
from core.errors import InvalidInput, MarketPulseError
from core.ingest.columns import load_column_config
from core.schema import TEXT, ColumnSpec, default_column_config, header_lookup
from core.schema import normalise_header as _header
from storage import Store

if TYPE_CHECKING:
    import sqlalchemy as sa

SQL = "sql"  # the source kind
URL_SETTING = "sources.sql_url"  # default place of a SQL source's URL (secrets or environment)
PASSWORD_SETTING = "sources.sql_password"  # env MARKETPULSE_SOURCES_SQL_PASSWORD
MAX_ROWS = 1_000_000
LOOKBACK_HOURS = 24.0  # :since when the caller does not pass the previous run's time

_URL_SETTING = re.compile(r"^sources\.[a-z0-9_]*url$")
_FIRST_WORD = re.compile(r"^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*([A-Za-z]+)", re.S)


class SourceUnavailable(MarketPulseError):
    """A source could not be read: folder missing, database unreachable, query failed (every kind
    of source raises it; it is defined here, the lowest of the source modules)."""


class Collecting(Protocol):
    """Where a source puts what it read (core.intake.sources.Collected)."""

    descriptions: list[str]
    warnings: list[str]

    def add(self, name: str, data: bytes, source: str) -> str: ...


# -- validation ------------------------------------------------------------------------------------
def check_sql_query(query: str, *, field_name: str = "query") -> str:
    """One SELECT (or WITH … SELECT) statement, trailing ';' dropped; only :since may be bound."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(field_name, "enter a SELECT statement")
    text = query.strip().rstrip(";").rstrip()
    first = _FIRST_WORD.match(text)
    if first is None or first.group(1).upper() not in ("SELECT", "WITH"):
        raise InvalidInput(field_name, "only a SELECT (or WITH … SELECT) statement may be used")
    if ";" in text:
        raise InvalidInput(field_name, "one statement only: remove the ';' inside the query")
    unknown = sorted(bind_names(text) - {"since"})
    if unknown:
        raise InvalidInput(field_name, f"unknown parameter(s) {', '.join(':' + u for u in unknown)}"
                                       "; only :since is supplied")
    return text


def bind_names(query: str) -> set[str]:
    """Names of the :parameters in a query, as SQLAlchemy's text() sees them (:: casts are not)."""
    import sqlalchemy as sa

    return set(sa.text(query).compile().params)


def check_sql_source(source: Mapping[str, Any], canonical: set[str], where: str) -> dict[str, Any]:
    """A job's SQL source validated and normalised (canonical: the column names a column_map may
    target); InvalidInput names `where`.field."""
    import sqlalchemy as sa

    out: dict[str, Any] = {"kind": SQL,
                           "query": check_sql_query(source.get("query", ""),
                                                    field_name=f"{where}.query")}
    if source.get("url"):
        try:
            url = sa.engine.make_url(str(source["url"]))
        except sa.exc.ArgumentError:
            raise InvalidInput(f"{where}.url", "not a database URL such as oracle+oracledb://"
                                               "user@host:1521/?service_name=X") from None
        if url.password:
            raise InvalidInput(f"{where}.url", "leave the password out: set "
                                               f"{ENV_PREFIX}SOURCES_SQL_PASSWORD instead")
        out["url"] = str(source["url"])
    else:
        key = source.get("url_setting") or URL_SETTING
        if not _URL_SETTING.match(key):
            raise InvalidInput(f"{where}.url_setting", "must be a sources.*url setting")
        out["url_setting"] = key
    column_map = source.get("column_map") or {}
    if not isinstance(column_map, Mapping):
        raise InvalidInput(f"{where}.column_map", "map database columns to column names")
    targets: dict[str, str] = {}
    for db_column, target in column_map.items():
        if not isinstance(db_column, str) or not db_column.strip() or target not in canonical:
            raise InvalidInput(f"{where}.column_map",
                               f"{db_column!r} → {target!r}: the target must be one of "
                               f"{', '.join(sorted(canonical))}")
        if target in targets:
            raise InvalidInput(f"{where}.column_map",
                               f"{targets[target]!r} and {db_column!r} both map to {target}")
        targets[target] = db_column
    out["column_map"] = {str(k): str(v) for k, v in column_map.items()}
    out["max_rows"] = int(source.get("max_rows") or MAX_ROWS)
    out["lookback_hours"] = float(source.get("lookback_hours") or LOOKBACK_HOURS)
    return out


# -- collection ------------------------------------------------------------------------------------
def _setting(settings: Settings, key: str) -> Any:
    """A setting's value (environment or secrets.toml; core.config declares the keys)."""
    return settings[key]


def source_url(source: Mapping[str, Any], settings: Settings) -> sa.URL:
    """The SQL source's URL with the password from secrets/environment when the URL has none."""
    import sqlalchemy as sa

    key = source.get("url_setting") or URL_SETTING
    text = source.get("url") or _setting(settings, key)
    if not text:
        raise SourceUnavailable(f"SQL source: {key} is not set (environment "
                                f"{ENV_PREFIX}{key.replace('.', '_').upper()} or secrets.toml)")
    try:
        url = sa.engine.make_url(str(text))
    except sa.exc.ArgumentError:
        raise SourceUnavailable(f"SQL source: {key} is not a database URL") from None
    password = _setting(settings, PASSWORD_SETTING)
    if url.password is None and password:
        url = url.set(password=str(password))
    return url


def collect_sql(store: Store, collected: Collecting, source: dict[str, Any], settings: Settings,
                job_name: str, now: datetime, since: datetime | None) -> None:
    """Run the source's query read-only (:since bound) and add its rows to `collected` as one
    parquet file; SourceUnavailable when the database or the query fails or returns too much."""
    import sqlalchemy as sa

    url = source_url(source, settings)
    shown = url.render_as_string(hide_password=True)
    # Stream (a server-side cursor where the driver has one) so max_rows caps the memory too.
    statement = sa.text(source["query"]).execution_options(stream_results=True)
    params = {}
    if "since" in bind_names(source["query"]):
        params["since"] = since or now - timedelta(hours=source["lookback_hours"])
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if connection.dialect.name in ("postgresql", "oracle"):
                # Defence in depth beside a read-only account: the query cannot change data.
                connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            result = connection.execute(statement, params)
            names = list(result.keys())
            rows = result.fetchmany(source["max_rows"] + 1)
            connection.rollback()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SourceUnavailable(f"SQL source {shown}: {reason}") from exc
    finally:
        engine.dispose()
    if len(rows) > source["max_rows"]:
        raise SourceUnavailable(f"SQL source {shown}: more than {source['max_rows']} rows; "
                                "narrow the query (WHERE … >= :since) or raise max_rows")
    if not rows:
        collected.descriptions.append(f"sql {shown}: 0 rows")
        return
    frame = rows_to_frame(names, rows, source["column_map"], load_column_config(store),
                          collected.warnings)
    buffer = BytesIO()
    frame.to_parquet(buffer, index=False)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", job_name).strip("-.") or "job"
    name = collected.add(f"sql-{slug}.parquet", buffer.getvalue(), f"sql {shown}")
    collected.descriptions.append(f"sql {shown}: {len(rows)} rows as {name}")


def rows_to_frame(names: list[str], rows: Sequence[Sequence[Any]], column_map: Mapping[str, str],
                  columns: list[ColumnSpec] | None = None,
                  warnings: list[str] | None = None) -> pd.DataFrame:
    """Query rows as a frame with mapped column names. Text columns (MESSAGE_ID, CUSIP…) become
    exact text (17-digit ids never pass through float); Decimal numbers become int or float."""
    wanted = {k.casefold(): v for k, v in column_map.items()}
    returned = {n.casefold() for n in names}
    missing = [k for k in column_map if k.casefold() not in returned]
    if missing:
        raise SourceUnavailable(f"SQL source: the query returns no column {', '.join(missing)}; "
                                f"it returns {', '.join(names)}")
    renamed = [wanted.get(n.casefold(), n) for n in names]
    seen: set[str] = set()
    for name in renamed:
        if name.casefold() in seen:
            raise SourceUnavailable(f"SQL source: two columns are called {name}; map or alias one")
        seen.add(name.casefold())
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
            numbers = [_as_number(v) for v in values]
            kinds = {type(v) for v in numbers if v is not None}
            if len(kinds) > 1 and not kinds <= {int, float}:  # mixed: let ingest coerce the text
                numbers = [None if v is None else str(v) for v in numbers]
            data[name] = numbers
    return pd.DataFrame(data)


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
