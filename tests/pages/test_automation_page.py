"""Automation page (admins): jobs through the builder, the next-runs preview, triggers, scheduler
health, running in the app process, run history with downloads, and reverting a job change."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.audit import load_changes
from core.automation.job_runs import CURRENT_KEY
from core.automation.jobs import (
    Job,
    cancel_trigger,
    get_job,
    load_jobs,
    pending_triggers,
    save_job,
    take_trigger,
)
from core.automation.leases import acquire_lease
from core.automation.log_tail import LOG_KEY
from core.automation.scheduler import HEARTBEAT_KEY, LEASE, run_once
from core.config import load_settings
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, save_rule
from core.runs import pipeline, workbooks
from core.runs.exports import write_xlsx
from core.runs.liveness import current_owner
from core.runs.records import RunRecord, save_run
from core.schema import INPUT_COLUMNS, SOURCE
from pages._ui import automation_views
from pages._ui.run_watch import GONE_POLLS
from pages._ui.tables import WRAPPED
from storage.run_tables import run_tables
from tests.factories import make_colors
from tests.pages.conftest import mounts_at
from tests.pages.test_search_page import recording_media

PAGE = "pages/automation.py"
NOW = datetime(2026, 3, 13, 4, 0, tzinfo=UTC)  # Friday 09:00 in Karachi (UTC+5)
DOWN = ("The scheduler is not running — start it with `python -m core.scheduler` "
        "(make run starts it)")
SKIPPED = "skipped (Run now and skip the next scheduled run)"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    monkeypatch.setattr(automation_views, "clock", lambda: NOW)


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves (made on the click for the run's row workbooks)."""
    return recording_media(monkeypatch)


def _page(app_as) -> AppTest:
    at = app_as("admin", "admin", page=PAGE)
    _ok(at)
    assert at.title[0].value == "Automation"
    return at


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert [e.value for e in at.error if e.value != DOWN] == []
    return at


def _table(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _add_job(store, name="Morning", schedule="30 9 * * 1-5", **kwargs) -> Job:
    return save_job(store, SYSTEM, Job(name=name, schedule=schedule, **kwargs), now=NOW)


def _progress(at: AppTest) -> list[tuple[int, str]]:
    """Each progress bar's value (percent) and text."""
    return [(p.proto.value, p.proto.text) for p in at.get("progress")]


def _preview(at: AppTest) -> list[tuple[str, str]]:
    return list(_table(at, "Run at").itertuples(index=False, name=None))


# -- jobs through the builder --------------------------------------------------------------------
def test_admin_creates_the_done_when_jobs_with_the_builder(app_as, app_store):
    at = _page(app_as)
    assert at.selectbox(key="automation.edit").value == ""  # a new job
    at.text_input(key="automation.name").input("Morning")
    at.radio(key="automation.kind").set_value("daily")
    at.time_input(key="automation.at").set_value(time(9, 30))
    at.multiselect(key="automation.weekdays").set_value([1, 2, 3, 4, 5])
    at.selectbox(key="automation.timezone").select("Asia/Karachi")
    _ok(at.run())
    at.button(key="automation.save").click().run()
    _ok(at)
    assert [t.value for t in at.toast] == ["Saved job Morning."]

    at.selectbox(key="automation.edit").select("").run()
    at.text_input(key="automation.name").input("Every two")
    at.radio(key="automation.kind").set_value("minutes").run()
    at.selectbox(key="automation.every_minutes").select(2)
    at.button(key="automation.save").click().run()
    _ok(at)

    jobs = load_jobs(app_store)
    assert [(j.name, j.schedule, j.timezone, j.active, j.sources) for j in jobs] == [
        ("Every two", "*/2 * * * *", "Asia/Karachi", True, [{"kind": "buffer"}]),
        ("Morning", "30 9 * * 1-5", "Asia/Karachi", True, [{"kind": "buffer"}])]
    table = _table(at, "Schedule")
    assert table[["Name", "Schedule", "Timezone", "Next run", "Countdown", "Status"]].to_dict(
        "records") == [
        {"Name": "Every two", "Schedule": "Every 2 minutes", "Timezone": "Asia/Karachi",
         "Next run": "Fri 13 Mar 2026 09:02 PKT", "Countdown": "in 2 min", "Status": "never run"},
        {"Name": "Morning", "Schedule": "Weekdays at 09:30 Asia/Karachi",
         "Timezone": "Asia/Karachi", "Next run": "Fri 13 Mar 2026 09:30 PKT",
         "Countdown": "in 30 min", "Status": "never run"}]
    shown = next(d for d in at.dataframe if "Schedule" in d.value.columns)  # never cut off:
    assert shown.proto.row_height == WRAPPED  # rows tall enough for Streamlit to wrap text
    assert json.loads(shown.proto.columns)["Schedule"]["width"] == "large"


def test_a_bad_schedule_shows_why_and_saves_nothing(app_as, app_store):
    at = _page(app_as)
    at.text_input(key="automation.name").input("Broken")
    at.multiselect(key="automation.weekdays").set_value([]).run()
    assert [w.value for w in at.warning] == ["No preview: weekdays: choose at least one weekday"]
    at.button(key="automation.save").click().run()
    assert [e.value for e in at.error if e.value != DOWN] == [
        "Saving the job: weekdays: choose at least one weekday"]
    assert load_jobs(app_store) == []


def test_the_preview_lists_the_next_five_runs_of_a_job(app_as, app_store):
    job = _add_job(app_store)
    at = _page(app_as)
    at.selectbox(key="automation.edit").select(job.id).run()
    _ok(at)
    assert at.text_input(key="automation.name").value == "Morning"
    assert at.time_input(key="automation.at").value == time(9, 30)
    assert _preview(at) == [("Fri 13 Mar 2026 09:30 PKT", ""), ("Mon 16 Mar 2026 09:30 PKT", ""),
                            ("Tue 17 Mar 2026 09:30 PKT", ""), ("Wed 18 Mar 2026 09:30 PKT", ""),
                            ("Thu 19 Mar 2026 09:30 PKT", "")]
    at.radio(key="automation.kind").set_value("cron").run()
    at.text_input(key="automation.cron").input("0 2 1 * *")
    at.selectbox(key="automation.timezone").select("America/New_York").run()
    assert _preview(at)[:2] == [("Wed 01 Apr 2026 02:00 EDT", ""),
                                ("Fri 01 May 2026 02:00 EDT", "")]


def test_editing_a_job_saves_the_new_schedule(app_as, app_store):
    job = _add_job(app_store)
    at = _page(app_as)
    at.selectbox(key="automation.job").select(job.id)
    at.button(key="automation.edit_job").click().run()
    assert at.selectbox(key="automation.edit").value == job.id
    at.radio(key="automation.kind").set_value("hours").run()
    at.selectbox(key="automation.every_hours").select(6)
    at.number_input(key="automation.minute").set_value(15)
    at.text_area(key="automation.inbox").input("/srv/inbox/colors")
    at.button(key="automation.save").click().run()
    _ok(at)
    saved, _ = get_job(app_store, job.id)
    assert (saved.schedule, saved.sources, saved.updated_by) == (
        "15 */6 * * *", [{"kind": "inbox", "path": "/srv/inbox/colors", "min_age_s": 0.0}],
        "admin")


def test_a_browser_that_missed_the_run_that_filled_the_editor_mounts_it_at_the_jobs_values(
        app_as, app_store):
    """Under load the run that puts a job in the editor can be superseded before the browser
    gets it, and the browser mounts the editor from the next run. Each field must come with the
    job's value in that run too (the switches and sources came at the widgets' own defaults:
    inactive, no rules, no emails, no inbox, no buffer, and a save sent those back)."""
    job = _add_job(app_store, "Evening", "0 18 * * 1-5", timezone="America/New_York",
                   email_on_success=True,
                   sources=[{"kind": "inbox", "path": "/srv/in"}, {"kind": "buffer"}])
    at = _page(app_as)
    at.selectbox(key="automation.edit").select(job.id).run()
    at = _ok(at.run())  # the run after the one that filled the editor
    fields = {"automation.name": at.text_input, "automation.kind": at.radio,
              "automation.at": at.time_input, "automation.weekdays": at.multiselect,
              "automation.timezone": at.selectbox, "automation.inbox": at.text_area,
              "automation.buffer": at.checkbox, "automation.sql": at.checkbox,
              "automation.job_active": at.checkbox, "automation.apply_rules": at.checkbox,
              "automation.email_success": at.checkbox, "automation.email_failure": at.checkbox}
    assert {key.removeprefix("automation."): mounts_at(kind(key=key))
            for key, kind in fields.items()} == {
        "name": "Evening", "kind": "Daily at a time", "at": "18:00",
        "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri"], "timezone": "America/New_York",
        "inbox": "/srv/in", "buffer": True, "sql": False, "job_active": True,
        "apply_rules": True, "email_success": True, "email_failure": True}
    at.text_input(key="automation.name").input("Evening colors")
    _ok(at.button(key="automation.save").click().run())
    saved, _ = get_job(app_store, job.id)
    assert (saved.name, saved.schedule, saved.timezone, saved.active, saved.apply_rules,
            saved.email_on_success, saved.email_on_failure, saved.sources) == (
        "Evening colors", "0 18 * * 1-5", "America/New_York", True, True, True, True,
        [{"kind": "inbox", "path": "/srv/in", "min_age_s": 0.0}, {"kind": "buffer"}])


def test_a_browser_that_missed_the_run_that_opened_a_job_mounts_the_editor_on_it(
        app_as, app_store):
    """Edit (in the jobs list) and Save put a job in the editor's job selector; a browser that
    missed that run (superseded under load) must still mount the selector on that job (it came
    at "(new job)", and the next edit turned the editor into a new job's)."""
    job = _add_job(app_store)
    at = _page(app_as)
    at.selectbox(key="automation.job").select(job.id)
    at = _ok(_ok(at.button(key="automation.edit_job").click().run()).run())  # and the run after
    assert mounts_at(at.selectbox(key="automation.edit")) == "Morning"
    at.text_input(key="automation.name").input("Morning colors")
    at = _ok(_ok(at.button(key="automation.save").click().run()).run())
    assert mounts_at(at.selectbox(key="automation.edit")) == "Morning colors"
    assert [j.name for j in load_jobs(app_store)] == ["Morning colors"]


# -- triggers ------------------------------------------------------------------------------------
def test_run_now_queues_a_trigger_and_the_page_shows_it_queued(app_as, app_store):
    job = _add_job(app_store)
    at = _page(app_as)
    at.button(key="automation.run_now").click().run()
    _ok(at)
    (trigger,) = pending_triggers(app_store)
    assert (trigger.job_id, trigger.requested_by, trigger.override, trigger.skip_next) == (
        job.id, "admin", False, False)
    assert [t.value for t in at.toast] == ["Queued a run of Morning."]
    assert _table(at, "Schedule")["Status"].tolist() == ["queued"]
    assert _progress(at) == [(0, "A run of Morning is queued, requested by admin: waiting 0 s "
                                 "for the scheduler to pick it up.")]
    assert get_job(app_store, job.id)[0].skip_next_at is None
    other = _page(app_as)  # another admin's page says who queued it
    assert other.info[0].value == (
        "Queued: a run of Morning, requested by admin at 2026-03-13 04:00:00 UTC; it starts "
        "when the scheduler picks it up.")

    at.button(key="automation.run_now").click().run()  # never queued twice
    assert [e.value for e in at.error if e.value != DOWN] == [
        "Queuing a run of Morning: a run of 'Morning' is already queued (requested by admin at "
        "2026-03-13T04:00:00)"]
    at.button(key=f"automation.cancel_{trigger.id}").click().run()
    _ok(at)
    assert pending_triggers(app_store) == []


def test_skip_next_persists_and_the_preview_marks_the_skipped_run(app_as, app_store):
    job = _add_job(app_store)
    at = _page(app_as)
    at.button(key="automation.run_skip_next").click().run()
    _ok(at)
    assert get_job(app_store, job.id)[0].skip_next_at == "2026-03-13T09:30:00+05:00"
    assert [t.skip_next for t in pending_triggers(app_store)] == [True]
    assert _table(at, "Schedule")["Next run"].tolist() == ["Mon 16 Mar 2026 09:30 PKT"]
    at.selectbox(key="automation.edit").select(job.id).run()
    assert _preview(at)[:3] == [("Fri 13 Mar 2026 09:30 PKT", SKIPPED),
                                ("Mon 16 Mar 2026 09:30 PKT", ""),
                                ("Tue 17 Mar 2026 09:30 PKT", "")]


def test_run_without_rules_queues_an_override_run(app_as, app_store):
    _add_job(app_store)
    at = _page(app_as)
    at.button(key="automation.run_no_rules").click().run()
    _ok(at)
    assert [(t.override, t.skip_next) for t in pending_triggers(app_store)] == [(True, False)]
    assert [t.value for t in at.toast] == ["Queued a run of Morning without rules (OVERRIDE)."]


def test_dashboard_run_buttons_pick_the_first_active_job(app_store):
    _add_job(app_store, "Alpha", active=False)
    beta = _add_job(app_store, "Beta")

    def dashboard():
        from core.access import Actor
        from pages._ui.automation_views import render_run_buttons
        from pages._ui.services import store

        render_run_buttons(store(), Actor("admin", "admin"), "dashboard")

    at = AppTest.from_function(dashboard, default_timeout=30).run()
    assert at.selectbox(key="dashboard.run_job").value == beta.id
    at.button(key="dashboard.run_now").click().run()
    assert not at.exception
    assert [t.job_id for t in pending_triggers(app_store)] == [beta.id]
    assert [t.value for t in at.toast] == ["Queued a run of Beta."]


# -- jobs table actions --------------------------------------------------------------------------
def test_toggle_duplicate_and_delete_with_confirmation(app_as, app_store):
    job = _add_job(app_store)
    at = _page(app_as)
    at.toggle(key="automation.active").set_value(False).run()
    _ok(at)
    assert get_job(app_store, job.id)[0].active is False
    assert _table(at, "Schedule")["Next run"].tolist() == ["off"]

    at.button(key="automation.duplicate").click().run()
    _ok(at)
    assert [(j.name, j.active) for j in load_jobs(app_store)] == [
        ("Morning", False), ("Morning (copy)", False)]

    at.selectbox(key="automation.job").select(job.id)
    at.button(key="automation.delete").click().run()
    assert at.warning[0].value == (
        "Delete Morning? Revert under Recent job changes brings it back.")
    assert [j.name for j in load_jobs(app_store)] == ["Morning", "Morning (copy)"]
    at.button(key="automation.delete_confirm").click().run()
    _ok(at)
    assert [j.name for j in load_jobs(app_store)] == ["Morning (copy)"]
    assert [t.value for t in at.toast] == ["Deleted Morning."]


def test_revert_the_last_job_change(app_as, app_store):
    job = save_job(app_store, SYSTEM, Job(name="Morning", schedule="30 9 * * 1-5"),
                   now=NOW - timedelta(minutes=2))
    save_job(app_store, SYSTEM, Job(**{**job.to_dict(), "schedule": "0 10 * * 1-5"}),
             now=NOW - timedelta(minutes=1))
    at = _page(app_as)
    newest = load_changes(app_store, area="jobs")["EVENT_ID"].iloc[0]
    at.button(key=f"automation.revert_{newest}").click().run()
    _ok(at)
    assert get_job(app_store, job.id)[0].schedule == "30 9 * * 1-5"
    assert load_changes(app_store, area="jobs")["ACTION"].tolist() == [
        "revert", "update", "create"]
    assert [t.value for t in at.toast] == ["Reverted: Morning restored."]


# -- scheduler health and running in the app -----------------------------------------------------
def test_the_page_says_the_scheduler_is_down_without_a_heartbeat(app_as, app_store):
    _add_job(app_store)
    at = app_as("admin", "admin", page=PAGE)
    assert [e.value for e in at.error] == [DOWN]
    assert at.button(key="automation.run_in_app").label == "Run in this app process"


def test_a_fresh_heartbeat_shows_the_scheduler_running(app_as, app_store):
    app_store.put(HEARTBEAT_KEY, {"at": (NOW - timedelta(seconds=1)).isoformat(), "tick_s": 1.0,
                                  "owner": "host:7:abc", "current": None, "last_errors": []}, None)
    acquire_lease(app_store, LEASE, "host:7:abc", 30, NOW)
    app_store.put("scheduler/current", {"job": "Morning", "job_id": "x", "run_id": 4,
                                        "stage": "rules", "rows": 1200,
                                        "started_at": (NOW - timedelta(seconds=12)).isoformat()},
                  None)
    at = _page(app_as)
    assert at.success[0].value == (
        "The scheduler is running: heartbeat 1 s ago, lease held by host:7:abc.")
    assert _progress(at) == [(40, "Running Morning (run 4): rules, 1,200 rows, 12 s so far.")]
    with pytest.raises(KeyError):
        at.button(key="automation.run_in_app")


def _inbox_job(app_store, tmp_path) -> Job:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    colors = make_colors(4, RANK=[1, 99, 1, 1], SOURCE=["JPM", "JPM", "MS", "JPM"])
    (inbox / "colors.xlsx").write_bytes(write_xlsx(colors[list(INPUT_COLUMNS)]))
    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    return _add_job(app_store, "Inbox", sources=[{"kind": "inbox", "path": str(inbox)}])


def test_run_in_the_app_process_publishes_and_the_history_shows_it(app_as, app_store, tmp_path,
                                                                   served):
    _inbox_job(app_store, tmp_path)
    at = _page(app_as)
    at.button(key="automation.run_in_app").click().run()
    _ok(at)
    assert at.success[0].value == "Run 1 of Inbox: success."
    assert [p.name for p in (tmp_path / "inbox" / "processed").iterdir()] == ["1-colors.xlsx"]
    history = _table(at, "Quarantined")
    assert history.drop(columns=["Started (UTC)", "Seconds"]).to_dict("records") == [
        {"Run": 1, "Job": "Inbox", "Status": "success", "Trigger": "run_now", "Kind": "AUTOMATED",
         "Requested by": "admin", "Read": 4, "Published": 2, "Parents": 2, "Excluded": 1,
         "Quarantined": 1, "Workbook": "ready", "Error": ""}]
    stages = _table(at, "Stage")  # the run's per-stage timings, in order
    assert stages["Stage"].tolist() == ["read", "validate", "already_published", "rules+rank",
                                        "publish", "workbook"]
    assert (stages["Seconds"] >= 0).all()
    assert _table(at, "Status")["Status"].tolist() == ["success"]  # the jobs table
    assert _table(at, "Excluded rows").to_dict("records") == [{"Rule": "No MS",
                                                               "Excluded rows": 1}]
    assert _table(at, "CODE")["CODE"].tolist() == ["rank_out_of_range"]

    buttons = {b.proto.label: b for b in at.get("download_button")}
    output, name = served(buttons["Download the output workbook"])
    assert name == "marketpulse-run-00000001.xlsx"
    assert len(pd.read_excel(io.BytesIO(output))) == 2
    excluded, name = served(buttons["Download the excluded rows (1)"])
    assert name == "marketpulse-run-00000001-excluded.xlsx"
    assert pd.read_excel(io.BytesIO(excluded))[SOURCE].tolist() == ["MS"]
    quarantined, _ = served(buttons["Download the quarantined rows (1)"])
    assert pd.read_excel(io.BytesIO(quarantined))["RANK"].tolist() == [99]


# -- runs followed live ---------------------------------------------------------------------------
@pytest.fixture
def polls(monkeypatch) -> list:
    """The run_every of each fragment the pages draw (st.fragment still does the work)."""
    seen = []
    real = st.fragment

    def recording(func=None, *, run_every=None, **kwargs):
        seen.append((getattr(func, "__name__", None), run_every))
        return real(func, run_every=run_every, **kwargs)

    monkeypatch.setattr(st, "fragment", recording)
    return seen


def _scheduler_step(app_store, sources=None) -> list[RunRecord]:
    return run_once(app_store, load_settings({}, {}), NOW, owner="sched",
                    notify=lambda *a: None, **({"collect": sources} if sources else {}))


def test_run_now_is_followed_while_it_runs_with_its_stages(app_as, app_store, polls):
    _add_job(app_store)
    at = _page(app_as)
    assert polls[-1] == ("_live", 10.0)  # idle: a slow look for runs starting
    at.button(key="automation.run_now").click().run()
    assert polls[-1] == ("_live", 1.0)  # queued: every second
    (trigger,) = pending_triggers(app_store)
    assert take_trigger(app_store, trigger)  # the scheduler took it and is running it
    start = NOW - timedelta(seconds=5)
    app_store.put(CURRENT_KEY, {
        "owner": "sched", "run_id": 1, "job": "Morning", "job_id": trigger.job_id,
        "trigger": "run_now", "stage": "rules", "rows": 1200, "files": 1,
        "started_at": start.isoformat(), "requested_by": "admin", "request_id": trigger.id,
        "stages": [["collect", start.isoformat()],
                   ["read", (start + timedelta(seconds=1)).isoformat()],
                   ["rules", (start + timedelta(seconds=3)).isoformat()]]}, None)
    at.run()
    _ok(at)
    assert _progress(at) == [(40, "Running Morning (run 1), requested by admin: rules, 1 file, "
                                  "1,200 rows, 5 s so far.")]
    assert "Stages so far: collect 1.00 s · read 2.00 s · rules 2.00 s" in [
        c.value for c in at.caption]
    assert _table(at, "Schedule")["Status"].tolist() == ["running"]
    assert polls[-1] == ("_live", 1.0)


def test_run_now_shows_its_result_when_it_ends_and_the_history_has_it(app_as, app_store,
                                                                      tmp_path, polls):
    _inbox_job(app_store, tmp_path)
    at = _page(app_as)
    at.button(key="automation.run_now").click().run()
    [record] = _scheduler_step(app_store)
    at.run()
    _ok(at)
    assert _progress(at) == []
    assert [s.value for s in at.success] == [
        "The scheduler is running: heartbeat 0 s ago, lease held by sched.",
        f"Run 1 of Inbox succeeded in {record.duration_s:.1f} s: 2 colors published, 2 parents, "
        "1 excluded, 1 quarantined."]
    assert [c.value for c in at.caption if c.value.startswith("Stages: ")] == [
        "Stages: " + " · ".join(f"{k} {v:.2f} s" for k, v in record.stages.items())]
    history = _table(at, "Quarantined")
    assert history[["Run", "Trigger", "Requested by", "Status"]].to_dict("records") == [
        {"Run": 1, "Trigger": "run_now", "Requested by": "admin", "Status": "success"}]
    assert polls[-1] == ("_live", 10.0)  # ended: back to the slow look
    at.button(key="automation.watch_dismiss").click().run()
    assert len(at.success) == 1
    assert "No run in progress." in [c.value for c in at.caption]


def test_run_now_with_nothing_to_process_says_so(app_as, app_store):
    _add_job(app_store, sources=[{"kind": "buffer"}])
    at = _page(app_as)
    at.button(key="automation.run_now").click().run()
    _scheduler_step(app_store)
    at.run()
    _ok(at)
    assert [i.value for i in at.info] == [
        "Run 1 of Morning: Nothing to process: the upload buffer had no new input. Nothing was "
        "published.",
        "nothing to process: the upload buffer had no new input"]  # the run's detail below


def test_a_followed_run_cancelled_elsewhere_is_said_gone_after_a_few_looks(app_as, app_store,
                                                                          polls):
    _add_job(app_store)
    at = _page(app_as)
    at.button(key="automation.run_now").click().run()
    (trigger,) = pending_triggers(app_store)
    cancel_trigger(app_store, SYSTEM, trigger.id, now=NOW)  # another admin cancelled it
    for _ in range(GONE_POLLS):  # between the queue and its run a request is briefly nowhere
        at.run()
        assert (at.info.values, polls[-1]) == ([], ("_live", 1.0))
    at.run()
    assert [i.value for i in at.info] == [
        "The queued run is no longer queued, running or recorded (it was cancelled)."]
    assert polls[-1] == ("_live", 10.0)


def test_the_scheduler_s_recent_log_lines_are_shown(app_as, app_store):
    app_store.put(LOG_KEY, {"owner": "sched", "lines": [
        {"at": "2026-03-13T04:00:01+00:00", "level": "INFO", "logger": "core.automation.scheduler",
         "message": "running Morning now (requested by admin)"},
        {"at": "2026-03-13T04:00:02+00:00", "level": "WARNING", "logger": "core.runs.pipeline",
         "message": "**not markdown**"}]}, None)
    at = _page(app_as)
    assert at.expander[0].label == "Scheduler log (last 2 lines, UTC)"
    assert at.code[0].value == (
        "2026-03-13 04:00:01 INFO    running Morning now (requested by admin)\n"
        "2026-03-13 04:00:02 WARNING **not markdown**")


def test_the_history_says_the_workbook_is_being_prepared_until_it_is_built(app_as, app_store,
                                                                           served):
    colors = make_colors(4, SOURCE=["JPM", "JPM", "MS", "JPM"])
    prepared = pipeline.prepare_files(app_store, [("colors.xlsx", write_xlsx(
        colors[list(INPUT_COLUMNS)]))], load_settings({}, {}))
    result = pipeline.publish_run(app_store, SYSTEM, prepared, settings=load_settings({}, {}),
                                  build_workbook=False)
    at = _page(app_as)
    assert _table(at, "Quarantined")[["Run", "Status", "Workbook"]].values.tolist() == [
        [1, "success", "being prepared"]]
    assert workbooks.BEING_PREPARED in [i.value for i in at.info]
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the output workbook" not in labels

    workbooks.build_workbook(app_store, result.record.run_id)
    at.run()
    _ok(at)
    assert _table(at, "Quarantined")["Workbook"].tolist() == ["ready"]
    assert workbooks.BEING_PREPARED not in [i.value for i in at.info]
    buttons = {b.proto.label: b for b in at.get("download_button")}
    output, _ = served(buttons["Download the output workbook"])
    # the groups in CUSIP order, as ranked
    assert pd.read_excel(io.BytesIO(output))["SOURCE"].tolist() == ["JPM", "MS", "JPM", "JPM"]


def test_the_history_says_why_a_workbook_failed(app_as, app_store):
    save_run(app_store, RunRecord(run_id=1, kind="AUTOMATED", trigger="scheduled",
                                  actor="system", status="success", job="Morning",
                                  started_at="2026-03-12T04:30:00+00:00", workbook="failed",
                                  workbook_error="disk full"))
    at = _page(app_as)
    assert _table(at, "Quarantined")["Workbook"].tolist() == ["failed"]
    assert [w.value for w in at.warning] == [
        "The output workbook could not be built (disk full); the colors are published: export "
        "them as CSV from Search."]


def test_history_filters_by_status_job_and_date(app_as, app_store):
    save_run(app_store, RunRecord(run_id=1, kind="AUTOMATED", trigger="scheduled",
                                  actor="system", status="success", job="Morning",
                                  started_at="2026-03-12T04:30:00+00:00"))
    save_run(app_store, RunRecord(run_id=2, kind="AUTOMATED", trigger="scheduled",
                                  actor="system", status="failed", job="Evening",
                                  started_at="2026-03-13T12:00:00+00:00", error="inbox missing"))
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert _table(at, "Quarantined")["Run"].tolist() == [2, 1]
    assert _table(at, "success").reset_index().to_dict("records") == [
        {"Day": "2026-03-13", "success": 0, "failed": 1},
        {"Day": "2026-03-12", "success": 1, "failed": 0}]
    at.multiselect(key="automation.history_status").set_value(["failed"]).run()
    assert _table(at, "Quarantined")["Run"].tolist() == [2]
    assert at.error[-1].value == "inbox missing"  # the detail of the failed run
    at.multiselect(key="automation.history_status").set_value([])
    at.multiselect(key="automation.history_job").set_value(["Morning"]).run()
    assert _table(at, "Quarantined")["Run"].tolist() == [1]
    at.multiselect(key="automation.history_job").set_value([])
    at.date_input(key="automation.history_dates").set_value(
        (datetime(2026, 3, 13).date(), datetime(2026, 3, 13).date())).run()
    assert _table(at, "Quarantined")["Run"].tolist() == [2]


def test_the_history_shows_a_run_whose_process_died_as_abandoned_and_its_data_gone(app_as,
                                                                                   app_store):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    owner = {**current_owner(), "pid": int(child.stdout)}  # a process of this host, gone
    save_run(app_store, RunRecord(run_id=3, kind="MANUAL", trigger="cli", actor="system",
                                  started_at="2026-03-13T03:00:00+00:00", owner=owner,
                                  heartbeat_at="2026-03-13T03:00:00+00:00"))
    run_tables(app_store).append_run(3, {"colors": make_colors(2)})
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert _table(at, "Quarantined")[["Run", "Status"]].values.tolist() == [[3, "abandoned"]]
    assert at.error[-1].value == (f"abandoned: its process ({owner['host']} pid {owner['pid']}) "
                                  "died during the run")
    assert app_store.partitions("colors") == []
    assert "abandoned" in at.multiselect(key="automation.history_status").options


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_automation_is_not_registered_for_non_admins(app_as, role):
    at = app_as(role, role)
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_the_editor_survives_a_visit_to_another_page(app_as, app_store):
    job = _add_job(app_store, "Monthly", schedule="0 6 31 * *")  # day 31: edited as raw cron
    at = _page(app_as)
    at.selectbox(key="automation.edit").select(job.id).run()
    assert at.radio(key="automation.kind").value == "cron"
    assert at.text_input(key="automation.cron").value == "0 6 31 * *"
    at.switch_page("pages/dashboard.py").run()
    _ok(at.switch_page(PAGE).run())
    assert at.selectbox(key="automation.edit").value == ""  # back to a new job, filled afresh
    assert (at.text_input(key="automation.name").value, at.radio(key="automation.kind").value,
            at.time_input(key="automation.at").value) == ("", "daily", time(9, 30))
