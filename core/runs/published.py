"""How readers see published colors: one in-process DuckDB database, and the published colors of the
visible runs as one FROM item from the store's run-table port (storage.run_tables), with rollups."""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.runs import records as runs
from storage import Store
from storage.run_tables import Rollup, run_tables

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


# -- the published colors of the visible runs, through the run-table port ------------------------
_visible: weakref.WeakKeyDictionary[Any, tuple[str, tuple[int, ...]]] = weakref.WeakKeyDictionary()


def visible_runs(store: Store) -> tuple[int, ...]:
    """The visible runs, kept per store until the data version changes (reading every run record
    on each query would cost more than the query)."""
    version = runs.data_version(store)
    cached = _visible.get(store)
    if cached is not None and cached[0] == version:
        return cached[1]
    visible = tuple(runs.visible_run_ids(store))
    _visible[store] = (version, visible)
    return visible


def open_colors(store: Store, con: duckdb.DuckDBPyConnection,
                visible: Sequence[int] | None = None, *,
                cusips: Iterable[str] | None = None) -> str | None:
    """The published colors of the visible runs (or of `visible`) as a FROM item on con
    (`FROM {src} AS published`); None when there are none. A FROM item rather than a view:
    binding a view costs as much as a query. `cusips`: only the rows of these CUSIPs (the store
    reads only what holds them)."""
    chosen = visible_runs(store) if visible is None else visible
    return run_tables(store).open(con, runs.COLORS_TABLE, chosen, cusips=cusips)


def published_columns(store: Store, con: duckdb.DuckDBPyConnection, src: str,
                      visible: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """(name, DuckDB type) of the published colors (src: what open_colors gave for the same
    runs), described once per layout by the store."""
    chosen = visible_runs(store) if visible is None else visible
    return run_tables(store).describe(con, runs.COLORS_TABLE, chosen, src)


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


def open_rollups(store: Store, con: duckdb.DuckDBPyConnection,
                 visible: Sequence[int] | None = None) -> str | None:
    """Rollups (see rollup_sql) of every visible run (or of `visible`) as a FROM item: the ones
    the store keeps, plus ones computed now for the rest; None when none."""
    chosen = visible_runs(store) if visible is None else visible
    return run_tables(store).open_rollups(con, chosen, rollup_sql)


def open_latest(store: Store, con: duckdb.DuckDBPyConnection, latest: Rollup,
                visible: Sequence[int] | None = None) -> str | None:
    """Candidates for the `latest` rows of the visible runs (or of `visible`) as a FROM item
    (the store's kept ones plus ones computed now for runs published since), among which the
    caller picks each key's newest; None when the store keeps none for these runs."""
    chosen = visible_runs(store) if visible is None else visible
    return run_tables(store).open_latest(con, chosen, latest)
