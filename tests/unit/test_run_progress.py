"""Runs followed live: who asked for a run (requested_by on the trigger and the record), where a
"Run now" request stands (queued, running with its stages, finished, gone), and the scheduler's
log tail the Automation page shows."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from core.automation.job_runs import CURRENT_KEY
from core.automation.jobs import cancel_trigger, request_run
from core.automation.log_tail import LOG_KEY, LogTail, load_log_tail
from core.automation.progress import FINISHED, GONE, QUEUED, RUNNING, run_progress
from core.automation.scheduler import run_forever
from core.runs.records import load_runs
from tests.unit.test_scheduler import BOSS, MON_0930, PKT, SETTINGS, FakeSources, add_job, once

NOW = datetime(2026, 11, 28, 12, tzinfo=PKT)


def test_a_run_now_records_who_asked_for_it_though_the_scheduler_runs_it(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    [record] = once(memory_store, NOW + timedelta(seconds=1), FakeSources())
    assert (record.actor, record.requested_by, record.request_id, record.status) == (
        "system", "ayesha", trigger.id, "success")
    assert load_runs(memory_store)[0].requested_by == "ayesha"


def test_a_scheduled_run_is_requested_by_the_system(memory_store):
    add_job(memory_store)
    [record] = once(memory_store, MON_0930, FakeSources())
    assert (record.actor, record.requested_by, record.request_id) == ("system", "system", "")


def test_a_queued_request_says_how_long_it_has_waited(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    progress = run_progress(memory_store, NOW + timedelta(seconds=7), trigger.id)
    assert (progress.state, progress.job, progress.requested_by, progress.elapsed_s,
            progress.active, progress.fraction) == (QUEUED, "Morning", "ayesha", 7.0, True, 0.0)
    assert progress.sentence() == ("A run of Morning is queued, requested by ayesha: waiting 7 s "
                                   "for the scheduler to pick it up.")


def test_a_running_request_shows_its_stage_files_and_the_time_of_each_stage(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    seen = []
    sources = FakeSources(during=lambda store, _job: seen.append(
        run_progress(store, NOW + timedelta(seconds=3), trigger.id)))
    once(memory_store, NOW + timedelta(seconds=1), sources)
    [running] = seen
    assert (running.state, running.stage, running.requested_by, running.elapsed_s,
            running.stages) == (RUNNING, "collect", "ayesha", 2.0, [("collect", 2.0)])
    assert running.sentence() == "Running Morning, requested by ayesha: collect, 2 s so far."


def test_the_live_timeline_times_each_stage_until_the_next_and_the_last_until_now(memory_store):
    start = NOW.isoformat()
    memory_store.put(CURRENT_KEY, {
        "owner": "s", "run_id": 12, "job": "Morning", "job_id": "j", "trigger": "run_now",
        "stage": "rules", "rows": 1500, "files": 2, "started_at": start,
        "requested_by": "ayesha", "request_id": "r1",
        "stages": [["collect", start], ["read", (NOW + timedelta(seconds=1)).isoformat()],
                   ["rules", (NOW + timedelta(seconds=4.5)).isoformat()]]}, None)
    progress = run_progress(memory_store, NOW + timedelta(seconds=6), "r1")
    assert progress.stages == [("collect", 1.0), ("read", 3.5), ("rules", 1.5)]
    assert (progress.run_id, progress.fraction) == (12, 0.4)
    assert progress.sentence() == ("Running Morning (run 12), requested by ayesha: rules, 2 files, "
                                   "1,500 rows, 6 s so far.")
    assert run_progress(memory_store, NOW, None).run_id == 12  # the run in progress, anyone's
    assert run_progress(memory_store, NOW, "other").state == GONE


def test_a_finished_request_gives_its_record_counts_and_stage_timings(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    [record] = once(memory_store, NOW + timedelta(seconds=1), FakeSources())
    progress = run_progress(memory_store, NOW + timedelta(seconds=9), trigger.id)
    assert (progress.state, progress.run_id, progress.record, progress.active,
            progress.fraction) == (FINISHED, record.run_id, record, False, 1.0)
    assert [name for name, _ in progress.stages] == [
        "read", "validate", "already_published", "rules+rank", "publish", "workbook"]
    assert progress.stages == list(record.stages.items())
    assert progress.sentence() == (
        f"Run {record.run_id} of Morning succeeded in {record.duration_s:.1f} s: 3 colors "
        f"published, {record.counts['parents']} parents.")


def test_run_now_with_nothing_to_process_says_so(memory_store):
    job = add_job(memory_store, sources=[{"kind": "buffer"}])
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    [record] = once(memory_store, NOW, FakeSources(files=[]))
    progress = run_progress(memory_store, NOW, trigger.id)
    assert (progress.state, record.status) == (FINISHED, "skipped")
    assert progress.sentence() == (
        f"Run {record.run_id} of Morning: Nothing to process: the upload buffer had no new input. "
        "Nothing was published.")


def test_a_failed_request_says_why(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    [record] = once(memory_store, NOW, FakeSources(fail={"Morning": RuntimeError("inbox gone")}))
    assert (record.requested_by, record.request_id) == ("ayesha", trigger.id)
    assert run_progress(memory_store, NOW, trigger.id).sentence() == (
        f"Run {record.run_id} of Morning failed: inbox gone. Nothing was published.")


def test_a_cancelled_request_is_gone(memory_store):
    job = add_job(memory_store)
    trigger = request_run(memory_store, BOSS, job.id, now=NOW)
    cancel_trigger(memory_store, BOSS, trigger.id, now=NOW)
    progress = run_progress(memory_store, NOW, trigger.id)
    assert (progress.state, progress.active) == (GONE, False)
    assert progress.sentence() == (
        "The queued run is no longer queued, running or recorded (it was cancelled).")
    assert run_progress(memory_store, NOW) is None  # and no run is in progress


# -- the scheduler's log tail ---------------------------------------------------------------------
def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord("core.test", level, __file__, 1, message, None, None)
    record.created = MON_0930.timestamp()
    return record


def test_the_log_tail_keeps_the_last_lines_and_saves_only_new_ones(memory_store):
    tail = LogTail(lines=3)
    for n in range(5):
        tail.handle(_record(f"line {n} " + "x" * 600 * (n == 4)))
    assert tail.save(memory_store, "sched-a") is True
    lines = load_log_tail(memory_store)
    assert [line["message"][:6] for line in lines] == ["line 2", "line 3", "line 4"]
    assert len(lines[-1]["message"]) == 500
    assert {k: lines[0][k] for k in ("at", "level", "logger")} == {
        "at": "2026-11-30T04:30:00+00:00", "level": "INFO", "logger": "core.test"}
    version = memory_store.get(LOG_KEY)[1]
    assert tail.save(memory_store, "sched-a") is False  # nothing new: no write
    assert memory_store.get(LOG_KEY)[1] == version
    logger = logging.getLogger("core.test_tail")
    logger.addHandler(tail)
    try:
        logger.debug("below the tail's level")
    finally:
        logger.removeHandler(tail)
    assert tail.save(memory_store, "sched-a") is False


def test_the_scheduler_saves_its_log_lines_for_the_page(memory_store, caplog):
    caplog.set_level(logging.INFO, logger="core")
    job = add_job(memory_store)
    request_run(memory_store, BOSS, job.id, now=NOW)
    stop = threading.Event()
    sources = FakeSources(during=lambda store, _job: stop.set())
    run_forever(memory_store, SETTINGS, stop=stop, tick_s=0.01, owner="sched-a",
                clock=lambda: NOW + timedelta(seconds=1), collect=sources,
                notify=lambda *a: None)
    lines = load_log_tail(memory_store)
    messages = [line["message"] for line in lines if line["logger"] == "core.automation.scheduler"]
    [run] = load_runs(memory_store)
    assert messages[0].startswith("scheduler sched-a started (tick 0.0 s, store memory://")
    assert "read colors.csv: 3 rows, 0 problems" in [line["message"] for line in lines]
    assert messages[1:] == [
        "running Morning now (requested by ayesha)", "Morning: collect", "Morning: read",
        "Morning: rules (3 rows)", "Morning: publish", "Morning: workbook", "Morning: done",
        "scheduler sched-a stopped"]
    assert memory_store.get(LOG_KEY)[0]["owner"] == "sched-a"
    assert run.status == "success"
