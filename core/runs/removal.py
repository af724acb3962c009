"""Removing a published run, with undo (DOMAIN.md §6): an admin takes a run out of every read
(search, the dashboard, exports, the duplicate check) with a reason; its rows stay stored, so undo
brings it back exactly. Watchers are not alerted again: alerts go out once per run, at publish.
Both are written with the run record's version and logged in the change log (area "runs")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.access import REMOVE_RUNS, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.errors import Conflict, InvalidInput, NotFound
from core.runs import records as runs
from storage import ObjectNotFound, Store, WriteConflict

AREA = "runs"
REMOVED_ACTION, RESTORED_ACTION = "run_removed", "run_restored"


def entity(run_id: int) -> str:
    """How the change log names a run ("run 7", as run_published does)."""
    return f"run {run_id}"


def state(record: runs.RunRecord) -> dict[str, Any]:
    """What the change log keeps of a run for removal and undo: its id, status and removal."""
    return {"run": record.run_id, "status": record.status, "removal": dict(record.removal)}


def _read(store: Store, run_id: int) -> tuple[runs.RunRecord, str]:
    try:
        value, version = store.get(runs.run_key(run_id))
    except ObjectNotFound:
        raise NotFound(f"run {run_id} does not exist") from None
    return runs.RunRecord.from_dict(value), version


def set_state(store: Store, run_id: int, expected: dict[str, Any], wanted: dict[str, Any]
              ) -> runs.RunRecord:
    """Move the run from `expected` (status and removal) to `wanted`, with the record's version;
    Conflict when it is no longer `expected` (changed meanwhile)."""
    record, version = _read(store, run_id)
    if state(record) != expected:
        raise Conflict(f"run {run_id} is {record.status} now, not {expected['status']}: it "
                       "changed meanwhile; reload")
    record.status, record.removal = wanted["status"], dict(wanted["removal"])
    try:
        store.put(runs.run_key(run_id), record.to_dict(), expected_version=version)
    except WriteConflict:
        raise Conflict(f"run {run_id} changed meanwhile; reload and try again") from None
    runs.bump_data_version(store)
    return record


def remove_run(store: Store, actor: Actor, run_id: int, reason: str, *,
               now: datetime | None = None) -> runs.RunRecord:
    """Take a published run out of every read; reason required. Only a published run can be
    removed."""
    require(actor, REMOVE_RUNS)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason", "say why the run is removed")
    record, _ = _read(store, run_id)
    if record.status != runs.SUCCESS:
        raise InvalidInput("run", f"run {run_id} is {record.status}: only a published run can be "
                                  "removed")
    at = now_or(now)
    before = state(record)
    after = {"run": run_id, "status": runs.REMOVED,
             "removal": {"by": actor.username, "at": at.isoformat(), "reason": reason}}
    removed = set_state(store, run_id, before, after)
    record_change(store, actor, AREA, REMOVED_ACTION, entity(run_id), before=before, after=after,
                  detail=reason, now=at)
    return removed


def restore_run(store: Store, actor: Actor, run_id: int, *, now: datetime | None = None
                ) -> runs.RunRecord:
    """Undo a removal: the run is published again, exactly as before (its rows never left)."""
    require(actor, REMOVE_RUNS)
    record, _ = _read(store, run_id)
    if record.status != runs.REMOVED:
        raise InvalidInput("run", f"run {run_id} is {record.status}, not removed: nothing to undo")
    before = state(record)
    after = {"run": run_id, "status": runs.SUCCESS, "removal": {}}
    restored = set_state(store, run_id, before, after)
    record_change(store, actor, AREA, RESTORED_ACTION, entity(run_id), before=before,
                  after=after, now=now_or(now))
    return restored
