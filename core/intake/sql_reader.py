"""Reading a SQL colors source with SQLAlchemy Core: the engine (short connect timeouts, read-only
transactions), the table and columns found in the database's catalog, and the statements, built
from sa.table/sa.column (names quoted by the dialect, values bound) so no name an admin typed is
ever formatted into SQL. Rows come in chunks, oldest watermark first, at most `limit` of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from core.intake.sql_source import SourceUnavailable

CHUNK_ROWS = 10_000  # rows fetched at a time: what the driver holds beyond the frame being built
CONNECT_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 5.0  # "Test the connection": connecting and each statement
WATERMARK = "mp_watermark"  # label of the watermark column, selected last
READ_ONLY = sa.text("SET TRANSACTION READ ONLY")
STATEMENT_TIMEOUT = sa.text("SELECT set_config('statement_timeout', :ms, true)")  # PostgreSQL


@dataclass(frozen=True)
class Target:
    """The source's table and columns as the database names them (matched case-insensitively
    to what the job says), with their types (a bound watermark takes its column's type)."""

    schema: str | None
    table: str
    columns: dict[str, str]  # the job's name of a source column → the database's
    watermark: str
    types: dict[str, Any] = field(default_factory=dict)  # database name → SQLAlchemy type

    @property
    def shown(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def selectable(self) -> sa.TableClause:
        names = dict.fromkeys([*self.columns.values(), self.watermark])
        return sa.table(self.table, *(sa.column(n, self.types.get(n)) for n in names),
                        schema=self.schema)


# -- statements ------------------------------------------------------------------------------------
def _newer(table: sa.TableClause, target: Target, watermark: Any) -> sa.ColumnElement[bool]:
    column = table.c[target.watermark]
    return column.is_not(None) if watermark is None else column > watermark


def select_rows(target: Target, watermark: Any, limit: int) -> sa.Select[Any]:
    """The mapped columns, then the watermark column (labelled), of at most `limit` rows newer
    than `watermark` (None: every row with a watermark), oldest first."""
    table = target.selectable()
    wanted = [table.c[name] for name in target.columns.values()]
    return (sa.select(*wanted, table.c[target.watermark].label(WATERMARK))
            .where(_newer(table, target, watermark))
            .order_by(table.c[target.watermark]).limit(limit))


def count_rows(target: Target, watermark: Any) -> sa.Select[Any]:
    """How many rows are newer than `watermark`."""
    table = target.selectable()
    return sa.select(sa.func.count()).select_from(table).where(_newer(table, target, watermark))


# -- connecting ------------------------------------------------------------------------------------
def make_engine(url: str, where: str, *, timeout: float = CONNECT_TIMEOUT_S) -> sa.Engine:
    """An engine on the source's URL (not connected yet), connecting within `timeout` seconds.
    Errors never show the URL: it holds the password."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise SourceUnavailable(f"{where}: the URL is not a database URL such as oracle+"
                                "oracledb://user:password@host:1521/?service_name=X") from None
    try:
        return sa.create_engine(parsed, poolclass=sa.pool.NullPool,
                                connect_args=_timeouts(parsed, timeout))
    except (sa.exc.ArgumentError, ImportError):
        raise SourceUnavailable(f"{where}: no database driver for {parsed.drivername!r} (use "
                                "oracle+oracledb, postgresql+psycopg or sqlite)") from None


def _timeouts(url: sa.URL, seconds: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_timeout": max(1, round(seconds))}
    if backend == "oracle":
        return {"tcp_connect_timeout": seconds}
    if backend == "sqlite":
        return {"timeout": seconds}  # waiting for a writer's lock
    return {}


@contextlib.contextmanager
def reading(engine: sa.Engine, where: str, *, timeout: float | None = None
            ) -> Iterator[sa.Connection]:
    """A connection in a read-only transaction (rolled back at the end); `timeout` also bounds
    each statement. Database errors become SourceUnavailable naming `where`."""
    try:
        with engine.connect() as connection:
            backend = connection.dialect.name
            if backend in ("postgresql", "oracle"):
                # Beside a read-only account: nothing this source runs can change data.
                connection.execute(READ_ONLY)
            if timeout and backend == "postgresql":
                connection.execute(STATEMENT_TIMEOUT, {"ms": str(round(timeout * 1000))})
            elif timeout and backend == "oracle":  # oracledb: milliseconds per round trip
                driver: Any = connection.connection.driver_connection
                driver.call_timeout = round(timeout * 1000)
            yield connection
            connection.rollback()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SourceUnavailable(f"{where}: {reason}") from exc


def fetch_chunks(connection: sa.Connection, statement: sa.Select[Any],
                 chunk: int = CHUNK_ROWS) -> Iterator[Sequence[sa.Row[Any]]]:
    """The statement's rows, `chunk` at a time (a server-side cursor where the driver has one)."""
    result = connection.execution_options(stream_results=True, max_row_buffer=chunk)
    rows = result.execute(statement)
    while batch := rows.fetchmany(chunk):
        yield batch


# -- the catalog -----------------------------------------------------------------------------------
def find_target(connection: sa.Connection, where: str, schema: str | None, table: str,
                columns: Sequence[str], watermark: str) -> Target:
    """The table (or view) and columns the job names, as the database spells them; a
    SourceUnavailable names what is missing and what there is instead."""
    inspector = sa.inspect(connection)
    if schema is not None:
        schema = _match(schema, inspector.get_schema_names(), f"{where}: no schema {schema}")
    names = [*inspector.get_table_names(schema), *inspector.get_view_names(schema)]
    with contextlib.suppress(NotImplementedError):
        names += inspector.get_materialized_view_names(schema)
    inside = f" in schema {schema}" if schema else ""
    found = _match(table, names, f"{where}: no table or view {table}{inside} (there are: "
                                 f"{_some(names)})")
    reflected = {c["name"]: c["type"] for c in inspector.get_columns(found, schema)}
    resolved, missing = {}, []
    for name in dict.fromkeys([*columns, watermark]):
        try:
            resolved[name] = _match(name, list(reflected), "")
        except SourceUnavailable:
            missing.append(name)
    if missing:
        shown = f"{schema}.{found}" if schema else found
        raise SourceUnavailable(f"{where}: {shown} has no column {', '.join(missing)} (its "
                                f"columns: {_some(list(reflected))})")
    return Target(schema, found, {c: resolved[c] for c in columns}, resolved[watermark],
                  {resolved[n]: reflected[resolved[n]] for n in resolved})


def _match(name: str, names: Sequence[str], problem: str) -> str:
    """`name` among `names`: the exact spelling, else the one equal but for case."""
    if name in names:
        return name
    equal = [n for n in names if n.casefold() == name.casefold()]
    if len(equal) != 1:
        raise SourceUnavailable(problem if not equal else
                                f"{problem}: {' and '.join(equal)} differ only in case; type "
                                "the one meant exactly")
    return equal[0]


def _some(names: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(sorted(names)[:most])
    return (shown + f" and {len(names) - most} more") if len(names) > most else shown or "none"
