"""Restoring while a real scheduler (`python -m core.scheduler`) runs a job: the restore waits for
the run in progress to end, no job starts while it restores (not the one queued behind the run in
the same scheduler step, not one queued meanwhile), and jobs resume once it is done.

The run is held at a gate the test controls, so it is caught mid-way however fast it goes: both
jobs read a SQL source (a colors table in a PostgreSQL schema of the test's) on which the test's
open transaction holds an ACCESS EXCLUSIVE lock; the run's SELECT waits on it until the test rolls
back. The restore runs in a thread of the test, held by its own progress callback once it has
written everything, while the test looks at the scheduler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.access import SYSTEM, Actor
from core.automation.job_runs import CURRENT_KEY
from core.automation.jobs import Job, pending_triggers, request_run, save_job
from core.automation.leases import lease_holder
from core.automation.pause import current_pause
from core.automation.scheduler import HEARTBEAT_KEY, LEASE
from core.compliance.backups import create_backup
from core.compliance.restore import RestoreReport, restore_backup
from core.runs.records import RunRecord, load_runs
from storage import ObjectNotFound, open_store
from tests.desk_tables import COLUMN_MAP, Desk, row

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BOSS = Actor("ayesha", "admin")
WAIT_S = 120.0


def _until(check: Callable[[], Any], what: str, procs: list[subprocess.Popen]) -> Any:
    """Poll until check() is truthy (its value); fail naming `what` if a process died or after
    WAIT_S (a hang, not a timing assumption)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        for proc in procs:
            assert proc.poll() is None, f"the scheduler exited ({proc.returncode}) before {what}"
        time.sleep(0.05)
    raise AssertionError(f"waited {WAIT_S:g} s for {what}")


class TableGate:
    """An ACCESS EXCLUSIVE lock on the desk's colors table, in a transaction left open: a run
    reading the table waits on it until `open`."""

    def __init__(self, desk: Desk) -> None:
        self._engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
        self._conn = self._engine.connect()
        self._conn.begin()
        self._pid = self._conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        self._conn.execute(sa.text(f'LOCK TABLE "{desk.schema}".colors IN ACCESS EXCLUSIVE MODE'))

    def waiting(self) -> bool:
        """Whether a session waits on the lock."""
        with self._engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE CAST(:gate AS integer) = ANY(pg_blocking_pids(pid))"),
                {"gate": self._pid}).scalar_one())

    def open(self) -> None:
        if self._conn is not None:
            self._conn.rollback()
            self._conn.close()
            self._conn = None

    def dispose(self) -> None:
        self.open()
        self._engine.dispose()


def _current(store: Any) -> dict[str, Any] | None:
    try:
        return dict(store.get(CURRENT_KEY)[0])
    except ObjectNotFound:
        return None


def _beat(store: Any) -> dict[str, Any]:
    try:
        return dict(store.get(HEARTBEAT_KEY)[0])
    except ObjectNotFound:
        return {}


def _finished(store: Any, request_id: str) -> RunRecord | None:
    found = [r for r in load_runs(store) if r.request_id == request_id and r.status != "running"]
    return found[0] if found else None


@pytest.mark.postgres
def test_a_restore_waits_for_the_run_in_progress_and_jobs_wait_for_the_restore(
        tmp_path, postgres_schema):
    desk = Desk(PG_URL, postgres_schema)
    desk.add(row(1, 0), row(2, 5))
    url = str(tmp_path / "store")
    store = open_store(url)
    source = {"kind": "sql", "secret": "desk", "table": desk.table, "column_map": COLUMN_MAP,
              "watermark_column": "received_at"}
    now = datetime.now(UTC)
    jobs = [save_job(store, SYSTEM, Job(name=name, schedule="0 7 1 1 *", sources=[source]),
                     now=now) for name in ("Desk A", "Desk B")]
    # both runs queued, then backed up: the backup holds the two requests
    first, second = (request_run(store, BOSS, job.id, now=now + timedelta(milliseconds=n))
                     for n, job in enumerate(jobs))
    backup = create_backup(store, BOSS, "before the runs", now=now)

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[sources.desk]\nurl = "{PG_URL}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    env.update(MARKETPULSE_STORE_URL=url, MARKETPULSE_DEMO="0",
               MARKETPULSE_SECRETS_FILE=str(secrets), MARKETPULSE_SCHEDULER_TICK_SECONDS="0.2")
    gate = TableGate(desk)
    log = open(tmp_path / "scheduler.log", "wb")  # noqa: SIM115
    scheduler = subprocess.Popen([sys.executable, "-m", "core.scheduler"], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
    log.close()
    procs = [scheduler]
    lines: list[str] = []
    seen: dict[str, Any] = {}
    held, go = threading.Event(), threading.Event()
    outcome: list[RestoreReport | BaseException] = []

    def say(line: str) -> None:
        lines.append(line)
        if line.startswith("jobs paused"):  # what the store held when the restore got in
            seen["current"], seen["runs"] = _current(store), load_runs(store)
        if line.startswith("rebuilding derived data"):  # everything is written: hold here
            held.set()
            assert go.wait(WAIT_S)

    def restore() -> None:
        try:
            outcome.append(restore_backup(store, BOSS, backup.id, progress=say, wait_s=WAIT_S))
        except BaseException as exc:
            outcome.append(exc)
            held.set()

    try:
        # the scheduler takes the first request; its run waits at the gate
        _until(gate.waiting, "the run of Desk A reaches the gate", procs)
        running = _until(lambda: _current(store), "the run says it is in progress", procs)
        assert (running["job"], running["run_id"]) == ("Desk A", None)  # collecting its input
        assert [t.id for t in pending_triggers(store)] == [second.id]

        worker = threading.Thread(target=restore, daemon=True)
        worker.start()
        _until(lambda: any(line.startswith("waiting for the scheduler") for line in lines),
               "the restore waits for the scheduler", procs)
        assert "waiting for the scheduler to finish a run of job 'Desk A' ..." in lines
        assert current_pause(store, datetime.now(UTC)) is not None
        assert _current(store) == running
        assert lease_holder(store, LEASE, datetime.now(UTC))[0].split(":")[1] == str(
            scheduler.pid)

        gate.open()
        _until(held.is_set, "the restore has written everything", procs)
        assert not isinstance(outcome[0] if outcome else None, BaseException), outcome
        # it got in only once the run had ended, and Desk B, queued behind it, did not start
        assert seen["current"] is None
        assert [(r.run_id, r.job, r.status) for r in seen["runs"]] == [(1, "Desk A", "success")]
        assert next(line for line in lines if line.startswith("jobs paused")).startswith(
            "jobs paused and the scheduler lease held (waited ")

        # while it restores, the scheduler keeps stepping and starts nothing: the backup's two
        # requests are queued again (run 1 is not in the backup: the restore removed it)
        holding = datetime.now(UTC)
        _until(lambda: datetime.fromisoformat(_beat(store).get("at", "2000-01-01T00:00:00+00:00"))
               > holding, "a scheduler step while the restore holds", procs)
        beat = _beat(store)
        assert beat["paused"]["reason"] == f"ayesha is restoring backup {backup.id}"
        assert (beat["current"], _current(store), load_runs(store)) == (None, None, [])
        assert [t.id for t in pending_triggers(store)] == [first.id, second.id]

        released = datetime.now(UTC)
        go.set()
        worker.join(WAIT_S)
        report = outcome[0]
        assert isinstance(report, RestoreReport), report
        assert current_pause(store, datetime.now(UTC)) is None

        # jobs resume: both requests run, after the restore
        done = [_until(lambda t=t: _finished(store, t.id), f"the run of {t.job}", procs)
                for t in (first, second)]
        assert [(r.job, r.status) for r in done] == [("Desk A", "success"), ("Desk B", "success")]
        assert all(datetime.fromisoformat(r.started_at) > released for r in done)
    finally:
        go.set()
        gate.dispose()
        scheduler.terminate()
        try:
            scheduler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
        print((tmp_path / "scheduler.log").read_text(errors="replace")[-4000:])  # on failure
        print("\n".join(lines))
