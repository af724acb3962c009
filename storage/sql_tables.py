"""The SQL store's tables (storage.tables protocol): each table is a real SQL table whose columns
come from the frames appended to it (added with ALTER TABLE when a later frame has more, typed from
its Arrow schema by storage.sql_types), plus three bookkeeping columns: the partition, the part
(one append; compact merges a partition's parts) and the row's order. A catalog (mp_tables,
mp_columns, mp_partitions) maps frame columns to SQL columns and keeps their pandas dtypes, so
frames come back as they went in."""

from __future__ import annotations

import builtins
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, ExecutableDDLElement

from storage.base import check_partition, check_table, to_arrow
from storage.sql_schema import NAME_LENGTH, FixedTables, SchemaKeeper, vendor_errors
from storage.sql_types import (
    NULL,
    column_name,
    common_type,
    decode_type,
    encode_type,
    from_sql_values,
    index_name,
    kind_of,
    sql_type,
    table_name,
    to_sql_values,
)

if TYPE_CHECKING:
    import duckdb

# Indexes a table gets once it has their columns: the run tables are read by CUSIP (and DATE) and
# by message id; every table is read by partition (a run's rows, a month of the audit log).
INDEXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    name: (("cd", ("CUSIP", "DATE")), ("m", ("MESSAGE_ID",)))
    for name in ("colors", "excluded", "quarantined")
}
_BATCH = 10_000  # rows per INSERT batch (and per record batch of a query's rows)
_IN_LIMIT = 500  # values per IN list (Oracle takes at most 1,000)
_PART_SHIFT = 2**31  # mp_seq = append number × this + the row's position in the append


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


def in_list(column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """column IN (values), bound, in lists Oracle accepts; FALSE for no values."""
    if not values:
        return sa.false()
    chunks = [column.in_(list(values[i:i + _IN_LIMIT])) for i in range(0, len(values), _IN_LIMIT)]
    return chunks[0] if len(chunks) == 1 else sa.or_(*chunks)


def pandas_entries(schema: pa.Schema) -> dict[str, dict[str, Any]]:
    """The pandas dtype metadata of each column: the frame's own, or (for rows of a query) what
    pandas would give them, as the memory store does."""
    meta = schema.pandas_metadata
    if meta is None:
        frame = schema.empty_table().to_pandas()
        meta = pa.Table.from_pandas(frame, preserve_index=False).schema.pandas_metadata or {}
    return {c["name"]: c for c in meta.get("columns", []) if isinstance(c.get("name"), str)}


def with_pandas(rows: pa.Table, columns: Sequence[FrameColumn]) -> pd.DataFrame:
    """Rows as a frame with the dtypes the catalog keeps."""
    entries = [c.pandas for c in columns if c.pandas is not None]
    meta = {"index_columns": [], "column_indexes": [], "columns": entries}
    return rows.replace_schema_metadata({b"pandas": json.dumps(meta)}).to_pandas()


class FrameTables:
    """The Tables part of SqlStore (and what its run-table port builds on)."""

    _engine: sa.Engine
    _fixed: FixedTables
    _keeper: SchemaKeeper
    _where: str
    _frames: dict[str, FrameTable]

    # -- the protocol ----------------------------------------------------------------------
    def tables(self) -> builtins.list[str]:
        """Names of the tables holding rows, sorted."""
        parts = self._fixed.partitions
        with self.reading() as conn:
            names = conn.execute(sa.select(parts.c.table_name).distinct()).scalars().all()
        return sorted(names)

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table, sorted; [] for a table never written."""
        check_table(table)
        parts = self._fixed.partitions
        with self.reading() as conn:
            names = conn.execute(sa.select(parts.c.part_name)
                                 .where(parts.c.table_name == table)).scalars().all()
        return sorted(names)

    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition as one part, all rows or none (an empty frame: no-op)."""
        check_table(table)
        check_partition(partition)
        if len(frame) == 0:
            return
        self.append_frames([(table, to_arrow(table, frame), partition)])

    def scan(self, table: str, partitions: builtins.list[str] | None = None,
             columns: builtins.list[str] | None = None) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""
        check_table(table)
        wanted = None if partitions is None else sorted({check_partition(p) for p in partitions})
        with self.reading() as conn:
            ft = self.frame_table(conn, table)
            rows = None if ft is None else self.select(conn, ft, wanted, columns)
        if rows is None or ft is None:
            return pd.DataFrame()
        frame = with_pandas(rows, [c for c in ft.columns if c.name in rows.column_names])
        return frame[list(columns)] if columns is not None else frame

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent), in one transaction."""
        check_table(table)
        check_partition(partition)
        with self.writing() as conn:
            ft = self.frame_table(conn, table)
            if ft is not None:
                self._delete_parts(conn, ft, [partition])

    def register(self, con: duckdb.DuckDBPyConnection, table: str,
                 partitions: builtins.list[str] | None = None, *, view: str | None = None) -> bool:
        """Fetch the rows (Arrow) and register them on con under `view` (default: the table's
        name); False (nothing registered) when there are none."""
        check_table(table)
        wanted = None if partitions is None else sorted({check_partition(p) for p in partitions})
        with self.reading() as conn:
            ft = self.frame_table(conn, table)
            rows = None if ft is None else self.select(conn, ft, wanted, None)
        if rows is None:
            return False
        con.register(check_table(view or table), rows)
        return True

    def append_query(self, con: duckdb.DuckDBPyConnection, table: str, partition: str,
                     query: str, params: builtins.list[Any] | None = None) -> int:
        """Add the rows of a DuckDB query to a partition, streamed in record batches into one
        transaction (all rows or none); returns the rows written."""
        check_table(table)
        check_partition(partition)
        reader = con.sql(query, params=params or None).to_arrow_reader(_BATCH)
        ft = self.evolve(table, reader.schema)
        written = 0
        with self.writing() as conn:
            number = self._next_write(conn, table)
            for batch in reader:
                if batch.num_rows:
                    self._insert(conn, ft, pa.Table.from_batches([batch]), number, written,
                                 [partition] * batch.num_rows)
                    written += batch.num_rows
        return written

    def compact(self, table: str, partitions: builtins.list[str] | None = None) -> int:
        """Merge each partition's parts into one (the rows keep their order, nobody sees them
        twice); returns how many parts were merged away."""
        check_table(table)
        chosen = self.partitions(table) if partitions is None else sorted(
            {check_partition(p) for p in partitions})
        merged = 0
        with self.writing() as conn:
            ft = self.frame_table(conn, table)
            if ft is None:
                return 0
            self._next_write(conn, table)
            t = ft.sa_table
            for partition in chosen:
                numbers = conn.execute(sa.select(t.c.mp_part_no).distinct()
                                       .where(t.c.mp_part == partition)).scalars().all()
                if len(numbers) > 1:
                    conn.execute(sa.update(t).where(t.c.mp_part == partition,
                                                    in_list(t.c.mp_part_no, numbers))
                                 .values(mp_part_no=max(numbers)))
                    merged += len(numbers)
        return merged

    # -- building blocks (the run-table port uses them too) --------------------------------
    def append_frames(self, items: Sequence[tuple[str, pa.Table, str | Sequence[str]]], *,
                      replace: Sequence[str] = ()) -> dict[str, int]:
        """Write (table, rows, partition or one partition per row) items in one transaction,
        after adding the columns they need (in its own, as Oracle commits DDL); the `replace`
        partitions of their tables are emptied first, in the same transaction. Returns each
        table's write number (the partitions' last_write)."""
        for table, rows, _ in items:
            for f in rows.schema:
                self._kind(table, f)
        tables = {table: self.evolve(table, rows.schema) for table, rows, _ in items}
        with self.writing() as conn:
            numbers = {t: self._next_write(conn, t) for t in sorted(tables)}
            if replace:
                for table in sorted(tables):
                    self._delete_parts(conn, tables[table], replace)
            for table, rows, partition in items:
                parts = [partition] * rows.num_rows if isinstance(partition, str) else partition
                self._insert(conn, tables[table], rows, numbers[table], 0, list(parts))
        written = Counter[str]()
        for table, rows, _ in items:
            written[table] += rows.num_rows
        self._refresh_statistics(tables, written)
        return numbers

    def _refresh_statistics(self, tables: Mapping[str, FrameTable], written: Counter[str]
                            ) -> None:
        """ANALYZE the tables a write grew by a tenth or more (PostgreSQL's own autovacuum rule;
        a server running without autovacuum never gathers them, and a planner without statistics
        reads a CUSIP lookup's 50 CUSIPs by scanning the table). Oracle gathers its own."""
        if self._engine.dialect.name not in ("postgresql", "sqlite"):
            return
        p = self._fixed.partitions
        with self.writing() as conn:
            for table in sorted(tables):
                total = conn.execute(sa.select(sa.func.sum(p.c.row_count))
                                     .where(p.c.table_name == table)).scalar() or 0
                if written[table] >= 1000 and 10 * written[table] >= total:
                    conn.execute(Analyze(tables[table].sa_table))

    def partition_states(self, table: str) -> dict[str, tuple[int, int]]:
        """(rows, last write) per partition of the table, from the catalog (no rows counted)."""
        p = self._fixed.partitions
        with self.reading() as conn:
            found = conn.execute(sa.select(p.c.part_name, p.c.row_count, p.c.last_write)
                                 .where(p.c.table_name == check_table(table))).all()
        return {r.part_name: (int(r.row_count), int(r.last_write)) for r in found}

    def delete_everywhere(self, partition: str) -> None:
        """Remove a partition from every table holding it, in one transaction."""
        p = self._fixed.partitions
        with self.writing() as conn:
            tables = conn.execute(sa.select(p.c.table_name)
                                  .where(p.c.part_name == check_partition(partition))
                                  ).scalars().all()
            for table in sorted(tables):
                ft = self.frame_table(conn, table)
                if ft is not None:
                    self._delete_parts(conn, ft, [partition])

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

    def select(self, conn: sa.Connection, ft: FrameTable, partitions: Sequence[str] | None,
               columns: Sequence[str] | None, where: Sequence[sa.ColumnElement[bool]] = ()
               ) -> pa.Table | None:
        """Rows of these partitions (all: None) matching `where`, only `columns` when given, in
        partition then append order, as Arrow with the types they were written with; None when
        there are none. With `where` (a selective condition on an index: CUSIPs, message ids)
        the partitions are picked from its rows, so the planner never ANDs it with the
        partition index (which matches most rows: every visible run)."""
        chosen = [c for c in ft.columns if columns is None or c.name in columns]
        stored = [c for c in chosen if c.sql_name is not None]
        t = ft.sa_table
        query = sa.select(t.c.mp_part, t.c.mp_seq, *(t.c[c.sql_name] for c in stored
                                                     if c.sql_name))
        if partitions is not None and not where:
            query = query.where(in_list(t.c.mp_part, list(partitions)))
        for condition in where:
            query = query.where(condition)
        fetched = conn.execute(query).all()
        if partitions is not None and where:
            wanted = set(partitions)
            fetched = [r for r in fetched if r[0] in wanted]
        if not fetched:
            return None
        values = dict(zip([c.name for c in stored], list(zip(*fetched, strict=True))[2:],
                          strict=True))
        order = pc.sort_indices(pa.table({"p": [r[0] for r in fetched],
                                          "s": [r[1] for r in fetched]}),
                                [("p", "ascending"), ("s", "ascending")])
        arrays = [from_sql_values(values.get(c.name, [None] * len(fetched)), c.arrow_type,
                                  c.kind if c.sql_name else NULL) for c in chosen]
        return pa.table(arrays, names=[c.name for c in chosen]).take(order)

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

    # -- internals -------------------------------------------------------------------------
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

    def _insert(self, conn: sa.Connection, ft: FrameTable, rows: pa.Table, number: int,
                offset: int, parts: builtins.list[str]) -> None:
        """INSERT rows in batches, then count them in mp_partitions."""
        columns = [c for c in ft.columns if c.sql_name and c.name in rows.column_names]
        for start in range(0, rows.num_rows, _BATCH):
            piece = rows.slice(start, _BATCH)
            values = [to_sql_values(piece.column(c.name), c.kind) for c in columns]
            base = number * _PART_SHIFT + offset + start
            records = [
                {"mp_part": part, "mp_part_no": number, "mp_seq": base + i,
                 **{c.sql_name: v for c, v in zip(columns, vals, strict=True) if c.sql_name}}
                for i, (part, vals) in enumerate(zip(parts[start:start + piece.num_rows],
                                                     zip(*values, strict=True) if values else
                                                     [()] * piece.num_rows, strict=True))]
            conn.execute(sa.insert(ft.sa_table), records)
        self._count(conn, ft.table, Counter(parts), number)

    def _count(self, conn: sa.Connection, table: str, added: Counter[str], number: int) -> None:
        p = self._fixed.partitions
        for part, n in sorted(added.items()):
            done = conn.execute(sa.update(p).where(p.c.table_name == table, p.c.part_name == part)
                                .values(row_count=p.c.row_count + n, last_write=number))
            if not done.rowcount:
                conn.execute(sa.insert(p).values(table_name=table, part_name=part, row_count=n,
                                                 last_write=number))

    def _delete_parts(self, conn: sa.Connection, ft: FrameTable, parts: Sequence[str]) -> None:
        self._next_write(conn, ft.table)
        t, p = ft.sa_table, self._fixed.partitions
        conn.execute(sa.delete(t).where(in_list(t.c.mp_part, list(parts))))
        conn.execute(sa.delete(p).where(p.c.table_name == ft.table,
                                        in_list(p.c.part_name, list(parts))))
