"""The scheduler with a fixed `now`: due, missed and skipped slots, triggers, the lease, live
status, failures, recovery of abandoned runs, the in-app path and health."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.access import ADMIN, ANALYST, SYSTEM, Actor
from core.automation.job_runs import ABANDONED, CURRENT_KEY
from core.automation.jobs import (
    Job,
    get_job,
    pending_triggers,
    request_run,
    save_job,
    skip_next_run,
)
from core.automation.leases import acquire_lease, lease_holder, release_lease, renew_lease
from core.automation.scheduler import HEARTBEAT_KEY, LEASE, run_in_app, run_once, scheduler_health
from core.cli.demo import generate_colors
from core.config import load_settings
from core.errors import Conflict, FileProblem, PermissionDenied
from core.intake import buffer
from core.runs import workbooks
from core.runs.exports import write_csv
from core.runs.records import RunRecord, load_runs, save_run, visible_run_ids
from core.schema import INPUT_COLUMNS
from storage import WriteConflict
from storage.run_tables import run_tables

PKT = ZoneInfo("Asia/Karachi")
SETTINGS = load_settings({}, {})
BOSS = Actor("ayesha", ADMIN)
MON_0930 = datetime(2026, 11, 30, 9, 30, tzinfo=PKT)
CREATED = MON_0930 - timedelta(hours=1)
THURSDAY = datetime(2026, 11, 26, 10, 0, tzinfo=PKT)  # after Thursday's 09:30


def colors_csv(n: int = 3) -> bytes:
    return write_csv(generate_colors(n, seed=3)[list(INPUT_COLUMNS)])


@dataclass
class FakeCollected:
    files: list[tuple[str, bytes]]
    settled: list[tuple[str, Any]] = field(default_factory=list)

    def on_success(self, run_id: int) -> list[str]:
        self.settled.append(("success", run_id))
        return []

    def on_failure(self, error: BaseException | None = None) -> list[str]:
        self.settled.append(("failure", error))
        return []


class FakeSources:
    """Stands in for core.intake.sources.collect_inputs; `during` runs inside the collect step."""

    def __init__(self, files: list[tuple[str, bytes]] | None = None, *,
                 fail: dict[str, Exception] | None = None, during: Any = None) -> None:
        self.files = [("colors.csv", colors_csv())] if files is None else files
        self.fail = fail or {}
        self.during = during
        self.calls: list[tuple[str, datetime]] = []
        self.collected: list[FakeCollected] = []

    def __call__(self, store, job: Job, settings, now: datetime) -> FakeCollected:
        self.calls.append((job.name, now))
        if self.during:
            self.during(store, job)
        if job.name in self.fail:
            raise self.fail[job.name]
        collected = FakeCollected(list(self.files))
        self.collected.append(collected)
        return collected


def add_job(store, name="Morning", schedule="30 9 * * *", created=CREATED, **fields) -> Job:
    return save_job(store, BOSS, Job(name=name, schedule=schedule, **fields), now=created)


def once(store, now, sources, owner="sched-a", **kwargs) -> list[RunRecord]:
    return run_once(store, SETTINGS, now, owner=owner, collect=sources,
                    notify=kwargs.pop("notify", lambda *a: None), **kwargs)


def summary(records: list[RunRecord]) -> list[tuple[str, str, str, str]]:
    return [(r.job, r.status, r.trigger, r.started_at) for r in records]


# -- due slots -------------------------------------------------------------------------------------
def test_a_due_job_runs_exactly_once(memory_store):
    add_job(memory_store)
    sources = FakeSources()
    now = MON_0930 + timedelta(seconds=20)
    first = once(memory_store, now, sources)
    assert summary(first) == [("Morning", "success", "scheduled", now.isoformat())]
    record = first[0]
    assert (record.kind, record.actor, record.counts["read"]) == ("AUTOMATED", "system", 3)
    assert visible_run_ids(memory_store) == [record.run_id]
    assert sources.collected[0].settled == [("success", record.run_id)]
    assert once(memory_store, now, sources) == []
    assert once(memory_store, now + timedelta(minutes=5), sources) == []
    assert len(sources.calls) == 1


def test_a_job_without_rules_runs_as_override(memory_store):
    add_job(memory_store, apply_rules=False)
    records = once(memory_store, MON_0930, FakeSources())
    assert [(r.kind, r.status) for r in records] == [("OVERRIDE", "success")]


def test_a_job_created_after_its_slot_waits_for_the_next_one(memory_store):
    save_job(memory_store, BOSS, Job(name="Late", schedule="30 9 * * *"),
             now=MON_0930 + timedelta(minutes=1))
    sources = FakeSources()
    assert once(memory_store, MON_0930 + timedelta(minutes=2), sources) == []
    assert sources.calls == []


def test_an_inactive_job_neither_runs_nor_counts_as_missed(memory_store):
    job = add_job(memory_store, active=False)
    sources = FakeSources()
    assert once(memory_store, MON_0930 + timedelta(seconds=5), sources) == []
    save_job(memory_store, BOSS, Job(**{**job.to_dict(), "active": True}),
             now=MON_0930 + timedelta(hours=1))
    tuesday = MON_0930 + timedelta(days=1, seconds=5)
    assert summary(once(memory_store, tuesday, sources)) == [
        ("Morning", "success", "scheduled", tuesday.isoformat())]


def test_nothing_to_process_writes_no_record_for_a_scheduled_run(memory_store):
    add_job(memory_store)
    sources = FakeSources(files=[])
    assert once(memory_store, MON_0930, sources) == []
    assert len(sources.calls) == 1
    assert load_runs(memory_store) == []


# -- missed slots ----------------------------------------------------------------------------------
def test_a_slot_missed_while_down_runs_once_within_grace(memory_store):
    add_job(memory_store, created=THURSDAY)  # daily 09:30; the scheduler was down since then
    now = MON_0930 + timedelta(minutes=10)
    records = once(memory_store, now, FakeSources())
    assert summary(records) == [
        ("Morning", "missed", "scheduled", "2026-11-27T09:30:00+05:00"),
        ("Morning", "missed", "scheduled", "2026-11-28T09:30:00+05:00"),
        ("Morning", "missed", "scheduled", "2026-11-29T09:30:00+05:00"),
        ("Morning", "success", "scheduled", now.isoformat()),
    ]
    assert records[0].error == "missed: the scheduler was not running at 2026-11-27T09:30:00+05:00"
    assert once(memory_store, now, FakeSources()) == []


def test_a_slot_outside_grace_is_recorded_missed_once(memory_store):
    add_job(memory_store, schedule="30 9 * * 1-5", created=THURSDAY)
    sources = FakeSources()
    now = MON_0930 + timedelta(minutes=16)
    records = once(memory_store, now, sources)
    assert summary(records) == [
        ("Morning", "missed", "scheduled", "2026-11-27T09:30:00+05:00"),
        ("Morning", "missed", "scheduled", "2026-11-30T09:30:00+05:00"),
    ]
    assert records[-1].error.endswith(", outside the 15-minute grace window")
    assert sources.calls == []
    assert once(memory_store, now + timedelta(minutes=1), sources) == []
    assert [r.status for r in load_runs(memory_store)] == ["missed", "missed"]


def test_a_long_outage_records_the_latest_ten_missed_slots(memory_store):
    add_job(memory_store, schedule="*/2 * * * *", created=THURSDAY)
    records = once(memory_store, MON_0930 + timedelta(minutes=20), FakeSources(files=[]))
    assert len(records) == 10
    assert records[0].error.endswith("(and earlier missed runs since 2026-11-26T10:00:00+05:00)")
    assert records[-1].started_at == "2026-11-30T09:48:00+05:00"


# -- skip next -------------------------------------------------------------------------------------
def test_skip_next_records_skipped_then_the_next_occurrence_runs(memory_store):
    job = add_job(memory_store, schedule="30 9 * * 1-5", created=THURSDAY)
    once(memory_store, datetime(2026, 11, 27, 9, 30, tzinfo=PKT), FakeSources())  # Friday's run
    skip_next_run(memory_store, BOSS, job.id, now=datetime(2026, 11, 28, 12, tzinfo=PKT))
    assert get_job(memory_store, job.id)[0].skip_next_at == MON_0930.isoformat()
    sources = FakeSources()
    monday = once(memory_store, MON_0930 + timedelta(seconds=1), sources)
    assert summary(monday) == [("Morning", "skipped", "scheduled", MON_0930.isoformat())]
    assert sources.calls == []
    assert get_job(memory_store, job.id)[0].skip_next_at is None
    tuesday = MON_0930 + timedelta(days=1, seconds=1)
    assert summary(once(memory_store, tuesday, sources)) == [
        ("Morning", "success", "scheduled", tuesday.isoformat())]


# -- triggers --------------------------------------------------------------------------------------
def test_run_now_is_carried_out_once(memory_store):
    job = add_job(memory_store)
    now = datetime(2026, 11, 28, 12, tzinfo=PKT)
    request_run(memory_store, BOSS, job.id, override=True, now=now)
    records = once(memory_store, now + timedelta(seconds=1), FakeSources())
    assert [(r.trigger, r.kind, r.status) for r in records] == [("run_now", "OVERRIDE", "success")]
    assert pending_triggers(memory_store) == []
    assert once(memory_store, now + timedelta(seconds=2), FakeSources()) == []


def test_a_trigger_while_a_run_is_running_waits_and_runs_once(memory_store):
    job = add_job(memory_store)
    now = datetime(2026, 11, 28, 12, tzinfo=PKT)
    # Another process (the app's "run in this process") holds the lease and is running the job.
    assert acquire_lease(memory_store, LEASE, "app:other", 30, now)
    request_run(memory_store, BOSS, job.id, now=now)
    sources = FakeSources()
    assert once(memory_store, now + timedelta(seconds=5), sources) == []
    assert len(pending_triggers(memory_store)) == 1
    release_lease(memory_store, LEASE, "app:other")
    # A second click while the queued run is running is queued again and runs after it, once.
    clicked: list[str] = []

    def click(store, running_job):
        if not clicked:
            clicked.append(request_run(store, BOSS, running_job.id, now=now).id)

    sources.during = click
    first = once(memory_store, now + timedelta(seconds=10), sources)
    assert [r.trigger for r in first] == ["run_now"]
    assert [t.id for t in pending_triggers(memory_store)] == clicked
    second = once(memory_store, now + timedelta(seconds=11), sources)
    assert [r.trigger for r in second] == ["run_now"]
    assert once(memory_store, now + timedelta(seconds=12), sources) == []
    assert len(sources.calls) == 2


def test_a_trigger_with_nothing_to_process_is_recorded_naming_the_sources(memory_store):
    job = add_job(memory_store, sources=[{"kind": "buffer"}, {"kind": "inbox", "path": "in"}])
    now = datetime(2026, 11, 28, 12, tzinfo=PKT)
    trigger = request_run(memory_store, BOSS, job.id, now=now)
    records = once(memory_store, now, FakeSources(files=[]))
    assert [(r.status, r.trigger, r.error, r.requested_by, r.request_id) for r in records] == [
        ("skipped", "run_now", "nothing to process: the upload buffer and inbox in had no new "
         "input", "ayesha", trigger.id)]


# -- the lease -------------------------------------------------------------------------------------
def test_lease_compare_and_set(memory_store):
    now = MON_0930
    assert acquire_lease(memory_store, "x", "a", 30, now)
    assert not acquire_lease(memory_store, "x", "b", 30, now + timedelta(seconds=29))
    assert lease_holder(memory_store, "x", now)[0] == "a"
    assert renew_lease(memory_store, "x", "a", 30, now + timedelta(seconds=20))
    assert not acquire_lease(memory_store, "x", "b", 30, now + timedelta(seconds=49))
    assert acquire_lease(memory_store, "x", "b", 30, now + timedelta(seconds=51))
    assert not renew_lease(memory_store, "x", "a", 30, now + timedelta(seconds=52))
    assert not release_lease(memory_store, "x", "a")
    assert release_lease(memory_store, "x", "b")
    assert lease_holder(memory_store, "x", now) is None


def test_a_lost_race_is_no_lease(memory_store, monkeypatch):
    def conflicting_put(key, value, expected_version):
        raise WriteConflict(key, expected_version, "9")

    monkeypatch.setattr(memory_store, "put", conflicting_put)
    assert acquire_lease(memory_store, "x", "a", 30, MON_0930) is False


def test_a_second_scheduler_is_standby_until_the_lease_expires(memory_store):
    add_job(memory_store, schedule="* * * * *", created=MON_0930 - timedelta(seconds=30))
    sources = FakeSources()
    assert [r.status for r in once(memory_store, MON_0930, sources, owner="a")] == ["success"]
    ttl = SETTINGS["scheduler.lease_seconds"]
    assert once(memory_store, MON_0930 + timedelta(seconds=ttl - 1), sources, owner="b") == []
    assert lease_holder(memory_store, LEASE, MON_0930)[0] == "a"
    # "a" stopped renewing: after the lease expires "b" takes over, without redoing 09:30.
    assert once(memory_store, MON_0930 + timedelta(seconds=ttl + 1), sources, owner="b") == []
    assert lease_holder(memory_store, LEASE, MON_0930 + timedelta(seconds=ttl + 1))[0] == "b"
    assert [r.started_at for r in once(memory_store, MON_0930 + timedelta(seconds=61), sources,
                                       owner="b")] == ["2026-11-30T09:31:01+05:00"]
    assert once(memory_store, MON_0930 + timedelta(seconds=62), sources, owner="a") == []
    assert len(sources.calls) == 2


# -- live status, heartbeat, health ----------------------------------------------------------------
def test_live_status_and_heartbeat(memory_store):
    add_job(memory_store)
    seen = []
    sources = FakeSources(during=lambda store, job: seen.append(
        (store.get(CURRENT_KEY)[0]["stage"], store.get(HEARTBEAT_KEY)[0]["current"]["job"])))
    once(memory_store, MON_0930, sources, tick_s=2.0)
    assert seen == [("collect", "Morning")]
    beat = memory_store.get(HEARTBEAT_KEY)[0]
    assert {k: beat[k] for k in ("at", "owner", "current", "last_errors", "tick_s")} == {
        "at": MON_0930.isoformat(), "owner": "sched-a", "current": None, "last_errors": [],
        "tick_s": 2.0}
    assert {"pid", "host", "version"} <= set(beat)
    assert memory_store.list(CURRENT_KEY) == []
    health = scheduler_health(memory_store, MON_0930 + timedelta(seconds=5))
    assert (health["alive"], health["heartbeat_age_s"], health["lease_holder"]["owner"]) == (
        True, 5.0, "sched-a")
    assert scheduler_health(memory_store, MON_0930 + timedelta(seconds=7))["alive"] is False


def test_health_without_a_scheduler(memory_store):
    health = scheduler_health(memory_store, MON_0930)
    assert (health["alive"], health["heartbeat"], health["lease_holder"]) == (False, None, None)


# -- failures --------------------------------------------------------------------------------------
def test_a_failing_job_is_recorded_and_the_others_still_run(memory_store):
    add_job(memory_store, name="Broken")
    add_job(memory_store, name="Fine")
    sources = FakeSources(fail={"Broken": RuntimeError("inbox folder is gone")})
    records = once(memory_store, MON_0930, sources)
    assert [(r.job, r.status, r.error) for r in records] == [
        ("Broken", "failed", "inbox folder is gone"), ("Fine", "success", "")]
    errors = memory_store.get(HEARTBEAT_KEY)[0]["last_errors"]
    assert [(e["job"], e["error"]) for e in errors] == [("Broken", "inbox folder is gone")]


def test_an_unreadable_file_fails_the_run_and_releases_the_inputs(memory_store):
    add_job(memory_store)
    sources = FakeSources(files=[("notes.csv", b"hello\n")])
    records = once(memory_store, MON_0930, sources)
    assert [r.status for r in records] == ["failed"]
    (outcome, error), = sources.collected[0].settled
    assert outcome == "failure"
    assert isinstance(error, FileProblem)
    assert visible_run_ids(memory_store) == []


def test_a_failure_while_publishing_keeps_the_pipelines_record(memory_store, monkeypatch):
    add_job(memory_store)

    def disk_full(*args, **kwargs):  # after the rows are written, before the run is visible
        raise OSError("disk full")

    monkeypatch.setattr(workbooks, "mark_pending", disk_full)
    sources = FakeSources()
    records = once(memory_store, MON_0930, sources)
    assert [(r.status, r.error) for r in records] == [("failed", "disk full")]
    assert [(r.run_id, r.status) for r in load_runs(memory_store)] == [(records[0].run_id,
                                                                        "failed")]
    assert [s[0] for s in sources.collected[0].settled] == ["failure"]
    assert memory_store.partitions("colors") == []


def test_run_notifications_are_stamped_with_the_scheduler_s_time(memory_store):
    from core.alerts.bell import list_notifications
    from core.identity.users import create_first_admin

    create_first_admin(memory_store, "ayesha", "Ayesha", "ayesha@desk.test", "a long passphrase 1")
    add_job(memory_store)
    [record] = run_once(memory_store, SETTINGS, MON_0930, owner="sched-a", collect=FakeSources())
    [note] = list_notifications(memory_store, "ayesha")
    assert (note.run_id, note.at) == (record.run_id, record.finished_at)
    finished = datetime.fromisoformat(record.finished_at)
    assert finished - MON_0930 == timedelta(seconds=record.duration_s)


def test_a_failing_notification_never_fails_the_run(memory_store):
    add_job(memory_store)

    def broken_notify(*args):
        raise OSError("smtp down")

    records = once(memory_store, MON_0930, FakeSources(), notify=broken_notify)
    assert [r.status for r in records] == ["success"]
    assert memory_store.get(HEARTBEAT_KEY)[0]["last_errors"][0]["error"] == (
        "notification failed: smtp down")


def test_a_stop_request_starts_no_new_run(memory_store):
    add_job(memory_store)
    stop = threading.Event()
    stop.set()
    sources = FakeSources()
    assert once(memory_store, MON_0930, sources, stop=stop) == []
    assert sources.calls == []


# -- recovery --------------------------------------------------------------------------------------
def test_a_run_left_running_by_a_dead_scheduler_is_marked_abandoned(memory_store):
    add_job(memory_store)
    entry, = buffer.add_files(memory_store, BOSS, [("up.csv", colors_csv())], SETTINGS)
    buffer.claim_pending(memory_store, "job:Morning")
    started = MON_0930 - timedelta(minutes=5)
    dead = RunRecord(run_id=7, kind="AUTOMATED", trigger="scheduled", actor="system",
                     job="Morning", started_at=started.isoformat())
    save_run(memory_store, dead)
    run_tables(memory_store).append_run(7, {"colors": generate_colors(2)})
    memory_store.put(CURRENT_KEY, {"owner": "dead", "job": "Morning", "run_id": 7}, None)
    assert acquire_lease(memory_store, LEASE, "dead", 30, started)
    manual = RunRecord(run_id=8, kind="MANUAL", trigger="manual_save", actor="ann",
                       started_at=started.isoformat())
    save_run(memory_store, manual)
    once(memory_store, MON_0930 - timedelta(minutes=1), FakeSources(files=[]))
    by_id = {r.run_id: r for r in load_runs(memory_store)}
    assert (by_id[7].status, by_id[7].error) == ("abandoned", ABANDONED)
    assert by_id[8].status == "running"  # a manual session's save is not the scheduler's
    assert memory_store.partitions("colors") == []
    assert memory_store.list(CURRENT_KEY) == []
    assert buffer.get_entry(memory_store, entry.id).status == "pending"


# -- in the app process ----------------------------------------------------------------------------
def test_run_in_app_refuses_while_a_scheduler_holds_the_lease(memory_store):
    job = add_job(memory_store)
    assert acquire_lease(memory_store, LEASE, "sched-a", 30, MON_0930)
    with pytest.raises(Conflict, match="a scheduler is running jobs"):
        run_in_app(memory_store, SETTINGS, BOSS, job.id, MON_0930, collect=FakeSources())


def test_run_in_app_runs_one_job_and_releases_the_lease(memory_store):
    job = add_job(memory_store)
    record = run_in_app(memory_store, SETTINGS, BOSS, job.id, MON_0930, collect=FakeSources(),
                        notify=lambda *a: None)
    assert (record.status, record.trigger, record.actor) == ("success", "run_now", "ayesha")
    assert lease_holder(memory_store, LEASE, MON_0930) is None
    with pytest.raises(PermissionDenied):
        run_in_app(memory_store, SETTINGS, Actor("ann", ANALYST), job.id, MON_0930)
    assert SYSTEM.username == "system"
