"""The Store protocol every backend implements (DESIGN.md §3): documents, tables and blobs.

Documents are JSON-able values with opaque string versions (optimistic concurrency). Tables are
append-only sets of Parquet-like partitions that DuckDB can query. Blobs are bytes.
"""

from __future__ import annotations

import builtins
import json
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from storage.errors import InvalidKey, WriteConflict

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

# Pass as expected_version to write whatever the current version is (heartbeats, caches).
ANY_VERSION = "*"

_KEY = re.compile(r"^[A-Za-z0-9_.=@+-]+(/[A-Za-z0-9_.=@+-]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_key(key: str) -> str:
    """Return the key if it is a safe relative path of simple segments, else raise InvalidKey."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(str(key), "empty")
    if len(key) > 512:
        raise InvalidKey(key, "longer than 512 characters")
    if not _KEY.match(key):
        raise InvalidKey(key, "use letters, digits and _ . = @ + - separated by /")
    if any(part in (".", "..") for part in key.split("/")):
        raise InvalidKey(key, "'.' and '..' segments are not allowed")
    return key


def check_prefix(prefix: str) -> str:
    """A list prefix: empty, or a key optionally ending in '/'."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/"))
    return prefix


def check_table(name: str) -> str:
    """Table and partition names: lower-case identifiers (they become DuckDB view names)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidKey(str(name), "table names are lower-case letters, digits and _")
    return name


def check_partition(partition: str) -> str:
    if not isinstance(partition, str) or not re.match(r"^[A-Za-z0-9_=.-]+$", partition):
        raise InvalidKey(str(partition), "partitions are letters, digits and _ = . -")
    if partition in (".", ".."):
        raise InvalidKey(partition, "'.' and '..' are not partitions")
    return partition


def encode_document(key: str, value: Any) -> str:
    """The value as strict JSON text (no NaN/Infinity); TypeError/ValueError if it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{key}: value is not JSON: {exc}") from exc


def check_version(key: str, expected: str | None, actual: str | None) -> None:
    """Raise WriteConflict unless a write expecting `expected` may replace version `actual`."""
    if expected is not None and not isinstance(expected, str):
        raise TypeError(f"{key}: expected_version must be a str or None, got {expected!r}")
    if expected == ANY_VERSION:
        return
    if expected != actual:
        raise WriteConflict(key, expected, actual)


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table (pandas dtypes kept in its schema metadata); ValueError when a
    column cannot be stored, so every backend rejects the same frames before writing anything."""
    import pyarrow as pa  # lazy: the protocol module stays cheap to import

    if not all(isinstance(c, str) for c in frame.columns):
        raise ValueError(f"table {table}: column names must be strings, got {list(frame.columns)}")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValueError(f"table {table}: frame cannot be stored: {exc}") from exc


@runtime_checkable
class Store(Protocol):
    """One protocol, three kinds of data. Every backend passes tests/contract."""

    url: str

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version.

        expected_version: None = the key must not exist yet; ANY_VERSION = unconditional;
        otherwise the version the caller read. A mismatch raises WriteConflict and writes nothing.
        """

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""

    def list(self, prefix: str = "") -> list[str]:
        """Document keys starting with prefix, sorted."""

    # -- tables ----------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition of table, all rows or none, in the frame's order."""

    def scan(
        self,
        table: str,
        partitions: builtins.list[str] | None = None,
        columns: builtins.list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""

    def tables(self) -> builtins.list[str]:
        """Names of the tables holding rows, sorted (with partitions(), enough for a backup)."""

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table, sorted; [] for a table never written."""

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent: removal is idempotent)."""

    def register(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partitions: builtins.list[str] | None = None,
        *, view: str | None = None,
    ) -> bool:
        """Expose table as a DuckDB view named `view` (default: `table`) on con only (temporary:
        other connections of the same database never see it). Returns False (and registers
        nothing) when the table has no rows, so callers can short-circuit."""

    def append_query(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        partition: str,
        query: str,
        params: builtins.list[Any] | None = None,
    ) -> int:
        """Add the rows of a DuckDB query on con to a partition, all rows or none, in the query's
        order and streamed (never one frame in memory), in row groups sized for lookups; returns
        the rows written (0: nothing written). For derived copies such as compaction's."""

    def compact(self, table: str, partitions: builtins.list[str] | None = None) -> int:
        """Merge each partition's parts into one (parts appended meanwhile are left as they are);
        returns how many parts were merged away. Not atomic for readers: for a moment a reader
        may see merged rows twice, or fail to open a part that just went (and must read again).
        So only tables with a unique row key, whose readers dedupe on it and retry, use it."""

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes atomically (readers see the old or the new bytes, never a part)."""

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""
