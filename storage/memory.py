"""MemoryStore: the Store protocol held in dicts, for unit tests and demos.

A real adapter, not a mock: it passes tests/contract, so it rejects what the disk backends reject
(non-JSON values, frames Parquet cannot hold) and hands out copies, never its own state.
"""

from __future__ import annotations

import builtins
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

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
from storage.blobs import check_file
from storage.errors import ObjectNotFound

if TYPE_CHECKING:
    import duckdb


class MemoryStore:
    """Documents, tables and blobs in process memory; every operation holds one lock."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        # key → (JSON text, version number): storing text means callers can never share our objects
        self._docs: dict[str, tuple[str, int]] = {}
        self._tables: dict[str, dict[str, list[pd.DataFrame]]] = {}
        self._blobs: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({self.url!r})"

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""
        check_key(key)
        with self._lock:
            if key not in self._docs:
                raise ObjectNotFound(key)
            text, version = self._docs[key]
        return json.loads(text), str(version)

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version (see Store.put)."""
        check_key(key)
        text = encode_document(key, value)
        with self._lock:
            current = self._docs.get(key)
            check_version(key, expected_version, None if current is None else str(current[1]))
            version = 1 if current is None else current[1] + 1
            self._docs[key] = (text, version)
        return str(version)

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""
        check_key(key)
        with self._lock:
            if key not in self._docs:
                raise ObjectNotFound(key)
            check_version(key, expected_version, str(self._docs[key][1]))
            del self._docs[key]

    def list(self, prefix: str = "") -> list[str]:
        """Document keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._lock:
            return sorted(k for k in self._docs if k.startswith(prefix))

    # -- tables ----------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition, all rows or none; an empty frame is a no-op."""
        check_table(table)
        check_partition(partition)
        if len(frame) == 0:
            return
        # Through Arrow and back, so dtypes come out exactly as the Parquet backends return them.
        stored = to_arrow(table, frame.reset_index(drop=True)).to_pandas()
        with self._lock:
            self._tables.setdefault(table, {}).setdefault(partition, []).append(stored)

    def scan(
        self,
        table: str,
        partitions: builtins.list[str] | None = None,
        columns: builtins.list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""
        check_table(table)
        wanted = None if partitions is None else sorted({check_partition(p) for p in partitions})
        with self._lock:
            stored = self._tables.get(table, {})
            names = sorted(stored) if wanted is None else wanted
            frames = [f for name in names for f in stored.get(name, [])]
        if not frames:
            return pd.DataFrame()
        rows = pd.concat(frames, ignore_index=True)
        return rows[list(columns)].copy() if columns is not None else rows.copy()

    def tables(self) -> builtins.list[str]:
        """Names of the tables that hold rows, sorted."""
        with self._lock:
            return sorted(name for name, parts in self._tables.items() if parts)

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table, sorted; [] for a table never written."""
        check_table(table)
        with self._lock:
            return sorted(self._tables.get(table, {}))

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent)."""
        check_table(table)
        check_partition(partition)
        with self._lock:
            self._tables.get(table, {}).pop(partition, None)

    def register(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partitions: builtins.list[str] | None = None,
        *, view: str | None = None, settled: bool = False,
    ) -> bool:
        """Expose the table as a DuckDB view named `view` (default: the table's name); False
        (nothing registered) if empty."""
        rows = self.scan(table, partitions)
        if rows.empty:
            return False
        con.register(check_table(view or table), rows)
        return True

    def append_query(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partition: str,
        query: str,
        params: builtins.list[Any] | None = None,
    ) -> int:
        """Add the rows of a DuckDB query to a partition, all or none; returns the rows added."""
        check_table(table)
        check_partition(partition)
        frame = con.sql(query, params=params or None).to_arrow_table().to_pandas()
        self.append(table, frame, partition)
        return len(frame)

    def compact(self, table: str, partitions: builtins.list[str] | None = None) -> int:
        """Merge each partition's frames into one; returns how many were merged away."""
        check_table(table)
        merged = 0
        with self._lock:
            stored = self._tables.get(table, {})
            for name in sorted(stored) if partitions is None else partitions:
                frames = stored.get(check_partition(name), [])
                if len(frames) > 1:
                    stored[name] = [pd.concat(frames, ignore_index=True)]
                    merged += len(frames)
        return merged

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes (readers see the old or the new bytes)."""
        check_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{key}: blob data must be bytes, got {type(data).__name__}")
        with self._lock:
            self._blobs[key] = bytes(data)

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""
        check_key(key)
        with self._lock:
            if key not in self._blobs:
                raise ObjectNotFound(key)
            return self._blobs[key]

    @contextmanager
    def open_blob(self, key: str) -> Iterator[IO[bytes]]:
        """A file over the blob's bytes (they are never changed in place: no copy is made)."""
        data = self.get_blob(key)
        with io.BytesIO(data) as file:
            yield file

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """The file's bytes as one blob (a memory store holds them whole anyway)."""
        check_key(key)
        check_file(key, file)
        data = file.read()
        self.put_blob(key, data)
        return len(data)

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._lock:
            return sorted(k for k in self._blobs if k.startswith(prefix))

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""
        check_key(key)
        with self._lock:
            self._blobs.pop(key, None)
