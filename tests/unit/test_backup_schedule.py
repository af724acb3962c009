"""Scheduled backups (core.compliance.backup_schedule): the schedule is validated and logged, the
scheduler's step backs up once per slot, and the retention keeps the newest of each of the last N
days, weeks and months, deleting only scheduled backups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.access import VIEWER, Actor
from core.audit import load_changes
from core.automation.scheduler import run_once
from core.cli.demo import load_demo
from core.compliance import backups
from core.compliance.backup_schedule import (
    BackupSchedule,
    kept_backups,
    load_backup_schedule,
    prune_backups,
    save_backup_schedule,
    scheduled_backup,
)
from core.config import load_settings
from core.errors import ChangedMeanwhile, InvalidInput, PermissionDenied
from storage import open_store

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday
BOSS = Actor("ayesha", "admin")
NIGHTLY = BackupSchedule(active=True, schedule="0  2 * * *", timezone="UTC", keep_daily=2,
                         keep_weekly=1, keep_monthly=1)


def test_a_schedule_is_validated_stored_and_logged():
    store = open_store("memory://s")
    version = save_backup_schedule(store, BOSS, NIGHTLY, expected_version=None, now=NOW)
    saved, stored_version = load_backup_schedule(store)
    assert (saved.schedule, saved.updated_by, stored_version) == ("0 2 * * *", "ayesha", version)
    assert load_changes(store, area="backups")[["ACTION", "DETAIL"]].values.tolist() == [
        ["schedule", "on: '0 2 * * *' (UTC), keeping the last 2 daily, 1 weekly and 1 monthly"]]
    with pytest.raises(ChangedMeanwhile):
        save_backup_schedule(store, BOSS, NIGHTLY, expected_version=None, now=NOW)
    with pytest.raises(InvalidInput, match=r"^schedule: '0 2 \* \*' has 4 field"):
        save_backup_schedule(store, BOSS, BackupSchedule(schedule="0 2 * *"),
                             expected_version=version)
    with pytest.raises(InvalidInput, match=r"^keep_daily: scheduled backups that keep none"):
        save_backup_schedule(store, BOSS, BackupSchedule(active=True, keep_daily=0,
                                                         keep_weekly=0, keep_monthly=0),
                             expected_version=version)
    with pytest.raises(InvalidInput, match=r"^keep_weekly: keep 0 to 1000 backups, not -1"):
        save_backup_schedule(store, BOSS, BackupSchedule(keep_weekly=-1),
                             expected_version=version)
    with pytest.raises(PermissionDenied):
        save_backup_schedule(store, Actor("vic", VIEWER), NIGHTLY, expected_version=version)


def test_the_scheduler_backs_up_once_per_slot_and_prunes(monkeypatch):
    store = open_store("memory://s")
    settings = load_settings({}, {})
    load_demo(store, settings, days=1, rows_per_day=20, now=NOW)
    save_backup_schedule(store, BOSS, NIGHTLY, expected_version=None, now=NOW)
    backups.create_backup(store, BOSS, "by hand", now=NOW)

    def step(at: datetime) -> None:
        run_once(store, settings, at, owner="sched-a", upkeep=[scheduled_backup])

    step(NOW + timedelta(hours=1))  # no slot since the schedule was saved
    assert [s.kind for s in backups.list_backups(store, BOSS)] == ["manual"]
    for day in range(1, 5):  # four nights, each step twice: one backup a night
        at = NOW.replace(hour=2, minute=0, second=5) + timedelta(days=day)
        step(at)
        step(at + timedelta(seconds=1))
    listed = backups.list_backups(store, BOSS)
    # kept: the last 2 days (19th, 20th); this ISO week's and month's newest is the 20th; the
    # 17th and 18th were made then pruned; the manual backup is never pruned
    assert [(s.kind, s.created_at[:10]) for s in listed] == [
        ("scheduled", "2026-03-20"), ("scheduled", "2026-03-19"), ("manual", "2026-03-16")]
    assert listed[0].why == ("scheduled: on: '0 2 * * *' (UTC), keeping the last 2 daily, 1 "
                             "weekly and 1 monthly")
    assert load_changes(store, area="backups")["ACTION"].tolist().count("delete") == 2


def _summary(backup_id: str, at: str, kind: str = backups.SCHEDULED) -> backups.BackupSummary:
    return backups.BackupSummary(backup_id, f"{at}T02:00:00+00:00", "system", kind=kind)


def test_retention_keeps_the_newest_of_the_last_days_weeks_and_months():
    days = [_summary(f"d{i:02d}", f"2026-{m:02d}-{d:02d}") for i, (m, d) in enumerate(
        [(1, 30), (2, 27), (3, 2), (3, 9), (3, 13), (3, 14), (3, 15), (3, 16)])]
    keep = BackupSchedule(keep_daily=3, keep_weekly=2, keep_monthly=3, timezone="UTC")
    # days: 16th, 15th, 14th; ISO weeks: 16th (W12), 15th (W11); months: 16th (Mar), the 27th
    # of Feb, the 30th of Jan
    assert kept_backups([*days, _summary("m", "2026-01-01", backups.MANUAL)], keep) == {
        "d07", "d06", "d05", "d01", "d00"}


def test_pruning_deletes_only_scheduled_backups_outside_the_retention():
    store = open_store("memory://s")
    made = [backups.create_backup(store, BOSS, kind=kind, now=NOW + timedelta(days=i))
            for i, kind in enumerate([backups.SCHEDULED, backups.MANUAL, backups.SCHEDULED,
                                      backups.PRE_RESTORE, backups.SCHEDULED])]
    gone = prune_backups(store, BOSS, BackupSchedule(keep_daily=1, keep_weekly=0,
                                                     keep_monthly=0), now=NOW)
    assert gone == [made[2].id, made[0].id]
    assert [s.kind for s in backups.list_backups(store, BOSS)] == [
        "scheduled", "pre-restore", "manual"]
