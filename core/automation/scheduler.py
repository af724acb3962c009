"""The scheduler sidecar (`python -m core.scheduler`): a loop around `run_once(now)` that, while it
holds the "scheduler" lease, runs due jobs and queued triggers through the pipeline
(core.automation.job_runs)
and writes a heartbeat.

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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from importlib import metadata
from typing import Any

from core import catalog
from core.access import TRIGGER_RUN, Actor, require
from core.automation.job_runs import (
    CURRENT_KEY,
    Collect,
    Notify,
    RunContext,
    recover_abandoned,
    run_trigger,
)
from core.automation.jobs import get_job, load_jobs, pending_triggers, skip_next_run
from core.automation.leases import acquire_lease, lease_holder, release_lease, renew_lease
from core.automation.log_tail import LogTail
from core.automation.pause import LEASE as PAUSE_LEASE
from core.automation.pause import current_pause
from core.automation.slots import due_runs
from core.automation.upkeep import compact_if_needed, rebuild_workbooks, sweep_if_due
from core.clock import aware, utc_now
from core.config import BY_KEY, Settings
from core.errors import Conflict, MarketPulseError
from core.runs.records import RunRecord
from storage import ANY_VERSION, ObjectNotFound, Store, StoreError

log = logging.getLogger("core.automation.scheduler")  # also when run as __main__

LEASE = PAUSE_LEASE  # "scheduler": named in core.automation.pause, which takes it for a restore
HEARTBEAT_KEY = catalog.HEARTBEAT.key
PAUSE_RECHECK_S = 0.2  # a step reads the pause again after this long (a restore may wait)
# A step after the jobs, given the step's context (keep the lease with ctx.keep(), report with
# ctx.error); packages below automation (scheduled backups) come in through core/scheduler.py.
Upkeep = Callable[["Context"], object]
try:
    VERSION = metadata.version("marketpulse")
except metadata.PackageNotFoundError:
    VERSION = "dev"


def default_owner() -> str:
    """host:pid:random, unique per process (a restarted process is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Context(RunContext):
    """One scheduler step's view: a RunContext that writes the heartbeat (with the last errors it
    keeps across steps) and, during a live run, keeps the lease."""

    def __init__(self, store: Store, settings: Settings, owner: str, *, now: datetime,
                 collect: Collect | None = None, notify: Notify | None = None,
                 stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None, tick_s: float = 1.0,
                 heartbeat: bool = True, log_tail: LogTail | None = None) -> None:
        try:
            beat = store.get(HEARTBEAT_KEY)[0] if heartbeat else {}
        except ObjectNotFound:
            beat = {}
        super().__init__(store, settings, owner, now=now, collect=collect, notify=notify,
                         stop=stop, clock=clock, errors=list(beat.get("last_errors", [])))
        self.tick_s, self.heartbeat, self.log_tail = tick_s, heartbeat, log_tail
        self.compaction: dict[str, Any] | None = beat.get("compaction")
        self.swept_at: str | None = beat.get("swept_at")
        self.paused: dict[str, Any] | None = None  # the pause in force (a restore), if any

    def write_heartbeat(self) -> None:
        if not self.heartbeat:
            return
        self.store.put(HEARTBEAT_KEY, {
            "at": self.clock().isoformat(), "owner": self.owner, "pid": os.getpid(),
            "host": socket.gethostname(), "version": VERSION, "tick_s": self.tick_s,
            "current": None if self.current is None else {k: self.current[k] for k in (
                "run_id", "job", "stage", "rows", "started_at")},
            "last_errors": self.errors, "compaction": self.compaction, "stopped": False,
            "swept_at": self.swept_at, "paused": self.paused},
            ANY_VERSION)
        if self.log_tail is not None:  # the lease holder's recent lines, for the page
            self.log_tail.save(self.store, self.owner)

    @contextlib.contextmanager
    def keep(self) -> Iterator[None]:
        """During a live run: renew the lease and refresh the heartbeat in a thread."""
        keeper = _Keeper(self) if self.live else None
        try:
            yield
        finally:
            if keeper is not None:
                keeper.halt()


class _Keeper(threading.Thread):
    """During a live run: renew the lease and refresh the heartbeat, so a long run keeps it."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(name="scheduler-keeper", daemon=True)
        self.ctx = ctx
        ttl = float(ctx.settings["scheduler.lease_seconds"])
        self.interval = min(ctx.tick_s, ttl / 3)
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        ttl = float(self.ctx.settings["scheduler.lease_seconds"])
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


def run_once(store: Store, settings: Settings, now: datetime, *, owner: str,
             collect: Collect | None = None, notify: Notify | None = None,
             stop: threading.Event | None = None, clock: Callable[[], datetime] | None = None,
             tick_s: float | None = None, log_tail: LogTail | None = None,
             upkeep: Sequence[Upkeep] = ()) -> list[RunRecord]:
    """One scheduler step at `now`: take or renew the lease (standby → []), recover runs a dead
    scheduler left running, build output workbooks whose builder died after publishing, handle
    due and missed slots of every job, then queued triggers, compaction and the `upkeep` steps
    the composition root adds (scheduled backups: core/scheduler.py).
    Returns the run records written. A job's error is recorded and never stops the scheduler.
    `clock` (live loops) stamps runs with the real time and renews the lease during long runs;
    `log_tail` (live loops) is saved with each heartbeat."""
    now, started = aware(now), time.monotonic()
    pause = current_pause(store, now)
    if pause is not None:
        _pause(store, settings, owner, pause, now, tick_s, log_tail)
        return []
    ttl = float(settings["scheduler.lease_seconds"])
    holder = lease_holder(store, LEASE, now)
    if not acquire_lease(store, LEASE, owner, ttl, now):
        log.debug("standby: %s holds the scheduler lease", holder and holder[0])
        return []
    ctx = Context(store, settings, owner, collect=collect, notify=notify, stop=stop, clock=clock,
                  tick_s=tick_s or float(settings["scheduler.tick_seconds"]),
                  heartbeat=True, now=now, log_tail=log_tail)
    recover_abandoned(ctx, fresh=holder is None or holder[0] != owner)
    sweep_if_due(ctx)
    rebuild_workbooks(ctx)
    records: list[RunRecord] = []
    looked = [started]  # when the pause was last read (the step began with it)

    def held() -> bool:
        """Stopping, or a restore asked for a pause during this step (it waits for the run in
        progress): then nothing more starts, and the lease goes at the end of the step. The
        pause is read again once some time has passed (a run), not before every job."""
        if ctx.stopping():
            return True
        if time.monotonic() - looked[0] < PAUSE_RECHECK_S:
            return False
        looked[0] = time.monotonic()
        return current_pause(store, now) is not None

    for job in load_jobs(store):
        if held():
            break
        try:
            records += due_runs(ctx, job, now)
        except Exception as exc:  # a broken job must not stop the others
            log.exception("job %s could not be scheduled", job.name)
            ctx.error(job.name, f"could not be scheduled: {exc}")
    for trigger in pending_triggers(store):
        if held():
            break
        records += run_trigger(ctx, trigger)
    if settings["scheduler.compact"] and not held():
        compact_if_needed(ctx)
    for step in upkeep:
        if held():
            break
        try:
            step(ctx)
        except Exception as exc:  # the next slot tries again; jobs go on
            log.exception("%s failed", step.__name__)
            ctx.error(step.__name__, f"failed: {exc}")
    pause = current_pause(store, now) if time.monotonic() - started >= PAUSE_RECHECK_S else None
    if pause is not None:  # let the waiting restore in now, not a tick later
        _pause(store, settings, owner, pause, now, tick_s, log_tail)
        return records
    ctx.write_heartbeat()
    return records


def _pause(store: Store, settings: Settings, owner: str, pause: dict[str, Any], now: datetime,
           tick_s: float | None, log_tail: LogTail | None) -> None:
    """Jobs are paused (a restore runs): start nothing and give the lease up, so the restore can
    take it; the heartbeat (the lease holder's) says why the scheduler waits."""
    if release_lease(store, LEASE, owner):
        log.info("jobs paused by %s (%s): lease released", pause.get("owner"), pause.get("reason"))
    ctx = Context(store, settings, owner, now=now, tick_s=tick_s or float(
        settings["scheduler.tick_seconds"]), log_tail=log_tail)
    try:
        ours = store.get(HEARTBEAT_KEY)[0].get("owner") == owner
    except ObjectNotFound:
        ours = True
    if ours:  # a standby scheduler leaves the heartbeat to the one that held the lease
        ctx.paused = pause
        ctx.write_heartbeat()


def run_in_app(store: Store, settings: Settings, actor: Actor, job_id: str, now: datetime, *,
               override: bool = False, skip_next: bool = False,
               collect: Collect | None = None,
               notify: Notify | None = None) -> RunRecord | None:
    """Run one job in this process while no scheduler is up, under the same lease. Conflict when a
    live scheduler holds it (queue the run with request_run instead). None: nothing to process."""
    require(actor, TRIGGER_RUN)
    now = aware(now)
    pause = current_pause(store, now)
    if pause is not None:
        raise Conflict(f"jobs are paused: {pause.get('reason')}; try again when it is done")
    owner = "app:" + default_owner()
    ttl = float(settings["scheduler.lease_seconds"])
    if not acquire_lease(store, LEASE, owner, ttl, now):
        holder = lease_holder(store, LEASE, now)
        held = f" ({holder[0]}, lease until {holder[1]:%H:%M:%S})" if holder else ""
        raise Conflict(f"a scheduler is running jobs{held}; use Run now to queue the run for it")
    try:
        job, _ = get_job(store, job_id)
        if skip_next:
            skip_next_run(store, actor, job_id, now=now)
        ctx = Context(store, settings, owner, collect=collect, notify=notify, clock=utc_now,
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
    tick = float((beat or {}).get("tick_s") or BY_KEY["scheduler.tick_seconds"].default)
    holder = lease_holder(store, LEASE, now)
    try:
        current = store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        current = None
    return {
        "alive": beat is not None and not beat.get("stopped") and age is not None
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
                notify: Notify | None = None, upkeep: Sequence[Upkeep] = ()) -> None:
    """Call run_once every tick until `stop` is set; a run in progress finishes first. The lease
    is released on the way out so a standby takes over at once. Meanwhile core's log lines are
    kept (core.automation.log_tail) and saved with the heartbeat for the Automation page."""
    tick = float(tick_s or settings["scheduler.tick_seconds"])
    owner = owner or default_owner()
    clock = clock or utc_now
    tail = LogTail()
    logging.getLogger("core").addHandler(tail)
    log.info("scheduler %s started (tick %.1f s, store %s)", owner, tick, store.url)
    try:
        while not stop.is_set():
            try:
                run_once(store, settings, clock(), owner=owner, collect=collect, notify=notify,
                         stop=stop, clock=clock, tick_s=tick, log_tail=tail, upkeep=upkeep)
            except Exception:  # e.g. the store is briefly unreachable: try again next tick
                log.exception("scheduler step failed; retrying in %.1f s", tick)
            stop.wait(tick)
    finally:
        log.info("scheduler %s stopped", owner)
        try:
            beat = store.get(HEARTBEAT_KEY)[0]
            if beat.get("owner") == owner:
                store.put(HEARTBEAT_KEY, {**beat, "stopped": True, "current": None},
                          ANY_VERSION)
                tail.save(store, owner)
            release_lease(store, LEASE, owner)
        except Exception:  # best effort: the lease expires on its own
            log.warning("could not release the scheduler lease", exc_info=True)
        finally:
            logging.getLogger("core").removeHandler(tail)


def main(upkeep: Sequence[Upkeep] = ()) -> int:
    """Composition root of the sidecar: settings, store, signals, loop (with the upkeep steps
    core/scheduler.py passes)."""
    from core.config import load_settings, read_secrets_file, store_options
    from core.ingest.safe_read import warm
    from storage import open_store

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(read_secrets_file(), os.environ)
        store = open_store(settings["store.url"], store_options(settings))
    except (MarketPulseError, StoreError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current run", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    warm()  # the first run does not wait for the reading child's server to start
    run_forever(store, settings, stop=stop, upkeep=upkeep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
