"""Compaction of the Parquet run layout (storage.parquet_layout): rewrite the colors of the runs
core names (the visible ones) into a CUSIP-clustered copy split into CUSIP-range shards, plus
rollups, add runs published since to its delta, and switch readers to it by writing the manifest."""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from storage.errors import WriteConflict
from storage.parquet_layout import (
    COMPACT_TABLE,
    LATEST_TABLE,
    MANIFEST_KEY,
    ROLLUP_TABLE,
    load_manifest,
)
from storage.run_layout import Layout, Shard, manifest_shards, run_partition
from storage.run_tables import (
    COLORS,
    CUSIP,
    DELTA,
    POSITION,
    RUN_ID,
    CompactionReport,
    Rollup,
)

if TYPE_CHECKING:
    import duckdb

    from storage.parquet_layout import ParquetRunTables
    from storage.tables import PartitionedStore

log = logging.getLogger(__name__)

# The layout needs compaction once this many runs are read from per-run files (each is one more
# file per bind), or a few big ones (a lookup decodes one 100k-row group of each: ~10-20 ms).
MIN_UNCOVERED_RUNS = 10
MIN_BIG_RUNS, MIN_UNCOVERED_ROWS = 3, 300_000
# Rows per shard of the copy. DuckDB pays ~1 µs per row group and column of a file it opens, even
# for row groups its statistics skip: a CUSIP lookup in one 10M-row file (489 row groups × 27
# columns) spent ~15 ms on that alone; opening only the CUSIP's ~500k-row shard leaves ~1 ms.
SHARD_ROWS = 500_000
# Once a copy exists, the runs published since go into its delta (one CUSIP-sorted file, rewritten
# with each new run: seconds, where the full copy takes a minute at 10M rows), so a lookup opens a
# shard and the delta instead of one file per run. A delta beyond this share of the copy (and at
# least DELTA_MIN_ROWS) is folded into a new full copy instead.
DELTA_MAX_SHARE, DELTA_MIN_ROWS = 0.2, 1_000_000


_uncovered_rows: weakref.WeakKeyDictionary[Any, tuple[Layout, int]] = weakref.WeakKeyDictionary()


def plan_compaction(port: ParquetRunTables, con: duckdb.DuckDBPyConnection,
                    runs: tuple[int, ...], *, latest: bool = False) -> CompactionReport:
    """Whether the layout needs compaction, and which: full when removed runs are still in the
    copy, when the caller keeps latest rows (`latest`) and the copy has none, when there is no
    copy yet and many rows or runs are outside it, or when the delta would outgrow its share;
    delta when a copy exists and runs were published since."""
    layout = port.layout(runs)
    if not runs:
        return CompactionReport(False, "no published runs")
    if layout.stale:
        return CompactionReport(True, f"{len(layout.stale)} removed run(s) are still in the copy")
    count = len(layout.uncovered)
    manifest, _ = load_manifest(port.store)
    if manifest is not None and latest and not layout.latest:
        return CompactionReport(True, "the copy keeps no latest rows (written before them)")
    if manifest is not None:
        return _plan_delta(port, con, layout, manifest)
    rows = _rows_outside(port, con, layout) if count >= MIN_BIG_RUNS else 0
    if count >= MIN_UNCOVERED_RUNS or (count >= MIN_BIG_RUNS and rows >= MIN_UNCOVERED_ROWS):
        return CompactionReport(True, f"{count} run(s), {rows:,} rows are read from per-run files")
    return CompactionReport(False, f"{count} run(s), {rows:,} rows outside the copy (compacting "
                                   f"from {MIN_UNCOVERED_RUNS} runs, or {MIN_BIG_RUNS} runs of "
                                   f"{MIN_UNCOVERED_ROWS:,} rows)")


def _plan_delta(port: ParquetRunTables, con: duckdb.DuckDBPyConnection, layout: Layout,
                manifest: dict[str, Any]) -> CompactionReport:
    count = len(layout.uncovered)
    if not count:
        return CompactionReport(False, "every visible run is in the compacted copy")
    rows = _rows_outside(port, con, layout)
    delta = (manifest.get("delta") or {}).get("rows", 0)
    limit = max(DELTA_MIN_ROWS, int(manifest["rows"] * DELTA_MAX_SHARE))
    if delta + rows > limit:
        return CompactionReport(True, f"{count} new run(s) would grow the delta to "
                                      f"{delta + rows:,} rows (over {limit:,}): a new copy")
    return CompactionReport(True, f"{count} new run(s), {rows:,} rows go into the delta",
                            mode=DELTA)


def _rows_outside(port: ParquetRunTables, con: duckdb.DuckDBPyConnection, layout: Layout) -> int:
    """Rows of the uncovered runs (Parquet counts them from file footers); kept while the layout
    stands (the same object), as the scheduler asks after every step."""
    cached = _uncovered_rows.get(port)
    if cached is not None and cached[0] is layout:
        return cached[1]
    src = port.open(con, COLORS, layout.uncovered) if layout.uncovered else None
    rows = int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0]) if src else 0
    _uncovered_rows[port] = (layout, rows)
    return rows


def compact_colors(port: ParquetRunTables, con: duckdb.DuckDBPyConnection, runs: tuple[int, ...],
                   rollup: Rollup, *, latest: Rollup | None = None, force: bool = False,
                   now: datetime) -> CompactionReport:
    """Rewrite every visible run into a new compacted copy (sorted by CUSIP, in CUSIP-range shards
    of ~SHARD_ROWS rows, written by DuckDB through the store's append_query: streamed,
    lookup-sized row groups, fast to decode) plus its rollups, then switch readers to it by writing
    the manifest (the commit point); copies older than the previous one are deleted. Per-run
    partitions stay: they are the record, the copy is derived. When the plan says delta (and not
    forced), only the runs published since go into the copy's delta. `latest` rows are kept
    beside the rollups (LATEST_TABLE) for the copy and for its delta. Returns what was done
    (nothing unless needed or forced)."""
    store = port.store
    plan = plan_compaction(port, con, runs, latest=latest is not None)
    layout = port.layout(runs)
    if not runs or not (plan.needed or force):
        return plan
    started = time.perf_counter()
    old, version = load_manifest(store)
    if plan.mode == DELTA and not force and old is not None:
        return _compact_delta(port, con, layout, plan, old, version, rollup, latest, now)
    generation = (old["generation"] + 1) if old else 1
    partition = f"gen={generation:06d}-{uuid.uuid4().hex[:8]}"
    try:
        shards, rows = _write_copy(port, con, layout, partition, rollup, latest)
    except BaseException:
        _drop(store, [p for p in _copies(store) if p.startswith(partition)])
        raise
    seconds = round(time.perf_counter() - started, 3)
    manifest = {"generation": generation, "partition": partition, "runs": list(runs),
                "shards": [{"partition": s.partition, "low": s.low, "high": s.high}
                           for s in shards],
                "rows": rows, "files": len(shards), "latest": latest is not None,
                "compacted_at": now.isoformat(), "seconds": seconds}
    _switch(store, manifest, old, version, written=_partitions(manifest))
    log.info("compacted %s runs, %s rows into %s (%s shards)", len(runs), rows, partition,
             len(shards))
    return CompactionReport(True, plan.reason if plan.needed else "forced", True, partition,
                            len(runs), rows, len(shards), seconds)


def _compact_delta(port: ParquetRunTables, con: duckdb.DuckDBPyConnection, layout: Layout,
                   plan: CompactionReport, old: dict[str, Any], version: str | None,
                   rollup: Rollup, latest: Rollup | None, now: datetime) -> CompactionReport:
    """Rewrite the delta with the runs published since (the copy's shards stay), then switch
    readers to it through the manifest, as a full compaction does."""
    store = port.store
    started = time.perf_counter()
    before = old.get("delta") or {}
    number = before.get("number", 0) + 1
    partition = f"{old['partition']}-d{number:04d}"
    covered = sorted({*before.get("runs", []), *layout.uncovered})
    try:
        parts = []
        if before and store.register(con, COMPACT_TABLE, [before["partition"]], view="old_delta"):
            parts.append("SELECT * FROM old_delta")
        if store.register(con, COLORS, [run_partition(r) for r in layout.uncovered],
                          view="new_runs"):
            parts.append("SELECT * FROM new_runs")
        src = "(" + " UNION ALL BY NAME ".join(parts) + ")"
        order = _order([r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()])
        rows = store.append_query(con, COMPACT_TABLE, partition,
                                  f"SELECT * FROM {src} AS published ORDER BY {order}")
        sql, params = rollup(f"{src} AS published")
        store.append_query(con, ROLLUP_TABLE, partition, sql, params)
        _keep_latest(con, store, latest, src, partition)
    except BaseException:
        _drop(store, [partition])
        raise
    seconds = round(time.perf_counter() - started, 3)
    manifest = {**old, "delta": {"partition": partition, "number": number, "runs": covered,
                                 "rows": rows, "seconds": seconds, "latest": latest is not None,
                                 "compacted_at": now.isoformat()}}
    _switch(store, manifest, old, version, written={partition})
    log.info("compacted %s new run(s) into the delta %s (%s rows)", len(layout.uncovered),
             partition, rows)
    return CompactionReport(True, plan.reason, True, partition, len(covered), rows, 1, seconds,
                            DELTA)


def _keep_latest(con: duckdb.DuckDBPyConnection, store: PartitionedStore, latest: Rollup | None,
                 src: str, partition: str) -> None:
    """The `latest` rows of src, kept under the rollups' partition name."""
    if latest is not None:
        sql, params = latest(f"{src} AS published")
        store.append_query(con, LATEST_TABLE, partition, sql, params)


def _write_copy(port: ParquetRunTables, con: duckdb.DuckDBPyConnection, layout: Layout,
                partition: str, rollup: Rollup, latest: Rollup | None
                ) -> tuple[list[Shard], int]:
    """Write the shards `{partition}-sNNN`, the rollups and latest rows `{partition}`;
    (shards, rows)."""
    store = port.store
    src = port.open(con, COLORS, layout.runs)
    if src is None:  # every visible run published nothing
        return [], 0
    order = _order([name for name, _ in port.describe(con, COLORS, layout.runs, src)])
    sql, params = rollup(f"{src} AS published")
    store.append_query(con, ROLLUP_TABLE, partition, sql, params)
    _keep_latest(con, store, latest, src, partition)
    total = con.execute(f"SELECT count(*) FROM {src} AS published").fetchall()[0][0]
    bounds = _bounds(con, src, total)
    if not bounds:  # one shard: straight from the runs
        first = f"{partition}-s000"
        rows = store.append_query(con, COMPACT_TABLE, first,
                                  f"SELECT * FROM {src} AS published ORDER BY {order}")
        return [Shard(first)], rows
    # Sort once into one file, then cut it: each cut reads only its row groups of the sorted file.
    whole = f"{partition}-sorted"
    store.append_query(con, COMPACT_TABLE, whole,
                       f"SELECT * FROM {src} AS published ORDER BY {order}")
    store.register(con, COMPACT_TABLE, [whole], view="sorted_copy")
    shards, rows = [], 0
    for number, (low, high) in enumerate(zip([None, *bounds], [*bounds, None], strict=True)):
        shard = Shard(f"{partition}-s{number:03d}", low, high)
        where = " AND ".join([*([f"{CUSIP} >= ?"] if low is not None else []),
                              *([f"{CUSIP} < ?"] if high is not None else [])])
        if low is None:  # a row without a CUSIP (never published, but never lost either)
            where = f"({where} OR {CUSIP} IS NULL)"
        rows += store.append_query(
            con, COMPACT_TABLE, shard.partition,
            f"SELECT * FROM sorted_copy WHERE {where} ORDER BY {order}",
            [b for b in (low, high) if b is not None])
        shards.append(shard)
    store.delete_partition(COMPACT_TABLE, whole)
    return shards, rows


def _bounds(con: duckdb.DuckDBPyConnection, src: str, total: int) -> list[str]:
    """CUSIPs that cut `total` rows into shards of about SHARD_ROWS (none: one shard)."""
    count = -(-total // SHARD_ROWS)
    if count < 2:
        return []
    found = con.execute(f"SELECT quantile_disc({CUSIP}, ?::DOUBLE[]) FROM {src} AS published",
                        [[k / count for k in range(1, count)]]).fetchall()[0][0]
    return sorted({c for c in found or [] if c is not None})


def _order(columns: list[str]) -> str:
    """The copy's row order: CUSIP (lookups prune on it), then each run's ranked order."""
    return (f"{CUSIP}, {RUN_ID}, {POSITION}" if POSITION in columns else f"{CUSIP}, {RUN_ID}")


def _switch(store: PartitionedStore, manifest: dict[str, Any], old: dict[str, Any] | None,
            version: str | None, *, written: set[str]) -> None:
    """Switch readers to `manifest` (the commit point), then delete copies older than the previous
    one (a reader may still be in it). Losing the race to another compaction deletes `written`:
    ours was never visible."""
    try:
        store.put(MANIFEST_KEY, manifest, expected_version=version)
    except WriteConflict:
        _drop(store, list(written))
        raise
    keep = _partitions(manifest) | (_partitions(old) if old else set())
    _drop(store, [p for p in _copies(store) if p not in keep])


def _partitions(manifest: dict[str, Any]) -> set[str]:
    """Every partition a manifest's copy uses (its shards, its delta and their rollups)."""
    delta = (manifest.get("delta") or {}).get("partition")
    return {manifest["partition"], *(s.partition for s in manifest_shards(manifest)),
            *([delta] if delta else [])}


def _copies(store: PartitionedStore) -> list[str]:
    return sorted({p for table in (COMPACT_TABLE, ROLLUP_TABLE, LATEST_TABLE)
                   for p in store.partitions(table)})


def _drop(store: PartitionedStore, partitions: list[str]) -> None:
    for partition in partitions:
        for table in (COMPACT_TABLE, ROLLUP_TABLE, LATEST_TABLE):
            store.delete_partition(table, partition)

