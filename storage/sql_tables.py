"""The SQL store's tables (storage.tables protocol): each table is a real SQL table whose columns
come from the frames appended to it (storage.sql_catalog), plus three bookkeeping columns: the
partition, the part (one append; compact merges a partition's parts) and the row's order. Frames
come back with the dtypes they went in with (the catalog keeps them); the rows of one write land
in one transaction; mp_partitions counts each partition's rows and names its last write."""

from __future__ import annotations

import builtins
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from storage.base import check_partition, check_table, to_arrow
from storage.errors import StoreUnavailable
from storage.sql_catalog import Analyze, Catalog, FrameColumn, FrameTable
from storage.sql_types import NULL, from_sql_values, to_sql_values

if TYPE_CHECKING:
    import duckdb

_BATCH = 10_000  # rows per INSERT batch (and per record batch of a query's rows)
_IN_LIMIT = 500  # values per IN list (Oracle takes at most 1,000)
_PART_SHIFT = 2**31  # mp_seq = append number × this + the row's position in the append


def in_list(column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """column IN (values), bound, in lists Oracle accepts; FALSE for no values."""
    if not values:
        return sa.false()
    chunks = [column.in_(list(values[i:i + _IN_LIMIT])) for i in range(0, len(values), _IN_LIMIT)]
    return chunks[0] if len(chunks) == 1 else sa.or_(*chunks)


def with_pandas(rows: pa.Table, columns: Sequence[FrameColumn]) -> pd.DataFrame:
    """Rows as a frame with the dtypes the catalog keeps."""
    entries = [c.pandas for c in columns if c.pandas is not None]
    meta = {"index_columns": [], "column_indexes": [], "columns": entries}
    return rows.replace_schema_metadata({b"pandas": json.dumps(meta)}).to_pandas()


def copy_rows(conn: sa.Connection, table: sa.Table, names: Sequence[str],
              records: Sequence[tuple[Any, ...]], where: str) -> None:
    """PostgreSQL: COPY the records into the table on the connection's transaction (the rows
    stream beside the statement, which holds only identifiers)."""
    import psycopg
    from psycopg import sql as pg_sql

    target = pg_sql.Identifier(*([table.schema] if table.schema else []), table.name)
    statement = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        target, pg_sql.SQL(", ").join(pg_sql.Identifier(n) for n in names))
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for record in records:
                copy.write_row(record)
    except psycopg.DataError as exc:
        raise ValueError(f"{where}: a value cannot be stored: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc


class FrameTables(Catalog):
    """The Tables part of SqlStore (and what its run-table port builds on)."""

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
                 partitions: builtins.list[str] | None = None, *, view: str | None = None,
                 settled: bool = False) -> bool:
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

    # -- internals -------------------------------------------------------------------------
    def _insert(self, conn: sa.Connection, ft: FrameTable, rows: pa.Table, number: int,
                offset: int, parts: builtins.list[str]) -> None:
        """Write rows in batches (PostgreSQL: COPY, ~10× an INSERT of many rows; elsewhere an
        INSERT per batch), then count them in mp_partitions."""
        columns = [c for c in ft.columns if c.sql_name and c.name in rows.column_names]
        names = ["mp_part", "mp_part_no", "mp_seq", *(c.sql_name for c in columns if c.sql_name)]
        copy = conn.dialect.name == "postgresql"
        for start in range(0, rows.num_rows, _BATCH):
            piece = rows.slice(start, _BATCH)
            values = [to_sql_values(piece.column(c.name), c.kind) for c in columns]
            base = number * _PART_SHIFT + offset + start
            records = [(part, number, base + i, *vals) for i, (part, vals) in enumerate(zip(
                parts[start:start + piece.num_rows],
                zip(*values, strict=True) if values else [()] * piece.num_rows, strict=True))]
            if copy:
                copy_rows(conn, ft.sa_table, names, records, self._where)
            else:
                conn.execute(sa.insert(ft.sa_table),
                             [dict(zip(names, r, strict=True)) for r in records])
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
