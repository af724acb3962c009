"""Run liveness: a running run's owner (host, pid, process start) and heartbeat, and the sweep that
marks a run whose process died `abandoned` and removes what it wrote, so no run stays running.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from core.clock import aware, parse_stamp, utc_now
from core.config import BY_KEY, Settings
from core.errors import Conflict
from core.runs import records as runs
from storage import ObjectNotFound, Store, WriteConflict
from storage.run_tables import run_tables

log = logging.getLogger(__name__)

STALE_KEY = "runs.stale_seconds"
SWEEP_LIMIT = 200  # newest runs an automatic sweep reads; `python -m core runs sweep` reads all
DIED = "abandoned: its process ({where}) died during the run"
SILENT = "abandoned: no heartbeat from {where} for {age:.0f} s (the limit is {limit:g} s)"
_PROC = Path("/proc")


def stale_seconds(settings: Settings) -> float:
    """How old another host's heartbeat may get before its run counts as dead."""
    try:
        return float(settings[STALE_KEY])
    except KeyError:  # a Settings built by hand without it
        return float(BY_KEY[STALE_KEY].default)


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot; "" where /proc cannot tell), or None
    when no such process is running (a zombie, killed but not yet reaped, is not running)."""
    if not (_PROC / "self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # it exists, owned by someone else
            pass
        return ""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name in (…) may hold spaces
    return None if fields[0] in ("Z", "X") else fields[19]


def current_owner() -> dict[str, Any]:
    """This process as the owner of a run it starts: host, pid and what defeats pid reuse."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start(pid) or "",
            "boot": _boot_id()}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """For an owner on this host: is its process still running (not gone, not replaced by another
    with the same pid after a restart)? None for another host's (only its heartbeat tells)."""
    if not owner or owner.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if owner.get("boot") and boot and owner["boot"] != boot:
        return False
    try:
        started = _process_start(int(owner["pid"]))
    except (KeyError, TypeError, ValueError):
        return False
    if started is None:
        return False
    return not (started and owner.get("started") and started != owner["started"])


def _where(owner: dict[str, Any]) -> str:
    if not owner:
        return "an unknown process"
    return f"{owner.get('host', '?')} pid {owner.get('pid', '?')}"


def death(record: runs.RunRecord, now: datetime, stale_s: float) -> str:
    """Why a running run is dead, or "" while it may be alive: its process on this host is gone,
    or (another host's, or a record from before owners were kept) its last heartbeat is older
    than stale_s."""
    if record.status != runs.RUNNING:
        return ""
    alive = owner_alive(record.owner)
    if alive is False:
        return DIED.format(where=_where(record.owner))
    beat = record.heartbeat_at or record.started_at
    if alive or not beat:
        return ""
    age = (aware(now) - parse_stamp(beat)).total_seconds()
    if age <= stale_s:
        return ""
    return SILENT.format(where=_where(record.owner), age=age, limit=stale_s)


def remove_run_data(store: Store, run_id: int) -> None:
    """Remove every row and the output workbook a run wrote (idempotent)."""
    run_tables(store).remove_run(run_id)
    store.delete_blob(runs.output_blob_key(run_id))


def abandon_run(store: Store, run_id: int, reason: str, now: datetime,
                expected_version: str) -> runs.RunRecord | None:
    """Mark the run abandoned (when and why) if its record is still at expected_version, then
    remove its data; None when it changed meanwhile (it beat, finished, or another sweep won).
    The record goes first: a wrongly judged live run then fails at publishing, never shows holes."""
    try:
        value, version = store.get(runs.run_key(run_id))
    except ObjectNotFound:
        return None
    record = runs.RunRecord.from_dict(value)
    if version != expected_version or record.status != runs.RUNNING:
        return None
    record.status, record.error, record.finished_at = runs.ABANDONED, reason, now.isoformat()
    try:
        store.put(runs.run_key(run_id), record.to_dict(), expected_version=version)
    except WriteConflict:
        return None
    remove_run_data(store, run_id)
    return record


class Heartbeat:
    """A new run's record, written running with its owner, and its heartbeat refreshed from a
    thread while the run works (`with`); `publish` writes the final record only if no sweep
    abandoned the run meanwhile."""

    def __init__(self, store: Store, record: runs.RunRecord, settings: Settings) -> None:
        self.store, self.run_id = store, record.run_id
        self.key = runs.run_key(record.run_id)
        self.interval = max(1.0, stale_seconds(settings) / 10)
        record.owner, record.heartbeat_at = current_owner(), utc_now().isoformat()
        self.version = store.put(self.key, record.to_dict(), expected_version=None)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"run-{self.run_id}-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                if not self.beat():
                    return
            except Exception:  # the store may be briefly unavailable: try again next beat
                log.warning("could not refresh the heartbeat of run %s", self.run_id,
                            exc_info=True)

    def beat(self, now: datetime | None = None) -> bool:
        """Refresh heartbeat_at; False (stop beating) once the record is no longer ours to keep
        (a sweep abandoned the run)."""
        value, version = self.store.get(self.key)
        if version != self.version or value.get("status") != runs.RUNNING:
            return False
        value["heartbeat_at"] = (now or utc_now()).isoformat()
        try:
            self.version = self.store.put(self.key, value, expected_version=version)
        except WriteConflict:
            return False
        return True

    def publish(self, record: runs.RunRecord) -> None:
        """Write the final record (for `success`: the visibility point). If a sweep abandoned the
        run meanwhile, remove what it wrote since, keep the abandoned record and raise Conflict."""
        try:
            self.version = self.store.put(self.key, record.to_dict(),
                                          expected_version=self.version)
        except WriteConflict:
            current = runs.get_run(self.store, self.run_id)
            remove_run_data(self.store, self.run_id)
            raise Conflict(f"run {self.run_id} was marked {current.status} while it published "
                           f"({current.error}); nothing was published: run it again") from None
