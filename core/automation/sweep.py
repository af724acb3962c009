"""Sweeping dead runs (core.runs.liveness decides who is dead): mark them abandoned, remove their
partial data, give the buffer files a dead job run had claimed back, and show history with them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from core.access import TRIGGER_RUN, Actor, require
from core.audit import record_change
from core.clock import now_or, parse_stamp
from core.config import Settings
from core.intake import buffer
from core.runs import records as runs
from core.runs.liveness import (
    SWEEP_LIMIT,
    abandon_run,
    death,
    remove_run_data,
    stale_seconds,
)
from storage import ObjectNotFound, Store

log = logging.getLogger(__name__)


def _release_job_claims(store: Store, record: runs.RunRecord, now: datetime) -> list[str]:
    """Buffer files the dead run of a job had claimed go back to pending (as for a failed run).
    Only claims from before its last sign of life: a later claim belongs to a newer run. A manual
    save's files stay with its session, which saves again after its timeout."""
    if not record.job:
        return []
    owner = f"job:{record.job}"
    last = max(filter(None, (record.started_at, record.heartbeat_at)), default="")
    ids = [e.id for e in buffer.list_entries(store, buffer.CLAIMED)
           if e.claimed_by == owner and last and e.claimed_at
           and parse_stamp(e.claimed_at) <= parse_stamp(last)]
    return buffer.release(store, ids, owner=owner, now=now) if ids else []


def sweep_runs(store: Store, actor: Actor, settings: Settings, *, now: datetime | None = None,
               limit: int | None = SWEEP_LIMIT,
               records: Sequence[runs.RunRecord] | None = None) -> list[runs.RunRecord]:
    """Mark the runs whose process died abandoned, remove their partial data and release the
    buffer files they claimed; returns them. Looks at `records` (already loaded) or the newest
    `limit` runs (None: all, and then also re-removes data an interrupted sweep left behind)."""
    require(actor, TRIGGER_RUN)
    now = now_or(now)
    stale = stale_seconds(settings)
    found = []
    for record in runs.load_runs(store, limit=limit) if records is None else records:
        if record.status == runs.ABANDONED and limit is None and records is None:
            remove_run_data(store, record.run_id)
            continue
        reason = death(record, now, stale)
        if not reason:
            continue
        try:
            value, version = store.get(runs.run_key(record.run_id))
        except ObjectNotFound:
            continue
        reason = death(runs.RunRecord.from_dict(value), now, stale)  # as stored at that version
        done = abandon_run(store, record.run_id, reason, now, version) if reason else None
        if done is None:
            continue
        log.warning("run %s %s", done.run_id, reason)
        released = _release_job_claims(store, done, now)
        record_change(store, actor, "runs", "run_abandoned", f"run {done.run_id}",
                      before={"status": runs.RUNNING, "owner": done.owner},
                      after={"status": runs.ABANDONED, "released": released}, detail=reason)
        found.append(done)
    return found


def load_swept_runs(store: Store, actor: Actor, settings: Settings, *, limit: int,
                    now: datetime | None = None) -> list[runs.RunRecord]:
    """The newest `limit` runs for a history view, runs whose process died shown abandoned (swept
    on the way when the actor may trigger runs: no extra read unless one is running)."""
    records = runs.load_runs(store, limit=limit)
    if actor.can(TRIGGER_RUN) and any(r.status == runs.RUNNING for r in records):
        swept = {r.run_id: r for r in sweep_runs(store, actor, settings, now=now,
                                                  records=records)}
        records = [swept.get(r.run_id, r) for r in records]
    return records
