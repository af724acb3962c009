"""The compliance report as a scheduled job: the schedule is validated and logged; the scheduler
makes the report of the days before each slot once (two schedulers, one report), stores it as
.xlsx and .pdf, logs the export and keeps the newest N."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest

from core.access import Actor
from core.audit import load_changes, record_change
from core.automation.scheduler import run_once
from core.compliance.access_log import load_access_log
from core.compliance.report_schedule import (
    ReportSchedule,
    list_reports,
    load_report_schedule,
    read_report,
    save_report_schedule,
    scheduled_report,
)
from core.config import load_settings
from core.errors import ChangedMeanwhile, InvalidInput, NotFound, PermissionDenied
from storage import open_store

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday
BOSS = Actor("ayesha", "admin")
DAILY = ReportSchedule(active=True, schedule="0  6 * * *", timezone="UTC", days=2, keep=2)


def test_a_schedule_is_validated_stored_and_logged():
    store = open_store("memory://r")
    version = save_report_schedule(store, BOSS, DAILY, expected_version=None, now=NOW)
    saved, stored = load_report_schedule(store)
    assert (saved.schedule, saved.updated_by, stored) == ("0 6 * * *", "ayesha", version)
    assert load_changes(store, area="audit")[["ACTION", "DETAIL"]].values.tolist() == [
        ["report_schedule", "on: '0 6 * * *' (UTC), the 2 day(s) before, keeping 2"]]
    with pytest.raises(ChangedMeanwhile):
        save_report_schedule(store, BOSS, DAILY, expected_version=None)
    with pytest.raises(InvalidInput, match=r"^days: cover 1 to 366 days, not 0"):
        save_report_schedule(store, BOSS, ReportSchedule(days=0), expected_version=version)
    with pytest.raises(InvalidInput, match=r"^keep: keep 1 to 1000 reports, not 0"):
        save_report_schedule(store, BOSS, ReportSchedule(keep=0), expected_version=version)
    with pytest.raises(InvalidInput, match=r"^schedule: "):
        save_report_schedule(store, BOSS, ReportSchedule(schedule="6 * *"),
                             expected_version=version)
    for role in ("viewer", "analyst"):
        with pytest.raises(PermissionDenied):
            save_report_schedule(store, Actor("x", role), DAILY, expected_version=version)
        with pytest.raises(PermissionDenied):
            list_reports(store, Actor("x", role))


def test_the_scheduler_makes_each_slot_s_report_once_and_keeps_the_newest():
    store = open_store("memory://r")
    settings = load_settings({}, {})
    save_report_schedule(store, BOSS, DAILY, expected_version=None, now=NOW)
    record_change(store, "ayesha", "rules", "create", "r1", after={"x": 1},
                  now=datetime(2026, 3, 16, 12, tzinfo=UTC))

    def step(at: datetime, owner: str) -> None:
        run_once(store, settings, at, owner=owner, upkeep=[scheduled_report])

    step(NOW + timedelta(hours=1), "a")  # no slot since the schedule was saved
    assert list_reports(store, BOSS) == []
    for day in range(1, 4):  # three mornings; two schedulers each: one report a morning
        at = NOW.replace(hour=6, second=5) + timedelta(days=day)
        step(at, "a")
        step(at + timedelta(seconds=1), "b")
    reports = list_reports(store, BOSS)
    assert [(r.first, r.last, sorted(r.keys)) for r in reports] == [
        (date(2026, 3, 17), date(2026, 3, 18), ["pdf", "xlsx"]),
        (date(2026, 3, 16), date(2026, 3, 17), ["pdf", "xlsx"])]  # the 18th's was pruned
    book = openpyxl.load_workbook(io.BytesIO(read_report(store, BOSS, reports[1].keys["xlsx"])))
    assert [r[3] for r in book["Changes"].iter_rows(min_row=2, values_only=True)] == [
        "create", "report_schedule"]
    assert read_report(store, BOSS, reports[0].keys["pdf"]).startswith(b"%PDF")
    exports = load_access_log(store, action="export")
    assert sorted(exports["DETAIL"].tolist()) == ["pdf", "pdf", "pdf", "xlsx", "xlsx", "xlsx"]
    assert set(exports["ACTOR"]) == {"system"}
    with pytest.raises(NotFound):
        read_report(store, BOSS, "backups/x.zip")
