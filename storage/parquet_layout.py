"""The run-table port on Parquet partitions (local, memory and S3 stores): each run's rows in
its own partition `run=NNNNNNNN` of each table (the record), sorted by CUSIP, plus for the
colors a derived compacted copy (storage.run_compaction: CUSIP-range shards, a delta, rollups) that
readers use when it holds most of the runs they ask for. The manifest document names the copy;
the layout's names and shapes are storage.run_layout's.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from storage.errors import ObjectNotFound
from storage.run_layout import (
    Layout,
    manifest_shards,
    run_of,
    run_partition,
    sort_rows,
)
from storage.run_tables import (
    COLORS,
    CUSIP,
    MESSAGE_ID,
    RUN_ID,
    CompactionReport,
    Rollup,
)

if TYPE_CHECKING:
    import duckdb

    from storage.tables import PartitionedStore

COMPACT_TABLE = "colors_compact"
ROLLUP_TABLE = "colors_rollup"
LATEST_TABLE = "colors_latest"  # compact's `latest` rows, under the rollups' partition names
MANIFEST_KEY = "meta/compaction/colors"
_INLINE_IDS = 64  # more CUSIPs or message ids than this are joined from a table, not inlined
_LAYOUTS_KEPT = 8  # layouts kept per store: the visible runs, and a few smaller sets (dashboard)
_names = itertools.count()


def load_manifest(store: PartitionedStore) -> tuple[dict[str, Any] | None, str | None]:
    """The compacted copy's manifest (written last by a compaction) and its version."""
    try:
        return store.get(MANIFEST_KEY)
    except ObjectNotFound:
        return None, None


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


class ParquetRunTables:
    """RunTables (storage.run_tables) over a store's partitioned tables and one manifest document.
    Keeps the layouts it read, keyed on the manifest's version and the runs asked for."""

    def __init__(self, store: PartitionedStore) -> None:
        self.store = store
        self._layouts: OrderedDict[tuple[Any, ...], tuple[Layout, list[tuple[str, str]]]] = (
            OrderedDict())
        # per open DuckDB connection (one read), the layouts it read, by the runs asked for
        self._opened: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[
            tuple[int, ...], tuple[Layout, list[tuple[str, str]]]]] = weakref.WeakKeyDictionary()
        # per open DuckDB connection, the views it registered, by table and partitions
        self._views: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[
            tuple[str, tuple[str, ...]], str | None]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ParquetRunTables({self.store!r})"

    # -- writes ----------------------------------------------------------------------------
    def append_run(self, run_id: int, rows: Mapping[str, pd.DataFrame]) -> None:
        """One partition per table, rows sorted by CUSIP then DATE; a failure removes the run."""
        partition = run_partition(run_id)
        try:
            for table, frame in rows.items():
                if len(frame):
                    self.store.append(table, sort_rows(frame), partition)
        except BaseException:
            for table in rows:
                self.store.delete_partition(table, partition)
            raise
        finally:
            self._forget_reads()  # a connection that read before reads the run's rows too

    def remove_run(self, run_id: int) -> None:
        partition = run_partition(run_id)
        try:
            for table in self.store.tables():
                self.store.delete_partition(table, partition)
        finally:
            self._forget_reads()

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

    def layout(self, runs: Iterable[int]) -> Layout:
        """The layout for reading these runs' colors (kept until the manifest changes)."""
        return self._entry(runs)[0]

    def open(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int], *,
             cusips: Iterable[str] | None = None, message_ids: Iterable[str] | None = None,
             ) -> str | None:
        """A FROM item; for the colors, the shards holding `cusips` only (a lookup opens one
        file of the copy: DuckDB pays per row group of every file it opens)."""
        wanted = None if cusips is None else sorted({c.strip().upper() for c in cusips})
        where = self._where(con, CUSIP, wanted) + self._where(
            con, MESSAGE_ID, None if message_ids is None else sorted({str(m) for m in message_ids}))
        if table != COLORS:
            view = self._register(con, table, sorted(set(runs)))
            return f"(SELECT * FROM {view}{_clause(where)})" if view else None
        layout = self._layout_on(con, runs)
        parts = []
        own = layout.present
        if layout.reads_copy:
            shards = layout.shards
            if wanted is not None:
                shards = tuple(s for s in shards if any(s.holds(c) for c in wanted))
            copied = [s.partition for s in shards] + ([layout.delta] if layout.delta else [])
            view = self._register(con, COMPACT_TABLE, copied, runs=False) if copied else None
            if view:
                parts.append(f"SELECT * FROM {view}{_clause(self._stale(con, layout) + where)}")
            own = layout.uncovered
        view = self._register(con, COLORS, own)
        if view:
            parts.append(f"SELECT * FROM {view}{_clause(where)}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    def describe(self, con: duckdb.DuckDBPyConnection, table: str, runs: Iterable[int],
                 source: str | None = None) -> list[tuple[str, str]]:
        """Described once per layout for the colors (a DESCRIBE binds every file it names, so
        describing `source`, a lookup's few files, costs less than opening them all)."""
        cached = self._entry_on(con, runs)[1] if table == COLORS else []
        if cached:
            return cached
        src = source or self.open(con, table, runs)
        if src is None:
            return []
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        cached[:] = described
        return described

    def open_rollups(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup
                     ) -> str | None:
        layout = self._layout_on(con, runs)
        parts = []
        own = layout.present
        if layout.reads_copy:
            rolled = [p for p in (layout.compact_partition, layout.delta) if p]
            view = self._register(con, ROLLUP_TABLE, rolled, runs=False)
            if view:
                parts.append(f"SELECT * FROM {view}{_clause(self._stale(con, layout))}")
            own = layout.uncovered
        view = self._register(con, COLORS, own)
        if view:
            live, params = rollup(view)
            name = f"live_rollups_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {live}", params)
            parts.append(f"SELECT * FROM {name}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    def open_latest(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], latest: Rollup
                    ) -> str | None:
        """The copy's and its delta's latest rows plus `latest` of the runs published since;
        None unless the copy keeps them and holds no run left out (a removed run's rows may be
        the newest of their key, and the rows they hid are not kept)."""
        layout = self._layout_on(con, runs)
        if not (layout.latest and layout.reads_copy) or layout.stale:
            return None
        parts = []
        kept = [p for p in (layout.compact_partition, layout.delta) if p]
        view = self._register(con, LATEST_TABLE, kept, runs=False)
        if view:
            parts.append(f"SELECT * FROM {view}")
        own = self._register(con, COLORS, layout.uncovered)
        if own:
            live, params = latest(own)
            name = f"live_latest_{next(_names)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {live}", params)
            parts.append(f"SELECT * FROM {name}")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    # -- upkeep ----------------------------------------------------------------------------
    def plan(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], *, latest: bool = False
             ) -> CompactionReport:
        from storage import run_compaction

        return run_compaction.plan_compaction(self, con, tuple(sorted(set(runs))), latest=latest)

    def compact(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int], rollup: Rollup, *,
                latest: Rollup | None = None, force: bool = False, now: datetime
                ) -> CompactionReport:
        from storage import run_compaction

        self._forget_reads()  # compaction reads the layout as it is now
        try:
            return run_compaction.compact_colors(self, con, tuple(sorted(set(runs))), rollup,
                                                 latest=latest, force=force, now=now)
        finally:
            self._forget_reads()  # a connection that read before reads the new copy

    # -- internals -------------------------------------------------------------------------
    def _layout_on(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int]) -> Layout:
        return self._entry_on(con, runs)[0]

    def _entry_on(self, con: duckdb.DuckDBPyConnection, runs: Iterable[int]
                  ) -> tuple[Layout, list[tuple[str, str]]]:
        """The layout of these runs as this connection first read it: one read (one query, one
        page, a connection's life) sees one manifest, read once (on a shared store each read is
        a request); this port's own writes start every connection's next read afresh."""
        asked = tuple(sorted(set(runs)))
        with self._lock:
            held = self._opened.get(con, {}).get(asked)
        if held is None:
            held = self._entry(asked)
            with self._lock:
                self._opened.setdefault(con, {})[asked] = held
        return held

    def _forget_reads(self) -> None:
        with self._lock:
            self._opened.clear()
            self._views.clear()

    def _entry(self, runs: Iterable[int]) -> tuple[Layout, list[tuple[str, str]]]:
        asked = tuple(sorted(set(runs)))
        manifest, version = load_manifest(self.store)
        key = (version, asked)
        with self._lock:
            cached = self._layouts.get(key)
            if cached is not None:
                self._layouts.move_to_end(key)
                return cached
        delta = (manifest or {}).get("delta") or {}
        copied = set(manifest["runs"]) | set(delta.get("runs", [])) if manifest else set()
        held = set(self.runs(COLORS))
        layout = Layout(
            runs=asked,
            compact_partition=manifest["partition"] if manifest else None,
            covered=tuple(r for r in asked if r in copied),
            uncovered=tuple(r for r in asked if r not in copied and r in held),
            stale=tuple(sorted(copied - set(asked))),
            shards=manifest_shards(manifest),
            delta=delta.get("partition"),
            present=tuple(r for r in asked if r in held),
            latest=bool(manifest and manifest.get("latest") and (
                not delta or delta.get("latest"))),
        )
        entry: tuple[Layout, list[tuple[str, str]]] = (layout, [])
        with self._lock:  # the app's threads share one port per store
            self._layouts[key] = entry
            while len(self._layouts) > _LAYOUTS_KEPT:
                self._layouts.popitem(last=False)
        return entry

    def _register(self, con: duckdb.DuckDBPyConnection, table: str, parts: Sequence[Any], *,
                  runs: bool = True) -> str | None:
        """A temporary view of these partitions (of these runs, when `runs`) under a name of its
        own (a later view never changes an earlier FROM item); None when they hold no rows.
        The compacted copy's partitions are settled: each generation and delta is written once
        under a name never used again. A run's are not: a restore of an older backup gives its
        number to another run. Within one read (a connection) the same partitions are one view,
        listed once: a dashboard listed a new run's colors four times (live rollups, latest
        rows, the latest parents, the price trend)."""
        partitions = [run_partition(p) for p in parts] if runs else list(parts)
        if not partitions:
            return None
        key = (table, tuple(partitions))
        with self._lock:
            seen = self._views.get(con, {})
            if key in seen:
                return seen[key]
        view: str | None = f"{table}_{next(_names)}"
        if not self.store.register(con, table, partitions, view=view, settled=not runs):
            view = None
        with self._lock:
            self._views.setdefault(con, {})[key] = view
        return view

    def _where(self, con: duckdb.DuckDBPyConnection, column: str, values: list[str] | None
               ) -> list[str]:
        if values is None:
            return []
        if len(values) <= _INLINE_IDS:
            return [f"{column} IN ({_quoted(values)})" if values else "FALSE"]
        name = f"wanted_{next(_names)}"
        con.register(name, pa.table({"v": pa.array(values, pa.string())}))
        return [f"{column} IN (SELECT v FROM {name})"]

    def _stale(self, con: duckdb.DuckDBPyConnection, layout: Layout) -> list[str]:
        """The copy's rows of runs not asked for are filtered out."""
        if not layout.stale:
            return []
        name = f"wanted_runs_{next(_names)}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                    f"SELECT unnest(?::BIGINT[]) AS {RUN_ID}", [list(layout.covered)])
        return [f"{RUN_ID} IN (SELECT {RUN_ID} FROM {name})"]


def _clause(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""
