"""Automation jobs (DOMAIN.md §4): the job model and its validation, the jobs in the store with
audit and revert, and run triggers. Schedule maths, builder and words are in
core.automation.schedules.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from core import catalog
from core.access import EDIT_JOBS, REVERT, TRIGGER_RUN, Actor, require
from core.audit import load_changes, record_change

# builder_from_cron, cron_from_builder, describe_schedule, next_runs and upcoming_runs are also
# re-exported (__all__) for pages/automation.py and pages/_ui/automation_views.py; other code
# imports them from core.automation.schedules.
from core.automation.schedules import (
    builder_from_cron,
    cron_from_builder,
    describe_schedule,
    next_runs,
    occurrences,
    parse_time,
    upcoming_runs,
    zone,
)
from core.claims import T, claim_key, release, write_named
from core.clock import aware, now_or
from core.errors import Conflict, InvalidInput, NotFound
from storage import ObjectNotFound, Store, WriteConflict

__all__ = [  # the public names, with those re-exported from core.automation.schedules
    "AREA", "DEFAULT_TIMEZONE", "PREFIX", "REVERTIBLE", "TRIGGERS", "TRIGGER_AREA", "Job",
    "Trigger", "builder_from_cron", "cancel_trigger", "cron_from_builder", "delete_job",
    "describe_schedule", "duplicate_job", "find_job", "get_job", "load_jobs", "next_runs",
    "pending_triggers", "request_run", "revert_job_change", "save_job", "skip_next_run",
    "take_trigger", "toggle_job", "upcoming_runs", "validate_job",
]

PREFIX = catalog.JOBS.key
TRIGGERS = catalog.TRIGGERS.key
AREA = "jobs"
TRIGGER_AREA = "triggers"
DEFAULT_TIMEZONE = "Asia/Karachi"
REVERTIBLE = 4  # the last N job changes can be reverted (DOMAIN.md §6)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class Job:
    """One automated job. Timestamps are ISO strings; sources are opaque dicts with a "kind"."""

    name: str
    schedule: str
    timezone: str = DEFAULT_TIMEZONE
    active: bool = True
    apply_rules: bool = True  # False: runs are OVERRIDE (no exclusion rules)
    sources: list[dict[str, Any]] = field(default_factory=list)
    email_on_success: bool = False
    email_on_failure: bool = True
    skip_next_at: str | None = None  # the occurrence "Run now and skip the next" skips
    id: str = ""
    created_by: str = ""
    created_at: str = ""
    updated_by: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# -- validation -----------------------------------------------------------------------------------
def validate_job(job: Job, others: Iterable[Job] = ()) -> Job:
    """The job tidied (name stripped, cron spaces collapsed), or InvalidInput naming the field."""
    name = str(job.name or "").strip()
    if not name:
        raise InvalidInput("name", "a job needs a name")
    for other in others:
        if other.id != job.id and other.name.casefold() == name.casefold():
            raise InvalidInput("name", f"another job is already named {other.name!r}")
    cron = " ".join(str(job.schedule or "").split())
    fields = len(cron.split())
    if fields != 5:
        raise InvalidInput("schedule", f"{cron!r} has {fields} field(s); a schedule has 5: minute "
                           "hour day-of-month month day-of-week, e.g. '30 9 * * 1-5'")
    if not croniter.is_valid(cron):
        raise InvalidInput("schedule", f"{cron!r} is not a valid cron expression (minute 0-59, "
                           "hour 0-23, day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat)")
    zone(job.timezone)
    try:
        next(occurrences(cron, job.timezone, datetime(2026, 1, 1, tzinfo=UTC)))
    except Exception:  # croniter gives up on dates that never happen (e.g. 30 February)
        raise InvalidInput("schedule", f"{cron!r} never occurs") from None
    if not isinstance(job.sources, list) or not all(
            isinstance(s, dict) and isinstance(s.get("kind"), str) for s in job.sources):
        raise InvalidInput("sources", "each source is a mapping with a 'kind' (inbox, buffer, sql)")
    try:
        parse_time(job.skip_next_at)
    except (TypeError, ValueError):
        raise InvalidInput("skip_next_at", f"{job.skip_next_at!r} is not an ISO time") from None
    return replace(job, name=name, schedule=cron)


# -- jobs in the store ----------------------------------------------------------------------------
def load_jobs(store: Store) -> list[Job]:
    """Every stored job, by name."""
    jobs = []
    for key in store.list(PREFIX):
        try:
            jobs.append(replace(Job.from_dict(store.get(key)[0]), id=key[len(PREFIX):]))
        except ObjectNotFound:  # deleted between list and get
            continue
    return sorted(jobs, key=lambda j: j.name.casefold())


def get_job(store: Store, job_id: str) -> tuple[Job, str]:
    """(job, version); NotFound if there is no such job."""
    if _ID.match(str(job_id)):
        try:
            value, version = store.get(PREFIX + job_id)
        except ObjectNotFound:
            pass
        else:
            return replace(Job.from_dict(value), id=job_id), version
    raise NotFound(f"job {job_id!r} not found")


def find_job(store: Store, name_or_id: str) -> Job:
    """A job by id or (case-insensitive) name."""
    for job in load_jobs(store):
        if job.id == name_or_id or job.name.casefold() == str(name_or_id).casefold():
            return job
    raise NotFound(f"no job named {name_or_id!r}")


def _commit(store: Store, actor: Actor | str, action: str, before: Job | None, after: Job,
            version: str | None, at: datetime, area: str = AREA) -> Job:
    try:
        store.put(PREFIX + after.id, after.to_dict(), version)
    except WriteConflict as exc:
        raise Conflict(f"job {after.name!r} was changed by someone else since it was opened; "
                       "reload it and try again") from exc
    record_change(store, actor, area, action, after.name, now=at, after=after.to_dict(),
                  before=None if before is None else before.to_dict())
    return after


def _checked_sources(store: Store, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sources validated and normalised by core.intake.sources (InvalidInput names
    sources[i].field)."""
    from core.ingest.columns import load_column_config
    from core.intake.sources import check_sources  # lazy: it brings the SQL toolkit

    return check_sources(sources, columns=load_column_config(store))


def save_job(store: Store, actor: Actor, job: Job, expected_version: str | None = None, *,
             now: datetime | None = None) -> Job:
    """Create (empty id) or update a job, validated and logged; returns it as stored.
    expected_version: the version the editor read (stale → Conflict); None = the current one."""
    require(actor, EDIT_JOBS)
    at = now_or(now)
    if job.id and not _ID.match(job.id):
        raise InvalidInput("id", "a job id is letters, digits, _ and - (at most 64)")
    job = validate_job(job, load_jobs(store))
    job = replace(job, sources=_checked_sources(store, job.sources))
    who, stamp = actor.username, at.isoformat()
    try:
        before, version = get_job(store, job.id) if job.id else (None, None)
    except NotFound:
        if expected_version is not None:
            raise Conflict(f"job {job.name!r} was deleted since it was opened") from None
        before, version = None, None
    if before is None:
        created = replace(job, id=job.id or uuid.uuid4().hex[:12], created_by=who,
                          created_at=stamp, updated_by=who, updated_at=stamp)
        return named_write(store, created, None,
                           lambda: _commit(store, actor, "create", None, created, None, at))
    updated = replace(job, created_by=before.created_by, created_at=before.created_at,
                      updated_by=who, updated_at=stamp)
    return named_write(store, updated, before.name, lambda: _commit(
        store, actor, "update", before, updated, expected_version or version, at))


def named_write(store: Store, job: Job, old_name: str | None,
                write: Callable[[], T]) -> T:
    """write() holding the claim on the job's name (core.claims): two processes creating or
    renaming jobs to one name never both succeed."""

    def holds(job_id: str) -> bool:
        try:
            return get_job(store, job_id)[0].name.casefold() == job.name.casefold()
        except NotFound:
            return False

    return write_named(store, AREA, job.name, job.id, write, old_name=old_name, holds=holds,
                       taken=InvalidInput("name", f"another job is already named {job.name!r}"))


def delete_job(store: Store, actor: Actor, job_id: str, *, expected_version: str | None = None,
               now: datetime | None = None) -> None:
    """Delete a job and log it (the before snapshot makes it revertible)."""
    require(actor, EDIT_JOBS)
    job, version = get_job(store, job_id)
    try:
        store.delete(PREFIX + job_id, expected_version or version)
    except WriteConflict as exc:
        raise Conflict(f"job {job.name!r} was changed by someone else since it was opened") from exc
    except ObjectNotFound:
        raise NotFound(f"job {job_id!r} not found") from None
    release(store, claim_key(AREA, job.name), job_id)
    record_change(store, actor, AREA, "delete", job.name, before=job.to_dict(),
                  now=now_or(now))


def toggle_job(store: Store, actor: Actor, job_id: str, active: bool | None = None, *,
               now: datetime | None = None) -> Job:
    """Switch a job on or off (None flips it); no change, no write."""
    require(actor, EDIT_JOBS)
    before, version = get_job(store, job_id)
    target = (not before.active) if active is None else bool(active)
    if target == before.active:
        return before
    at = now_or(now)
    after = replace(before, active=target, updated_by=actor.username, updated_at=at.isoformat())
    return _commit(store, actor, "activate" if target else "deactivate", before, after, version, at)


def duplicate_job(store: Store, actor: Actor, job_id: str, *, name: str | None = None,
                  now: datetime | None = None) -> Job:
    """A copy named "<name> (copy)" (or `name`), created inactive so the same sources are not
    processed twice until someone switches it on."""
    original, _ = get_job(store, job_id)
    taken = {j.name.casefold() for j in load_jobs(store)}
    if name is None:
        name = f"{original.name} (copy)"
        n = 2
        while name.casefold() in taken:
            name, n = f"{original.name} (copy {n})", n + 1
    copy = replace(original, id="", name=name, active=False, skip_next_at=None)
    return save_job(store, actor, copy, now=now)


def _changed_fields(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k not in ("updated_by", "updated_at"))


def revert_job_change(store: Store, actor: Actor, event_id: str, *,
                      now: datetime | None = None) -> Job | None:
    """Undo one of the last 4 job changes: restore its `before` (None when the change created the
    job, which is then deleted). Conflict when the job changed since; logged as "revert"."""
    require(actor, REVERT)
    recent = load_changes(store, area=AREA, limit=REVERTIBLE)
    rows = recent[recent["EVENT_ID"] == event_id]
    if rows.empty:
        raise Conflict(f"only the last {REVERTIBLE} job changes can be reverted; that change is "
                       "older or does not exist")
    row = rows.iloc[0]
    before = json.loads(row["BEFORE"]) if row["BEFORE"] else None
    after = json.loads(row["AFTER"]) if row["AFTER"] else None
    job_id = (after or before or {}).get("id", "")
    try:
        current, version = get_job(store, job_id)
    except NotFound:
        current, version = None, None
    now_dict = None if current is None else current.to_dict()
    if now_dict != after:
        if now_dict is None:
            raise Conflict(f"job {row['ENTITY']!r} has been deleted since that change")
        if after is None:
            raise Conflict(f"job {row['ENTITY']!r} exists again (as {now_dict.get('name')!r})")
        fields = ", ".join(_changed_fields(now_dict, after)) or "saved again"
        raise Conflict(f"job {row['ENTITY']!r} changed since ({fields}, last by "
                       f"{now_dict.get('updated_by')} at {now_dict.get('updated_at')}); "
                       "edit it instead")
    at = now_or(now)
    if before is None:
        if after is None:  # neither side recorded: nothing names the job to remove
            raise InvalidInput("revert", "that change recorded no job to restore or remove")
        store.delete(PREFIX + job_id, version or "")
        release(store, claim_key(AREA, after["name"]), job_id)
        record_change(store, actor, AREA, "revert", row["ENTITY"], before=now_dict, now=at,
                      detail=event_id)
        return None
    restored = validate_job(replace(Job.from_dict(before), updated_by=actor.username,
                                    updated_at=at.isoformat()), load_jobs(store))
    try:
        named_write(store, replace(restored, id=job_id), (after or {}).get("name"),
                    lambda: store.put(PREFIX + job_id, restored.to_dict(), version))
    except WriteConflict as exc:
        raise Conflict(f"job {restored.name!r} changed while reverting; try again") from exc
    record_change(store, actor, AREA, "revert", restored.name, before=now_dict,
                  after=restored.to_dict(), now=at, detail=event_id)
    return restored


# -- triggers -------------------------------------------------------------------------------------
@dataclass
class Trigger:
    """A request to run a job now, queued for the scheduler (consumed exactly once)."""

    id: str
    job_id: str
    job: str
    requested_by: str
    requested_at: str
    override: bool = False
    skip_next: bool = False
    key: str = ""
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("key", "version")}


def skip_next_run(store: Store, actor: Actor, job_id: str, *, now: datetime) -> Job:
    """Persist skip_next_at = the job's next occurrence after now (logged as a job change)."""
    require(actor, TRIGGER_RUN)
    before, version = get_job(store, job_id)
    at = aware(now)
    upcoming = next(occurrences(before.schedule, before.timezone, at))
    after = replace(before, skip_next_at=upcoming.isoformat(), updated_by=actor.username,
                    updated_at=at.isoformat())
    return _commit(store, actor, "skip_next", before, after, version, at)


def pending_triggers(store: Store) -> list[Trigger]:
    """Queued run requests, oldest first."""
    found = []
    for key in store.list(TRIGGERS):
        try:
            value, version = store.get(key)
        except ObjectNotFound:  # consumed between list and get
            continue
        found.append(replace(Trigger(**value), key=key, version=version))
    return sorted(found, key=lambda t: t.requested_at)


def request_run(store: Store, actor: Actor, job_id: str, *, skip_next: bool = False,
                override: bool = False, now: datetime) -> Trigger:
    """Queue "Run now" for the scheduler (override: without rules; skip_next: also skip the next
    scheduled run). A second request for a job that already has one queued is refused: the queue
    holds one document per job ("triggers/<job id>", created only if absent), so of simultaneous
    requests from several processes exactly one is queued."""
    require(actor, TRIGGER_RUN)
    job, _ = get_job(store, job_id)
    for queued in pending_triggers(store):  # also requests queued under the earlier keys
        if queued.job_id == job_id:
            raise _queued(job, queued)
    at = aware(now)
    trigger = Trigger(id=uuid.uuid4().hex[:12], job_id=job_id, job=job.name,
                      requested_by=actor.username, requested_at=at.isoformat(),
                      override=override, skip_next=skip_next)
    key = TRIGGERS + job_id
    try:
        version = store.put(key, trigger.to_dict(), None)
    except WriteConflict:
        try:
            raise _queued(job, Trigger(**store.get(key)[0])) from None
        except ObjectNotFound:  # taken by the scheduler meanwhile: it is running now
            raise Conflict(f"a run of {job.name!r} has just started; wait for it to finish "
                           "before asking again") from None
    if skip_next:  # if the job changed meanwhile, the request is withdrawn and the error says so
        try:
            skip_next_run(store, actor, job_id, now=at)
        except BaseException:
            take_trigger(store, replace(trigger, key=key, version=version))
            raise
    action = "run_without_rules" if override else "run_now"
    record_change(store, actor, TRIGGER_AREA, action, job.name, after=trigger.to_dict(), now=at,
                  detail="and skip the next scheduled run" if skip_next else "")
    return replace(trigger, key=key, version=version)


def _queued(job: Job, queued: Trigger) -> Conflict:
    return Conflict(f"a run of {job.name!r} is already queued (requested by "
                    f"{queued.requested_by} at {queued.requested_at[:19]})")


def take_trigger(store: Store, trigger: Trigger) -> bool:
    """Consume a queued trigger (compare-and-delete): True for exactly one caller."""
    try:
        store.delete(trigger.key, trigger.version)
    except (WriteConflict, ObjectNotFound):
        return False
    return True


def cancel_trigger(store: Store, actor: Actor, trigger_id: str, *,
                   now: datetime | None = None) -> None:
    """Withdraw a queued request before the scheduler takes it."""
    require(actor, TRIGGER_RUN)
    for trigger in pending_triggers(store):
        if trigger.id == trigger_id:
            if not take_trigger(store, trigger):
                break
            record_change(store, actor, TRIGGER_AREA, "cancel", trigger.job,
                          before=trigger.to_dict(), now=now_or(now))
            return
    raise NotFound(f"no queued run {trigger_id!r} (it may have started already)")
