"""The tables part of the local store (storage.local.LocalStore): tables/<table>/<partition>/
part-<time>-<uuid>.parquet, one file per append, written under a temporary name containing "~"
and renamed into place, so readers never see half of one; and the Parquet files' shape (row
groups, dictionary encoding, statistics) the S3 store writes too."""

from __future__ import annotations

import builtins
import functools
import os
import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.base import check_partition, check_table, to_arrow
from storage.errors import StoreUnavailable, is_valid
from storage.run_tables import CUSIP

# Rows per Parquet row group of every file: tables are sorted by CUSIP, so a lookup decodes one
# group per file. At 10M rows 20k-row groups cost ~40% less than 100k, while 8k and 4k cost more
# (DuckDB pays per row group and column), and snappy decodes in half zstd's time for 1.5x the
# bytes (bench/search.py). A multiple of DuckDB's 2,048-row vectors, as DuckDB rounds up.
ROW_GROUP_SIZE = QUERY_ROW_GROUP_SIZE = 20_480
_DICTIONARY_SAMPLE = 4096  # rows whose distinct values decide a column's dictionary encoding
ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalTables:
    """Tables (storage.tables) and PartitionedStore.append_query over Parquet files under root;
    the store gives the folder, its error translation and its write-then-rename."""

    root: Path
    _guard: Callable[..., AbstractContextManager[None]]
    _write_atomic: Callable[[Path, Callable[[IO[bytes]], object]], None]

    # -- tables ----------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition as one new Parquet file, all rows or none (empty: no-op)."""
        folder = self._table_dir(table) / check_partition(partition)
        if len(frame) == 0:
            return
        rows = to_arrow(table, frame)  # a frame Parquet cannot hold fails before any IO
        # Time first, so files sort in append order; the uuid keeps concurrent appends apart.
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
        with self._guard():
            folder.mkdir(parents=True, exist_ok=True)
            self._write_atomic(folder / name, functools.partial(write_parquet, rows))

    def scan(
        self,
        table: str,
        partitions: builtins.list[str] | None = None,
        columns: builtins.list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""
        frames: list[pd.DataFrame] = []
        with self._guard():
            for name in self._chosen(table, partitions):
                frames.extend(self._read_partition(table, name, columns))
        if not frames:
            return pd.DataFrame()
        rows = pd.concat(frames, ignore_index=True)
        return rows[list(columns)] if columns is not None else rows

    def tables(self) -> builtins.list[str]:
        """Names of the tables that hold rows, sorted."""
        with self._guard():
            try:
                names = sorted(e.name for e in os.scandir(self.root / "tables") if e.is_dir())
            except ABSENT:
                return []
        return [n for n in names if is_valid(check_table, n) and self.partitions(n)]

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table that hold rows, sorted; [] for a table never written."""
        folder = self._table_dir(table)
        with self._guard():
            try:
                names = sorted(e.name for e in os.scandir(folder) if e.is_dir())
            except ABSENT:
                return []
            return [n for n in names if "~" not in n and self._part_files(table, n)]

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent). The folder is renamed away first, so a
        reader sees the whole partition or none of it."""
        folder = self._table_dir(table) / check_partition(partition)
        trash = folder.with_name(f"{partition}~trash~{uuid.uuid4().hex}")
        with self._guard():
            try:
                folder.rename(trash)
            except ABSENT:
                return
            shutil.rmtree(trash)

    def register(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partitions: builtins.list[str] | None = None,
        *, view: str | None = None, settled: bool = False,
    ) -> bool:
        """Expose the table as a temporary DuckDB view named `view` (default: the table's name; on
        con only) over its current files (re-register after writes); False (nothing registered)
        when there are no files."""
        with self._guard():
            files = [f for p in self._chosen(table, partitions) for f in self._part_files(table, p)]
        if not files:
            return False
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        try:
            con.execute(
                f'CREATE OR REPLACE TEMP VIEW "{check_table(view or table)}" AS '
                f"SELECT * FROM read_parquet([{listing}], union_by_name = true, "
                "hive_partitioning = false)"  # folder names (run=…) are not columns
            )
        except duckdb.IOException as exc:
            raise StoreUnavailable(str(self.root)) from exc
        return True

    def append_query(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partition: str,
        query: str,
        params: builtins.list[Any] | None = None,
    ) -> int:
        """Add the rows of a DuckDB query to a partition as one new Parquet file, written by DuckDB
        (streamed, in the query's order, row groups of QUERY_ROW_GROUP_SIZE rows), all or none;
        returns the rows written (0: no file)."""
        folder = self._table_dir(table) / check_partition(partition)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
        temp = folder / f"{name}~{uuid.uuid4().hex}.tmp"
        with self._guard():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                try:
                    rows = write_query(con, query, params, temp)
                except duckdb.IOException as exc:
                    raise StoreUnavailable(f"{self.root}: cannot write {folder}") from exc
                if rows == 0:
                    temp.unlink(missing_ok=True)
                    return 0
                with open(temp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(temp, folder / name)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            fsync_dir(folder)
        return rows

    def compact(self, table: str, partitions: builtins.list[str] | None = None) -> int:
        """Merge each partition's parts into one file (see Store.compact): the merged file lands
        first, then the parts it holds go, so a reader never misses a row, but may see one twice."""
        merged = 0
        for partition in self._chosen(table, partitions):
            with self._guard():
                parts = self._part_files(table, partition)
                if len(parts) < 2:
                    continue
                rows = pa.concat_tables([pq.read_table(p) for p in parts],
                                        promote_options="default")
                # Named after the newest part it holds, so parts keep sorting in append order.
                name = f"{parts[-1].stem.split('~')[0]}-merged-{uuid.uuid4().hex[:8]}.parquet"
                self._write_atomic(parts[0].parent / name, functools.partial(write_parquet, rows))
                for part in parts:
                    part.unlink(missing_ok=True)
                fsync_dir(parts[0].parent)
            merged += len(parts)
        return merged

    # -- internals -------------------------------------------------------------------------
    def _table_dir(self, table: str) -> Path:
        return self.root / "tables" / check_table(table)

    def _chosen(self, table: str, partitions: builtins.list[str] | None) -> builtins.list[str]:
        if partitions is None:
            return self.partitions(table)
        return sorted({check_partition(p) for p in partitions})

    def _part_files(self, table: str, partition: str) -> builtins.list[Path]:
        folder = self._table_dir(table) / partition
        try:
            names = os.listdir(folder)
        except ABSENT:
            return []
        return [folder / n for n in sorted(names) if n.endswith(".parquet") and "~" not in n]

    def _read_partition(
        self, table: str, partition: str, columns: builtins.list[str] | None
    ) -> builtins.list[pd.DataFrame]:
        frames: list[pd.DataFrame] = []
        for path in self._part_files(table, partition):
            try:
                with open(path, "rb") as f:
                    part = pq.ParquetFile(f)
                    names = None if columns is None else [
                        c for c in columns if c in part.schema_arrow.names
                    ]
                    frames.append(part.read(columns=names).to_pandas())
            except ABSENT:
                return []  # deleted while we read: the whole partition is gone, not half of it
            except pa.ArrowException as exc:
                raise StoreUnavailable(f"{self.root}: unreadable {path}") from exc
        return frames


def write_query(con: duckdb.DuckDBPyConnection, query: str, params: builtins.list[Any] | None,
                path: Path) -> int:
    """DuckDB writes a query's rows to the Parquet file `path` (streamed, in the query's order,
    row groups of QUERY_ROW_GROUP_SIZE rows); the rows written. duckdb.IOException when it
    cannot."""
    target = str(path).replace("'", "''")
    written = con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION snappy, "
                          f"ROW_GROUP_SIZE {QUERY_ROW_GROUP_SIZE})", params or None).fetchall()
    return int(written[0][0]) if written else 0


def write_parquet(rows: pa.Table, sink: IO[bytes] | str) -> None:
    """rows as one Parquet file of ROW_GROUP_SIZE-row groups, zstd. Only columns that repeat are
    dictionary-encoded: a dictionary of unique values (ids, keys) is larger than the values and
    a tenth of a 1M-row write's time; a sample of the first rows tells them apart. Min/max
    statistics only where a filter can skip row groups by them: the numbers and times, and
    CUSIP, the order rows are kept in; other text (ids, hashes, dealers) spans every group, and
    its statistics were a tenth of a 1M-row write."""
    sample = rows.slice(0, _DICTIONARY_SAMPLE)
    repeating = [name for name, column in zip(rows.column_names, sample.columns, strict=True)
                 if _distinct(column) <= len(sample) // 2]
    ranged = [field.name for field in rows.schema
              if field.name == CUSIP or not (pa.types.is_string(field.type)
                                             or pa.types.is_large_string(field.type))]
    # pyarrow-stubs type use_dictionary as a bool; pyarrow takes the columns to encode too.
    pq.write_table(rows, sink, compression="zstd", row_group_size=ROW_GROUP_SIZE,
                   use_dictionary=repeating,  # type: ignore[arg-type]
                   write_statistics=ranged)


def _distinct(column: pa.ChunkedArray) -> int:
    """Distinct values of a column; 0 (as repetitive as can be) for types Arrow cannot count."""
    try:
        return int(pc.count_distinct(column).as_py())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return 0


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in folder durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
