"""Moving a desk to another store (`python -m core store copy --to URL`): every state document,
blob and table partition the catalog names, and each run's rows through the run-table port, are
written to an empty target, read back and checked against the source (counts and checksums:
core.compliance.store_inventory). Derived data is not copied: compaction is rebuilt here, caches,
heartbeats and leases by the running product. The source is only read.

A marker document is written on the target first and removed last, once the copy is verified: a
copy that stopped half-way (or failed its check) is marked, and store copy refuses to copy into
it again; empty it and start over (copies are not resumed)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from core import catalog
from core.access import MANAGE_BACKUPS, Actor, require
from core.clock import now_or
from core.compliance.state_carry import Progress, RunRows, carry_state
from core.compliance.store_inventory import Inventory, Item, compare, runs_by_table, take_inventory
from core.errors import Conflict
from core.reads.compaction import compact_colors
from storage import ANY_VERSION, ObjectNotFound, Store
from storage.run_tables import run_tables

MARKER_KEY = catalog.STORE_COPY.key


@dataclass
class CopyReport:
    """What a copy carried and whether the target matched the source when read back."""

    source: str
    target: str
    documents: int = 0
    blobs: int = 0
    tables: int = 0
    partitions: int = 0
    runs: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    unknown: list[str] = field(default_factory=list)  # keys the catalog does not know: not copied
    problems: list[str] = field(default_factory=list)  # what differs on the target
    rebuilt: str = ""

    @property
    def verified(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (f"{self.documents} documents, {self.blobs} blobs, {self.tables} tables "
                f"({self.partitions} partitions), {self.runs} runs, {self.rows} rows, "
                f"{self.bytes} bytes of documents and blobs, in {self.seconds:.1f} s")


def shown_url(url: str) -> str:
    """A store URL fit to print: a password in it (user:password@host) is masked."""
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", url)


def unfinished_copy(store: Store) -> dict[str, Any] | None:
    """The marker of a copy into this store that did not finish (or failed its check), or None."""
    try:
        return store.get(MARKER_KEY)[0]
    except ObjectNotFound:
        return None


def describe_unfinished(store: Store, marker: dict[str, Any]) -> str:
    state = "failed its check" if marker.get("state") == "failed" else "did not finish"
    return (f"{shown_url(store.url)} holds a copy from {marker.get('source')} started at "
            f"{marker.get('started_at')} that {state}: empty it and copy again")


def check_target_empty(target: Store) -> None:
    """Conflict unless the target holds nothing at all (store copy never merges into state)."""
    marker = unfinished_copy(target)
    if marker is not None:
        raise Conflict(describe_unfinished(target, marker))
    held = [f"{n} {what}" for n, what in (
        (len(target.list("")), "documents"), (len(target.list_blobs("")), "blobs"),
        (len(target.tables()), "tables"),
        (len({r for runs in runs_by_table(target).values() for r in runs}), "runs")) if n]
    if held:
        raise Conflict(f"the target {shown_url(target.url)} already holds state "
                       f"({', '.join(held)}): store copy only fills an empty store; "
                       "nothing was written")


def copy_store(actor: Actor, source: Store, target: Store, *, progress: Progress | None = None,
               now: datetime | None = None) -> CopyReport:
    """Copy the source's state into the empty target and verify it; the report says what was
    carried and, when the target does not match, what differs (the marker then stays on the
    target). Stop the app and the scheduler first: a run published meanwhile shows as a mismatch."""
    require(actor, MANAGE_BACKUPS)
    say = progress or (lambda line: None)
    started = time.monotonic()
    if shown_url(source.url) == shown_url(target.url):
        raise Conflict(f"the source and the target are the same store ({shown_url(source.url)})")
    marker = unfinished_copy(source)
    if marker is not None:
        raise Conflict("the source is not complete: " + describe_unfinished(source, marker))
    check_target_empty(target)
    report = CopyReport(shown_url(source.url), shown_url(target.url))
    marker = {"state": "copying", "source": report.source, "by": actor.username,
              "started_at": now_or(now).isoformat()}
    target.put(MARKER_KEY, marker, expected_version=None)  # WriteConflict: another copy began
    say(f"copying {report.source} → {report.target} (marked incomplete until verified)")
    copied = _copy_state(source, target, report, say)
    report.unknown = copied.unknown
    say("reading the target back to verify it ...")
    report.problems = compare(copied, take_inventory(target))
    if report.problems:
        target.put(MARKER_KEY, {**marker, "state": "failed", "problems": report.problems[:20]},
                   expected_version=ANY_VERSION)
    else:
        report.rebuilt = rebuild_derived(target, now, say)
        target.delete(MARKER_KEY)
    report.seconds = time.monotonic() - started
    return report


class _StoreSink:
    """store copy's sink: each item written to the target as it was read."""

    def __init__(self, target: Store) -> None:
        self.target, self.port = target, run_tables(target)

    def document(self, item: Item, value: Any) -> Item:
        self.target.put(item.name, value, expected_version=None)
        return item

    def blob(self, item: Item, data: bytes) -> Item:
        self.target.put_blob(item.name, data)
        return item

    def rows(self, item: Item, frame: pd.DataFrame) -> Item:
        table, partition = item.name.split("/")
        self.target.append(table, frame, partition)
        return item

    def run(self, run: int, rows: RunRows) -> list[Item]:
        self.port.append_run(run, {table: frame for table, (_, frame) in rows.items()})
        return [item for item, _ in rows.values()]


def _copy_state(source: Store, target: Store, report: CopyReport, say: Progress) -> Inventory:
    """Write every state item of the source to the target; the source's inventory (checksums of
    what was read, so the source is read once)."""
    copied = carry_state(source, _StoreSink(target), "copied", say)
    for name, value in copied.counts().items():
        setattr(report, name, value)
    return copied


def rebuild_derived(target: Store, now: datetime | None, say: Progress, *,
                    force: bool = False) -> str:
    """Rebuild the derived data worth having before the first read: the compacted colors (when
    the plan asks for it, as the scheduler would; force: always, when runs' rows were replaced
    under the same ids). Caches, heartbeats and leases come back by themselves once the app and
    the scheduler run."""
    say("rebuilding derived data (compaction) ...")
    done = compact_colors(target, force=force, now=now_or(now))
    return (f"compaction: {done.runs} runs, {done.rows} rows" if done.done
            else f"compaction not needed ({done.reason})")
