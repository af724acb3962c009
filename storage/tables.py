"""Tables, the second part of the Store (DESIGN.md §3): append-only rows in named partitions that
DuckDB can query (audit, access log, alert log; the run tables go through storage.run_tables).
`PartitionedStore` adds what the Parquet run layout needs of its store (a query's rows written
straight into a partition, and the manifest document)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from storage.documents import Documents
from storage.errors import InvalidKey

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@runtime_checkable
class Tables(Protocol):
    """Partitioned tables; tables() and partitions() list everything a backup copies."""

    def tables(self) -> list[str]:
        """Names of the tables holding rows, sorted."""

    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition of table, all rows or none, in the frame's order."""

    def scan(self, table: str, partitions: list[str] | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""

    def partitions(self, table: str) -> list[str]:
        """Partition names of the table, sorted; [] for a table never written."""

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent: removal is idempotent)."""

    def register(self, con: duckdb.DuckDBPyConnection, table: str,
                 partitions: list[str] | None = None, *, view: str | None = None,
                 settled: bool = False) -> bool:
        """Expose table as a DuckDB view named `view` (default: `table`) on con only (temporary:
        other connections of the same database never see it). Returns False (and registers
        nothing) when the table has no rows, so callers can short-circuit. settled: the
        partitions are written once under names never used again (a compacted copy's), so a
        store may read them as it listed them before."""

    def compact(self, table: str, partitions: list[str] | None = None) -> int:
        """Merge each partition's parts into one (parts appended meanwhile are left as they are);
        returns how many parts were merged away. Not atomic for readers: for a moment a reader
        may see merged rows twice, or fail to open a part that just went (and must read again).
        So only tables with a unique row key, whose readers dedupe on it and retry, use it."""


@runtime_checkable
class PartitionedStore(Documents, Tables, Protocol):
    """What storage.parquet_layout needs of a store: tables, its manifest document, and this."""

    def append_query(self, con: duckdb.DuckDBPyConnection, table: str, partition: str,
                     query: str, params: list[Any] | None = None) -> int:
        """Add the rows of a DuckDB query on con to a partition, all rows or none, in the query's
        order and streamed (never one frame in memory), in row groups sized for lookups; returns
        the rows written (0: nothing written). For derived copies such as compaction's."""


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
