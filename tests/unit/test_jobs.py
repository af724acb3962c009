"""Jobs: cron numbering, DST, words, builder, validation, store (audit, revert), triggers, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from core.access import ADMIN, ANALYST, VIEWER, Actor
from core.audit import load_changes, record_change
from core.automation.jobs import (
    Job,
    cancel_trigger,
    delete_job,
    duplicate_job,
    get_job,
    load_jobs,
    pending_triggers,
    request_run,
    revert_job_change,
    save_job,
    take_trigger,
    toggle_job,
    validate_job,
)
from core.automation.schedules import (
    builder_from_cron,
    cron_from_builder,
    describe_schedule,
    next_runs,
    previous_occurrences,
    upcoming_runs,
)
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from storage import WriteConflict

PKT = ZoneInfo("Asia/Karachi")
NY = "America/New_York"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=PKT)  # a Friday
LATER = datetime(2026, 11, 27, 11, 0, tzinfo=PKT)
BOSS = Actor("ayesha", ADMIN)


def iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def weekday_job(**fields) -> Job:
    return Job(name=fields.pop("name", "Morning"), schedule=fields.pop("schedule", "30 9 * * 1-5"),
               **fields)


# -- cron numbering and DST ------------------------------------------------------------------------
def test_weekdays_1_to_5_run_monday_to_friday_in_karachi():
    assert iso(next_runs(weekday_job(), NOW, 3)) == [
        "2026-11-30T09:30:00+05:00", "2026-12-01T09:30:00+05:00", "2026-12-02T09:30:00+05:00"]


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_zero_seven_and_sun_are_all_sunday(dow):
    runs = next_runs(weekday_job(schedule=f"0 9 * * {dow}"), NOW, 2)
    assert iso(runs) == ["2026-11-29T09:00:00+05:00", "2026-12-06T09:00:00+05:00"]
    assert {r.strftime("%A") for r in runs} == {"Sunday"}


def test_day_and_month_names_are_accepted():
    job = weekday_job(schedule="30 9 * dec mon-fri")
    assert iso(next_runs(job, NOW, 2)) == ["2026-12-01T09:30:00+05:00", "2026-12-02T09:30:00+05:00"]


def test_default_timezone_is_karachi():
    assert Job(name="x", schedule="* * * * *").timezone == "Asia/Karachi"


def test_spring_forward_runs_a_0230_job_once_after_the_gap():
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist and runs at 03:30 EDT.
    job = weekday_job(schedule="30 2 * * *", timezone=NY)
    assert iso(next_runs(job, datetime(2026, 3, 7, 12, tzinfo=UTC), 3)) == [
        "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]


def test_fall_back_runs_a_repeated_time_only_once():
    # 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice and runs at the first.
    job = weekday_job(schedule="30 1 * * *", timezone=NY)
    assert iso(next_runs(job, datetime(2026, 10, 31, 12, tzinfo=UTC), 3)) == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]


def test_dst_half_hourly_job_never_repeats_an_instant():
    job = weekday_job(schedule="*/30 * * * *", timezone=NY)
    spring = next_runs(job, datetime(2026, 3, 8, 6, tzinfo=UTC), 4)
    assert iso(spring) == ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
                           "2026-03-08T03:30:00-04:00", "2026-03-08T04:00:00-04:00"]
    fall = next_runs(job, datetime(2026, 11, 1, 5, tzinfo=UTC), 3)
    assert iso(fall) == ["2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00",
                         "2026-11-01T02:30:00-05:00"]


def test_previous_occurrences_match_next_runs_across_the_gap():
    before = datetime(2026, 3, 8, 7, 40, tzinfo=UTC)  # 03:40 EDT
    assert iso(islice(previous_occurrences("*/30 * * * *", NY, before), 3)) == [
        "2026-03-08T03:30:00-04:00", "2026-03-08T03:00:00-04:00", "2026-03-08T01:30:00-05:00"]


def test_a_skipped_occurrence_is_shown_as_skipped_and_not_run():
    job = weekday_job(skip_next_at="2026-11-30T09:30:00+05:00")
    assert [(o.at.isoformat(), o.skipped) for o in upcoming_runs(job, NOW, 2)] == [
        ("2026-11-30T09:30:00+05:00", True), ("2026-12-01T09:30:00+05:00", False)]
    assert iso(next_runs(job, NOW, 2)) == ["2026-12-01T09:30:00+05:00",
                                           "2026-12-02T09:30:00+05:00"]


# -- words and builder -----------------------------------------------------------------------------
@pytest.mark.parametrize(("cron", "tz", "words"), [
    ("30 9 * * 1-5", "Asia/Karachi", "Weekdays at 09:30 Asia/Karachi"),
    ("30 9 * * mon-fri", "Asia/Karachi", "Weekdays at 09:30 Asia/Karachi"),
    ("*/2 * * * *", "Asia/Karachi", "Every 2 minutes"),
    ("* * * * *", "UTC", "Every minute"),
    ("0 18 * * *", "UTC", "Every day at 18:00 UTC"),
    ("15 7 * * 1,4", "Europe/London", "Mondays and Thursdays at 07:15 Europe/London"),
    ("0 8 * * 1,3,5", "UTC", "Mondays, Wednesdays and Fridays at 08:00 UTC"),
    ("0 10 * * 0,6", "UTC", "Weekends at 10:00 UTC"),
    ("0 10 * * 7", "UTC", "Sundays at 10:00 UTC"),
    ("0 6 1 * *", "Asia/Karachi", "Monthly on day 1 at 06:00 Asia/Karachi"),
    ("0 */2 * * *", "UTC", "Every 2 hours (UTC)"),
    ("0 9 1-7 * 1", "Asia/Karachi", "cron '0 9 1-7 * 1' (Asia/Karachi)"),
])
def test_describe_schedule(cron, tz, words):
    assert describe_schedule(cron, tz) == words


@pytest.mark.parametrize(("kind", "params", "cron"), [
    ("daily", {"at": "09:30", "weekdays": [1, 2, 3, 4, 5]}, "30 9 * * 1-5"),
    ("daily", {"at": "09:30", "weekdays": "mon-fri"}, "30 9 * * 1-5"),
    ("daily", {"at": "7:15", "weekdays": "mon,thu"}, "15 7 * * 1,4"),
    ("daily", {"at": "18:00"}, "0 18 * * *"),
    ("daily", {"at": "10:00", "weekdays": "fri-sun"}, "0 10 * * 0,5-6"),
    ("minutes", {"every": 2}, "*/2 * * * *"),
    ("minutes", {"every": 1}, "* * * * *"),
    ("hours", {"every": 6}, "0 */6 * * *"),
    ("hours", {"every": 1, "minute": 15}, "15 * * * *"),
    ("monthly", {"day": 1, "at": "06:00"}, "0 6 1 * *"),
])
def test_builder_makes_cron_and_reads_it_back(kind, params, cron):
    assert cron_from_builder(kind, **params) == cron
    back_kind, back = builder_from_cron(cron)
    assert back_kind == kind
    assert cron_from_builder(back_kind, **back) == cron


@pytest.mark.parametrize(("kind", "params", "field", "words"), [
    ("daily", {"at": "25:00"}, "at", "'25:00' is not a time"),
    ("daily", {"at": "09:00", "weekdays": "funday"}, "weekdays", "'funday' is not a weekday"),
    ("minutes", {"every": 7}, "every", "N must divide 60 evenly"),
    ("hours", {"every": 5}, "every", "N must divide 24 evenly"),
    ("monthly", {"day": 31, "at": "06:00"}, "day", "day of the month is 1..28"),
    ("yearly", {}, "kind", "unknown schedule kind 'yearly'"),
])
def test_builder_refuses_bad_input_naming_the_field(kind, params, field, words):
    with pytest.raises(InvalidInput, match=words) as info:
        cron_from_builder(kind, **params)
    assert info.value.field == field


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("job", "field", "words"), [
    (Job(name="  ", schedule="* * * * *"), "name", "a job needs a name"),
    (Job(name="a", schedule="* * * *"), "schedule", "has 4 field"),
    (Job(name="a", schedule="61 * * * *"), "schedule", "is not a valid cron expression"),
    (Job(name="a", schedule="0 0 30 2 *"), "schedule", "never occurs"),
    (Job(name="a", schedule="* * * * *", timezone="Mars/Olympus"), "timezone",
     "unknown timezone 'Mars/Olympus'"),
    (Job(name="a", schedule="* * * * *", sources=[{"path": "x"}]), "sources", "'kind'"),
])
def test_validation_names_the_field(job, field, words):
    with pytest.raises(InvalidInput, match=words) as info:
        validate_job(job)
    assert info.value.field == field


def test_validation_tidies_name_and_schedule():
    job = validate_job(Job(name="  Morning ", schedule="30  9 *  * 1-5"))
    assert (job.name, job.schedule) == ("Morning", "30 9 * * 1-5")


# -- jobs in the store -----------------------------------------------------------------------------
def test_save_load_and_audit(memory_store):
    saved = save_job(memory_store, BOSS, weekday_job(sources=[{"kind": "buffer"}]), now=NOW)
    assert saved.id
    assert (saved.created_by, saved.created_at) == ("ayesha", NOW.isoformat())
    assert load_jobs(memory_store) == [saved]
    assert get_job(memory_store, saved.id)[0] == saved
    change = load_changes(memory_store, area="jobs").iloc[0]
    assert (change["ACTION"], change["ENTITY"], change["BEFORE"]) == ("create", "Morning", None)
    assert json.loads(change["AFTER"]) == saved.to_dict()


def test_names_are_unique_case_insensitively(memory_store):
    save_job(memory_store, BOSS, weekday_job(), now=NOW)
    with pytest.raises(InvalidInput, match="another job is already named 'Morning'"):
        save_job(memory_store, BOSS, weekday_job(name="MORNING"), now=NOW)


@pytest.mark.parametrize("role", [VIEWER, ANALYST])
def test_only_admins_edit_or_trigger_jobs(memory_store, role):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    someone = Actor("sam", role)
    for action in (lambda: save_job(memory_store, someone, weekday_job(name="Other"), now=NOW),
                   lambda: delete_job(memory_store, someone, job.id, now=NOW),
                   lambda: toggle_job(memory_store, someone, job.id, now=NOW),
                   lambda: duplicate_job(memory_store, someone, job.id, now=NOW),
                   lambda: request_run(memory_store, someone, job.id, now=NOW)):
        with pytest.raises(PermissionDenied):
            action()
    assert load_jobs(memory_store) == [job]
    assert pending_triggers(memory_store) == []


def test_update_with_a_stale_version_is_a_conflict(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    _, version = get_job(memory_store, job.id)
    save_job(memory_store, BOSS, weekday_job(id=job.id, name="Renamed"), now=LATER)
    with pytest.raises(Conflict, match="changed by someone else"):
        save_job(memory_store, BOSS, weekday_job(id=job.id, name="Mine"), version, now=LATER)


def test_toggle_duplicate_and_delete(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    assert toggle_job(memory_store, BOSS, job.id, now=LATER).active is False
    assert toggle_job(memory_store, BOSS, job.id, False, now=LATER).active is False  # no change
    copy = duplicate_job(memory_store, BOSS, job.id, now=LATER)
    second = duplicate_job(memory_store, BOSS, job.id, now=LATER)
    assert (copy.name, second.name, copy.active, copy.schedule) == (
        "Morning (copy)", "Morning (copy 2)", False, job.schedule)
    delete_job(memory_store, BOSS, job.id, now=LATER)
    with pytest.raises(NotFound):
        get_job(memory_store, job.id)
    assert load_changes(memory_store, area="jobs")["ACTION"].tolist() == [
        "delete", "create", "create", "deactivate", "create"]


# -- revert ----------------------------------------------------------------------------------------
def _last_event(store) -> str:
    return str(load_changes(store, area="jobs").iloc[0]["EVENT_ID"])


def test_revert_restores_the_before_snapshot(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    save_job(memory_store, BOSS, weekday_job(id=job.id, schedule="0 18 * * *"), now=LATER)
    restored = revert_job_change(memory_store, BOSS, _last_event(memory_store), now=LATER)
    assert restored is not None
    assert restored.schedule == "30 9 * * 1-5"
    assert get_job(memory_store, job.id)[0].schedule == "30 9 * * 1-5"
    assert load_changes(memory_store, area="jobs")["ACTION"].tolist()[:1] == ["revert"]


def test_revert_of_a_create_deletes_and_of_a_delete_recreates(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    delete_job(memory_store, BOSS, job.id, now=LATER)
    assert revert_job_change(memory_store, BOSS, _last_event(memory_store), now=LATER).name == (
        "Morning")
    created = save_job(memory_store, BOSS, weekday_job(name="Evening"), now=LATER)
    assert revert_job_change(memory_store, BOSS, _last_event(memory_store), now=LATER) is None
    assert [j.name for j in load_jobs(memory_store)] == ["Morning"]
    assert created.id not in [j.id for j in load_jobs(memory_store)]


def test_revert_refuses_when_the_job_changed_since(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    save_job(memory_store, BOSS, weekday_job(id=job.id, schedule="0 18 * * *"), now=LATER)
    event = _last_event(memory_store)
    save_job(memory_store, BOSS, weekday_job(id=job.id, name="Evening", schedule="0 18 * * *"),
             now=LATER)
    with pytest.raises(Conflict) as info:
        revert_job_change(memory_store, BOSS, event, now=LATER)
    assert str(info.value) == ("job 'Morning' changed since (name, last by ayesha at "
                               "2026-11-27T11:00:00+05:00); edit it instead")


def test_a_logged_job_change_with_neither_side_recorded_is_not_reverted(memory_store):
    save_job(memory_store, BOSS, weekday_job(), now=NOW)
    record_change(memory_store, BOSS, "jobs", "update", "Morning", now=LATER)  # no before/after
    with pytest.raises(InvalidInput) as info:
        revert_job_change(memory_store, BOSS, _last_event(memory_store), now=LATER)
    assert info.value.field == "revert"
    assert str(info.value) == "revert: that change recorded no job to restore or remove"
    assert [j.name for j in load_jobs(memory_store)] == ["Morning"]


def test_only_the_last_four_changes_can_be_reverted(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    first = _last_event(memory_store)
    for n in range(4):
        save_job(memory_store, BOSS, weekday_job(id=job.id, schedule=f"{n} 9 * * *"),
                 now=datetime(2026, 11, 27, 10, n + 1, tzinfo=PKT))
    with pytest.raises(Conflict, match="only the last 4 job changes"):
        revert_job_change(memory_store, BOSS, first, now=LATER)
    with pytest.raises(PermissionDenied):
        revert_job_change(memory_store, Actor("ann", ANALYST), _last_event(memory_store))


# -- triggers --------------------------------------------------------------------------------------
def test_run_now_is_queued_logged_and_consumed_exactly_once(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    assert [(t.id, t.job, t.requested_by, t.override) for t in pending_triggers(memory_store)] == [
        (trigger.id, "Morning", "ayesha", False)]
    change = load_changes(memory_store, area="triggers").iloc[0]
    assert (change["ACTION"], change["ENTITY"], change["ACTOR"]) == ("run_now", "Morning", "ayesha")
    queued = pending_triggers(memory_store)[0]
    assert take_trigger(memory_store, queued) is True
    assert take_trigger(memory_store, queued) is False
    assert pending_triggers(memory_store) == []


def test_a_second_request_while_one_is_queued_is_refused(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    request_run(memory_store, BOSS, job.id, now=NOW)
    with pytest.raises(Conflict, match="a run of 'Morning' is already queued"):
        request_run(memory_store, BOSS, job.id, override=True, now=LATER)
    assert len(pending_triggers(memory_store)) == 1


def test_run_now_and_skip_next_persists_the_next_occurrence(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    request_run(memory_store, BOSS, job.id, skip_next=True, now=NOW)
    stored, _ = get_job(memory_store, job.id)
    assert stored.skip_next_at == "2026-11-30T09:30:00+05:00"
    assert iso(next_runs(stored, NOW, 1)) == ["2026-12-01T09:30:00+05:00"]
    assert load_changes(memory_store, area="jobs").iloc[0]["ACTION"] == "skip_next"


def test_a_skip_that_cannot_be_saved_queues_no_run(memory_store, monkeypatch):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    real_put = memory_store.put

    def stale_job(key, value, expected_version):  # someone edits the job in between
        if key.startswith("jobs/"):
            raise WriteConflict(key, expected_version, "2")
        return real_put(key, value, expected_version)

    monkeypatch.setattr(memory_store, "put", stale_job)
    with pytest.raises(Conflict, match="changed by someone else"):
        request_run(memory_store, BOSS, job.id, skip_next=True, now=NOW)
    assert pending_triggers(memory_store) == []
    assert get_job(memory_store, job.id)[0].skip_next_at is None


def test_cancel_a_queued_trigger(memory_store):
    job = save_job(memory_store, BOSS, weekday_job(), now=NOW)
    trigger = request_run(memory_store, BOSS, job.id, override=True, now=NOW)
    cancel_trigger(memory_store, BOSS, trigger.id, now=NOW)
    assert pending_triggers(memory_store) == []
    with pytest.raises(NotFound):
        cancel_trigger(memory_store, BOSS, trigger.id, now=NOW)


def test_sources_are_checked_by_the_sources_module(memory_store):
    with pytest.raises(InvalidInput, match=r"'\.\.' is not allowed") as info:
        save_job(memory_store, BOSS, weekday_job(sources=[{"kind": "inbox", "path": "../up"}]),
                 now=NOW)
    assert info.value.field == "sources[0].path"


# -- command line ----------------------------------------------------------------------------------
def _cli(store, *argv: str) -> int:
    import argparse

    from core.cli import jobs as cli_jobs
    from core.config import load_settings

    parser = argparse.ArgumentParser()
    cli_jobs.add_parser(parser.add_subparsers(dest="command", required=True))
    return cli_jobs.run(parser.parse_args(["jobs", *argv]), store, load_settings({}, {}))


def test_cli_adds_lists_runs_and_removes_a_job(memory_store, tmp_path, capsys):
    from core.cli.demo import generate_colors
    from core.runs.exports import write_csv
    from core.runs.records import load_runs
    from core.schema import INPUT_COLUMNS

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "desk.csv").write_bytes(write_csv(generate_colors(4, seed=5)[list(INPUT_COLUMNS)]))
    assert _cli(memory_store, "add", "--name", "Desk", "--at", "09:30", "--weekdays", "mon-fri",
                "--source", f"inbox:{inbox}", "--no-rules") == 0
    job, = load_jobs(memory_store)
    assert (job.schedule, job.timezone, job.apply_rules, job.sources) == (
        "30 9 * * 1-5", "Asia/Karachi", False,
        [{"kind": "inbox", "path": str(inbox), "min_age_s": 0.0}])
    assert "Added job 'Desk': Weekdays at 09:30 Asia/Karachi" in capsys.readouterr().out
    assert _cli(memory_store, "list") == 0
    assert "Weekdays at 09:30 Asia/Karachi" in capsys.readouterr().out
    assert _cli(memory_store, "run", "desk") == 0  # no scheduler: runs here
    record, = load_runs(memory_store)
    assert (record.status, record.kind, record.trigger, record.counts["read"]) == (
        "success", "OVERRIDE", "run_now", 4)
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        f"{record.run_id}-desk.csv"]
    assert _cli(memory_store, "remove", "Desk") == 0
    assert load_jobs(memory_store) == []


def test_cli_run_queues_when_a_scheduler_is_up(memory_store, capsys):
    from core.automation.leases import acquire_lease

    assert _cli(memory_store, "add", "--name", "Fast", "--every-minutes", "2") == 0
    acquire_lease(memory_store, "scheduler", "sched-a", 3600, datetime.now(UTC))
    assert _cli(memory_store, "run", "Fast", "--skip-next") == 0
    assert "Queued a run of 'Fast'" in capsys.readouterr().out
    trigger, = pending_triggers(memory_store)
    assert (trigger.job, trigger.skip_next) == ("Fast", True)
    assert load_jobs(memory_store)[0].skip_next_at is not None


def test_cli_refuses_a_bad_source():
    from core.cli.jobs import _source

    with pytest.raises(InvalidInput, match="use inbox:PATH or buffer"):
        _source("ftp://x")
