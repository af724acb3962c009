"""What a store holds that a copy must carry (the catalog's state entries), each with a checksum:
a document by the SHA-256 of its canonical JSON, a blob by its bytes, a table partition and each
run's rows of each run table by a row count and the SHA-256 of its rows in a canonical order.
`store copy` verifies a target against its source with these; tests prove a source unchanged."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core import catalog
from storage import Store
from storage.run_tables import RUN_TABLES, run_tables

DOCUMENT, BLOB, TABLE, RUN = "document", "blob", "table", "run"
NULL = "\x00"  # a missing cell (None, NaN, NA, NaT): no real cell's text starts with it
_CELL_SEPARATOR, _ROW_SEPARATOR = "\x1f", "\x1e"
_HASH_BATCH = 50_000  # rows joined per hash update (bounds the text held at once)


@dataclass(frozen=True)
class Item:
    """One thing a copy carries. name: a document or blob key, "table/partition" for a table's
    partition, "table/run" (the run id) for a run's rows. size: bytes (documents as canonical
    JSON, blobs) or rows (tables, runs)."""

    part: str
    name: str
    size: int
    checksum: str

    @property
    def label(self) -> str:
        """How a person reads it in a message: "blob outputs/run-00000003.xlsx"."""
        if self.part == RUN:
            table, run = self.name.split("/")
            return f"rows of run {run} in table {table}"
        if self.part == TABLE:
            table, partition = self.name.split("/")
            return f"table {table} partition {partition}"
        return f"{self.part} {self.name}"

    @property
    def unit(self) -> str:
        return "rows" if self.part in (TABLE, RUN) else "bytes"


@dataclass
class Inventory:
    """Every item of a store's state, keyed by (part, name), and the keys the catalog does not
    know (a copy carries none of them; each is named so nothing disappears unseen)."""

    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def add(self, item: Item) -> None:
        self.items[(item.part, item.name)] = item

    def count(self, part: str) -> int:
        return sum(1 for p, _ in self.items if p == part)

    def size(self, *parts: str) -> int:
        return sum(i.size for (p, _), i in self.items.items() if p in parts)


# -- checksums -------------------------------------------------------------------------------------
def canonical_json(value: Any) -> bytes:
    """A document's canonical JSON: keys sorted, no spaces, UTF-8 (the same value, the same bytes,
    whichever store returned it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def document_item(key: str, value: Any) -> Item:
    text = canonical_json(value)
    return Item(DOCUMENT, key, len(text), hashlib.sha256(text).hexdigest())


def blob_item(key: str, data: bytes) -> Item:
    return Item(BLOB, key, len(data), hashlib.sha256(data).hexdigest())


def rows_item(part: str, name: str, frame: pd.DataFrame) -> Item:
    return Item(part, name, len(frame), rows_checksum(frame))


def rows_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 of the column names (sorted) and the rows as canonical text, sorted: independent of
    row and column order, and of how a backend types a value (1 and 1.0, True and 1, a date and its
    midnight, naive UTC and aware UTC read the same; a missing value is missing, whatever its
    kind), so two stores holding the same rows agree."""
    columns = sorted(map(str, frame.columns))
    digest = hashlib.sha256(_ROW_SEPARATOR.join(columns).encode())
    if len(frame) == 0:
        return digest.hexdigest()
    cells = [_canonical_cells(frame[column]) for column in columns]
    rows = np.sort(_joined(cells))
    for start in range(0, len(rows), _HASH_BATCH):
        chunk = rows[start:start + _HASH_BATCH]
        text = _ROW_SEPARATOR + _ROW_SEPARATOR.join(chunk)
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _joined(cells: list[np.ndarray]) -> np.ndarray:
    joined = cells[0].astype(object)
    for column in cells[1:]:
        joined = joined + _CELL_SEPARATOR + column
    return joined


def _canonical_cells(series: pd.Series) -> np.ndarray:
    """The column's cells as canonical text (an object array of str), fast for typed columns."""
    dtype = series.dtype
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        truth = series.fillna(False).astype(bool).to_numpy()
        text = np.where(truth, "n1", "n0").astype(object)
    elif pd.api.types.is_integer_dtype(dtype):
        text = ("n" + series.astype("string").fillna("")).to_numpy(dtype=object)
    elif pd.api.types.is_float_dtype(dtype):
        numbers = series.to_numpy(dtype="float64", na_value=np.nan)
        text = np.array([_number(x) for x in numbers], dtype=object)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = series.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(
            dtype, "tz", None) else series
        micros = stamps.astype("datetime64[us]").to_numpy().view("int64")
        text = np.char.add("t", micros.astype(str)).astype(object)
    elif isinstance(dtype, pd.StringDtype):
        text = ("s" + series.fillna("")).to_numpy(dtype=object)
    else:
        text = np.array([_cell(v) for v in series.to_numpy(dtype=object)], dtype=object)
    text[missing] = NULL
    return text


def _number(value: float) -> str:
    """A number's text: integral values as integers (so 1.0 reads as 1), others by repr."""
    if math.isnan(value):
        return NULL
    if math.isfinite(value) and value == math.floor(value) and abs(value) < 2**53:
        return f"n{int(value)}"
    return f"n{value!r}"


def _cell(value: Any) -> str:
    """Canonical text of one value of an untyped (object) column."""
    if value is None or value is pd.NA or value is pd.NaT:
        return NULL
    if isinstance(value, bool | np.bool_):
        return "n1" if value else "n0"
    if isinstance(value, int | np.integer):
        return f"n{int(value)}"
    if isinstance(value, float | np.floating | decimal.Decimal):
        return _number(float(value))
    if isinstance(value, dt.date | np.datetime64):  # datetimes, dates, pandas Timestamps
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return f"t{stamp.value // 1000}"
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, bytes | bytearray | memoryview):
        return "x" + bytes(value).hex()
    return "o" + json.dumps(value, sort_keys=True, default=str)


# -- what a store holds ----------------------------------------------------------------------------
def state_documents(store: Store, unknown: list[str]) -> list[str]:
    """Keys of the store's state documents; keys no catalog entry knows are added to unknown."""
    return _state_keys(store.list(""), catalog.DOCUMENTS, DOCUMENT, unknown)


def state_blobs(store: Store, unknown: list[str]) -> list[str]:
    return _state_keys(store.list_blobs(""), catalog.BLOBS, BLOB, unknown)


def state_tables(store: Store, unknown: list[str]) -> list[str]:
    """The state tables a copy carries partition by partition: every one but the run tables
    (carried run by run through the run-table port)."""
    names = [t for t in store.tables() if t not in RUN_TABLES]
    return _state_keys(names, catalog.TABLES, TABLE, unknown)


def runs_by_table(store: Store) -> dict[str, list[int]]:
    """The runs holding rows in each run table, through the run-table port."""
    port = run_tables(store)
    return {table: port.runs(table) for table in RUN_TABLES}


def _state_keys(keys: list[str], part: str, word: str, unknown: list[str]) -> list[str]:
    kept = []
    for key in keys:
        entry = catalog.entry_for(key, part)
        if entry is None:
            unknown.append(f"{word} {key}")
        elif entry.kind == catalog.STATE:
            kept.append(key)
    return kept


def read_documents(store: Store, unknown: list[str]) -> Iterator[tuple[Item, Any]]:
    """Each state document: its item and value. Keys the catalog does not know are not read: they
    are added to unknown (so are blobs and tables below)."""
    for key in state_documents(store, unknown):
        value, _ = store.get(key)
        yield document_item(key, value), value


def read_blobs(store: Store, unknown: list[str]) -> Iterator[tuple[Item, bytes]]:
    for key in state_blobs(store, unknown):
        data = store.get_blob(key)
        yield blob_item(key, data), data


def read_tables(store: Store, unknown: list[str]) -> Iterator[tuple[Item, pd.DataFrame]]:
    """Each partition of each state table (the run tables aside): its item and rows."""
    for table in state_tables(store, unknown):
        for partition in store.partitions(table):
            frame = store.scan(table, [partition])
            yield rows_item(TABLE, f"{table}/{partition}", frame), frame


def read_runs(store: Store) -> Iterator[tuple[int, dict[str, tuple[Item, pd.DataFrame]]]]:
    """Each run holding rows, ascending, with its rows of each run table it wrote to: one run at
    a time, so a big store never sits in memory whole."""
    port = run_tables(store)
    by_table = runs_by_table(store)
    for run in sorted({r for runs in by_table.values() for r in runs}):
        rows = {}
        for table, runs in by_table.items():
            if run in runs:
                frame = port.read(table, [run])
                rows[table] = (rows_item(RUN, f"{table}/{run}", frame), frame)
        yield run, rows


def take_inventory(store: Store, progress: Callable[[str], None] | None = None) -> Inventory:
    """Every state item of the store with its checksum, and the keys the catalog does not know."""
    inventory = Inventory()
    for reader in (read_documents, read_blobs, read_tables):
        for item, _ in reader(store, inventory.unknown):
            inventory.add(item)
    for run, rows in read_runs(store):
        for item, _ in rows.values():
            inventory.add(item)
        if progress is not None:
            progress(f"checked run {run} ({sum(i.size for i, _ in rows.values())} rows)")
    return inventory


def compare(source: Inventory, target: Inventory) -> list[str]:
    """What differs between a source's inventory and its copy's, one line per item, naming it:
    missing from the target, there but not in the source, or a different size or checksum."""
    problems = []
    for key in sorted(source.items.keys() | target.items.keys()):
        theirs, ours = source.items.get(key), target.items.get(key)
        if ours is None:
            assert theirs is not None
            problems.append(f"{theirs.label}: missing from the target")
        elif theirs is None:
            problems.append(f"{ours.label}: in the target but not in the source")
        elif theirs.size != ours.size:
            problems.append(f"{ours.label}: {theirs.size} {ours.unit} in the source, "
                            f"{ours.size} in the target")
        elif theirs.checksum != ours.checksum:
            problems.append(f"{ours.label}: checksum differs (source {theirs.checksum[:12]}…, "
                            f"target {ours.checksum[:12]}…)")
    return problems
