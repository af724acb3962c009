"""The output workbook of a published run, built after its rows are visible (issue 11 item 5).

Rendering a million rows as .xlsx takes longer than everything else a run does, so it is not part
of publishing: the run record says `workbook: pending` when the run becomes visible (its colors are
searchable at once), and whoever published builds the workbook right after (pending → ready, with
`output` naming the blob, or failed with the reason). A document under PENDING_PREFIX, written
before the run becomes visible and removed once the record says ready or failed, names the run and
its builder: when the builder's process died in between, the scheduler's next step rebuilds the
workbook from the stored rows (rebuild_orphaned).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from core import catalog
from core.clock import aware, now_or, parse_stamp
from core.config import Settings
from core.errors import NotFound
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.runs.liveness import current_owner, owner_alive, stale_seconds
from core.runs.memory import release_memory
from core.schema import POSITION
from storage import ObjectNotFound, Store, WriteConflict
from storage.run_tables import run_tables

log = logging.getLogger(__name__)

PENDING, READY, FAILED = "pending", "ready", "failed"
PENDING_PREFIX = catalog.PENDING_WORKBOOKS.key
BEING_PREPARED = ("The output workbook is being prepared; it can be downloaded here once it is "
                  "ready.")


def pending_key(run_id: int) -> str:
    return f"{PENDING_PREFIX}{run_id:08d}"


def workbook_state(record: runs.RunRecord) -> str:
    """pending, ready or failed; "" for a run without one (not published). Records written before
    workbooks were built after publishing name their blob and say nothing else: ready."""
    if record.workbook:
        return record.workbook
    return READY if record.output else ""


def workbook_note(record: runs.RunRecord) -> str:
    """What a page says instead of a download while there is no workbook ("" when ready/none)."""
    state = workbook_state(record)
    if state == PENDING:
        return BEING_PREPARED
    if state == FAILED:
        return (f"The output workbook could not be built ({record.workbook_error}); the colors "
                "are published: export them as CSV from Search.")
    return ""


@dataclass
class RunFrames:
    """A run's published, excluded and quarantined rows, as its workbook shows them."""

    published: pd.DataFrame
    excluded: pd.DataFrame
    quarantined: pd.DataFrame


def render_workbook(frames: RunFrames) -> bytes:
    """The output workbook: the published colors, then the excluded and quarantined rows."""
    extra = {name: frame for name, frame in (("Excluded", frames.excluded),
                                             ("Quarantined", frames.quarantined)) if len(frame)}
    return write_xlsx(frames.published, extra_sheets=extra)


def stored_frames(store: Store, run_id: int) -> RunFrames:
    """A published run's rows read back from the store, in the order the run had them."""
    frames = {t: run_tables(store).read(t, [run_id]) for t in runs.RUN_TABLES}
    for table, frame in frames.items():
        if POSITION in frame.columns:
            frames[table] = frame.sort_values(POSITION, kind="stable").reset_index(drop=True)
    return RunFrames(*(frames[t] for t in runs.RUN_TABLES))


def mark_pending(store: Store, record: runs.RunRecord, now: datetime | None = None) -> None:
    """Before the run becomes visible: the record will say pending, and the pending document
    names this process as the builder (so a crash before the workbook is built is noticed)."""
    record.workbook, record.workbook_error, record.output = PENDING, "", ""
    store.put(pending_key(record.run_id), {
        "run_id": record.run_id, "owner": current_owner(),
        "at": now_or(now).isoformat()}, expected_version=None)


def forget_pending(store: Store, run_id: int) -> None:
    """Remove the pending document (idempotent): the workbook is settled or the run is gone."""
    with contextlib.suppress(ObjectNotFound):
        store.delete(pending_key(run_id))


def build_workbook(store: Store, run_id: int, frames: RunFrames | None = None
                   ) -> tuple[runs.RunRecord | None, bytes]:
    """Build the workbook of a published run whose record says pending, store it and settle the
    record (ready, or failed with the reason: the rows stay published either way). frames: the
    rows in memory when the caller has them (else read back from the store). Returns the record
    as settled (None when the run is no longer published, or no longer pending: nothing kept)
    and the workbook's bytes (b"" when it failed)."""
    key = runs.output_blob_key(run_id)
    started = time.perf_counter()
    release_memory()  # what publishing freed, before rendering takes its share
    try:
        data = render_workbook(frames if frames is not None else stored_frames(store, run_id))
        store.put_blob(key, data)
        state, error = READY, ""
    except Exception as exc:  # the run stays published; the record says why there is no workbook
        log.exception("the output workbook of run %s could not be built", run_id)
        data, state, error = b"", FAILED, (str(exc) or type(exc).__name__)[:500]
    record = _settle(store, run_id, state, error, round(time.perf_counter() - started, 3))
    if record is None and state == READY:
        store.delete_blob(key)  # the run is not published (removed meanwhile): keep nothing
    forget_pending(store, run_id)
    ready = state == READY and record is not None and workbook_state(record) == READY
    return record, data if ready else b""


def _settle(store: Store, run_id: int, state: str, error: str, seconds: float
            ) -> runs.RunRecord | None:
    """Write the workbook's state (and how long it took, as the stage "workbook") into the record
    if it is still a published, pending run (others write the record too: compare-and-set).
    None when the run is not published."""
    while True:
        try:
            value, version = store.get(runs.run_key(run_id))
        except ObjectNotFound:
            return None
        record = runs.RunRecord.from_dict(value)
        if record.status != runs.SUCCESS:
            return None
        if record.workbook != PENDING:
            return record  # settled by another builder
        record.workbook, record.workbook_error = state, error
        record.stages = {**record.stages, "workbook": seconds}
        record.output = runs.output_blob_key(run_id) if state == READY else ""
        try:
            store.put(runs.run_key(run_id), record.to_dict(), expected_version=version)
        except WriteConflict:
            continue
        return record


def orphaned(store: Store, stale_s: float, now: datetime) -> list[tuple[int, str]]:
    """(run, pending document's version) of the workbooks whose builder is gone: its process on
    this host died, or (another host's, or one that lives on) it started more than stale_s ago.
    Pending documents of runs that are not published, or are settled, are removed."""
    found = []
    for key in store.list(PENDING_PREFIX):
        try:
            value, version = store.get(key)
        except ObjectNotFound:
            continue
        run_id = int(value["run_id"])
        try:
            record = runs.get_run(store, run_id)
        except NotFound:  # the run died before its record was written
            record = None
        if record is not None and record.status == runs.RUNNING:
            continue  # still publishing: its builder comes next
        if record is None or record.status != runs.SUCCESS or record.workbook != PENDING:
            forget_pending(store, run_id)
            continue
        alive = owner_alive(value.get("owner") or {})
        age = (aware(now) - parse_stamp(value["at"])).total_seconds()
        if alive is False or age > stale_s:
            found.append((run_id, version))
    return found


def rebuild(store: Store, run_id: int, version: str, now: datetime | None = None
            ) -> runs.RunRecord | None:
    """Build an orphaned workbook (see orphaned), claimed first by rewriting its pending document
    at the version read, so two schedulers never both build it. None when another builder took
    it or the run is no longer published; else the record as settled."""
    at = now_or(now)
    try:
        store.put(pending_key(run_id), {"run_id": run_id, "owner": current_owner(),
                                        "at": at.isoformat()}, expected_version=version)
    except (WriteConflict, ObjectNotFound):
        return None
    log.warning("rebuilding the output workbook of run %s (its builder is gone)", run_id)
    return build_workbook(store, run_id)[0]


def rebuild_orphaned(store: Store, settings: Settings, now: datetime | None = None
                     ) -> list[runs.RunRecord]:
    """Build every orphaned workbook; returns the records as settled."""
    at = now_or(now)
    found = (rebuild(store, run_id, version, at)
             for run_id, version in orphaned(store, stale_seconds(settings), at))
    return [record for record in found if record is not None]
