"""How readers see published colors, and compaction: one in-process DuckDB database, the published
colors as one FROM item (visible runs only: a CUSIP-clustered compacted copy plus the runs published
since) and `python -m core compact`, which rewrites the visible runs into that copy with rollups.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core import runs
from storage import ANY_VERSION, ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)

COMPACT_TABLE = "colors_compact"
ROLLUP_TABLE = "colors_rollup"
MANIFEST_KEY = "meta/compaction/colors"
# The layout needs compaction once this many runs are read from per-run files (each is one more
# file per bind), or a few big ones (a lookup decodes one 100k-row group of each: ~10-20 ms).
MIN_UNCOVERED_RUNS = 10
MIN_BIG_RUNS, MIN_UNCOVERED_ROWS = 3, 300_000
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
            _db = db
        return _db


@contextmanager
def duckdb_session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private connection for one query: its own schema (store.register's views cannot clash
    with another thread's) and UTC days; everything it created is dropped on exit."""
    db = _database()
    with _db_lock:
        con = db.cursor()
    schema = f"q_{uuid.uuid4().hex}"  # generated here, never user input
    try:
        con.execute(f'CREATE SCHEMA "{schema}"')
        con.execute(f"SET schema = '{schema}'")
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        try:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
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


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
                ) -> pd.DataFrame:
    """Run a parameterised query and return its rows as a frame."""
    return to_frame(con.sql(sql, params=params or None).to_arrow_table())


# -- the layout readers see -----------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where each visible run's rows are read from: the compacted copy (covered) or the run's own
    partition (uncovered); stale runs are in the copy but no longer visible (filtered out)."""

    visible: tuple[int, ...]
    compact_partition: str | None
    covered: tuple[int, ...]
    uncovered: tuple[int, ...]
    stale: tuple[int, ...]


def load_manifest(store: Store) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return store.get(MANIFEST_KEY)
    except ObjectNotFound:
        return None, None


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
    copied = set(manifest["runs"]) if manifest else set()
    present = set(store.partitions(runs.COLORS_TABLE))
    layout = Layout(
        visible=tuple(visible),
        compact_partition=manifest["partition"] if manifest else None,
        covered=tuple(r for r in visible if r in copied),
        uncovered=tuple(r for r in visible if r not in copied
                        and runs.run_partition(r) in present),
        stale=tuple(sorted(copied - set(visible))),
    )
    _layouts[store] = (key, layout, [])
    return layout


def _visible_filter(con: duckdb.DuckDBPyConnection, layout: Layout) -> str:
    if not layout.stale:
        return ""
    con.execute("CREATE OR REPLACE TEMP TABLE visible_runs AS SELECT unnest(?::BIGINT[]) AS RUN_ID",
                [list(layout.covered)])
    return " WHERE RUN_ID IN (SELECT RUN_ID FROM visible_runs)"


# DuckDB adds a column per partition folder (run=…, gen=…: hive partitioning); they are not data.
_DATA_COLUMNS = "COLUMNS(lambda c: c NOT IN ('run', 'gen'))"


def open_colors(store: Store, con: duckdb.DuckDBPyConnection, layout: Layout | None = None
                ) -> str | None:
    """Register every visible run's colors on con and return them as a FROM item
    (`FROM {src} AS published`); None when there are none. Uncovered runs stay registered as
    `colors` for open_rollups. A FROM item rather than a view: binding a view costs as much as a
    query, and every file adds to each bind."""
    layout = layout or read_layout(store)
    parts = []
    if layout.covered and store.register(con, COMPACT_TABLE, [layout.compact_partition]):
        parts.append(f"SELECT {_DATA_COLUMNS} FROM {COMPACT_TABLE}{_visible_filter(con, layout)}")
    partitions = [runs.run_partition(r) for r in layout.uncovered]
    if partitions and store.register(con, runs.COLORS_TABLE, partitions):
        parts.append(f"SELECT {_DATA_COLUMNS} FROM {runs.COLORS_TABLE}")
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
    if layout.covered and store.register(con, ROLLUP_TABLE, [layout.compact_partition]):
        parts.append(f"SELECT {_DATA_COLUMNS} FROM {ROLLUP_TABLE}{_visible_filter(con, layout)}")
    if layout.uncovered:
        live, live_params = rollup_sql(runs.COLORS_TABLE)
        con.execute(f"CREATE OR REPLACE TEMP TABLE live_rollups AS {live}", live_params)
        parts.append("SELECT * FROM live_rollups")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None


# -- compaction -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompactionReport:
    """What a compaction found and did."""

    needed: bool
    reason: str
    done: bool = False
    partition: str | None = None
    runs: int = 0
    rows: int = 0
    files: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_plans: weakref.WeakKeyDictionary[Any, tuple[tuple[str, str | None], CompactionReport]] = (
    weakref.WeakKeyDictionary())


def plan_compaction(store: Store) -> CompactionReport:
    """Whether the layout needs compaction: many rows or runs outside the compacted copy, or removed
    runs still inside it. Kept per store until the data or the manifest changes (the scheduler asks
    after every step)."""
    layout = read_layout(store)
    key = _layouts[store][0]
    cached = _plans.get(store)
    if cached is not None and cached[0] == key:
        return cached[1]
    report = _plan(store, layout)
    _plans[store] = (key, report)
    return report


def _plan(store: Store, layout: Layout) -> CompactionReport:
    if not layout.visible:
        return CompactionReport(False, "no published runs")
    if layout.stale:
        return CompactionReport(True, f"{len(layout.stale)} removed run(s) are still in the copy")
    count = len(layout.uncovered)
    rows = 0 if count < MIN_BIG_RUNS else sum(
        runs.get_run(store, r).counts.get("published", 0) for r in layout.uncovered)
    if count >= MIN_UNCOVERED_RUNS or (count >= MIN_BIG_RUNS and rows >= MIN_UNCOVERED_ROWS):
        return CompactionReport(True, f"{count} run(s), {rows:,} rows are read from per-run files")
    return CompactionReport(False, f"{count} run(s), {rows:,} rows outside the copy (compacting "
                                   f"from {MIN_UNCOVERED_RUNS} runs, or {MIN_BIG_RUNS} runs of "
                                   f"{MIN_UNCOVERED_ROWS:,} rows)")


def compact_colors(store: Store, *, force: bool = False, now: datetime | None = None
                   ) -> CompactionReport:
    """Rewrite every visible run into a new compacted copy (one file sorted by CUSIP, written by
    DuckDB through Store.append_query: streamed, lookup-sized row groups, fast to decode) plus its
    rollups, then switch readers to it by writing the manifest (the commit point); copies older
    than the previous one are deleted. Per-run partitions stay: they are the record, the copy is
    derived. Returns what was done (nothing unless needed or forced)."""
    plan = plan_compaction(store)
    layout = read_layout(store)
    if not layout.visible or not (plan.needed or force):
        return plan
    started = time.perf_counter()
    old, version = load_manifest(store)
    generation = (old["generation"] + 1) if old else 1
    partition = f"gen={generation:06d}-{uuid.uuid4().hex[:8]}"
    rows = 0
    with duckdb_session() as con:
        src = open_colors(store, con, layout)
        if src is not None:  # None: every visible run published nothing
            names = [name for name, _ in published_columns(store, con, src)]
            order = "CUSIP, RUN_ID, POSITION" if "POSITION" in names else "CUSIP, RUN_ID"
            rows = store.append_query(con, COMPACT_TABLE, partition,
                                      f"SELECT * FROM {src} AS published ORDER BY {order}")
            sql, params = rollup_sql(f"{src} AS published")
            store.append_query(con, ROLLUP_TABLE, partition, sql, params)
    manifest = {"generation": generation, "partition": partition, "runs": list(layout.visible),
                "rows": rows, "files": 1, "compacted_at": (now or datetime.now(UTC)).isoformat(),
                "seconds": round(time.perf_counter() - started, 3)}
    try:
        store.put(MANIFEST_KEY, manifest, expected_version=version)
    except WriteConflict:
        _drop(store, [partition])  # another compaction won; ours was never visible
        raise
    keep = {partition, old["partition"]} if old else {partition}
    _drop(store, [p for p in _copies(store) if p not in keep])
    log.info("compacted %s runs, %s rows into %s", len(layout.visible), rows, partition)
    return CompactionReport(True, plan.reason if plan.needed else "forced", True, partition,
                            len(layout.visible), rows, 1, manifest["seconds"])


def _copies(store: Store) -> list[str]:
    return sorted(set(store.partitions(COMPACT_TABLE)) | set(store.partitions(ROLLUP_TABLE)))


def _drop(store: Store, partitions: list[str]) -> None:
    for partition in partitions:
        store.delete_partition(COMPACT_TABLE, partition)
        store.delete_partition(ROLLUP_TABLE, partition)


def clear_compaction(store: Store) -> None:
    """Forget the compacted copy (readers go back to per-run partitions) and delete it."""
    _, version = load_manifest(store)
    if version is not None:
        store.delete(MANIFEST_KEY, ANY_VERSION)
    _drop(store, _copies(store))
