"""Restoring a backup (all of it, some areas, or one run) into the store, any backend: the archive
is verified whole first (a failing checksum, or a newer format or schema, refuses it); jobs are
paused and the scheduler's lease held (core.automation.pause), waiting for a job run in progress;
a pre-restore backup is taken; then the plan (core.compliance.restore_plan) is applied: documents
no longer wanted are removed first, rows, partitions and blobs written next, documents last (a
run's record after its rows), each document written against the version planned, so an edit made
meanwhile is kept and reported rather than overwritten. Derived data is rebuilt as `store copy`
does; the restore and its pre-restore backup are in the change log."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from core import catalog
from core.access import MANAGE_BACKUPS, Actor, require
from core.audit import record_change
from core.automation.pause import jobs_paused
from core.automation.scheduler import default_owner
from core.clock import now_or
from core.compliance.backup_archive import BackupArchive, Member
from core.compliance.backups import AREA, PRE_RESTORE, create_backup, open_backup
from core.compliance.restore_areas import select
from core.compliance.restore_plan import ADDED_BACK, REMOVED, Change, RestorePlan, make_plan
from core.compliance.store_copy import rebuild_derived
from core.compliance.store_inventory import BLOB, DOCUMENT, RUN, TABLE, document_item
from core.runs.records import bump_data_version
from storage import ObjectNotFound, Store, WriteConflict
from storage.run_tables import run_tables

Progress = Callable[[str], None]
WAIT_S = 600.0  # how long a restore waits for a job run in progress to end


@dataclass
class RestoreReport:
    backup_id: str
    pre_restore_id: str
    plan: RestorePlan
    applied: int = 0
    conflicts: list[str] = field(default_factory=list)  # edits made meanwhile, kept
    scheduler: str = ""
    rebuilt: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"Restored {self.plan.selection.describe()} from backup {self.backup_id}: "
                f"{self.applied} items changed, {self.plan.unchanged} already equal, "
                f"{len(self.conflicts)} kept because they changed meanwhile, in "
                f"{self.seconds:.1f} s; the state before is backup {self.pre_restore_id}")


def preview_restore(store: Store, actor: Actor, backup_id: str,
                    areas: list[str] | None = None) -> RestorePlan:
    """Exactly what restoring these areas (None: all) of the backup would change."""
    require(actor, MANAGE_BACKUPS)
    with open_backup(store, actor, backup_id) as archive:
        plan = make_plan(store, archive, backup_id, select(areas))
    own = f"{catalog.USERS.key}{actor.username}"
    if any(c.name == own and c.action == REMOVED for c in plan.changes):
        plan.notes.append(f"users: your own account ({actor.username}) is not in the backup: the "
                          "restore removes it and signs you out")
    return plan


def restore_backup(store: Store, actor: Actor, backup_id: str, areas: list[str] | None = None,
                   *, now: datetime | None = None, progress: Progress | None = None,
                   lease_s: float = 30.0, wait_s: float = WAIT_S) -> RestoreReport:
    """Restore the chosen areas (None: all) of a backup in the store's backup area."""
    require(actor, MANAGE_BACKUPS)
    say = progress or (lambda line: None)
    started, at = time.monotonic(), now_or(now)
    selection = select(areas)
    owner = f"restore:{actor.username}:{default_owner()}"
    with open_backup(store, actor, backup_id) as archive:
        say(f"checking backup {backup_id} ({len(archive.members)} items) ...")
        for _ in archive.verify(deep=False):  # every byte: a damaged archive writes nothing
            pass
        with jobs_paused(store, owner, f"{actor.username} is restoring backup {backup_id}",
                         ttl_s=lease_s, wait_s=wait_s, said=say) as paused:
            say(paused)
            pre = create_backup(store, actor, f"before restoring backup {backup_id}",
                                kind=PRE_RESTORE, now=at, record=False)
            say(f"pre-restore backup {pre.id} taken ({pre.items()})")
            plan = make_plan(store, archive, backup_id, selection)
            for line in plan.summary() + plan.notes:
                say(line)
            report = RestoreReport(backup_id, pre.id, plan, scheduler=paused)
            _apply(store, archive, report, say)
            runs_changed = any(c.part == RUN for c in plan.changes)
            _give_back_memory()
            report.rebuilt = rebuild_derived(store, at, say, force=runs_changed)
            bump_data_version(store, at)
    report.seconds = round(time.monotonic() - started, 3)
    record_change(store, actor, AREA, "backup", pre.id, after=pre.to_dict(), detail=pre.why,
                  now=at)
    record_change(store, actor, AREA, "restore", backup_id, now=at, after={
        "areas": selection.describe(), "pre_restore": pre.id, "changes": plan.summary(),
        "kept": plan.notes, "conflicts": report.conflicts, "seconds": report.seconds},
        detail=report.summary())
    return report


def _apply(store: Store, archive: BackupArchive, report: RestoreReport, say: Progress) -> None:
    members = {(m.item.part, m.item.name): m for m in archive.members}
    changes = report.plan.changes
    for change in changes:
        if change.part == DOCUMENT and change.action == REMOVED:
            _document(store, None, change, report)
    _runs(store, archive, members, [c for c in changes if c.part == RUN], report, say)
    for change in (c for c in changes if c.part == TABLE):
        table, partition = change.name.split("/")
        store.delete_partition(table, partition)
        if change.action != REMOVED:
            store.append(table, archive.rows(members[(TABLE, change.name)]), partition)
        report.applied += 1
    for change in (c for c in changes if c.part == BLOB):
        if change.action == REMOVED:
            store.delete_blob(change.name)
        else:
            store.put_blob(change.name, archive.blob(members[(BLOB, change.name)]))
        report.applied += 1
    for change in changes:
        if change.part == DOCUMENT and change.action != REMOVED:
            _document(store, archive.document(members[(DOCUMENT, change.name)]), change, report)
    say(f"{report.applied} items restored" + (f"; {len(report.conflicts)} kept as edited "
                                              "meanwhile" if report.conflicts else ""))


def _runs(store: Store, archive: BackupArchive, members: dict[tuple[str, str], Member],
          changes: list[Change], report: RestoreReport, say: Progress) -> None:
    """Each run with a difference is removed, then written again whole from the archive (a run's
    rows are written and removed together, through the run-table port)."""
    port = run_tables(store)
    for run in sorted({int(c.name.split("/")[1]) for c in changes}):
        port.remove_run(run)
        rows = {m.item.name.split("/")[0]: archive.rows(m) for (part, name), m in members.items()
                if part == RUN and name.split("/")[1] == str(run)}
        if rows:
            port.append_run(run, rows)
        say(f"run {run}: " + (", ".join(f"{len(f)} {t}" for t, f in rows.items()) or "removed"))
    report.applied += len(changes)


def _document(store: Store, value: object, change: Change, report: RestoreReport) -> None:
    """Write (or, value None, remove) one document if it is still as planned, with its version."""
    try:
        current, version = store.get(change.name)
        checksum: str | None = document_item(change.name, current).checksum
    except ObjectNotFound:
        version, checksum = None, None
    if checksum != change.current:
        report.conflicts.append(f"{change.what}: changed since the restore was planned; kept")
        return
    try:
        if value is None:
            store.delete(change.name, version or "")
        else:
            store.put(change.name, value, None if change.action == ADDED_BACK else version)
    except (WriteConflict, ObjectNotFound):
        report.conflicts.append(f"{change.what}: changed while restoring; kept")
        return
    report.applied += 1


def _give_back_memory() -> None:
    """Return what reading and writing the runs left in the allocators' free lists before the
    compaction (DuckDB takes up to its memory limit; the process must stay under 1.5 GB,
    DESIGN.md §7): Arrow's pool and, on glibc, the C heap."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
