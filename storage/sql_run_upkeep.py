"""Upkeep of the SQL store's run tables (storage.sql_run_tables): keep each run's rollups (its own
partition of colors_rollup, computed once: a run's colors never change) and, on request, the latest
rows of the runs kept (colors_latest, named by the manifest document), so a dashboard reads them
instead of computing them from every run's colors."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from storage.errors import WriteConflict
from storage.parquet_layout import LATEST_TABLE, MANIFEST_KEY, ROLLUP_TABLE, load_manifest
from storage.run_layout import run_partition
from storage.run_tables import COLORS, DELTA, FULL, RUN_ID, CompactionReport, Rollup

if TYPE_CHECKING:
    import duckdb

    from storage.sql_run_tables import SqlRunTables

log = logging.getLogger(__name__)

# Reading a run's colors to compute its rollups costs a fetch of its rows: upkeep is needed once
# this many runs, or rows, have none kept (and, once anything is kept, for every new run).
MIN_UNKEPT_RUNS, MIN_UNKEPT_ROWS = 10, 100_000
CHUNK_ROWS = 1_000_000  # colors read into DuckDB at once
_names = itertools.count()


def plan_upkeep(port: SqlRunTables, asked: list[int], *, latest: bool = False
                ) -> CompactionReport:
    """Needed when removed runs are still in the kept latest rows, when latest rows are asked
    for and none are kept, when anything is kept and a run has no rollups yet, or (nothing
    kept) when many runs or rows have none."""
    if not asked:
        return CompactionReport(False, "no published runs")
    manifest, _ = load_manifest(port.store)
    unkept = _unkept(port, asked)
    if manifest is not None:
        stale = set(manifest["runs"]) - set(asked)
        if stale:
            return CompactionReport(True, f"{len(stale)} removed run(s) are still in the "
                                          "kept rows")
        if latest and not manifest.get("latest"):
            return CompactionReport(True, "no latest rows are kept (written before them)")
        new = sorted(set(unkept) | (set(port.present(asked)) - set(manifest["runs"])))
        if new:
            return CompactionReport(True, f"{len(new)} new run(s) to keep rows of",
                                    mode=DELTA)
        return CompactionReport(False, "every visible run's rows are kept")
    rows = _rows(port, unkept)
    if len(unkept) >= MIN_UNKEPT_RUNS or rows >= MIN_UNKEPT_ROWS:
        return CompactionReport(True, f"{len(unkept)} run(s), {rows:,} rows have no rollups "
                                      "kept")
    return CompactionReport(False, f"{len(unkept)} run(s), {rows:,} rows without rollups "
                                   f"(kept from {MIN_UNKEPT_RUNS} runs or "
                                   f"{MIN_UNKEPT_ROWS:,} rows)")

def keep_rows(port: SqlRunTables, con: duckdb.DuckDBPyConnection, asked: list[int],
              rollup: Rollup, *, latest: Rollup | None = None, force: bool = False,
              now: datetime) -> CompactionReport:
    """Keep the rollups of the runs without (every run's, when forced) and, with `latest`,
    the latest rows of all the runs (folded into the kept ones when they still hold), then
    write the manifest naming them."""
    plan = plan_upkeep(port, asked, latest=latest is not None)
    if not asked or not (plan.needed or force):
        return plan
    started = time.perf_counter()
    present = port.present(asked)
    todo = present if force else _unkept(port, asked)
    for chunk in _chunks(port, todo):
        _keep_rollups(port, con, chunk, rollup)
    old, version = load_manifest(port.store)
    partition = None
    if latest is not None:
        partition = _keep_latest(port, con, present, latest, None if force else old)
    manifest = {"generation": (old or {}).get("generation", 0) + 1, "runs": present,
                "latest": latest is not None, "partition": partition,
                "compacted_at": now.isoformat()}
    try:
        port.store.put(MANIFEST_KEY, manifest, version)
    except WriteConflict:
        if partition:
            port.store.delete_partition(LATEST_TABLE, partition)
        raise
    keep = {p for p in (partition, (old or {}).get("partition")) if p}
    for stale in set(port.store.partitions(LATEST_TABLE)) - keep:
        port.store.delete_partition(LATEST_TABLE, stale)
    seconds = round(time.perf_counter() - started, 3)
    mode = DELTA if plan.mode == DELTA and not force else FULL
    log.info("kept rollups of %s run(s)%s in %ss", len(todo),
             " and latest rows" if partition else "", seconds)
    return CompactionReport(True, plan.reason if plan.needed else "forced", True, partition,
                            len(asked), _rows(port, present), 0, seconds, mode)


def _unkept(port: SqlRunTables, asked: Sequence[int]) -> list[int]:
    kept = set(port.runs(ROLLUP_TABLE))
    return [r for r in port.present(asked) if r not in kept]

def _rows(port: SqlRunTables, runs: Sequence[int]) -> int:
    states = port.store.partition_states(COLORS)
    return sum(states.get(run_partition(r), (0, 0))[0] for r in runs)

def _chunks(port: SqlRunTables, runs: Sequence[int]) -> Iterator[list[int]]:
    """Runs in groups of about CHUNK_ROWS colors (a bigger run is a group of its own)."""
    states = port.store.partition_states(COLORS)
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

def _keep_rollups(port: SqlRunTables, con: duckdb.DuckDBPyConnection, runs: list[int],
                  rollup: Rollup) -> None:
    """Compute these runs' rollups and write them, each run's in its own partition,
    replacing what was kept for them (one transaction)."""
    src = port.open(con, COLORS, runs)
    if src is None:
        return
    sql, params = rollup(src)
    rolled = con.sql(f"SELECT * FROM ({sql}) ORDER BY {RUN_ID}",
                     params=params or None).to_arrow_table()
    ids = rolled.column(RUN_ID).to_numpy()
    parts = [run_partition(r) for r in ids.tolist()]
    numbers = port.store.append_frames([(ROLLUP_TABLE, rolled, parts)],
                                       replace=[run_partition(r) for r in runs])
    # this node reads them next (the dashboard): keep its copies now, as a read would fetch them
    starts: list[int] = np.flatnonzero(np.diff(ids, prepend=-1) != 0).tolist()
    port.keep_copies(ROLLUP_TABLE, numbers[ROLLUP_TABLE], [
        (run_partition(int(ids[a])), rolled.slice(a, b - a))
        for a, b in itertools.pairwise([*starts, len(ids)])])

def _keep_latest(port: SqlRunTables, con: duckdb.DuckDBPyConnection, present: list[int],
                 latest: Rollup, old: dict[str, Any] | None) -> str:
    """Fold `latest` over the runs' colors, a chunk at a time, starting from the kept rows
    when they hold no removed run; written to a new partition of LATEST_TABLE."""
    acc = None
    todo = present
    if old and old.get("latest") and old.get("partition") and set(old["runs"]) <= set(
            present):
        acc = port.open_partitions(con, LATEST_TABLE, [old["partition"]])
        todo = [r for r in present if r not in set(old["runs"])]
    for chunk in _chunks(port, todo):
        src = port.open(con, COLORS, chunk)
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
            numbers = port.store.append_frames([(LATEST_TABLE, rows, partition)])
            port.keep_copy(LATEST_TABLE, partition, numbers[LATEST_TABLE], rows)
    return partition
