"""Compaction (`python -m core compact`, and the scheduler when needed): ask the store's run-table
port to keep the visible runs' colors fast to read. What that means is the store's business (the
Parquet layout rewrites them into CUSIP-range shards plus a delta: storage.run_compaction; a SQL
store has its indexes); core says which runs are visible and how rollups and the latest rows
(the latest parents' candidates) are computed."""

from __future__ import annotations

from datetime import datetime

from core.clock import now_or
from core.reads.latest_parents import latest_parents_sql
from core.runs.published import duckdb_session, rollup_sql, visible_runs
from storage import Store
from storage.run_tables import DELTA, FULL, CompactionReport, run_tables

__all__ = ["DELTA", "FULL", "CompactionReport", "compact_colors", "plan_compaction"]


def plan_compaction(store: Store) -> CompactionReport:
    """Whether the visible runs' colors need compaction, and which (full or delta)."""
    with duckdb_session() as con:
        return run_tables(store).plan(con, visible_runs(store), latest=True)


def compact_colors(store: Store, *, force: bool = False, now: datetime | None = None
                   ) -> CompactionReport:
    """Compact the visible runs' colors when the plan says so (or always, when forced), in this
    process's DuckDB database (its memory limit; sorts spill to disk); what was done."""
    with duckdb_session() as con:
        return run_tables(store).compact(con, visible_runs(store), rollup_sql,
                                         latest=latest_parents_sql, force=force, now=now_or(now))
