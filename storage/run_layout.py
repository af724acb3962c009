"""The layout of runs' rows that the Parquet port (storage.parquet_layout), its compaction
(storage.run_compaction) and the SQL store share: a run's partition name and row order, what
the copy's manifest says of its shards, and where the rows of the runs a read asks for are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from storage.run_tables import CUSIP, DATE, POSITION

# A run partition's row order, so row-group statistics prune lookups: CUSIP, then the ranked order
# (POSITION) where there is one (the colors; the order compaction keeps too), else DATE.
SORT_COLUMNS = (CUSIP, POSITION, DATE)


def run_partition(run_id: int) -> str:
    return f"run={int(run_id):08d}"


def run_of(partition: str) -> int | None:
    """The run a partition name `run=NNNNNNNN` holds; None for any other partition."""
    head, _, number = partition.partition("=")
    return int(number) if head == "run" and number.isdigit() else None


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame ordered by the SORT_COLUMNS it has (stable, missing values last), index 0..n-1.
    Ranking already gives the colors in this order (CUSIP, then ranked): a frame found in order is
    not copied (sorting gathers every column: a second of a 1M-row publish)."""
    by = [c for c in SORT_COLUMNS if c in frame.columns]
    if by and not _in_order(frame, by):
        frame = frame.sort_values(by, kind="stable", na_position="last")
    return frame.reset_index(drop=True)


def _in_order(frame: pd.DataFrame, by: list[str]) -> bool:
    """Whether the rows are already ordered by `by` (ascending); a missing value, or a column
    Arrow cannot compare, answers no (the frame is sorted)."""
    if len(frame) < 2:
        return True
    ties = np.ones(len(frame) - 1, dtype=bool)
    for name in by:
        try:
            values = pa.array(frame[name], from_pandas=True)
            if values.null_count:
                return False
            head, tail = values[:-1], values[1:]
            before = pc.less(tail, head).to_numpy(zero_copy_only=False)
            same = pc.equal(tail, head).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return False
        if (ties & before).any():
            return False
        ties &= same
        if not ties.any():
            return True
    return True  # rows equal in every column keep their order in a stable sort


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
    """Where the rows of the runs asked for are: in the compacted copy (covered: its shards, and
    the delta holding the runs compacted since; rollups in compact_partition and delta) or only in
    the run's own partition (uncovered); stale runs are in the copy but not asked for (filtered
    out). `present`: the runs asked for that hold colors at all."""

    runs: tuple[int, ...]
    compact_partition: str | None
    covered: tuple[int, ...]
    uncovered: tuple[int, ...]
    stale: tuple[int, ...]
    shards: tuple[Shard, ...] = ()
    delta: str | None = None
    present: tuple[int, ...] = ()
    latest: bool = False  # the copy (and its delta) keep latest rows (LATEST_TABLE)

    @property
    def reads_copy(self) -> bool:
        """Whether reads use the copy: only when at least half its runs are wanted, as the copy's
        rows of runs not asked for are read and thrown away (a few runs: their own files)."""
        return bool(self.covered) and 2 * len(self.covered) >= len(self.covered) + len(self.stale)


def manifest_shards(manifest: dict[str, Any] | None) -> tuple[Shard, ...]:
    """The copy's shards; a manifest written before shards existed names one unbounded file."""
    if not manifest:
        return ()
    if "shards" not in manifest:
        return (Shard(manifest["partition"]),)
    return tuple(Shard(s["partition"], s.get("low"), s.get("high")) for s in manifest["shards"])
