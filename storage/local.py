"""LocalStore: the Store protocol on one machine's disk (the default backend, `data/`).

Layout under root: docs/<key>.json holding {"version": n, "value": …}; tables/<table>/<partition>/
part-*.parquet, one file per append; blobs/<key>. Every write
lands under a temporary name containing "~" (no key can) and is renamed into place, so readers
never see half of it.
"""

from __future__ import annotations

import builtins
import functools
import glob
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import duckdb
import filelock
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.base import (
    ANY_VERSION,
    check_key,
    check_partition,
    check_prefix,
    check_table,
    check_version,
    encode_document,
    to_arrow,
)
from storage.blobs import CHUNK, check_file
from storage.errors import InvalidKey, ObjectNotFound, StoreUnavailable
from storage.run_tables import CUSIP

# Rows per Parquet row group of every file: tables are sorted by CUSIP, so a lookup decodes one
# group per file. At 10M rows 20k-row groups cost ~40% less than 100k, while 8k and 4k cost more
# (DuckDB pays per row group and column), and snappy decodes in half zstd's time for 1.5x the
# bytes (bench/search.py). A multiple of DuckDB's 2,048-row vectors, as DuckDB rounds up.
ROW_GROUP_SIZE = QUERY_ROW_GROUP_SIZE = 20_480
_DICTIONARY_SAMPLE = 4096  # rows whose distinct values decide a column's dictionary encoding
LOCK_TIMEOUT = 30.0  # seconds to wait for another process's document write before giving up
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class _SourceFailed(Exception):
    """put_blob_file's file failed to read (carried past _guard, which blames the disk)."""


class LocalStore:
    """Documents as JSON files, tables as Parquet files, blobs as files, all under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root.absolute()}"
        # One lock for every document write: compare-and-set must be atomic across processes.
        self._lock = filelock.FileLock(str(self.root / ".lock"), timeout=LOCK_TIMEOUT)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""
        with self._guard():
            found = self._read_document(self._doc_path(key))
        if found is None:
            raise ObjectNotFound(key)
        return found[0], str(found[1])

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version (see Store.put)."""
        path = self._doc_path(key)
        text = encode_document(key, value)
        with self._guard(key), self._locked():
            found = self._read_document(path)
            check_version(key, expected_version, None if found is None else str(found[1]))
            version = 1 if found is None else found[1] + 1
            envelope = f'{{"version": {version}, "value": {text}}}\n'.encode()
            self._write_atomic(path, lambda f: f.write(envelope))
        return str(version)

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""
        path = self._doc_path(key)
        with self._guard(key), self._locked():
            found = self._read_document(path)
            if found is None:
                raise ObjectNotFound(key)
            check_version(key, expected_version, str(found[1]))
            path.unlink()
            _fsync_dir(path.parent)

    def list(self, prefix: str = "") -> list[str]:
        """Document keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._guard():
            names = self._walk(self.root / "docs", prefix)
        keys = (n[: -len(".json")] for n in names if n.endswith(".json"))
        return sorted(k for k in keys if k.startswith(prefix))

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
            except _ABSENT:
                return []
        return [n for n in names if _is_table(n) and self.partitions(n)]

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table that hold rows, sorted; [] for a table never written."""
        folder = self._table_dir(table)
        with self._guard():
            try:
                names = sorted(e.name for e in os.scandir(folder) if e.is_dir())
            except _ABSENT:
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
            except _ABSENT:
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
        target = str(temp).replace("'", "''")
        with self._guard():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                try:
                    written = con.execute(
                        f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION snappy, "
                        f"ROW_GROUP_SIZE {QUERY_ROW_GROUP_SIZE})", params or None).fetchall()
                except duckdb.IOException as exc:
                    raise StoreUnavailable(f"{self.root}: cannot write {folder}") from exc
                rows = int(written[0][0]) if written else 0
                if rows == 0:
                    temp.unlink(missing_ok=True)
                    return 0
                with open(temp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(temp, folder / name)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_dir(folder)
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
                _fsync_dir(parts[0].parent)
            merged += len(parts)
        return merged

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes atomically (readers see the old or the new bytes, never a part)."""
        path = self._blob_path(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{key}: blob data must be bytes, got {type(data).__name__}")
        with self._guard(key):
            self._write_atomic(path, lambda f: f.write(data))

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""
        path = self._blob_path(key)
        with self._guard():
            try:
                return path.read_bytes()
            except _ABSENT:
                raise ObjectNotFound(key) from None

    @contextmanager
    def open_blob(self, key: str) -> Iterator[IO[bytes]]:
        """The blob's file itself, opened for reading (a later write replaces the file, never
        changes it: this one keeps the bytes it had)."""
        path = self._blob_path(key)
        with self._guard():
            try:
                file = path.open("rb")
            except _ABSENT:
                raise ObjectNotFound(key) from None
        with file:
            yield file

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """Copy the file into the blob's temporary file a CHUNK at a time, then rename it. The
        file's own errors are raised as they are (not the store's: it is not the disk's fault)."""
        path = self._blob_path(key)
        check_file(key, file)
        written = 0

        def copy(out: IO[bytes]) -> None:
            nonlocal written
            while True:
                try:
                    piece = file.read(CHUNK)
                except OSError as exc:
                    raise _SourceFailed(exc) from exc
                if not piece:
                    return
                written += out.write(piece)

        try:
            with self._guard(key):
                self._write_atomic(path, copy)
        except _SourceFailed as failed:
            raise failed.args[0] from None
        return written

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._guard():
            keys = self._walk(self.root / "blobs", prefix)
        return sorted(k for k in keys if k.startswith(prefix))

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent) and what an interrupted write of it left behind
        (a process killed mid-write leaves its temporary file)."""
        path = self._blob_path(key)
        with self._guard():
            for temp in path.parent.glob(f"{glob.escape(path.name)}~*.tmp"):
                temp.unlink(missing_ok=True)
            try:
                path.unlink()
            except _ABSENT:
                return
            _fsync_dir(path.parent)

    # -- internals -------------------------------------------------------------------------
    def _doc_path(self, key: str) -> Path:
        return self.root / "docs" / f"{check_key(key)}.json"

    def _blob_path(self, key: str) -> Path:
        return self.root / "blobs" / check_key(key)

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
        except _ABSENT:
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
            except _ABSENT:
                return []  # deleted while we read: the whole partition is gone, not half of it
            except pa.ArrowException as exc:
                raise StoreUnavailable(f"{self.root}: unreadable {path}") from exc
        return frames

    def _read_document(self, path: Path) -> tuple[Any, int] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except _ABSENT:
            return None
        try:
            envelope = json.loads(text)
            return envelope["value"], int(envelope["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"{self.root}: unreadable {path}") from exc

    def _walk(self, base: Path, prefix: str) -> builtins.list[str]:
        """Paths of the files under base in the folder prefix names; names no key can have
        (temporary "~" files, strays copied in by hand) are skipped."""
        head = prefix.rpartition("/")[0]
        start = base / head if head else base

        def fail(exc: OSError) -> None:
            if not isinstance(exc, _ABSENT):
                raise exc

        keys = []
        for folder, _dirs, files in os.walk(start, onerror=fail):
            rel = Path(folder).relative_to(base).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if _is_key(key):
                    keys.append(key)
        return keys

    def _write_atomic(self, path: Path, write: Callable[[IO[bytes]], object]) -> None:
        """Write to a temporary file beside path, fsync it, then rename it over path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}~{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    @contextmanager
    def _guard(self, key: str | None = None) -> Iterator[None]:
        """Translate OS errors: a key clashing with another key's folder is InvalidKey, a busy
        lock or any other failure of the disk is StoreUnavailable."""
        try:
            yield
        except filelock.Timeout as exc:
            raise StoreUnavailable(f"{self.root} (document lock busy)") from exc
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            if key is None or not self.root.is_dir():
                raise StoreUnavailable(str(self.root)) from exc
            raise InvalidKey(key, "clashes with the folder of another key") from exc
        except OSError as exc:
            raise StoreUnavailable(str(self.root)) from exc


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


def _is_table(name: str) -> bool:
    try:
        check_table(name)
    except InvalidKey:
        return False
    return True


def _is_key(name: str) -> bool:
    try:
        check_key(name)
    except InvalidKey:
        return False
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in folder durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
