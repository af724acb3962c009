"""The one place that reads "now": domain time is an aware datetime, UTC unless a caller passes a
zone (the scheduler works in a job's timezone). Functions that stamp or compare times take an
injectable `now=` (tests pin it) and fall back to `now_or(now)`; stamps without a zone (the earlier
system's) are UTC. tests/unit/test_clock.py fails when core or pages read the clock elsewhere."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def utc_today() -> date:
    """Today's date in UTC (the plausible-date window of validation)."""
    return utc_now().date()


def aware(at: datetime) -> datetime:
    """at with a zone: a naive value is taken as UTC, an aware one is kept as it is (a job's
    local time stays local, so its stamps read in the job's timezone)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def as_utc(at: datetime) -> datetime:
    """at converted to aware UTC (naive values are UTC): the same instant, written +00:00, for
    stamps shown as UTC (lockouts, tokens) and month partitions."""
    return aware(at).astimezone(UTC)


def now_or(now: datetime | None) -> datetime:
    """The injected now (a test's or a caller's fixed time, made aware), else the current time."""
    return utc_now() if now is None else aware(now)


def utc_now_or(now: datetime | None) -> datetime:
    """The injected now converted to UTC, else the current time (stamps shown as UTC)."""
    return as_utc(now_or(now))


def parse_stamp(text: str) -> datetime:
    """An ISO stamp read from the store as an aware datetime (a naive stamp is UTC)."""
    return aware(datetime.fromisoformat(text))
