"""The run-table port of the SQL store (storage.run_tables): each run's rows in partition
`run=NNNNNNNN` of real SQL tables (storage.sql_tables) indexed by partition, by CUSIP and DATE and
by MESSAGE_ID. A read naming CUSIPs or message ids is bound SQL on those indexes, and only the
matching rows come to DuckDB (as Arrow); a read of whole runs (a dashboard, a ticker search) scans
this node's read copy of them (storage.sql_cache: local Parquet, fetched once per run and node).
Upkeep (storage.sql_run_upkeep) keeps each run's rollups and the latest rows of the runs kept."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from storage.base import check_table, to_arrow
from storage.parquet_layout import LATEST_TABLE, ROLLUP_TABLE, load_manifest
from storage.run_layout import run_of, run_partition, sort_rows
from storage.run_tables import (
    COLORS,
    CUSIP,
    MESSAGE_ID,
    CompactionReport,
    Rollup,
)
from storage.sql_tables import in_list

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from storage.sql import SqlStore
    from storage.sql_cache import ReadCopy

# More CUSIPs than this (a bulk search) are matched by DuckDB on the node's read copy: their rows
# are most of a run's row groups anyway, and fetching them through the driver costs ~20 µs a row.
MANY_CUSIPS = 64
# More partitions than this, of no more rows than that in all (each run's rollups: 100 runs of 10M
# colors are 150k rows), are read from merged copies: 100 files cost a dashboard ~0.2 s to open.
# A merged copy holds the runs of one block of MERGE_BLOCK run numbers, so a new run rebuilds its
# block's copy only, not the merge of every run (~0.3 s a dashboard after each publish).
MERGE_FILES, MERGE_ROWS, MERGE_BLOCK = 8, 2_000_000, 16
_names = itertools.count()


def _merged(copy: ReadCopy, table: str, wanted: Sequence[tuple[str, int, int]],
            paths: Sequence[Path]) -> list[Path]:
    """The copies `paths` of `wanted` (in run order), each block of MERGE_BLOCK run numbers read
    from its merged copy (a block of one run, or a copy that cannot be written: as they are)."""
    blocks: dict[int, list[int]] = {}
    for i, (partition, _, _) in enumerate(wanted):
        run = run_of(partition)
        blocks.setdefault(-1 if run is None else run // MERGE_BLOCK, []).append(i)
    found: list[Path] = []
    for block, members in blocks.items():
        merged = (copy.merged(table, [wanted[i] for i in members], [paths[i] for i in members],
                              block=block) if len(members) > 1 else None)
        found += [merged] if merged is not None else [paths[i] for i in members]
    return found


class SqlRunTables:
    """RunTables on a SqlStore: reads are SQL on its indexes, writes one transaction per run."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._pruned: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SqlRunTables({self.store!r})"

    # -- writes ----------------------------------------------------------------------------
    def append_run(self, run_id: int, rows: Mapping[str, pd.DataFrame]) -> None:
        """Every table's rows (sorted by CUSIP then DATE) in one transaction: all or nothing."""
        partition = run_partition(run_id)
        items = [(check_table(table), to_arrow(table, sort_rows(frame)), partition)
                 for table, frame in rows.items() if len(frame)]
        if items:
            numbers = self.store.append_frames(items)
            for table, data, _ in items:  # this node reads them next: keep its copy now
                self.keep_copy(table, partition, numbers[table], data)

    def remove_run(self, run_id: int) -> None:
        """The run's rows in every table (its rollups too), in one transaction."""
        self.store.delete_everywhere(run_partition(run_id))

    # -- reads -----------------------------------------------------------------------------
    def runs(self, table: str = COLORS) -> list[int]:
        found = (run_of(p) for p in self.store.partitions(table))
        return sorted(r for r in found if r is not None)

    def read(self, table: str, runs: Iterable[int], columns: Sequence[str] | None = None
             ) -> pd.DataFrame:
        partitions = [run_partition(r) for r in sorted(set(runs))]
        if not partitions:
            return pd.DataFrame()
        return self.store.scan(table, partitions, None if columns is None else list(columns))

    def open(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int], *,
             cusips: Iterable[str] | None = None, message_ids: Iterable[str] | None = None,
             ) -> str | None:
        """The matching rows, selected by SQL (bound values, on the indexes) and registered on
        con as Arrow under a name of their own."""
        wanted = None if cusips is None else sorted({c.strip().upper() for c in cusips})
        ids = None if message_ids is None else sorted({str(m) for m in message_ids})
        asked = sorted(set(runs))
        if not asked:
            return None
        if wanted is None and ids is None:
            return self._local(con, table, [run_partition(r) for r in asked])
        if ids is None and wanted is not None and len(wanted) > MANY_CUSIPS:
            return self._local_cusips(con, table, [run_partition(r) for r in asked], wanted)
        store = self.store
        with store.reading() as conn:
            ft = store.frame_table(conn, check_table(table))
            if ft is None:
                return None
            where = []
            for name, values in ((CUSIP, wanted), (MESSAGE_ID, ids)):
                if values is not None:
                    column = ft.column(name)
                    where.append(sa.false() if column is None else in_list(column, values))
            rows = store.select(conn, ft, [run_partition(r) for r in asked], None, where)
        return None if rows is None else self._register(con, table, rows)

    def describe(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int],
                 source: str | None = None) -> list[tuple[str, str]]:
        """From `source`, else from the catalog's types (no rows fetched)."""
        if source is None:
            held = set(self.runs(table))
            if not held & set(runs):
                return []
            with self.store.reading() as conn:
                ft = self.store.frame_table(conn, check_table(table))
            if ft is None:
                return []
            empty = pa.schema([pa.field(c.name, c.arrow_type) for c in ft.columns]).empty_table()
            source = self._register(con, table, empty)
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]

    def open_rollups(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup
                     ) -> str | None:
        """The kept rollups of the runs that have them, computed now for the others."""
        present = self.present(runs)
        kept = set(self.runs(ROLLUP_TABLE))
        parts = []
        covered = [r for r in present if r in kept]
        if covered:
            view = self.open_partitions(con, ROLLUP_TABLE, [run_partition(r) for r in covered])
            if view:
                parts.append(f"SELECT * FROM {view}")
        live = [r for r in present if r not in kept]
        src = self.open(con, COLORS, live) if live else None
        if src:
            sql, params = rollup(src)
            name = f"live_rollups_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
            parts.append(f"SELECT * FROM {name}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    def open_latest(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], latest: Rollup
                    ) -> str | None:
        """The kept latest rows plus `latest` of the runs published since; None unless they are
        kept for no run left out (a removed run's rows may hide older ones not kept)."""
        asked = set(runs)
        manifest, _ = load_manifest(self.store)
        if not manifest or not manifest.get("latest") or set(manifest["runs"]) - asked:
            return None
        parts = []
        view = self.open_partitions(con, LATEST_TABLE, [manifest["partition"]])
        if view:
            parts.append(f"SELECT * FROM {view}")
        new = [r for r in self.present(asked) if r not in set(manifest["runs"])]
        src = self.open(con, COLORS, new) if new else None
        if src:
            sql, params = latest(src)
            name = f"live_latest_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
            parts.append(f"SELECT * FROM {name}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    # -- upkeep (storage.sql_run_upkeep) ----------------------------------------------------
    def plan(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], *, latest: bool = False
             ) -> CompactionReport:
        from storage.sql_run_upkeep import plan_upkeep

        return plan_upkeep(self, sorted(set(runs)), latest=latest)

    def compact(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup, *,
                latest: Rollup | None = None, force: bool = False, now: datetime
                ) -> CompactionReport:
        from storage.sql_run_upkeep import keep_rows

        return keep_rows(self, con, sorted(set(runs)), rollup, latest=latest, force=force,
                         now=now)

    # -- internals -------------------------------------------------------------------------
    def present(self, runs: Iterable[int]) -> list[int]:
        """The runs asked for that hold colors."""
        held = set(self.runs(COLORS))
        return sorted(r for r in set(runs) if r in held)

    def open_partitions(self, con: duckdb.DuckDBPyConnection, table: str,
                         partitions: list[str]) -> str | None:
        return self._local(con, table, partitions)

    def _local(self, con: duckdb.DuckDBPyConnection, table: str, partitions: Sequence[str]
               ) -> str | None:
        """A view of these partitions over this node's read copy (fetching the partitions it
        lacks); None when the catalog lists none of them."""
        states = self.store.partition_states(table)
        copy = self.store.read_copy
        self._prune(table, states)
        wanted = [(p, *states[p]) for p in partitions if p in states]
        paths = copy.paths(table, wanted, lambda p: self._fetch(table, p)) if wanted else []
        if not paths:
            return None
        if (len(paths) == len(wanted) > MERGE_FILES
                and sum(rows for _, rows, _ in wanted) <= MERGE_ROWS):
            paths = _merged(copy, table, wanted, paths)
        view = f"sql_{table}_{next(_names)}"
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in paths)
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT * FROM '
                    f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)")
        return view

    def _local_cusips(self, con: duckdb.DuckDBPyConnection, table: str,
                      partitions: Sequence[str], cusips: list[str]) -> str | None:
        view = self._local(con, table, partitions)
        if view is None:
            return None
        name = f"wanted_{next(_names)}"
        con.register(name, pa.table({"v": pa.array(cusips, pa.string())}))
        return f"(SELECT * FROM {view} WHERE {CUSIP} IN (SELECT v FROM {name}))"

    def _fetch(self, table: str, partition: str) -> pa.Table | None:
        with self.store.reading() as conn:
            ft = self.store.frame_table(conn, table)
            return None if ft is None else self.store.select(conn, ft, [partition], None)

    def keep_copy(self, table: str, partition: str, write: int, data: pa.Table) -> None:
        """The copy of a partition this node just wrote, as a read would fetch it: the catalog's
        columns and types (a courtesy: anything odd is left for a read to fetch)."""
        self.keep_copies(table, write, [(partition, data)])

    def keep_copies(self, table: str, write: int, parts: Sequence[tuple[str, pa.Table]]
                    ) -> None:
        """keep_copy of each (partition, rows) that one write (number `write`) wrote."""
        with self.store.reading() as conn:
            ft = self.store.frame_table(conn, table)
        if ft is None:
            return
        for partition, data in parts:
            n = data.num_rows
            try:
                arrays = [pa.nulls(n, pa.null()) if c.sql_name is None else
                          data.column(c.name).cast(c.arrow_type) if c.name in data.column_names
                          else pa.array([None] * n, c.arrow_type) for c in ft.columns]
                rows = pa.table(arrays, names=[c.name for c in ft.columns])
            except (pa.ArrowException, ValueError):
                continue
            self.store.read_copy.keep(table, partition, n, write, rows)

    def _prune(self, table: str, states: Mapping[str, Any]) -> None:
        """Drop copies of partitions gone from the catalog, at most once a minute per table."""
        now = time.monotonic()
        if now - self._pruned.get(table, 0.0) > 60:
            self._pruned[table] = now
            self.store.read_copy.keep_only(table, states)

    @staticmethod
    def _register(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> str:
        name = f"sql_{table}_{next(_names)}"
        con.register(name, rows)
        return name
