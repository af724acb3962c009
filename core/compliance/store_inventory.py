"""What a store holds that a copy must carry (the catalog's state entries), each with a checksum:
a document by the SHA-256 of its canonical JSON, a blob by its bytes, a table partition and each
run's rows of each run table by a row count and a SHA-256 over its rows' canonical text, in any
order (core.compliance.row_checksum).
`store copy` verifies a target against its source with these; tests prove a source unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core import catalog
from core.compliance.row_checksum import rows_checksum
from storage import Store
from storage.run_tables import RUN_TABLES, run_tables

DOCUMENT, BLOB, TABLE, RUN = "document", "blob", "table", "run"


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

    def counts(self) -> dict[str, int]:
        """What it holds, counted: documents, blobs, tables, partitions, runs, rows (of tables
        and runs) and bytes (of documents and blobs)."""
        return {"documents": self.count(DOCUMENT), "blobs": self.count(BLOB),
                "tables": len({name.split("/")[0] for part, name in self.items if part == TABLE}),
                "partitions": self.count(TABLE),
                "runs": len({name.split("/")[1] for part, name in self.items if part == RUN}),
                "rows": self.size(TABLE, RUN), "bytes": self.size(DOCUMENT, BLOB)}


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


# (part, name) → whether it is wanted: a restore of some areas reads only theirs
Select = Callable[[str, str], bool]


def _every(part: str, name: str) -> bool:
    return True


def read_documents(store: Store, unknown: list[str], select: Select = _every
                   ) -> Iterator[tuple[Item, Any]]:
    """Each state document (that `select` wants): its item and value. Keys the catalog does not
    know are not read: they are added to unknown (so are blobs and tables below)."""
    for key in state_documents(store, unknown):
        if select(DOCUMENT, key):
            value, _ = store.get(key)
            yield document_item(key, value), value


def read_blobs(store: Store, unknown: list[str], select: Select = _every
               ) -> Iterator[tuple[Item, bytes]]:
    for key in state_blobs(store, unknown):
        if select(BLOB, key):
            data = store.get_blob(key)
            yield blob_item(key, data), data


def read_tables(store: Store, unknown: list[str], select: Select = _every
                ) -> Iterator[tuple[Item, pd.DataFrame]]:
    """Each partition of each state table (the run tables aside): its item and rows."""
    for table in state_tables(store, unknown):
        for partition in store.partitions(table):
            if select(TABLE, f"{table}/{partition}"):
                frame = store.scan(table, [partition])
                yield rows_item(TABLE, f"{table}/{partition}", frame), frame


def read_runs(store: Store, select: Select = _every
              ) -> Iterator[tuple[int, dict[str, tuple[Item, pd.DataFrame]]]]:
    """Each run holding rows, ascending, with its rows of each run table it wrote to: one run at
    a time, so a big store never sits in memory whole."""
    port = run_tables(store)
    by_table = runs_by_table(store)
    for run in sorted({r for runs in by_table.values() for r in runs}):
        rows = {}
        for table, runs in by_table.items():
            if run in runs and select(RUN, f"{table}/{run}"):
                frame = port.read(table, [run])
                rows[table] = (rows_item(RUN, f"{table}/{run}", frame), frame)
        if rows:
            yield run, rows


def take_inventory(store: Store, progress: Callable[[str], None] | None = None,
                   select: Select = _every) -> Inventory:
    """Every state item of the store (that `select` wants) with its checksum, and the keys the
    catalog does not know."""
    inventory = Inventory()
    for reader in (read_documents, read_blobs, read_tables):
        for item, _ in reader(store, inventory.unknown, select):
            inventory.add(item)
    for run, rows in read_runs(store, select):
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
