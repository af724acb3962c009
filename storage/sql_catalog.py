"""The catalog of the SQL store's frame tables (storage.sql_tables): which SQL table and columns
hold each table's frames (mp_tables, mp_columns), read once per process and again only when a
table's generation moves; and how a table grows: created on its first write, a column added
(ALTER TABLE, typed from the Arrow schema by storage.sql_types) when a frame brings a new one, the
indexes of the reads created once their columns exist. Also the connections every statement of
the store runs on (vendor errors mapped to storage.errors)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, ExecutableDDLElement

from storage.sql_schema import NAME_LENGTH, FixedTables, SchemaKeeper, vendor_errors
from storage.sql_types import (
    NULL,
    column_name,
    common_type,
    decode_type,
    encode_type,
    index_name,
    kind_of,
    sql_type,
    table_name,
)

# Indexes a table gets once it has their columns: the run tables are read by CUSIP (and DATE) and
# by message id; every table is read by partition (a run's rows, a month of the audit log).
INDEXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    name: (("cd", ("CUSIP", "DATE")), ("m", ("MESSAGE_ID",)))
    for name in ("colors", "excluded", "quarantined")
}

class AddColumn(ExecutableDDLElement):
    """ALTER TABLE … ADD <column>, compiled by each dialect (the column's type is the dialect's)."""

    inherit_cache = False

    def __init__(self, table: sa.Table, column: sa.Column[Any]) -> None:
        self.table = table
        self.column = column


@compiles(AddColumn)
def _add_column(element: AddColumn, compiler: Any, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.table)
    return f"ALTER TABLE {table} ADD {compiler.process(CreateColumn(element.column), **kw)}"


class Analyze(ExecutableDDLElement):
    """ANALYZE <table>: fresh planner statistics after a write that grew the table a lot."""

    inherit_cache = False

    def __init__(self, table: sa.Table) -> None:
        self.table = table


@compiles(Analyze)
def _analyze(element: Analyze, compiler: Any, **kw: Any) -> str:
    return f"ANALYZE {compiler.preparer.format_table(element.table)}"


@dataclass
class FrameColumn:
    """A frame column of a table: its SQL column (None while it held only missing values)."""

    name: str
    position: int
    sql_name: str | None
    arrow_type: pa.DataType
    pandas: dict[str, Any] | None

    @property
    def kind(self) -> str:
        return kind_of(self.arrow_type)


@dataclass
class FrameTable:
    """A table as the catalog describes it, with its SQLAlchemy Table."""

    table: str
    sql_name: str
    generation: int
    columns: list[FrameColumn]
    sa_table: sa.Table = field(repr=False)

    def column(self, name: str) -> sa.Column[Any] | None:
        """The SQL column of a frame column; None when the table has no values for it."""
        for c in self.columns:
            if c.name == name:
                return None if c.sql_name is None else self.sa_table.c[c.sql_name]
        return None


def pandas_entries(schema: pa.Schema) -> dict[str, dict[str, Any]]:
    """The pandas dtype metadata of each column: the frame's own, or (for rows of a query) what
    pandas would give them, as the memory store does."""
    meta = schema.pandas_metadata
    if meta is None:
        frame = schema.empty_table().to_pandas()
        meta = pa.Table.from_pandas(frame, preserve_index=False).schema.pandas_metadata or {}
    return {c["name"]: c for c in meta.get("columns", []) if isinstance(c.get("name"), str)}


class Catalog:
    """What SqlStore knows of its frame tables, and its connections."""

    _engine: sa.Engine
    _fixed: FixedTables
    _keeper: SchemaKeeper
    _where: str
    _frames: dict[str, FrameTable]

    def frame_table(self, conn: sa.Connection, table: str) -> FrameTable | None:
        """The table as the catalog has it now (read again only when its generation moved)."""
        t = self._fixed.tables
        row = conn.execute(sa.select(t.c.sql_name, t.c.generation)
                           .where(t.c.table_name == table)).first()
        if row is None:
            return None
        cached = self._frames.get(table)
        if cached is not None and cached.generation == row.generation:
            return cached
        c = self._fixed.columns
        found = conn.execute(sa.select(c).where(c.c.table_name == table)
                             .order_by(c.c.position)).all()
        columns = [FrameColumn(r.name, r.position, r.sql_name, decode_type(r.arrow_type),
                               json.loads(r.pandas)) for r in found]
        ft = FrameTable(table, row.sql_name, row.generation, columns,
                        self._sa_table(row.sql_name, table, columns))
        self._frames[table] = ft
        return ft

    def evolve(self, table: str, schema: pa.Schema) -> FrameTable:
        """The table with a column for every field of schema: creates the table, adds columns
        (ALTER TABLE) and the indexes they complete, under a lock on the table's catalog row."""
        for attempt in range(2):
            try:
                with self.writing(conflicts=True) as conn:
                    ft = self.frame_table(conn, table) or self._create_table(conn, table)
                    if not self._missing(ft, schema):
                        return ft
                    t = self._fixed.tables
                    conn.execute(sa.select(t.c.generation).where(t.c.table_name == table)
                                 .with_for_update())
                    self._frames.pop(table, None)
                    locked = self.frame_table(conn, table)
                    assert locked is not None
                    self._add_columns(conn, locked, schema)
                    conn.execute(sa.update(t).where(t.c.table_name == table)
                                 .values(generation=t.c.generation + 1))
            except sa_exc.IntegrityError:  # another process created it or added a column first
                self._frames.pop(table, None)
                if attempt:
                    raise
        with self.reading() as conn:
            found = self.frame_table(conn, table)
        assert found is not None
        return found

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A pooled connection; vendor errors become storage errors naming the store."""
        self._keeper.ensure()
        with vendor_errors(self._where), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self, *, conflicts: bool = False) -> Iterator[sa.Connection]:
        """A transaction, committed when the block ends (rolled back when it raises).
        conflicts: a unique violation is raised as it is (IntegrityError), for the caller."""
        self._keeper.ensure()
        with vendor_errors(self._where, conflicts=conflicts), self._engine.begin() as conn:
            yield conn

    @staticmethod
    def _kind(table: str, f: pa.Field) -> str:
        try:
            return kind_of(f.type)
        except ValueError as exc:
            raise ValueError(f"table {table}: frame cannot be stored: column {f.name!r}: {exc}"
                             ) from exc

    def _missing(self, ft: FrameTable, schema: pa.Schema) -> bool:
        """Whether schema needs columns the table lacks; ValueError for a type it cannot take."""
        known = {c.name: c for c in ft.columns}
        for f in schema:
            column = known.get(f.name)
            if column is None:
                return True
            try:
                kept = common_type(column.arrow_type, f.type)
            except ValueError as exc:
                raise ValueError(f"table {ft.table}: frame cannot be stored: column {f.name!r} "
                                 f"{exc}") from exc
            if column.sql_name is None and kind_of(kept) != NULL:
                return True
        return False

    def _create_table(self, conn: sa.Connection, table: str) -> FrameTable:
        sql_name = table_name(table)
        conn.execute(sa.insert(self._fixed.tables).values(
            table_name=table, sql_name=sql_name, appends=0, generation=0))
        self._sa_table(sql_name, table, []).create(conn)
        ft = self.frame_table(conn, table)
        assert ft is not None
        return ft

    def _add_columns(self, conn: sa.Connection, ft: FrameTable, schema: pa.Schema) -> None:
        entries = pandas_entries(schema)
        known = {c.name: c for c in ft.columns}
        taken = [c.sql_name for c in ft.columns if c.sql_name]
        before = {c.name for c in ft.columns if c.sql_name}
        cat = self._fixed.columns
        for f in schema:
            column = known.get(f.name)
            kept = f.type if column is None else common_type(column.arrow_type, f.type)
            if column is not None and (column.sql_name is not None or kind_of(kept) == NULL):
                continue
            position = len(known) if column is None else column.position
            name = None if kind_of(kept) == NULL else column_name(f.name, position, taken)
            values = {"sql_name": name, "arrow_type": encode_type(pa.field(f.name, kept)),
                      "pandas": json.dumps(entries.get(f.name))}
            if column is None:
                conn.execute(sa.insert(cat).values(table_name=ft.table, position=position,
                                                   name=f.name, **values))
                known[f.name] = FrameColumn(f.name, position, name, kept, None)
            else:
                conn.execute(sa.update(cat).where(cat.c.table_name == ft.table,
                                                  cat.c.position == position).values(**values))
            if name is not None:
                taken.append(name)
                key = any(f.name in cols for _, cols in INDEXES.get(ft.table, ()))
                conn.execute(AddColumn(ft.sa_table, sa.Column(name, sql_type(kept, key=key))))
        self._add_indexes(conn, ft.table, before)

    def _add_indexes(self, conn: sa.Connection, table: str, before: set[str]) -> None:
        """The indexes of INDEXES whose columns the table has now and did not have before."""
        self._frames.pop(table, None)
        ft = self.frame_table(conn, table)
        assert ft is not None
        for suffix, names in INDEXES.get(table, ()):
            columns = [c for c in (ft.column(n) for n in names) if c is not None]
            if not set(names) <= before and len(columns) == len(names):
                sa.Index(index_name(ft.sql_name, suffix), *columns).create(conn)
        self._frames.pop(table, None)

    def _sa_table(self, sql_name: str, table: str, columns: Sequence[FrameColumn]) -> sa.Table:
        meta = sa.MetaData(schema=self._fixed.metadata.schema)
        keys = {n for _, cols in INDEXES.get(table, ()) for n in cols}
        typed = [sa.Column(c.sql_name, sql_type(c.arrow_type, key=c.name in keys))
                 for c in columns if c.sql_name]
        return sa.Table(
            sql_name, meta,
            sa.Column("mp_part", sa.String(NAME_LENGTH), nullable=False),
            sa.Column("mp_part_no", sa.BigInteger, nullable=False),
            sa.Column("mp_seq", sa.BigInteger, nullable=False),
            *typed,
            sa.Index(index_name(sql_name, "p"), "mp_part", "mp_seq"),
        )

    def _next_write(self, conn: sa.Connection, table: str) -> int:
        """Count a write of the table and return its number; the row lock this takes holds the
        table's other writers until the transaction ends (appends get distinct numbers)."""
        t = self._fixed.tables
        conn.execute(sa.update(t).where(t.c.table_name == table)
                     .values(appends=t.c.appends + 1))
        return int(conn.execute(sa.select(t.c.appends).where(t.c.table_name == table))
                   .scalar_one_or_none() or 0)
