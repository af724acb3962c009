"""The tables part of the S3 store, laid out as the local store's: tables/<table>/<partition>/
part-<time>-<uuid>.parquet, one object per append (a PUT is all or nothing), so the shared Parquet
layout (storage.parquet_layout) runs on it unchanged. DuckDB reads the node-local copies of the
parts a listing names (storage.s3_cache); the listing is the truth.

Removing a partition deletes its objects in one request per 1,000: unlike the local store's rename
it is not atomic for readers, which is why readers name the runs they read (a run's rows are
removed only once its record hides it) and retry a read that lost a part.
"""

from __future__ import annotations

import builtins
import functools
import io
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from storage.base import check_partition, check_table, to_arrow
from storage.errors import ObjectNotFound, StoreUnavailable, is_valid
from storage.local_tables import write_parquet, write_query
from storage.s3_cache import PartCache
from storage.s3_client import S3Location, list_objects, vendor_errors

# Up to this many partitions are listed one by one, more by one listing of the whole table (1,000
# keys a page, parsed in Python: ~25 ms for 100 runs' parts). A lookup between a publish and the
# next compaction lists the one or two new runs: 59–76 ms whole-table, 35–42 ms each on its own.
LIST_EACH = 4
READ_ATTEMPTS = 3  # a read that lost a part to a compaction or removal lists again this often
# Parts of settled partitions (written once under a name never used again: a compacted copy's) as
# listed, kept to read them again without a listing (each lookup listed the copy's shard: 3
# requests, not 2).
SETTLED_KEPT = 20_000
_T = TypeVar("_T")


class S3Tables:
    """Tables (storage.tables) and PartitionedStore.append_query over S3 objects."""

    _client: Any
    _location: S3Location
    _cache: PartCache
    _transfer: Any
    _settled: dict[tuple[str, str], list[tuple[str, int]]]  # (table, partition) → its parts
    _settled_lock: threading.Lock  # the app's threads share one store

    def tables(self) -> builtins.list[str]:
        """Names of the tables that hold rows, sorted (a table is there while it has objects)."""
        _, names = list_objects(self._client, self._location, "tables/", "/")
        return sorted(n for n in (p.rstrip("/") for p in names) if is_valid(check_table, n))

    def partitions(self, table: str) -> builtins.list[str]:
        """Partition names of the table, sorted; [] for a table never written."""
        base = f"tables/{check_table(table)}/"
        _, names = list_objects(self._client, self._location, base, "/")
        found = sorted(n for n in (p.rstrip("/") for p in names) if is_valid(check_partition, n))
        self._cache.keep_only(base, found)
        return found

    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        """Add frame to a partition as one new Parquet object, all rows or none (empty: no-op)."""
        key = _part_key(check_table(table), check_partition(partition))
        if len(frame) == 0:
            return
        self._put_part(key, to_arrow(table, frame))

    def scan(self, table: str, partitions: builtins.list[str] | None = None,
             columns: builtins.list[str] | None = None) -> pd.DataFrame:
        """Rows of the table (optionally only some partitions / columns); empty frame if none."""
        def read() -> list[pd.DataFrame]:
            frames = []
            for path in self._local_parts(table, partitions):
                part = pq.ParquetFile(path)
                names = None if columns is None else [
                    c for c in columns if c in part.schema_arrow.names]
                frames.append(part.read(columns=names).to_pandas())
            return frames

        frames = self._retrying(table, read)
        if not frames:
            return pd.DataFrame()
        rows = pd.concat(frames, ignore_index=True)
        return rows[list(columns)] if columns is not None else rows

    def delete_partition(self, table: str, partition: str) -> None:
        """Remove one partition (no error if absent)."""
        base = f"tables/{check_table(table)}/{check_partition(partition)}/"
        objects, _ = list_objects(self._client, self._location, base)
        self._delete_keys([o["Key"] for o in objects])
        self._cache.forget(base)
        with self._settled_lock:
            self._settled.pop((table, partition), None)

    def register(self, con: duckdb.DuckDBPyConnection, table: str,
                 partitions: builtins.list[str] | None = None, *, view: str | None = None,
                 settled: bool = False) -> bool:
        """A temporary DuckDB view (on con only) over local copies of the parts listed now (of
        settled partitions: as listed before, if they were); False (nothing registered) when
        there are none."""
        files = self._retrying(table, lambda: self._local_parts(
            table, partitions, settled=settled and partitions is not None))
        if not files:
            return False
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        try:
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{check_table(view or table)}" AS '
                        f"SELECT * FROM read_parquet([{listing}], union_by_name = true, "
                        "hive_partitioning = false)")
        except duckdb.IOException as exc:
            raise StoreUnavailable(f"{self._location.url}: cannot read tables/{table}") from exc
        return True

    def append_query(self, con: duckdb.DuckDBPyConnection, table: str, partition: str,
                     query: str, params: builtins.list[Any] | None = None) -> int:
        """Add a DuckDB query's rows to a partition: DuckDB writes them (streamed, in the query's
        order) to a local file that is uploaded as one object; returns the rows (0: nothing)."""
        key = _part_key(check_table(table), check_partition(partition))
        temp = self._cache.scratch()
        try:
            try:
                rows = write_query(con, query, params, temp)
            except duckdb.IOException as exc:
                raise StoreUnavailable(f"{self._location.url}: cannot write {temp}") from exc
            if rows:
                with vendor_errors(self._location):
                    self._client.upload_file(str(temp), self._location.bucket,
                                             self._location.prefix + key, Config=self._transfer)
                self._cache.adopt_file(key, temp)
            return rows
        finally:
            temp.unlink(missing_ok=True)

    def compact(self, table: str, partitions: builtins.list[str] | None = None) -> int:
        """Merge each partition's parts into one object (named after the newest part it holds,
        so parts keep sorting in append order), then delete the parts it holds."""
        merged = 0
        for partition, parts in self._list_parts(table, partitions).items():
            if len(parts) < 2:
                continue
            paths = self._retrying(table, functools.partial(self._cache.paths, parts))
            rows = pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
            newest = parts[-1][0].rsplit("/", 1)[1].removesuffix(".parquet")
            name = f"{newest}-merged-{uuid.uuid4().hex[:8]}.parquet"
            self._put_part(f"tables/{table}/{partition}/{name}", rows)
            self._delete_keys([self._location.prefix + key for key, _ in parts])
            self._cache.drop(key for key, _ in parts)
            merged += len(parts)
        return merged

    # -- internals -------------------------------------------------------------------------
    def _list_parts(self, table: str, partitions: builtins.list[str] | None
                    ) -> dict[str, list[tuple[str, int]]]:
        """partition → its parts as (store-relative key, size), in append order; copies of parts
        no longer listed are dropped from the cache."""
        base = f"tables/{check_table(table)}/"
        chosen = None if partitions is None else sorted({check_partition(p) for p in partitions})
        if chosen is not None and len(chosen) <= LIST_EACH:
            objects = [o for p in chosen
                       for o in list_objects(self._client, self._location, f"{base}{p}/")[0]]
        else:
            objects = list_objects(self._client, self._location, base)[0]
        found: dict[str, list[tuple[str, int]]] = {}
        skip = len(self._location.prefix)
        for item in objects:
            key = item["Key"][skip:]
            partition, _, name = key[len(base):].partition("/")
            if name.endswith(".parquet") and "/" not in name and "~" not in name and (
                    chosen is None or partition in chosen):
                found.setdefault(partition, []).append((key, int(item["Size"])))
        for partition, parts in found.items():
            parts.sort()
            self._cache.keep_only(f"{base}{partition}/", [k.rsplit("/", 1)[1] for k, _ in parts])
        return dict(sorted(found.items()))

    def _local_parts(self, table: str, partitions: builtins.list[str] | None, *,
                     settled: bool = False) -> list[Path]:
        if not settled or partitions is None:
            listed = self._list_parts(table, partitions)
        else:
            listed = self._settled_listing(table, partitions)
        return self._cache.paths([p for ps in listed.values() for p in ps])

    def _settled_listing(self, table: str, partitions: builtins.list[str]
                         ) -> dict[str, list[tuple[str, int]]]:
        """_list_parts of settled partitions: as listed before. When one was not, the whole table
        is listed now (one request: a compacted copy's shards are read one lookup at a time) and
        all its partitions kept; a partition without parts is not kept (it may be written yet)."""
        kept = self._settled
        chosen = sorted({check_partition(p) for p in partitions})
        with self._settled_lock:
            found = {p: kept[(table, p)] for p in chosen if (table, p) in kept}
        if len(found) == len(chosen):
            return found
        listed = self._list_parts(table, None)
        with self._settled_lock:
            for partition, parts in listed.items():
                kept[(table, partition)] = parts
            while len(kept) > SETTLED_KEPT:
                kept.pop(next(iter(kept)))
        return {p: listed[p] for p in chosen if p in listed}

    def _retrying(self, table: str, read: Callable[[], _T]) -> _T:
        """read(), listed and fetched again when a part went between listing and reading (the
        table's settled partitions listed again too)."""
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return read()
            except (ObjectNotFound, FileNotFoundError):
                with self._settled_lock:
                    for key in [k for k in self._settled if k[0] == table]:
                        del self._settled[key]
                continue
        try:
            return read()
        except (ObjectNotFound, FileNotFoundError) as exc:
            raise StoreUnavailable(
                f"{self._location.url}: tables/{table} kept changing while read") from exc

    def _put_part(self, key: str, rows: pa.Table) -> None:
        sink = io.BytesIO()
        write_parquet(rows, sink)
        data = sink.getvalue()
        with vendor_errors(self._location):
            self._client.upload_fileobj(io.BytesIO(data), self._location.bucket,
                                        self._location.prefix + key, Config=self._transfer)
        self._cache.adopt(key, lambda f: f.write(data))

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start:start + 1000]]
            with vendor_errors(self._location):
                reply = self._client.delete_objects(
                    Bucket=self._location.bucket, Delete={"Objects": chunk, "Quiet": True})
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StoreUnavailable(f"{self._location.url}: cannot delete {first.get('Key')}: "
                                       f"{first.get('Code')}")


def _part_key(table: str, partition: str) -> str:
    # Time first, so parts sort in append order; the uuid keeps concurrent appends apart.
    return f"tables/{table}/{partition}/part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
