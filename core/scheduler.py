"""The scheduler sidecar (`python -m core.scheduler`): a loop around `run_once(now)` that, while it
holds the "scheduler" lease, runs due jobs and queued triggers through the pipeline and writes a
heartbeat.

It shares only the store with the app (DESIGN.md §1). A run killed mid-way stays invisible (the
pipeline publishes last) and is marked abandoned by whichever scheduler takes the lease next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from itertools import islice, takewhile
from typing import Any

from core.access import SYSTEM, TRIGGER_RUN, Actor, require
from core.audit import record_change
from core.config import Settings
from core.errors import Conflict, MarketPulseError, NotFound
from core.jobs import AREA as JOBS_AREA
from core.jobs import PREFIX as JOBS_PREFIX
from core.jobs import (
    Job,
    Trigger,
    get_job,
    load_jobs,
    pending_triggers,
    previous_occurrences,
    skip_next_run,
    take_trigger,
)
from core.leases import acquire_lease, lease_holder, release_lease, renew_lease
from core.pipeline import AUTOMATED, OVERRIDE, prepare_files, publish_run
from core.runs import (
    FAILED,
    MISSED,
    RUN_TABLES,
    RUNNING,
    SKIPPED,
    SUCCESS,
    RunRecord,
    get_run,
    load_runs,
    next_run_id,
    output_blob_key,
    run_partition,
    save_run,
)
from storage import ANY_VERSION, ObjectNotFound, Store, StoreError, WriteConflict

log = logging.getLogger("core.scheduler")  # also when run as __main__

# (store, job, settings, now) → core.sources.Collected: files, on_success(run_id), on_failure(exc)
Collect = Callable[[Store, Job, Settings, datetime], Any]
Notify = Callable[[Store, Settings, Job, RunRecord], None]

LEASE = "scheduler"
HEARTBEAT_KEY = "scheduler/heartbeat"
CURRENT_KEY = "scheduler/current"
STATE_PREFIX = "scheduler/state/"
MISSED_RECORDS_MAX = 10  # per job and catch-up; older missed slots are summed up in one note
ABANDONED = "abandoned: the scheduler stopped during the run"
SKIPPED_TEXT = "skipped: 'Run now and skip the next scheduled run'"
MISSED_TEXT = "missed: the scheduler was not running at {slot}"
NOTHING_TEXT = "nothing to process: the job's sources had no new input"
# Fallbacks until core.config declares these settings.
DEFAULTS: dict[str, Any] = {
    "scheduler.grace_minutes": 15,
    "scheduler.lease_seconds": 30,
    "scheduler.tick_seconds": 1.0,
    "scheduler.timezone": "Asia/Karachi",
}
try:
    VERSION = metadata.version("marketpulse")
except metadata.PackageNotFoundError:
    VERSION = "dev"


def setting(settings: Settings, key: str) -> Any:
    """A scheduler setting, or its DEFAULTS fallback while core.config does not declare it."""
    try:
        return settings[key]
    except KeyError:
        return DEFAULTS[key]


def aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_owner() -> str:
    """host:pid:random, unique per process (a restarted process is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _last_success(store: Store, job: Job) -> datetime | None:
    for record in load_runs(store, limit=200):
        if record.job == job.name and record.status == SUCCESS and record.started_at:
            return aware(datetime.fromisoformat(record.started_at))
    return None


def _default_collect(store: Store, job: Job, settings: Settings, now: datetime) -> Any:
    from core.sources import collect_inputs  # lazy: sources pull in SQL drivers

    return collect_inputs(store, job.sources, settings, job_name=job.name, now=now,
                          since=_last_success(store, job))


def _default_notify(store: Store, settings: Settings, job: Job, record: RunRecord) -> None:
    """Email (when the job asks for it and the email switches agree), webhooks, in-app bell."""
    from core import notifications, notify, webhooks

    now = datetime.now(UTC)
    wants_email = job.email_on_success if record.status == SUCCESS else job.email_on_failure
    if wants_email:
        notify.notify_run(store, settings, record, workbook=None, excluded=None, now=now)
    webhooks.notify_webhooks(store, settings, record, now=now)
    notifications.notify_run_finished(store, record, now)


class Context:
    """One scheduler step's view: where to write, who owns the lease, hooks, and last errors."""

    def __init__(self, store: Store, settings: Settings, owner: str, *, now: datetime,
                 collect: Collect | None = None, notify: Notify | None = None,
                 stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None, tick_s: float = 1.0,
                 heartbeat: bool = True) -> None:
        self.store, self.settings, self.owner, self.now = store, settings, owner, now
        self.collect = collect or _default_collect
        self.notify = notify or _default_notify
        self.stop, self.clock, self.live = stop, clock or (lambda: now), clock is not None
        self.tick_s, self.heartbeat = tick_s, heartbeat
        self.current: dict[str, Any] | None = None
        try:
            beat = store.get(HEARTBEAT_KEY)[0] if heartbeat else {}
        except ObjectNotFound:
            beat = {}
        self.errors: list[dict[str, str]] = list(beat.get("last_errors", []))

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def error(self, job: str, text: str) -> None:
        """Remember one of the last 5 errors for the heartbeat (a repeat only moves its time)."""
        log.error("%s: %s", job, text)
        entry = {"at": aware(self.clock()).isoformat(), "job": job, "error": text}
        if self.errors and (self.errors[-1]["job"], self.errors[-1]["error"]) == (job, text):
            self.errors = self.errors[:-1]
        self.errors = [*self.errors, entry][-5:]

    def write_heartbeat(self) -> None:
        if not self.heartbeat:
            return
        self.store.put(HEARTBEAT_KEY, {
            "at": self.clock().isoformat(), "owner": self.owner, "pid": os.getpid(),
            "host": socket.gethostname(), "version": VERSION, "tick_s": self.tick_s,
            "current": None if self.current is None else {k: self.current[k] for k in (
                "run_id", "job", "stage", "rows", "started_at")},
            "last_errors": self.errors, "stopped": False}, ANY_VERSION)

    def show(self, **changes: Any) -> None:
        """Update the live status of the current run (scheduler/current and the heartbeat)."""
        if self.current is None:
            return
        self.current.update(changes)
        self.store.put(CURRENT_KEY, dict(self.current), ANY_VERSION)
        self.write_heartbeat()

    def mark(self, job: Job, slot: datetime, status: str, text: str) -> RunRecord:
        """A record for a slot that did not run (skipped, missed) or a run that failed early."""
        record = RunRecord(run_id=next_run_id(self.store), kind=_kind(job, False),
                           trigger="scheduled", actor=SYSTEM.username, status=status,
                           started_at=slot.isoformat(), finished_at=slot.isoformat(),
                           job=job.name, error=text)
        save_run(self.store, record)
        return record

    def execute(self, job: Job, *, trigger: str, override: bool, actor: Actor,
                record_empty: bool = False) -> RunRecord | None:
        """Collect → validate → publish one run of the job; never raises for a job error."""
        started = aware(self.clock())
        self.current = {"owner": self.owner, "run_id": None, "job": job.name, "job_id": job.id,
                        "trigger": trigger, "stage": "collect", "rows": 0,
                        "started_at": started.isoformat()}
        keeper = _Keeper(self) if self.live else None
        try:
            self.show()
            record = self._run(job, trigger, _kind(job, override), actor, started, record_empty)
        finally:
            if keeper is not None:
                keeper.halt()
            self.current = None
            with contextlib.suppress(ObjectNotFound):
                self.store.delete(CURRENT_KEY)
        if record is not None and record.status in (SUCCESS, FAILED):
            try:
                self.notify(self.store, self.settings, job, record)
            except Exception as exc:  # a failed email never fails the run
                self.error(job.name, f"notification failed: {exc}")
        return record

    def _run(self, job: Job, trigger: str, kind: str, actor: Actor, started: datetime,
             record_empty: bool) -> RunRecord | None:
        collected = None
        try:
            collected = self.collect(self.store, job, self.settings, started)
            files = list(collected.files)
            self.show(stage="read")
            prepared = prepare_files(self.store, files, self.settings) if files else None
        except Exception as exc:
            log.exception("run of %s failed before publishing", job.name)
            self._release(job, collected, exc)
            return self._failed(job, kind, trigger, actor, started, str(exc))
        if prepared is None:
            self._release(job, collected, None)
            log.info("%s: %s", job.name, NOTHING_TEXT)
            if not record_empty:  # a frequent job would flood the history with empty runs
                return None
            record = self.mark(job, started, SKIPPED, NOTHING_TEXT)
            record.trigger, record.kind, record.actor = trigger, kind, actor.username
            save_run(self.store, record)
            return record
        self.show(stage="rules", rows=len(prepared.valid) + len(prepared.quarantined))

        def progress(stage: str, _fraction: float) -> None:
            if self.current is not None and self.current["run_id"] is None:
                self.current["run_id"] = _running_id(self.store, job, started)
            self.show(stage=stage)

        try:
            result = publish_run(self.store, actor, prepared, kind=kind, trigger=trigger,
                                 settings=self.settings, job=job.name, now=started,
                                 progress=progress)
        except Exception as exc:  # publish_run has recorded the failed run and removed its data
            self._release(job, collected, exc)
            self.error(job.name, str(exc) or type(exc).__name__)
            return _published_failure(self.store, job, started) or self._failed(
                job, kind, trigger, actor, started, str(exc))
        try:
            problems = collected.on_success(result.record.run_id) or []
        except Exception as exc:  # the run is published; report the source problem
            problems = [str(exc)]
        for problem in problems:
            self.error(job.name, f"run {result.record.run_id} published; source: {problem}")
        return result.record

    def _release(self, job: Job, collected: Any, error: BaseException | None) -> None:
        """Return claimed inputs (on_failure), e.g. buffer files back to pending."""
        if collected is None:
            return
        try:
            problems = collected.on_failure(error) or []
        except Exception as exc:
            problems = [str(exc)]
        for problem in problems:
            self.error(job.name, f"claimed inputs could not be released: {problem}")

    def _failed(self, job: Job, kind: str, trigger: str, actor: Actor, started: datetime,
                error: str) -> RunRecord:
        self.error(job.name, error)
        record = RunRecord(run_id=next_run_id(self.store), kind=kind, trigger=trigger,
                           actor=actor.username, status=FAILED, started_at=started.isoformat(),
                           finished_at=aware(self.clock()).isoformat(), job=job.name,
                           error=error)
        save_run(self.store, record)
        return record


def _kind(job: Job, override: bool) -> str:
    return OVERRIDE if override or not job.apply_rules else AUTOMATED


def _running_id(store: Store, job: Job, started: datetime) -> int | None:
    for record in load_runs(store, limit=20):
        if record.job == job.name and record.started_at == started.isoformat():
            return record.run_id
    return None


def _published_failure(store: Store, job: Job, started: datetime) -> RunRecord | None:
    run_id = _running_id(store, job, started)
    return None if run_id is None else get_run(store, run_id)


class _Keeper(threading.Thread):
    """During a live run: renew the lease and refresh the heartbeat, so a long run keeps it."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(name="scheduler-keeper", daemon=True)
        self.ctx = ctx
        ttl = float(setting(ctx.settings, "scheduler.lease_seconds"))
        self.interval = min(ctx.tick_s, ttl / 3)
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        ttl = float(setting(self.ctx.settings, "scheduler.lease_seconds"))
        while not self._halt.wait(self.interval):
            try:
                if not renew_lease(self.ctx.store, LEASE, self.ctx.owner, ttl,
                                   aware(self.ctx.clock())):
                    log.error("lost the scheduler lease during a run")
                self.ctx.write_heartbeat()
            except Exception:  # keep trying: the store may be briefly unavailable
                log.warning("could not renew the scheduler lease", exc_info=True)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def recover_abandoned(ctx: Context, *, fresh: bool) -> list[RunRecord]:
    """Mark runs a dead scheduler left 'running' as failed (abandoned), remove what they wrote and
    let the sources release their claims. Runs only when we just took the lease or a stale
    live-status marker exists (we hold the lease, so nobody else is running a job)."""
    try:
        marker: dict[str, Any] | None = ctx.store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        marker = None
    if not fresh and marker is None:
        return []
    found = []
    for record in load_runs(ctx.store, limit=100):
        if record.status == RUNNING and record.job and record.kind in (AUTOMATED, OVERRIDE):
            record.status, record.error = FAILED, ABANDONED
            record.finished_at = ctx.now.isoformat()
            for table in RUN_TABLES:
                ctx.store.delete_partition(table, run_partition(record.run_id))
            ctx.store.delete_blob(output_blob_key(record.run_id))
            save_run(ctx.store, record)
            ctx.error(record.job, f"run {record.run_id} {ABANDONED}")
            found.append(record)
    names = {r.job for r in found} | ({marker["job"]} if marker else set())
    for name in sorted(names):
        _release_abandoned(ctx, name)
    if marker is not None:
        with contextlib.suppress(ObjectNotFound):
            ctx.store.delete(CURRENT_KEY)
    return found


def _release_abandoned(ctx: Context, job_name: str) -> None:
    """Return the buffer files a dead run of the job had claimed to pending (core.sources claims
    them as "job:<name>"; inbox files stay in the inbox until a run succeeds, SQL holds none)."""
    try:
        from core import buffer

        owner = f"job:{job_name}"
        ids = [e.id for e in buffer.list_entries(ctx.store, buffer.CLAIMED)
               if e.claimed_by == owner]
        if ids:
            buffer.release(ctx.store, ids, owner=owner, now=ctx.now)
            log.info("released %d buffer file(s) of the abandoned run of %s", len(ids), job_name)
    except Exception as exc:  # best effort: buffer.release_stale can still free them later
        ctx.error(job_name, f"claims of the abandoned run could not be released: {exc}")


def clear_skip(store: Store, job_id: str, skip_iso: str, now: datetime) -> None:
    """The skipped occurrence has passed: clear skip_next_at (logged as a system job change)."""
    for _ in range(3):
        try:
            job, version = get_job(store, job_id)
        except NotFound:
            return
        if job.skip_next_at != skip_iso:
            return
        after = replace(job, skip_next_at=None)
        try:
            store.put(JOBS_PREFIX + job_id, after.to_dict(), version)
        except WriteConflict:
            continue
        record_change(store, SYSTEM, JOBS_AREA, "skip_done", job.name, before=job.to_dict(),
                      after=after.to_dict(), now=now)
        return


def _state(store: Store, job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return store.get(STATE_PREFIX + job_id)
    except ObjectNotFound:
        return None, None


def _claim_slot(store: Store, job: Job, slot: datetime, version: str | None,
                now: datetime) -> bool:
    """Record `slot` as handled before running it (at most once, even across a crash)."""
    try:
        store.put(STATE_PREFIX + job.id, {"last_slot": slot.isoformat(),
                                          "updated_at": now.isoformat()}, version)
    except WriteConflict:
        return False
    return True


def _baseline(state: dict[str, Any] | None, job: Job, now: datetime) -> datetime:
    """Slots after this are new: the last handled slot, else when the job was created."""
    text = (state or {}).get("last_slot") or job.created_at
    if not text:
        return now
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _scheduled(ctx: Context, job: Job, now: datetime) -> list[RunRecord]:
    """Handle the job's slots since its last handled one: the latest runs if within the grace
    window (else missed); earlier ones are missed; the skip_next_at slot is skipped."""
    state, version = _state(ctx.store, job.id)
    baseline = _baseline(state, job, now)
    latest = next(previous_occurrences(job.schedule, job.timezone, now), None)
    if latest is None or latest <= baseline or ctx.stopping():
        return []
    if not _claim_slot(ctx.store, job, latest, version, now):
        return []  # another scheduler handled it
    if not job.active:
        return []
    skip = datetime.fromisoformat(job.skip_next_at) if job.skip_next_at else None
    earlier = list(islice(takewhile(lambda at: at > baseline, previous_occurrences(
        job.schedule, job.timezone, latest - timedelta(microseconds=1))), MISSED_RECORDS_MAX + 1))
    note = ""
    if len(earlier) > MISSED_RECORDS_MAX:  # a long outage: record the latest few, note the rest
        earlier = earlier[:MISSED_RECORDS_MAX]
        note = f" (and earlier missed runs since {baseline.isoformat()})"
    records: list[RunRecord] = []
    for slot in sorted(earlier):
        if slot == skip:
            records.append(ctx.mark(job, slot, SKIPPED, SKIPPED_TEXT))
        else:
            text = MISSED_TEXT.format(slot=slot.isoformat()) + note
            records.append(ctx.mark(job, slot, MISSED, text))
            note = ""
    if skip is not None and skip <= latest:  # its slot has passed (or the schedule changed)
        clear_skip(ctx.store, job.id, job.skip_next_at or "", now)
    minutes = float(setting(ctx.settings, "scheduler.grace_minutes"))
    if latest == skip:
        records.append(ctx.mark(job, latest, SKIPPED, SKIPPED_TEXT))
    elif now - latest > timedelta(minutes=minutes):
        text = MISSED_TEXT.format(slot=latest.isoformat())
        records.append(ctx.mark(job, latest, MISSED,
                                f"{text}, outside the {minutes:g}-minute grace window"))
    else:
        done = ctx.execute(job, trigger="scheduled", override=False, actor=SYSTEM)
        records += [done] if done else []
    return records


def _triggered(ctx: Context, trigger: Trigger) -> list[RunRecord]:
    try:
        job, _ = get_job(ctx.store, trigger.job_id)
    except NotFound:
        if take_trigger(ctx.store, trigger):
            ctx.error(trigger.job, "job deleted before its queued run started; request dropped")
        return []
    if not take_trigger(ctx.store, trigger):
        return []  # consumed by someone else (cancelled, or another scheduler)
    log.info("running %s now (requested by %s)", job.name, trigger.requested_by)
    done = ctx.execute(job, trigger="run_now", override=trigger.override, actor=SYSTEM,
                       record_empty=True)
    return [done] if done else []


def run_once(store: Store, settings: Settings, now: datetime, *, owner: str,
             collect: Collect | None = None, notify: Notify | None = None,
             stop: threading.Event | None = None, clock: Callable[[], datetime] | None = None,
             tick_s: float | None = None) -> list[RunRecord]:
    """One scheduler step at `now`: take or renew the lease (standby → []), recover runs a dead
    scheduler left running, handle due and missed slots of every job, then queued triggers.
    Returns the run records written. A job's error is recorded and never stops the scheduler.
    `clock` (live loops) stamps runs with the real time and renews the lease during long runs."""
    now = aware(now)
    ttl = float(setting(settings, "scheduler.lease_seconds"))
    holder = lease_holder(store, LEASE, now)
    if not acquire_lease(store, LEASE, owner, ttl, now):
        log.debug("standby: %s holds the scheduler lease", holder and holder[0])
        return []
    ctx = Context(store, settings, owner, collect=collect, notify=notify, stop=stop, clock=clock,
                  tick_s=tick_s or float(setting(settings, "scheduler.tick_seconds")),
                  heartbeat=True, now=now)
    recover_abandoned(ctx, fresh=holder is None or holder[0] != owner)
    records: list[RunRecord] = []
    for job in load_jobs(store):
        try:
            records += _scheduled(ctx, job, now)
        except Exception as exc:  # a broken job must not stop the others
            log.exception("job %s could not be scheduled", job.name)
            ctx.error(job.name, f"could not be scheduled: {exc}")
    for trigger in pending_triggers(store):
        if ctx.stopping():
            break
        records += _triggered(ctx, trigger)
    ctx.write_heartbeat()
    return records


def run_in_app(store: Store, settings: Settings, actor: Actor, job_id: str, now: datetime, *,
               override: bool = False, skip_next: bool = False,
               collect: Collect | None = None,
               notify: Notify | None = None) -> RunRecord | None:
    """Run one job in this process while no scheduler is up, under the same lease. Conflict when a
    live scheduler holds it (queue the run with request_run instead). None: nothing to process."""
    require(actor, TRIGGER_RUN)
    now = aware(now)
    owner = "app:" + default_owner()
    ttl = float(setting(settings, "scheduler.lease_seconds"))
    if not acquire_lease(store, LEASE, owner, ttl, now):
        holder = lease_holder(store, LEASE, now)
        held = f" ({holder[0]}, lease until {holder[1]:%H:%M:%S})" if holder else ""
        raise Conflict(f"a scheduler is running jobs{held}; use Run now to queue the run for it")
    try:
        job, _ = get_job(store, job_id)
        if skip_next:
            skip_next_run(store, actor, job_id, now=now)
        ctx = Context(store, settings, owner, collect=collect, notify=notify, clock=_utcnow,
                      tick_s=1.0, heartbeat=False, now=now)
        recover_abandoned(ctx, fresh=True)
        return ctx.execute(job, trigger="run_now", override=override, actor=actor,
                           record_empty=True)
    finally:
        release_lease(store, LEASE, owner)


def scheduler_health(store: Store, now: datetime) -> dict[str, Any]:
    """For the UI: alive (heartbeat younger than 3 ticks), heartbeat age, lease holder, the
    current run and the last errors."""
    now = aware(now)
    try:
        beat: dict[str, Any] | None = store.get(HEARTBEAT_KEY)[0]
    except ObjectNotFound:
        beat = None
    age = None
    if beat:
        age = (now - datetime.fromisoformat(beat["at"])).total_seconds()
    tick = float((beat or {}).get("tick_s") or DEFAULTS["scheduler.tick_seconds"])
    holder = lease_holder(store, LEASE, now)
    try:
        current = store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        current = None
    return {
        "alive": bool(beat) and not beat.get("stopped") and age is not None
        and age <= max(3 * tick, 3.0),
        "heartbeat_age_s": age,
        "heartbeat": beat,
        "lease_holder": None if holder is None else {"owner": holder[0],
                                                     "until": holder[1].isoformat()},
        "current": current,
        "last_errors": (beat or {}).get("last_errors", []),
    }


def run_forever(store: Store, settings: Settings, *, stop: threading.Event,
                tick_s: float | None = None, owner: str | None = None,
                clock: Callable[[], datetime] | None = None,
                collect: Collect | None = None,
                notify: Notify | None = None) -> None:
    """Call run_once every tick until `stop` is set; a run in progress finishes first. The lease
    is released on the way out so a standby takes over at once."""
    tick = float(tick_s or setting(settings, "scheduler.tick_seconds"))
    owner = owner or default_owner()
    clock = clock or _utcnow
    log.info("scheduler %s started (tick %.1f s, store %s)", owner, tick, store.url)
    try:
        while not stop.is_set():
            try:
                run_once(store, settings, clock(), owner=owner, collect=collect, notify=notify,
                         stop=stop, clock=clock, tick_s=tick)
            except Exception:  # e.g. the store is briefly unreachable: try again next tick
                log.exception("scheduler step failed; retrying in %.1f s", tick)
            stop.wait(tick)
    finally:
        try:
            beat = store.get(HEARTBEAT_KEY)[0]
            if beat.get("owner") == owner:
                store.put(HEARTBEAT_KEY, {**beat, "stopped": True, "current": None},
                          ANY_VERSION)
            release_lease(store, LEASE, owner)
        except Exception:  # best effort: the lease expires on its own
            log.warning("could not release the scheduler lease", exc_info=True)
        log.info("scheduler %s stopped", owner)


def main() -> int:
    """Composition root of the sidecar: settings, store, signals, loop."""
    from core.config import load_settings, read_secrets_file
    from storage import open_store

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(read_secrets_file(), os.environ)
        store = open_store(settings["store.url"])
    except (MarketPulseError, StoreError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current run", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run_forever(store, settings, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
