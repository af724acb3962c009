"""The table port for runs (DESIGN.md §3): what core asks of the rows runs publish, in domain terms.

Core writes a run's rows, reads the rows of the runs it names (the visible ones: core decides
visibility from its run records), and removes a run. How the rows are laid out (Parquet partitions,
CUSIP-range shards, a delta, rollups, compaction; or indexed SQL tables) is the backend's business:
`run_tables(store)` returns the store's own port when it has one (`store.run_tables()`), else the
Parquet layout shared by the local, memory and S3 stores (storage.parquet_layout).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from storage.base import Store
    from storage.tables import PartitionedStore

# The tables a run writes. COLORS is the one read by CUSIP or message id and kept compacted.
COLORS, EXCLUDED, QUARANTINED = "colors", "excluded", "quarantined"
RUN_TABLES = (COLORS, EXCLUDED, QUARANTINED)
# The port's vocabulary: the columns it selects and orders by (they mirror core.schema's names).
CUSIP, DATE, MESSAGE_ID, RUN_ID, POSITION = "CUSIP", "DATE", "MESSAGE_ID", "RUN_ID", "POSITION"

FULL, DELTA = "full", "delta"  # compaction: a new copy of every run, or the new runs beside it

# A rollup definition: given a FROM item of colors, (SQL of its rollup rows, parameters). Rollup
# rows each belong to one run (RUN_ID). A "latest" definition has the same shape: per key, the rows
# of the newest run among the colors given (highest RUN_ID), so the newest of several parts' rows
# is the newest of them all.
Rollup = Callable[[str], tuple[str, list[Any]]]


@dataclass(frozen=True)
class CompactionReport:
    """What the upkeep of the colors (compaction, for the Parquet layout) found and did."""

    needed: bool
    reason: str
    done: bool = False
    partition: str | None = None
    runs: int = 0
    rows: int = 0
    files: int = 0
    seconds: float = 0.0
    mode: str = FULL  # full: a new copy of every visible run; delta: the new runs beside it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunTables(Protocol):
    """Rows of runs. Nothing here decides visibility: readers name the runs they read, so rows a
    run wrote stay invisible until core's run record says published."""

    def append_run(self, run_id: int, rows: Mapping[str, pd.DataFrame]) -> None:
        """Write a run's rows (table name → frame; empty frames write nothing), all or nothing: a
        failure removes whatever the run had written and raises."""

    def remove_run(self, run_id: int) -> None:
        """Remove every row the run wrote, from every table (idempotent)."""

    def runs(self, table: str = COLORS) -> list[int]:
        """The runs holding rows in table, ascending (a backup copies these)."""

    def read(self, table: str, runs: Iterable[int], columns: Sequence[str] | None = None
             ) -> pd.DataFrame:
        """The rows of these runs as one frame (only `columns` when given); empty if none."""

    def open(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int], *,
             cusips: Iterable[str] | None = None, message_ids: Iterable[str] | None = None,
             ) -> str | None:
        """The rows of these runs (only of these CUSIPs / message ids when given) as a FROM item
        on con (`FROM {item} AS x`); None when they hold no rows. Valid while con is open."""

    def describe(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int],
                 source: str | None = None) -> list[tuple[str, str]]:
        """(name, DuckDB type) of the columns `open` gives for these runs; [] when no rows.
        source: a FROM item `open` gave for them, to describe instead of opening them all."""

    def open_rollups(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup
                     ) -> str | None:
        """The rollup rows of these runs' colors as a FROM item (kept ones where the backend keeps
        them, computed now for the rest); None when the runs published nothing."""

    def open_latest(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], latest: Rollup
                    ) -> str | None:
        """Candidates for the rows `latest` picks from these runs' colors, as a FROM item: the
        ones the backend keeps (compact's `latest`) plus ones computed now for the runs outside
        them; per key the newest run's rows are among them, and the caller picks them (highest
        RUN_ID). None when the backend keeps none that serve exactly these runs (none kept, or
        kept over runs not asked for): the caller computes from the colors instead."""

    def plan(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], *, latest: bool = False
             ) -> CompactionReport:
        """Whether the colors of these runs (the visible ones) need upkeep to stay fast to read.
        latest: the caller keeps latest rows (compact's `latest`), so a kept copy without them
        needs replacing."""

    def compact(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup, *,
                latest: Rollup | None = None, force: bool = False, now: datetime
                ) -> CompactionReport:
        """Do the upkeep `plan` asks for (or a full rewrite when forced); what was done. latest:
        rows to keep for open_latest too."""


_ports: weakref.WeakKeyDictionary[Any, RunTables] = weakref.WeakKeyDictionary()
_ports_lock = threading.Lock()


def run_tables(store: Store) -> RunTables:
    """The store's run-table port, one per store object (it keeps the layout it read)."""
    with _ports_lock:
        port = _ports.get(store)
        if port is None:
            own = getattr(store, "run_tables", None)
            if own is not None:
                port = own()
            else:  # a store of Parquet partitions (local, memory, S3)
                from storage.parquet_layout import ParquetRunTables

                port = ParquetRunTables(cast("PartitionedStore", store))
            _ports[store] = port
        return port
