"""How readers see published colors: one in-process DuckDB database, and the published colors of the
visible runs as one FROM item: the compacted copy (core.reads.compaction: CUSIP-clustered shards,
so a
lookup opens only the shard holding its CUSIPs) plus the runs published since, with rollups."""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core import catalog
from core.runs import records as runs
from storage import ObjectNotFound, Store

COMPACT_TABLE = catalog.COLORS_COMPACT.key
ROLLUP_TABLE = catalog.COLORS_ROLLUP.key
MANIFEST_KEY = catalog.COMPACTION_MANIFEST.key
DIFF_RANGE, DIFF_BIN = 5.0, 0.25  # PX − COV_PRICE histogram: points, clamped into the edge bins
_MEMORY_LIMIT = "1GB"  # per process; sorts beyond it spill to the temp directory

_db: duckdb.DuckDBPyConnection | None = None
_db_lock = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    """The process's DuckDB database, created on first use. Opening one costs ~45 ms of CPU here,
    and its Parquet metadata cache turns a lookup's footer reads into memory reads."""
    global _db
    with _db_lock:
        if _db is None:
            spill = f"{tempfile.gettempdir()}/marketpulse-duckdb-{os.getpid()}"  # one per process
            db = duckdb.connect(config={"memory_limit": _MEMORY_LIMIT, "temp_directory": spill})
            db.execute("SET GLOBAL parquet_metadata_cache = true")  # files are never rewritten
            # DuckDB's profiler: on a file of ~500 row groups these two optimizers spend ~25 ms per
            # query merging row-group statistics, more than a CUSIP lookup itself. Our queries are
            # filtered scans whose few joins are written in a good order, so the plans lose nothing.
            db.execute("SET disabled_optimizers = 'statistics_propagation,join_order'")
            db.execute("SET GLOBAL TimeZone = 'UTC'")  # days and months are UTC days and months
            _db = db
        return _db


@contextmanager
def duckdb_session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private connection for one query (in UTC). What it registers is temporary (store.register
    makes temporary views, we make temporary tables), so it cannot clash with another thread's
    and is gone when the connection closes on exit."""
    db = _database()
    with _db_lock:
        con = db.cursor()
    try:
        yield con
    finally:
        con.close()


_PANDAS_TYPES = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype(),
                 pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
                 pa.float64(): pd.Float64Dtype(), pa.bool_(): pd.BooleanDtype()}


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as the frame the store's scan would give (nullable dtypes, UTC, dates as
    datetime64)."""
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get, date_as_object=False)
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) != "UTC":
            frame[name] = frame[name].dt.tz_convert("UTC")
    return frame


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None, *,
                drop: Sequence[str] = ()) -> pd.DataFrame:
    """Run a parameterised query and return its rows as a frame, without the `drop` columns
    (dropped from the Arrow result: dropping from the frame costs more than converting it)."""
    table = con.sql(sql, params=params or None).to_arrow_table()
    return to_frame(table.drop_columns(list(drop)) if drop else table)


# -- the layout readers see -----------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One file of the compacted copy: the CUSIPs from low (inclusive) to high (exclusive); None is
    unbounded."""

    partition: str
    low: str | None = None
    high: str | None = None

    def holds(self, cusip: str) -> bool:
        return (self.low is None or self.low <= cusip) and (self.high is None or cusip < self.high)


@dataclass(frozen=True)
class Layout:
    """Where each visible run's rows are read from: the compacted copy (covered: its shards, and the
    delta holding the runs compacted since; rollups in compact_partition and delta) or the run's
    own partition (uncovered); stale runs are in the copy but no longer visible (filtered out)."""

    visible: tuple[int, ...]
    compact_partition: str | None
    covered: tuple[int, ...]
    uncovered: tuple[int, ...]
    stale: tuple[int, ...]
    shards: tuple[Shard, ...] = ()
    delta: str | None = None


def load_manifest(store: Store) -> tuple[dict[str, Any] | None, str | None]:
    """The compacted copy's manifest (written last by a compaction) and its version."""
    try:
        return store.get(MANIFEST_KEY)
    except ObjectNotFound:
        return None, None


def manifest_shards(manifest: dict[str, Any] | None) -> tuple[Shard, ...]:
    """The copy's shards; a manifest written before shards existed names one unbounded file."""
    if not manifest:
        return ()
    if "shards" not in manifest:
        return (Shard(manifest["partition"]),)
    return tuple(Shard(s["partition"], s.get("low"), s.get("high")) for s in manifest["shards"])


_layouts: weakref.WeakKeyDictionary[Any, tuple[tuple[str, str | None], Layout, list[Any]]] = (
    weakref.WeakKeyDictionary())


def read_layout(store: Store) -> Layout:
    """The current layout: visible runs and where their rows are. Kept per store until the data
    version or the manifest changes (reading every run record on each query would cost more than
    the query)."""
    manifest, manifest_version = load_manifest(store)
    key = (runs.data_version(store), manifest_version)
    cached = _layouts.get(store)
    if cached is not None and cached[0] == key:
        return cached[1]
    visible = runs.visible_run_ids(store)
    delta = (manifest or {}).get("delta") or {}
    copied = set(manifest["runs"]) | set(delta.get("runs", [])) if manifest else set()
    present = set(store.partitions(runs.COLORS_TABLE))
    layout = Layout(
        visible=tuple(visible),
        compact_partition=manifest["partition"] if manifest else None,
        covered=tuple(r for r in visible if r in copied),
        uncovered=tuple(r for r in visible if r not in copied
                        and runs.run_partition(r) in present),
        stale=tuple(sorted(copied - set(visible))),
        shards=manifest_shards(manifest),
        delta=delta.get("partition"),
    )
    _layouts[store] = (key, layout, [])
    return layout


def _visible_filter(con: duckdb.DuckDBPyConnection, layout: Layout) -> str:
    if not layout.stale:
        return ""
    con.execute("CREATE OR REPLACE TEMP TABLE visible_runs AS SELECT unnest(?::BIGINT[]) AS RUN_ID",
                [list(layout.covered)])
    return " WHERE RUN_ID IN (SELECT RUN_ID FROM visible_runs)"


def open_colors(store: Store, con: duckdb.DuckDBPyConnection, layout: Layout | None = None, *,
                cusips: Iterable[str] | None = None) -> str | None:
    """Register every visible run's colors on con and return them as a FROM item
    (`FROM {src} AS published`); None when there are none. Uncovered runs stay registered as
    `colors` for open_rollups. A FROM item rather than a view: binding a view costs as much as a
    query, and every file adds to each bind. `cusips`: the query reads only these CUSIPs, so only
    the shards holding them are opened (DuckDB's per-row-group cost is paid for those alone)."""
    layout = layout or read_layout(store)
    shards = layout.shards
    if cusips is not None:
        wanted = {c.strip().upper() for c in cusips}
        shards = tuple(s for s in shards if any(s.holds(c) for c in wanted))
    copied = [s.partition for s in shards] + ([layout.delta] if layout.delta else [])
    parts = []
    if layout.covered and copied and store.register(con, COMPACT_TABLE, copied):
        parts.append(f"SELECT * FROM {COMPACT_TABLE}{_visible_filter(con, layout)}")
    partitions = [runs.run_partition(r) for r in layout.uncovered]
    if partitions and store.register(con, runs.COLORS_TABLE, partitions):
        parts.append(f"SELECT * FROM {runs.COLORS_TABLE}")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None


def published_columns(store: Store, con: duckdb.DuckDBPyConnection, src: str
                      ) -> list[tuple[str, str]]:
    """(name, DuckDB type) of the published colors, described once per layout."""
    cached = _layouts.get(store)
    if cached is not None and cached[2]:
        return cached[2]
    found = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    described = [(row[0], row[1]) for row in found]
    if cached is not None:
        cached[2][:] = described
    return described


def rollup_sql(source: str) -> tuple[str, list[Any]]:
    """Rollups of a colors FROM item: counts per run × day × sector × source × bias × parent
    (KIND 'count') and the PX − COV_PRICE histogram per run × day × sector × DIFF_STATUS
    ('diff')."""
    keys = "RUN_ID, PROCESSED_AT, PROCESSING_TYPE, DATE, SECTOR"
    low, high = -DIFF_RANGE, DIFF_RANGE - DIFF_BIN / 2
    sql = (
        f"SELECT 'count' AS KIND, {keys}, SOURCE, BIAS, IS_PARENT, NULL::VARCHAR AS DIFF_STATUS, "
        f"NULL::INTEGER AS BIN, count(*) AS COLORS FROM {source} GROUP BY ALL "
        f"UNION ALL SELECT 'diff' AS KIND, {keys}, NULL::VARCHAR, NULL::VARCHAR, NULL::BOOLEAN, "
        "DIFF_STATUS, CAST(floor(greatest(least(PX - COV_PRICE, ?), ?) / ?) AS INTEGER) AS BIN, "
        f"count(*) FROM {source} WHERE PX IS NOT NULL AND COV_PRICE IS NOT NULL GROUP BY ALL"
    )
    return sql, [high, low, DIFF_BIN]


def open_rollups(store: Store, con: duckdb.DuckDBPyConnection, layout: Layout) -> str | None:
    """Rollups (see rollup_sql) of every visible run as a FROM item: the compacted rollups plus
    rollups computed now from the uncovered runs (call open_colors first); None when none."""
    parts = []
    rolled = [p for p in (layout.compact_partition, layout.delta) if p]
    if layout.covered and store.register(con, ROLLUP_TABLE, rolled):
        parts.append(f"SELECT * FROM {ROLLUP_TABLE}{_visible_filter(con, layout)}")
    if layout.uncovered:
        live, live_params = rollup_sql(runs.COLORS_TABLE)
        con.execute(f"CREATE OR REPLACE TEMP TABLE live_rollups AS {live}", live_params)
        parts.append("SELECT * FROM live_rollups")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None
