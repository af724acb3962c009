"""A job's schedule slots, as the scheduler handles them: each slot is claimed in the store
before it runs (at most once, even across a crash or two schedulers), the latest runs if it is
within the grace window, earlier ones since the last handled slot are recorded as missed, and
the slot an admin chose to skip is recorded as skipped."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import islice, takewhile
from typing import TYPE_CHECKING, Any

from core import catalog
from core.access import SYSTEM
from core.audit import record_change
from core.automation.jobs import AREA as JOBS_AREA
from core.automation.jobs import PREFIX as JOBS_PREFIX
from core.automation.jobs import Job, get_job
from core.automation.schedules import previous_occurrences
from core.clock import parse_stamp
from core.errors import NotFound
from core.runs.records import MISSED, SKIPPED, RunRecord
from storage import ObjectNotFound, Store, WriteConflict

if TYPE_CHECKING:
    from core.automation.scheduler import Context

STATE_PREFIX = catalog.SCHEDULE_STATE.key
MISSED_RECORDS_MAX = 10  # per job and catch-up; older missed slots are summed up in one note
SKIPPED_TEXT = "skipped: 'Run now and skip the next scheduled run'"
MISSED_TEXT = "missed: the scheduler was not running at {slot}"


def clear_skip(store: Store, job_id: str, skip_iso: str, now: datetime) -> None:
    """The skipped occurrence has passed: clear skip_next_at (logged as a system job change)."""
    for _ in range(3):
        try:
            job, version = get_job(store, job_id)
        except NotFound:
            return
        if job.skip_next_at != skip_iso:
            return
        after = replace(job, skip_next_at=None)
        try:
            store.put(JOBS_PREFIX + job_id, after.to_dict(), version)
        except WriteConflict:
            continue
        record_change(store, SYSTEM, JOBS_AREA, "skip_done", job.name, before=job.to_dict(),
                      after=after.to_dict(), now=now)
        return


def _state(store: Store, job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return store.get(STATE_PREFIX + job_id)
    except ObjectNotFound:
        return None, None


def _claim_slot(store: Store, job: Job, slot: datetime, version: str | None,
                now: datetime) -> bool:
    """Record `slot` as handled before running it (at most once, even across a crash)."""
    try:
        store.put(STATE_PREFIX + job.id, {"last_slot": slot.isoformat(),
                                          "updated_at": now.isoformat()}, version)
    except WriteConflict:
        return False
    return True


def _baseline(state: dict[str, Any] | None, job: Job, now: datetime) -> datetime:
    """Slots after this are new: the last handled slot, else when the job was created."""
    text = (state or {}).get("last_slot") or job.created_at
    if not text:
        return now
    return parse_stamp(text)


def due_runs(ctx: Context, job: Job, now: datetime) -> list[RunRecord]:
    """Handle the job's slots since its last handled one: the latest runs if within the grace
    window (else missed); earlier ones are missed; the skip_next_at slot is skipped."""
    state, version = _state(ctx.store, job.id)
    baseline = _baseline(state, job, now)
    latest = next(previous_occurrences(job.schedule, job.timezone, now), None)
    if latest is None or latest <= baseline or ctx.stopping():
        return []
    if not _claim_slot(ctx.store, job, latest, version, now):
        return []  # another scheduler handled it
    if not job.active:
        return []
    skip = datetime.fromisoformat(job.skip_next_at) if job.skip_next_at else None
    earlier = list(islice(takewhile(lambda at: at > baseline, previous_occurrences(
        job.schedule, job.timezone, latest - timedelta(microseconds=1))), MISSED_RECORDS_MAX + 1))
    note = ""
    if len(earlier) > MISSED_RECORDS_MAX:  # a long outage: record the latest few, note the rest
        earlier = earlier[:MISSED_RECORDS_MAX]
        note = f" (and earlier missed runs since {baseline.isoformat()})"
    records: list[RunRecord] = []
    for slot in sorted(earlier):
        if slot == skip:
            records.append(ctx.mark(job, slot, SKIPPED, SKIPPED_TEXT))
        else:
            text = MISSED_TEXT.format(slot=slot.isoformat()) + note
            records.append(ctx.mark(job, slot, MISSED, text))
            note = ""
    if skip is not None and skip <= latest:  # its slot has passed (or the schedule changed)
        clear_skip(ctx.store, job.id, job.skip_next_at or "", now)
    minutes = float(ctx.settings["scheduler.grace_minutes"])
    if latest == skip:
        records.append(ctx.mark(job, latest, SKIPPED, SKIPPED_TEXT))
    elif now - latest > timedelta(minutes=minutes):
        text = MISSED_TEXT.format(slot=latest.isoformat())
        records.append(ctx.mark(job, latest, MISSED,
                                f"{text}, outside the {minutes:g}-minute grace window"))
    else:
        done = ctx.execute(job, trigger="scheduled", override=False, actor=SYSTEM)
        records += [done] if done else []
    return records
