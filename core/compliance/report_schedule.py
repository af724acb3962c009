"""The compliance report as a scheduled job (issue 13): when (a cron schedule in a timezone),
the whole UTC days before each slot it covers, and how many reports are kept; stored as one
settings document edited on the Audit page and logged. The scheduler's step `scheduled_report`
(wired in by core/scheduler.py, like scheduled backups) makes the report once per slot, the slot
claimed with the store's versions so two schedulers never both do it, stores it as .xlsx and
.pdf blobs, logs the export as the system and keeps the newest `keep`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from core import catalog
from core.access import SYSTEM, VIEW_AUDIT, Actor, require
from core.automation.jobs import DEFAULT_TIMEZONE, Job, validate_job
from core.automation.scheduler import Context
from core.automation.schedules import claim_slot
from core.clock import aware
from core.compliance.report import export_report
from core.compliance.schedule_doc import ScheduleFields, load_schedule, save_schedule
from core.errors import InvalidInput, NotFound
from storage import ObjectNotFound, Store

CONFIG_KEY = catalog.REPORT_SCHEDULE.key
PREFIX = catalog.COMPLIANCE_REPORTS.key
SLOT_KEY = f"{catalog.SCHEDULE_STATE.key}compliance_report@auto"  # "@": never a job id
AREA = "audit"
FORMATS = ("xlsx", "pdf")
MAX_DAYS, MAX_KEPT = 366, 1000


@dataclass
class ReportSchedule(ScheduleFields):
    active: bool = False
    schedule: str = "0 6 * * 1"  # Mondays 06:00: the week before
    timezone: str = DEFAULT_TIMEZONE
    days: int = 7  # the whole UTC days before the slot's day that the report covers
    keep: int = 104  # reports kept (two years of weekly ones)
    updated_by: str = ""
    updated_at: str = ""

    def describe(self) -> str:
        return (f"{'on' if self.active else 'off'}: '{self.schedule}' ({self.timezone}), the "
                f"{self.days} day(s) before, keeping {self.keep}")


@dataclass(frozen=True)
class StoredReport:
    """A report the scheduler made: its period and the blob key of each format."""

    first: date
    last: date
    made_at: str
    keys: dict[str, str]


def load_report_schedule(store: Store) -> tuple[ReportSchedule, str | None]:
    """The schedule and its version (the defaults, switched off, and None when never saved)."""
    return load_schedule(store, CONFIG_KEY, ReportSchedule)


def save_report_schedule(store: Store, actor: Actor, schedule: ReportSchedule, *,
                         expected_version: str | None, now: datetime | None = None) -> str:
    """Validate and store the schedule over the version the editor loaded; logged with its
    before. InvalidInput names the field; ChangedMeanwhile when someone saved since."""
    require(actor, VIEW_AUDIT)
    job = validate_job(Job("compliance report", schedule.schedule, timezone=schedule.timezone))
    if not isinstance(schedule.days, int) or not 1 <= schedule.days <= MAX_DAYS:
        raise InvalidInput("days", f"cover 1 to {MAX_DAYS} days, not {schedule.days!r}")
    if not isinstance(schedule.keep, int) or not 1 <= schedule.keep <= MAX_KEPT:
        raise InvalidInput("keep", f"keep 1 to {MAX_KEPT} reports, not {schedule.keep!r}")
    before, _ = load_report_schedule(store)
    return save_schedule(store, actor, CONFIG_KEY, replace(schedule, schedule=job.schedule),
                         before, expected_version=expected_version, now=now, area=AREA,
                         item="report_schedule", title="scheduled compliance report",
                         named="the report schedule")


def _key(first: date, last: date, made: datetime, fmt: str) -> str:
    return f"{PREFIX}{first:%Y%m%d}-{last:%Y%m%d}.{made:%Y%m%dT%H%M%S}.{fmt}"


def list_reports(store: Store, actor: Actor) -> list[StoredReport]:
    """The stored reports, newest first."""
    require(actor, VIEW_AUDIT)
    found: dict[tuple[str, str], dict[str, str]] = {}
    for key in store.list_blobs(PREFIX):
        name = key[len(PREFIX):]
        period, _, rest = name.partition(".")
        made, _, fmt = rest.partition(".")
        if fmt in FORMATS and len(period) == 17:
            found.setdefault((made, period), {})[fmt] = key
    reports = []
    for (made, period), keys in sorted(found.items(), reverse=True):
        first, last = (datetime.strptime(p, "%Y%m%d").date() for p in period.split("-"))
        reports.append(StoredReport(first, last, made, keys))
    return reports


def read_report(store: Store, actor: Actor, key: str) -> bytes:
    """A stored report's bytes (admins); NotFound for a key that is not one."""
    require(actor, VIEW_AUDIT)
    if not key.startswith(PREFIX):
        raise NotFound(f"{key!r} is not a stored compliance report")
    try:
        return store.get_blob(key)
    except ObjectNotFound:
        raise NotFound(f"the report {key[len(PREFIX):]} is no longer stored") from None


def make_report(store: Store, actor: Actor, slot: datetime, days: int) -> StoredReport:
    """The report of the `days` whole UTC days before the slot's UTC day, stored in each format
    (each export logged as the actor's)."""
    last = aware(slot).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    made = aware(slot)
    keys = {}
    for fmt in FORMATS:
        key = _key(first, last, made, fmt)
        store.put_blob(key, export_report(store, actor, first, last, fmt, now=made))
        keys[fmt] = key
    return StoredReport(first, last, f"{made:%Y%m%dT%H%M%S}", keys)


def prune_reports(store: Store, keep: int) -> int:
    """Delete the stored reports beyond the newest `keep`; how many went."""
    gone = list_reports(store, SYSTEM)[keep:]
    for report in gone:
        for key in report.keys.values():
            store.delete_blob(key)
    return len(gone)


def scheduled_report(ctx: Context) -> StoredReport | None:
    """The scheduler's step: when a slot has come since the last one handled (or since the
    schedule was saved), claim it, make the report (keeping the lease meanwhile) and prune.
    Slots missed while no scheduler ran make one report, not one each."""
    schedule, _ = load_report_schedule(ctx.store)
    if not schedule.active:
        return None
    now = aware(ctx.now)
    latest = claim_slot(ctx.store, SLOT_KEY, schedule.schedule, schedule.timezone,
                        schedule.updated_at, now)
    if latest is None:
        return None
    with ctx.keep():
        made = make_report(ctx.store, SYSTEM, latest, schedule.days)
        prune_reports(ctx.store, schedule.keep)
    return made
