"""The run-table port of the SQL store (storage.run_tables): each run's rows in partition
`run=NNNNNNNN` of real SQL tables (storage.sql_tables) indexed by partition, by CUSIP and DATE and
by MESSAGE_ID. A read naming CUSIPs or message ids is bound SQL on those indexes, and only the
matching rows come to DuckDB (as Arrow); a read of whole runs (a dashboard, a ticker search) scans
this node's read copy of them (storage.sql_cache: local Parquet, fetched once per run and node).
Upkeep keeps each run's rollups (its own partition of colors_rollup, computed once: a run's colors
never change) and, on request, the latest rows of the runs compacted (colors_latest, named by the
manifest document)."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from storage.base import check_table, to_arrow
from storage.errors import WriteConflict
from storage.parquet_layout import (
    LATEST_TABLE,
    MANIFEST_KEY,
    ROLLUP_TABLE,
    load_manifest,
    run_partition,
    sort_rows,
)
from storage.run_tables import (
    COLORS,
    CUSIP,
    DELTA,
    FULL,
    MESSAGE_ID,
    RUN_ID,
    CompactionReport,
    Rollup,
)
from storage.sql_tables import in_list

if TYPE_CHECKING:
    import duckdb

    from storage.sql import SqlStore

log = logging.getLogger(__name__)

# Reading a run's colors to compute its rollups costs a fetch of its rows: upkeep is needed once
# this many runs, or rows, have none kept (and, once anything is kept, for every new run).
MIN_UNKEPT_RUNS, MIN_UNKEPT_ROWS = 10, 100_000
CHUNK_ROWS = 1_000_000  # colors fetched into DuckDB at once by upkeep
# More CUSIPs than this (a bulk search) are matched by DuckDB on the node's read copy: their rows
# are most of a run's row groups anyway, and fetching them through the driver costs ~20 µs a row.
MANY_CUSIPS = 64
_names = itertools.count()


def _run_of(partition: str) -> int | None:
    head, _, number = partition.partition("=")
    return int(number) if head == "run" and number.isdigit() else None


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
                self._keep_copy(table, partition, numbers[table], data)

    def remove_run(self, run_id: int) -> None:
        """The run's rows in every table (its rollups too), in one transaction."""
        self.store.delete_everywhere(run_partition(run_id))

    # -- reads -----------------------------------------------------------------------------
    def runs(self, table: str = COLORS) -> list[int]:
        found = (_run_of(p) for p in self.store.partitions(table))
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
        present = self._present(runs)
        kept = set(self.runs(ROLLUP_TABLE))
        parts = []
        covered = [r for r in present if r in kept]
        if covered:
            view = self._open_partitions(con, ROLLUP_TABLE, [run_partition(r) for r in covered])
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
        view = self._open_partitions(con, LATEST_TABLE, [manifest["partition"]])
        if view:
            parts.append(f"SELECT * FROM {view}")
        new = [r for r in self._present(asked) if r not in set(manifest["runs"])]
        src = self.open(con, COLORS, new) if new else None
        if src:
            sql, params = latest(src)
            name = f"live_latest_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
            parts.append(f"SELECT * FROM {name}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    # -- upkeep ----------------------------------------------------------------------------
    def plan(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], *, latest: bool = False
             ) -> CompactionReport:
        """Needed when removed runs are still in the kept latest rows, when latest rows are asked
        for and none are kept, when anything is kept and a run has no rollups yet, or (nothing
        kept) when many runs or rows have none."""
        asked = sorted(set(runs))
        if not asked:
            return CompactionReport(False, "no published runs")
        manifest, _ = load_manifest(self.store)
        unkept = self._unkept(asked)
        if manifest is not None:
            stale = set(manifest["runs"]) - set(asked)
            if stale:
                return CompactionReport(True, f"{len(stale)} removed run(s) are still in the "
                                              "kept rows")
            if latest and not manifest.get("latest"):
                return CompactionReport(True, "no latest rows are kept (written before them)")
            new = sorted(set(unkept) | (set(self._present(asked)) - set(manifest["runs"])))
            if new:
                return CompactionReport(True, f"{len(new)} new run(s) to keep rows of",
                                        mode=DELTA)
            return CompactionReport(False, "every visible run's rows are kept")
        rows = self._rows(unkept)
        if len(unkept) >= MIN_UNKEPT_RUNS or rows >= MIN_UNKEPT_ROWS:
            return CompactionReport(True, f"{len(unkept)} run(s), {rows:,} rows have no rollups "
                                          "kept")
        return CompactionReport(False, f"{len(unkept)} run(s), {rows:,} rows without rollups "
                                       f"(kept from {MIN_UNKEPT_RUNS} runs or "
                                       f"{MIN_UNKEPT_ROWS:,} rows)")

    def compact(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup, *,
                latest: Rollup | None = None, force: bool = False, now: datetime
                ) -> CompactionReport:
        """Keep the rollups of the runs without (every run's, when forced) and, with `latest`,
        the latest rows of all the runs (folded into the kept ones when they still hold), then
        write the manifest naming them."""
        asked = sorted(set(runs))
        plan = self.plan(con, asked, latest=latest is not None)
        if not asked or not (plan.needed or force):
            return plan
        started = time.perf_counter()
        present = self._present(asked)
        todo = present if force else self._unkept(asked)
        for chunk in self._chunks(todo):
            self._keep_rollups(con, chunk, rollup)
        old, version = load_manifest(self.store)
        partition = None
        if latest is not None:
            partition = self._keep_latest(con, present, latest, None if force else old)
        manifest = {"generation": (old or {}).get("generation", 0) + 1, "runs": present,
                    "latest": latest is not None, "partition": partition,
                    "compacted_at": now.isoformat()}
        try:
            self.store.put(MANIFEST_KEY, manifest, version)
        except WriteConflict:
            if partition:
                self.store.delete_partition(LATEST_TABLE, partition)
            raise
        keep = {p for p in (partition, (old or {}).get("partition")) if p}
        for stale in set(self.store.partitions(LATEST_TABLE)) - keep:
            self.store.delete_partition(LATEST_TABLE, stale)
        seconds = round(time.perf_counter() - started, 3)
        mode = DELTA if plan.mode == DELTA and not force else FULL
        log.info("kept rollups of %s run(s)%s in %ss", len(todo),
                 " and latest rows" if partition else "", seconds)
        return CompactionReport(True, plan.reason if plan.needed else "forced", True, partition,
                                len(asked), self._rows(present), 0, seconds, mode)

    # -- internals -------------------------------------------------------------------------
    def _present(self, runs: Iterable[int]) -> list[int]:
        """The runs asked for that hold colors."""
        held = set(self.runs(COLORS))
        return sorted(r for r in set(runs) if r in held)

    def _unkept(self, asked: Sequence[int]) -> list[int]:
        kept = set(self.runs(ROLLUP_TABLE))
        return [r for r in self._present(asked) if r not in kept]

    def _rows(self, runs: Sequence[int]) -> int:
        states = self.store.partition_states(COLORS)
        return sum(states.get(run_partition(r), (0, 0))[0] for r in runs)

    def _chunks(self, runs: Sequence[int]) -> Iterator[list[int]]:
        """Runs in groups of about CHUNK_ROWS colors (a bigger run is a group of its own)."""
        states = self.store.partition_states(COLORS)
        chunk: list[int] = []
        rows = 0
        for run in runs:
            n = states.get(run_partition(run), (0, 0))[0]
            if chunk and rows + n > CHUNK_ROWS:
                yield chunk
                chunk, rows = [], 0
            chunk.append(run)
            rows += n
        if chunk:
            yield chunk

    def _keep_rollups(self, con: duckdb.DuckDBPyConnection, runs: list[int], rollup: Rollup
                      ) -> None:
        """Compute these runs' rollups and write them, each run's in its own partition,
        replacing what was kept for them (one transaction)."""
        src = self.open(con, COLORS, runs)
        if src is None:
            return
        sql, params = rollup(src)
        rolled = con.sql(sql, params=params or None).to_arrow_table()
        parts = [run_partition(r) for r in rolled.column(RUN_ID).to_pylist()]
        self.store.append_frames([(ROLLUP_TABLE, rolled, parts)],
                                 replace=[run_partition(r) for r in runs])

    def _keep_latest(self, con: duckdb.DuckDBPyConnection, present: list[int], latest: Rollup,
                     old: dict[str, Any] | None) -> str:
        """Fold `latest` over the runs' colors, a chunk at a time, starting from the kept rows
        when they hold no removed run; written to a new partition of LATEST_TABLE."""
        acc = None
        todo = present
        if old and old.get("latest") and old.get("partition") and set(old["runs"]) <= set(
                present):
            acc = self._open_partitions(con, LATEST_TABLE, [old["partition"]])
            todo = [r for r in present if r not in set(old["runs"])]
        for chunk in self._chunks(todo):
            src = self.open(con, COLORS, chunk)
            if src is None:
                continue
            both = f"(SELECT * FROM {acc} UNION ALL BY NAME SELECT * FROM {src})" if acc else src
            sql, params = latest(both)
            name = f"kept_latest_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
            acc = name
        partition = f"gen={uuid.uuid4().hex[:12]}"
        if acc:
            rows = con.sql(f"SELECT * FROM {acc}").to_arrow_table()
            if rows.num_rows:
                numbers = self.store.append_frames([(LATEST_TABLE, rows, partition)])
                self._keep_copy(LATEST_TABLE, partition, numbers[LATEST_TABLE], rows)
        return partition

    def _open_partitions(self, con: duckdb.DuckDBPyConnection, table: str,
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

    def _keep_copy(self, table: str, partition: str, write: int, data: pa.Table) -> None:
        """The copy of a partition this node just wrote, as a read would fetch it: the catalog's
        columns and types (a courtesy: anything odd is left for a read to fetch)."""
        with self.store.reading() as conn:
            ft = self.store.frame_table(conn, table)
        if ft is None:
            return
        n = data.num_rows
        try:
            arrays = [pa.nulls(n, pa.null()) if c.sql_name is None else
                      data.column(c.name).cast(c.arrow_type) if c.name in data.column_names else
                      pa.array([None] * n, c.arrow_type) for c in ft.columns]
            rows = pa.table(arrays, names=[c.name for c in ft.columns])
        except (pa.ArrowException, ValueError):
            return
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
