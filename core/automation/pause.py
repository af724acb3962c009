"""Pausing jobs while a restore rewrites the store: a pause document the scheduler honours (it
starts no job and gives up its lease at its next step), and the scheduler's lease held by the
restore, so no scheduler and no in-app run starts a job until the restore is done.

The pause expires by itself (a restore that died leaves no scheduler stopped for good): the holder
renews it, and the lease, in a thread while it works."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from core import catalog
from core.automation.job_runs import CURRENT_KEY
from core.automation.leases import acquire_lease, lease_holder, release_lease
from core.clock import parse_stamp, utc_now
from core.errors import Conflict
from storage import ANY_VERSION, ObjectNotFound, Store

log = logging.getLogger(__name__)
PAUSE_KEY = catalog.SCHEDULER_PAUSE.key
LEASE = "scheduler"  # = core.automation.scheduler.LEASE (that module imports this one)
POLL_S = 0.5  # how often a waiting restore looks at the lease again


def current_pause(store: Store, now: datetime) -> dict[str, Any] | None:
    """The pause in force ({owner, reason, until}), or None when jobs may run."""
    try:
        value, _ = store.get(PAUSE_KEY)
    except ObjectNotFound:
        return None
    return value if parse_stamp(value["until"]) > now else None


def _write_pause(store: Store, owner: str, reason: str, ttl_s: float, now: datetime) -> None:
    store.put(PAUSE_KEY, {"owner": owner, "reason": reason, "at": now.isoformat(),
                          "until": (now + timedelta(seconds=ttl_s)).isoformat()}, ANY_VERSION)


def _end_pause(store: Store, owner: str) -> None:
    try:
        value, version = store.get(PAUSE_KEY)
        if value.get("owner") == owner:
            store.delete(PAUSE_KEY, version)
    except Exception:  # best effort: the pause expires on its own
        log.warning("could not end the pause of jobs", exc_info=True)


def _running(store: Store) -> str:
    """Words for the job run in progress, if any ("" when none)."""
    try:
        current = store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        return ""
    job = current.get("job")
    # a run has its id once its input is collected
    return f"run {current['run_id']} of job {job!r}" if current.get("run_id") else (
        f"a run of job {job!r}")


@contextlib.contextmanager
def jobs_paused(store: Store, owner: str, reason: str, *, ttl_s: float, wait_s: float,
                clock: Callable[[], datetime] = utc_now,
                said: Callable[[str], None] | None = None) -> Iterator[str]:
    """Pause jobs and hold the scheduler lease for the block; yields what was done, in words.
    A scheduler running a job keeps the lease until the job ends, then sees the pause and lets
    the lease go: this waits up to wait_s for that (Conflict after it, naming the job run)."""
    say = said or (lambda line: None)
    started = time.monotonic()
    _write_pause(store, owner, reason, ttl_s, clock())
    try:
        while not acquire_lease(store, LEASE, owner, ttl_s, clock()):
            if time.monotonic() - started > wait_s:
                holder = lease_holder(store, LEASE, clock())
                running = _running(store) or "jobs"
                raise Conflict(f"the scheduler ({holder[0] if holder else 'unknown'}) is still "
                               f"running {running} after {wait_s:g} s; try again when it ends")
            say(f"waiting for the scheduler to finish {_running(store) or 'its step'} ...")
            _write_pause(store, owner, reason, ttl_s, clock())
            time.sleep(POLL_S)
    except BaseException:
        _end_pause(store, owner)
        raise
    waited = time.monotonic() - started
    done = (f"jobs paused and the scheduler lease held"
            f"{f' (waited {waited:.1f} s for the scheduler)' if waited >= POLL_S else ''}")
    keeper = _Renewer(store, owner, reason, ttl_s, clock)
    try:
        yield done
    finally:
        keeper.halt()
        release_lease(store, LEASE, owner)
        _end_pause(store, owner)


class _Renewer(threading.Thread):
    """Renew the lease and the pause every third of their time while the holder works."""

    def __init__(self, store: Store, owner: str, reason: str, ttl_s: float,
                 clock: Callable[[], datetime]) -> None:
        super().__init__(name="restore-pause", daemon=True)
        self.store, self.owner, self.reason, self.ttl_s, self.clock = (
            store, owner, reason, ttl_s, clock)
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._halt.wait(self.ttl_s / 3):
            try:
                acquire_lease(self.store, LEASE, self.owner, self.ttl_s, self.clock())
                _write_pause(self.store, self.owner, self.reason, self.ttl_s, self.clock())
            except Exception:  # keep trying: the store may be briefly unavailable
                log.warning("could not renew the pause of jobs", exc_info=True)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=10)
