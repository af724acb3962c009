"""Carrying a store's state item by item to a sink (another store for `store copy`, an archive for
a backup): every state document, blob and table partition, then each run's rows, with a progress
line per part, partition and run; what was carried comes back as an Inventory (the checksums of
what was read, so the source is read once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from core.compliance.store_inventory import (
    BLOB,
    DOCUMENT,
    Inventory,
    Item,
    read_blobs,
    read_documents,
    read_runs,
    read_tables,
)
from storage import Store

EVERY = 500  # documents or blobs between two progress lines
Progress = Callable[[str], None]
RunRows = dict[str, tuple[Item, pd.DataFrame]]  # a run's rows: table → (item, frame)


class Sink(Protocol):
    """Where carried items go; each method returns the item(s) as carried (a sink may carry
    fewer rows than it was given, e.g. a backup's audit trail ends at the chain head)."""

    def document(self, item: Item, value: Any) -> Item: ...

    def blob(self, item: Item, data: bytes) -> Item: ...

    def rows(self, item: Item, frame: pd.DataFrame) -> Item: ...

    def run(self, run: int, rows: RunRows) -> list[Item]: ...


def carry_state(store: Store, sink: Sink, verb: str, say: Progress) -> Inventory:
    """Every state item of the store to the sink ("documents: 12 copied", "run 3: 25 colors, 2
    quarantined"); keys the catalog does not know are named and not carried."""
    carried = Inventory()
    for item, value in read_documents(store, carried.unknown):
        carried.add(sink.document(item, value))
        if carried.count(DOCUMENT) % EVERY == 0:
            say(f"documents: {carried.count(DOCUMENT)} {verb}")
    say(f"documents: {carried.count(DOCUMENT)} {verb}")
    for item, data in read_blobs(store, carried.unknown):
        carried.add(sink.blob(item, data))
        if carried.count(BLOB) % EVERY == 0:
            say(f"blobs: {carried.count(BLOB)} {verb}")
    say(f"blobs: {carried.count(BLOB)} {verb} ({carried.size(BLOB)} bytes)")
    for item, frame in read_tables(store, carried.unknown):
        done = sink.rows(item, frame)
        carried.add(done)
        table, partition = done.name.split("/")
        say(f"table {table} partition {partition}: {done.size} rows")
    for run, rows in read_runs(store):
        for done in sink.run(run, rows):
            carried.add(done)
        say(f"run {run}: " + ", ".join(f"{item.size} {table}" for table, (item, _) in
                                       rows.items()))
    for line in carried.unknown:
        say(f"not {verb} (the catalog does not know it): {line}")
    return carried
