"""Scheduled backups (DOMAIN.md §6): when (a cron schedule in a timezone) and how many are kept
(grandfather-father-son: the newest of each of the last N days, weeks and months), stored as one
settings document edited on the Backups page and logged. The scheduler's step `scheduled_backup`
(wired in by core/scheduler.py, the composition root: automation cannot import compliance) backs
up once per slot, the slot claimed with the store's versions so two schedulers never both do it,
then prunes the scheduled backups the retention no longer keeps (manual, pre-restore and uploaded
ones are kept until an admin deletes them)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from core import catalog
from core.access import MANAGE_BACKUPS, SYSTEM, Actor, require
from core.automation.jobs import DEFAULT_TIMEZONE, Job, validate_job
from core.automation.scheduler import Context
from core.automation.schedules import claim_slot, zone
from core.clock import aware, parse_stamp
from core.compliance.backups import (
    AREA,
    SCHEDULED,
    BackupSummary,
    create_backup,
    delete_backup,
    list_backups,
)
from core.compliance.schedule_doc import ScheduleFields, load_schedule, save_schedule
from core.errors import InvalidInput
from storage import Store

CONFIG_KEY = catalog.BACKUP_SCHEDULE.key
SLOT_KEY = f"{catalog.SCHEDULE_STATE.key}backups@auto"  # "@": never a job id
MAX_KEPT = 1000
BUCKETS = (("keep_daily", "%Y-%m-%d"), ("keep_weekly", "%G-W%V"), ("keep_monthly", "%Y-%m"))


@dataclass
class BackupSchedule(ScheduleFields):
    active: bool = False
    schedule: str = "0 2 * * *"  # 02:00 every day
    timezone: str = DEFAULT_TIMEZONE
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    updated_by: str = ""
    updated_at: str = ""

    def describe(self) -> str:
        keeps = (f"keeping the last {self.keep_daily} daily, {self.keep_weekly} weekly and "
                 f"{self.keep_monthly} monthly")
        return (f"{'on' if self.active else 'off'}: '{self.schedule}' ({self.timezone}), "
                f"{keeps}")


def load_backup_schedule(store: Store) -> tuple[BackupSchedule, str | None]:
    """The schedule and its version (the defaults, switched off, and None when never saved)."""
    return load_schedule(store, CONFIG_KEY, BackupSchedule)


def save_backup_schedule(store: Store, actor: Actor, schedule: BackupSchedule, *,
                         expected_version: str | None, now: datetime | None = None) -> str:
    """Validate and store the schedule over the version the editor loaded; logged with its
    before. InvalidInput names the field; ChangedMeanwhile when someone saved since."""
    require(actor, MANAGE_BACKUPS)
    job = validate_job(Job("scheduled backups", schedule.schedule, timezone=schedule.timezone))
    for name, _ in BUCKETS:
        value = getattr(schedule, name)
        if not isinstance(value, int) or not 0 <= value <= MAX_KEPT:
            raise InvalidInput(name, f"keep 0 to {MAX_KEPT} backups, not {value!r}")
    if schedule.active and not any(getattr(schedule, name) for name, _ in BUCKETS):
        raise InvalidInput("keep_daily", "scheduled backups that keep none would delete each "
                                         "one as it is made: keep at least one")
    before, _ = load_backup_schedule(store)
    return save_schedule(store, actor, CONFIG_KEY, replace(schedule, schedule=job.schedule),
                         before, expected_version=expected_version, now=now, area=AREA,
                         item="schedule", title="scheduled backups", named="the backup schedule")


def kept_backups(summaries: list[BackupSummary], schedule: BackupSchedule) -> set[str]:
    """The scheduled backups the retention keeps: for each of days, ISO weeks and months (in the
    schedule's timezone), the newest backup of each of the last N that have one."""
    scheduled = sorted((s for s in summaries if s.kind == SCHEDULED),
                       key=lambda s: s.created_at, reverse=True)
    where = zone(schedule.timezone)
    kept: set[str] = set()
    for name, bucket in BUCKETS:
        seen: list[str] = []
        for summary in scheduled:
            key = parse_stamp(summary.created_at).astimezone(where).strftime(bucket)
            if key in seen:
                continue
            if len(seen) == getattr(schedule, name):
                break
            seen.append(key)
            kept.add(summary.id)
    return kept


def prune_backups(store: Store, actor: Actor, schedule: BackupSchedule, *,
                  now: datetime | None = None) -> list[str]:
    """Delete the scheduled backups the retention does not keep (each logged); their ids."""
    summaries = list_backups(store, actor)
    kept = kept_backups(summaries, schedule)
    gone = [s.id for s in summaries if s.kind == SCHEDULED and s.id not in kept]
    for backup_id in gone:
        delete_backup(store, actor, backup_id, now=now)
    return gone


def scheduled_backup(ctx: Context) -> BackupSummary | None:
    """The scheduler's step: when a slot of the schedule has come since the last one handled
    (or since the schedule was saved), claim it, back up (keeping the lease meanwhile) and prune.
    Slots missed while no scheduler ran make one backup, not one each."""
    schedule, _ = load_backup_schedule(ctx.store)
    if not schedule.active:
        return None
    now = aware(ctx.now)
    latest = claim_slot(ctx.store, SLOT_KEY, schedule.schedule, schedule.timezone,
                        schedule.updated_at, now)
    if latest is None:
        return None
    with ctx.keep():
        made = create_backup(ctx.store, SYSTEM, f"scheduled: {schedule.describe()}",
                             kind=SCHEDULED, now=now)
        prune_backups(ctx.store, SYSTEM, schedule, now=now)
    return made
