"""Job schedules (DOMAIN.md §4): cron + timezone maths (occurrences and next runs across DST), the
friendly schedule builder and the schedule in words.

Cron numbering is standard: 0 and 7 are Sunday, names (mon..sun, jan..dec) are allowed. Times are
wall-clock times of the job's timezone: a time that does not exist on a spring-forward day runs
after the gap at the same offset (02:30 → 03:30 EDT, PEP 495 fold=0); a time that happens twice on a
fall-back day runs once, at its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from core.clock import aware, parse_stamp
from core.errors import InvalidInput
from storage import ObjectNotFound, Store, WriteConflict

_PLURAL = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Scheduled(Protocol):
    """What the schedule maths reads of a job (core.automation.jobs.Job)."""

    @property
    def schedule(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    @property
    def skip_next_at(self) -> str | None: ...


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


def _place(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall time in tz as an instant (fold=0: a gap time moves forward, a repeated time is the
    first of the two)."""
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def occurrences(cron: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Occurrences strictly after `after`, in order, tz-aware in the job's timezone."""
    z = zone(tz)
    after = aware(after)
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
    at = aware(at)
    it = croniter(cron, at.astimezone(z).replace(tzinfo=None) + timedelta(microseconds=1))
    last: datetime | None = None
    while True:
        found = _place(it.get_prev(datetime), z)
        if found <= at and (last is None or found < last):
            yield found
            last = found


def parse_time(value: str | None) -> datetime | None:
    """An ISO time (a job's skip_next_at) as an aware datetime, UTC when it has no offset."""
    return parse_stamp(value) if value else None


def upcoming_runs(job: Scheduled, after: datetime, count: int = 5) -> list[Occurrence]:
    """The next `count` occurrences; the one skip_next_at names is marked skipped."""
    skip = parse_time(job.skip_next_at)
    return [Occurrence(at, at == skip) for at in islice(occurrences(job.schedule, job.timezone,
                                                                    after), count)]


def next_runs(job: Scheduled, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` times the job will run (a skipped occurrence is left out)."""
    skip = parse_time(job.skip_next_at)
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



def claim_slot(store: Store, slot_key: str, cron: str, tz: str, since: str,
               now: datetime) -> datetime | None:
    """The newest occurrence of cron (in tz) at or before now, claimed for this caller when it is
    later than the last one claimed under slot_key (or than `since`, an ISO stamp, before any);
    None when nothing is due or another scheduler claimed it first (compare-and-set on the slot
    document). Slots missed while no scheduler ran make one claim, not one each."""
    now = aware(now)
    latest = next(previous_occurrences(cron, tz, now), None)
    try:
        state, version = store.get(slot_key)
        baseline = parse_stamp(state["last_slot"])
    except ObjectNotFound:
        version, baseline = None, parse_stamp(since or now.isoformat())
    if latest is None or latest <= baseline:
        return None
    try:
        store.put(slot_key, {"last_slot": latest.isoformat(), "updated_at": now.isoformat()},
                  version)
    except WriteConflict:
        return None  # another scheduler took this slot
    return latest
