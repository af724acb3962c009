"""The SQL store's node-local read copy: a partition's rows as a local Parquet file, so DuckDB
scans a run's colors (a dashboard, a ticker search) at local-file speed instead of fetching them
through the database driver on every read.

A copy is named by what the catalog says of its partition (mp_partitions): its row count and the
number of the last write to it. Every write to a partition changes that number, so a copy whose
name the catalog still gives holds exactly the partition's rows; the catalog decides which copies a
read uses, the database stays the only truth, and the folder may be deleted at any time (reads
fetch again). Copies of partitions the catalog no longer lists are dropped when their table is
read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_SIZE = 20_480  # as the local store's files: a CUSIP filter skips most of a run's file
# A copy the catalog no longer names is dropped only once this old: a reader that read the catalog
# before the change may still be about to open it.
GRACE_SECONDS = 600
MERGED = ".merged"  # beside a table's folder: merged copies (ReadCopy.merged)


def default_folder(identity: str, base: Path | None = None) -> Path:
    """<base>/<hash of the store's URL>; base defaults to ~/.cache/marketpulse/sql (XDG_CACHE_HOME
    honoured). Stores never share a folder."""
    if base is None:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        base = home / "marketpulse" / "sql"
    return base / hashlib.sha256(identity.encode()).hexdigest()[:16]


class ReadCopy:
    """Parquet copies of partitions under folder/<table>/<partition>/<write>-<rows>.parquet."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def paths(self, table: str, wanted: Iterable[tuple[str, int, int]],
              fetch: Callable[[str], pa.Table | None]) -> list[Path]:
        """Local files of these (partition, rows, write) partitions, in order, fetching the ones
        without a copy (fetch(partition): its rows, None when it went meanwhile: left out)."""
        found = []
        for partition, rows, write in wanted:
            path = self._path(table, partition, rows, write)
            if not path.exists():
                fetched = fetch(partition)
                if fetched is None or fetched.num_rows != rows:
                    continue  # written or removed since the catalog was read: read it again
                self.keep(table, partition, rows, write, fetched)
            if path.exists():
                found.append(path)
        return found

    def keep(self, table: str, partition: str, rows: int, write: int, data: pa.Table) -> None:
        """Write a partition's copy (a temporary name renamed in: readers never see half) and
        drop its older ones. A copy is a courtesy: a failure leaves the next read to fetch."""
        _replace(self._path(table, partition, rows, write), lambda: data)

    def merged(self, table: str, wanted: Sequence[tuple[str, int, int]], paths: Sequence[Path],
               *, block: int = 0) -> Path | None:
        """One file holding the copies `paths` of the `wanted` (partition, rows, write)
        partitions, named by them: many small copies (each run's rollups) are read as one file
        (DuckDB pays ~2 ms a file it opens). Built from the copies once, kept while the catalog
        says the same of each partition; None when it cannot be written (read the copies).
        Each `block` has a folder of its own: a block's new copy replaces its own old ones."""
        name = hashlib.sha256(repr(list(wanted)).encode()).hexdigest()[:24]  # in this order
        path = self.folder / f"{table}{MERGED}" / f"block={block}" / f"{name}.parquet"
        if path.exists():
            return path
        return path if _replace(path, lambda: pa.concat_tables(
            [pq.read_table(p) for p in paths], promote_options="default")) else None

    def keep_only(self, table: str, partitions: Iterable[str]) -> None:
        """Drop the copies of the table's partitions not in `partitions` (the catalog's)."""
        listed = set(partitions)
        for entry in _entries(self.folder / table):
            if entry.name not in listed and entry.is_dir(follow_symlinks=False) and _old(entry):
                shutil.rmtree(entry.path, ignore_errors=True)

    def _path(self, table: str, partition: str, rows: int, write: int) -> Path:
        return self.folder / table / partition / f"{write:012d}-{rows}.parquet"


def _replace(path: Path, rows: Callable[[], pa.Table]) -> bool:
    """Write rows() to path (a temporary name renamed in: readers never see half), then drop the
    folder's other files once no reader can still be opening them; False when it failed."""
    temp = path.with_name(f"{path.name}~{uuid.uuid4().hex}.tmp")
    try:
        data = rows()
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, temp, row_group_size=ROW_GROUP_SIZE, compression="snappy")
        os.replace(temp, path)
    except (OSError, pa.ArrowException):
        temp.unlink(missing_ok=True)
        return False
    for entry in _entries(path.parent):
        if entry.name != path.name and _old(entry):
            Path(entry.path).unlink(missing_ok=True)
    return True


def _old(entry: os.DirEntry[str]) -> bool:
    with contextlib.suppress(OSError):
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > GRACE_SECONDS
    return False


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with contextlib.suppress(OSError):
        return list(os.scandir(folder))
    return []
