"""Automation jobs (DOMAIN.md §4): the job model and its validation, cron + timezone maths (builder,
words, next runs across DST), the jobs in the store with audit and revert, and run triggers.

Cron numbering is standard: 0 and 7 are Sunday, names (mon..sun, jan..dec) are allowed. Times are
wall-clock times of the job's timezone: a time that does not exist on a spring-forward day runs
after the gap at the same offset (02:30 → 03:30 EDT, PEP 495 fold=0); a time that happens twice on a
fall-back day runs once, at its first occurrence.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from core.access import EDIT_JOBS, REVERT, TRIGGER_RUN, Actor, require
from core.audit import load_changes, record_change
from core.errors import Conflict, InvalidInput, NotFound
from storage import ObjectNotFound, Store, WriteConflict

PREFIX = "jobs/"
TRIGGERS = "triggers/"
AREA = "jobs"
TRIGGER_AREA = "triggers"
DEFAULT_TIMEZONE = "Asia/Karachi"
REVERTIBLE = 4  # the last N job changes can be reverted (DOMAIN.md §6)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_PLURAL = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


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


class Occurrence(NamedTuple):
    at: datetime
    skipped: bool


# -- cron maths -----------------------------------------------------------------------------------
def zone(tz: str) -> ZoneInfo:
    """The IANA timezone, or InvalidInput naming the field."""
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput("timezone", f"unknown timezone {tz!r}; use an IANA name such as "
                           "Asia/Karachi, Europe/London or America/New_York") from None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _place(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall time in tz as an instant (fold=0: a gap time moves forward, a repeated time is the
    first of the two)."""
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def occurrences(cron: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Occurrences strictly after `after`, in order, tz-aware in the job's timezone."""
    z = zone(tz)
    after = _aware(after)
    local = after.astimezone(z)
    # A wall time inside a spring-forward gap before `after` can land after it: start that far back.
    earlier = (after - timedelta(hours=3)).astimezone(z)
    shift = (local.utcoffset() or timedelta()) - (earlier.utcoffset() or timedelta())
    it = croniter(cron, local.replace(tzinfo=None) - max(shift, timedelta()))
    last = after
    while True:
        at = _place(it.get_next(datetime), z)
        if at > last:
            yield at
            last = at


def previous_occurrences(cron: str, tz: str, at: datetime) -> Iterator[datetime]:
    """Occurrences at or before `at`, newest first (the same instants `occurrences` gives)."""
    z = zone(tz)
    at = _aware(at)
    it = croniter(cron, at.astimezone(z).replace(tzinfo=None) + timedelta(microseconds=1))
    last: datetime | None = None
    while True:
        found = _place(it.get_prev(datetime), z)
        if found <= at and (last is None or found < last):
            yield found
            last = found


def _parse_time(value: str | None) -> datetime | None:
    return _aware(datetime.fromisoformat(value)) if value else None


def upcoming_runs(job: Job, after: datetime, count: int = 5) -> list[Occurrence]:
    """The next `count` occurrences; the one skip_next_at names is marked skipped."""
    skip = _parse_time(job.skip_next_at)
    return [Occurrence(at, at == skip) for at in islice(occurrences(job.schedule, job.timezone,
                                                                    after), count)]


def next_runs(job: Job, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` times the job will run (a skipped occurrence is left out)."""
    skip = _parse_time(job.skip_next_at)
    runs = (at for at in occurrences(job.schedule, job.timezone, after) if at != skip)
    return list(islice(runs, count))


# -- builder and words ----------------------------------------------------------------------------
_FULL = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _day(token: str) -> int:
    token = token.strip().lower()
    for number, full in enumerate(_FULL):
        if len(token) >= 3 and full.startswith(token):
            return number
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(repr(token))


def parse_weekdays(spec: str | Iterable[int | str]) -> list[int]:
    """Weekdays as sorted numbers 0 (Sunday)..6: "mon-fri", "1-5", "mon,thu", [1, 2] or names."""
    tokens = spec.split(",") if isinstance(spec, str) else [str(t) for t in spec]
    days: set[int] = set()
    try:
        for token in tokens:
            if token.strip() == "*":
                days.update(range(7))
            elif "-" in token:
                first, last = token.split("-", 1)
                lo, hi = _day(first), _day(last) or 7  # "fri-sun": Sunday ends a range as 7
                if lo > hi:
                    raise ValueError(repr(token))
                days.update(d % 7 for d in range(lo, hi + 1))
            else:
                days.add(_day(token))
    except ValueError as exc:
        raise InvalidInput("weekdays", f"{exc} is not a weekday: use mon..sun or 0..7 "
                           "(0 and 7 are Sunday), e.g. mon-fri or 1,4") from None
    if not days:
        raise InvalidInput("weekdays", "choose at least one weekday")
    return sorted(days)


def _dow_field(days: list[int]) -> str:
    if len(days) == 7:
        return "*"
    parts, i = [], 0
    while i < len(days):
        j = i
        while j + 1 < len(days) and days[j + 1] == days[j] + 1:
            j += 1
        parts.append(str(days[i]) if i == j else f"{days[i]}-{days[j]}")
        i = j + 1
    return ",".join(parts)


def _hhmm(at: str) -> tuple[int, int]:
    match = _HHMM.match(str(at).strip())
    if not match:
        raise InvalidInput("at", f"{at!r} is not a time: use HH:MM on the 24-hour clock, "
                           "e.g. 09:30")
    return int(match.group(1)), int(match.group(2))


def _every(value: Any, unit: str, period: int) -> int:
    allowed = [n for n in range(1, period) if period % n == 0]
    if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
        raise InvalidInput("every", f"every N {unit}: N must divide {period} evenly so runs stay "
                           f"evenly spaced ({', '.join(map(str, allowed))}); got {value!r}")
    return value


def cron_from_builder(kind: str, **params: Any) -> str:
    """A cron string from the friendly builder:
    daily(at="09:30", weekdays="mon-fri" | [1..5]) · minutes(every=N) · hours(every=N, minute=0) ·
    monthly(day=D, at="06:00")."""
    if kind == "daily":
        hour, minute = _hhmm(params.get("at", ""))
        days = parse_weekdays(params.get("weekdays", "*"))
        return f"{minute} {hour} * * {_dow_field(days)}"
    if kind == "minutes":
        every = _every(params.get("every"), "minutes", 60)
        return "* * * * *" if every == 1 else f"*/{every} * * * *"
    if kind == "hours":
        every = _every(params.get("every"), "hours", 24)
        minute = params.get("minute", 0)
        if not isinstance(minute, int) or not 0 <= minute <= 59:
            raise InvalidInput("minute", f"minute past the hour is 0..59, got {minute!r}")
        return f"{minute} {'*' if every == 1 else f'*/{every}'} * * *"
    if kind == "monthly":
        day = params.get("day")
        if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 28:
            raise InvalidInput("day", f"day of the month is 1..28 (every month has it), "
                               f"got {day!r}")
        hour, minute = _hhmm(params.get("at", ""))
        return f"{minute} {hour} {day} * *"
    raise InvalidInput("kind", f"unknown schedule kind {kind!r}: daily, minutes, hours or monthly")


def _step(field: str, period: int) -> int | None:
    """N of "*" (1) or "*/N" when N divides the period evenly, else None."""
    every = "1" if field == "*" else field[2:] if field.startswith("*/") else ""
    return int(every) if every.isdigit() and 0 < int(every) < period and period % int(
        every) == 0 else None


def builder_from_cron(cron: str) -> tuple[str, dict[str, Any]] | None:
    """The builder form a cron string came from (for editing), or None for a custom cron."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if month != "*":
        return None
    if (hour, dom, dow) == ("*", "*", "*") and (every := _step(minute, 60)):
        return "minutes", {"every": every}
    if minute.isdigit() and int(minute) < 60 and (dom, dow) == ("*", "*") and (
            every := _step(hour, 24)):
        return "hours", {"every": every, "minute": int(minute)}
    if not (minute.isdigit() and hour.isdigit() and int(hour) < 24 and int(minute) < 60):
        return None
    at = f"{int(hour):02d}:{int(minute):02d}"
    if dom != "*":
        return ("monthly", {"day": int(dom), "at": at}) if dom.isdigit() and dow == "*" else None
    try:
        return "daily", {"at": at, "weekdays": parse_weekdays(dow)}
    except InvalidInput:
        return None


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe_schedule(cron: str, tz: str) -> str:
    """The schedule in words: "Weekdays at 09:30 Asia/Karachi", "Every 2 minutes", ..."""
    form = builder_from_cron(cron)
    if form is None:
        return f"cron '{cron}' ({tz})"
    kind, p = form
    if kind == "minutes":
        return "Every minute" if p["every"] == 1 else f"Every {p['every']} minutes"
    if kind == "hours":
        base = "Every hour" if p["every"] == 1 else f"Every {p['every']} hours"
        return base + (f" at :{p['minute']:02d}" if p["minute"] else "") + f" ({tz})"
    if kind == "monthly":
        return f"Monthly on day {p['day']} at {p['at']} {tz}"
    days = p["weekdays"]
    when = ("Every day" if len(days) == 7 else "Weekdays" if days == [1, 2, 3, 4, 5]
            else "Weekends" if days == [0, 6] else _join([_PLURAL[d] for d in days]))
    return f"{when} at {p['at']} {tz}"


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
        _parse_time(job.skip_next_at)
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
    """Sources validated and normalised by core.sources (InvalidInput names sources[i].field)."""
    from core.columns import load_column_config
    from core.sources import check_sources  # lazy: it brings the SQL toolkit

    return check_sources(sources, columns=load_column_config(store))


def save_job(store: Store, actor: Actor, job: Job, expected_version: str | None = None, *,
             now: datetime | None = None) -> Job:
    """Create (empty id) or update a job, validated and logged; returns it as stored.
    expected_version: the version the editor read (stale → Conflict); None = the current one."""
    require(actor, EDIT_JOBS)
    at = _aware(now or datetime.now(UTC))
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
        return _commit(store, actor, "create", None, created, None, at)
    updated = replace(job, created_by=before.created_by, created_at=before.created_at,
                      updated_by=who, updated_at=stamp)
    return _commit(store, actor, "update", before, updated, expected_version or version, at)


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
    record_change(store, actor, AREA, "delete", job.name, before=job.to_dict(),
                  now=_aware(now or datetime.now(UTC)))


def toggle_job(store: Store, actor: Actor, job_id: str, active: bool | None = None, *,
               now: datetime | None = None) -> Job:
    """Switch a job on or off (None flips it); no change, no write."""
    require(actor, EDIT_JOBS)
    before, version = get_job(store, job_id)
    target = (not before.active) if active is None else bool(active)
    if target == before.active:
        return before
    at = _aware(now or datetime.now(UTC))
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
    at = _aware(now or datetime.now(UTC))
    if before is None:
        store.delete(PREFIX + job_id, version or "")
        record_change(store, actor, AREA, "revert", row["ENTITY"], before=now_dict, now=at,
                      detail=event_id)
        return None
    restored = validate_job(replace(Job.from_dict(before), updated_by=actor.username,
                                    updated_at=at.isoformat()), load_jobs(store))
    try:
        store.put(PREFIX + job_id, restored.to_dict(), version)
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
    at = _aware(now)
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
    return found


def request_run(store: Store, actor: Actor, job_id: str, *, skip_next: bool = False,
                override: bool = False, now: datetime) -> Trigger:
    """Queue "Run now" for the scheduler (override: without rules; skip_next: also skip the next
    scheduled run). A second request for a job that already has one queued is refused."""
    require(actor, TRIGGER_RUN)
    job, _ = get_job(store, job_id)
    for queued in pending_triggers(store):
        if queued.job_id == job_id:
            raise Conflict(f"a run of {job.name!r} is already queued (requested by "
                           f"{queued.requested_by} at {queued.requested_at[:19]})")
    at = _aware(now)
    trigger = Trigger(id=uuid.uuid4().hex[:12], job_id=job_id, job=job.name,
                      requested_by=actor.username, requested_at=at.isoformat(),
                      override=override, skip_next=skip_next)
    key = f"{TRIGGERS}{at.astimezone(UTC):%Y%m%dT%H%M%S%f}-{trigger.id}"
    version = store.put(key, trigger.to_dict(), None)
    if skip_next:
        skip_next_run(store, actor, job_id, now=at)
    action = "run_without_rules" if override else "run_now"
    record_change(store, actor, TRIGGER_AREA, action, job.name, after=trigger.to_dict(), now=at,
                  detail="and skip the next scheduled run" if skip_next else "")
    return replace(trigger, key=key, version=version)


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
                          before=trigger.to_dict(), now=_aware(now or datetime.now(UTC)))
            return
    raise NotFound(f"no queued run {trigger_id!r} (it may have started already)")
