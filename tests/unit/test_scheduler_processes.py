"""Real scheduler processes on one local store: each slot runs exactly once, a standby takes over
when the lease holder is killed, a kill -9 mid-run publishes nothing and is marked abandoned on the
next start (its buffer files pending again), and SIGTERM stops `python -m core.scheduler` cleanly.

The processes share a fake clock 20× faster than real time, started once they are all ready: a
"* * * * *" slot every 3 real seconds (a tiny run takes about 1.3 s here) and the 30 s lease
expires in 1.5 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.access import ADMIN, Actor
from core.automation.job_runs import ABANDONED
from core.automation.jobs import Job, save_job
from core.automation.leases import lease_holder
from core.automation.scheduler import HEARTBEAT_KEY, LEASE
from core.cli.demo import generate_colors
from core.config import load_settings
from core.intake import buffer
from core.runs.exports import write_csv
from core.runs.records import load_runs, visible_run_ids
from core.schema import INPUT_COLUMNS
from storage import ObjectNotFound, open_store
from storage.run_tables import run_tables

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BASE = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Asia/Karachi"))
SPEED = 20.0

SCRIPT = textwrap.dedent('''
    import signal, sys, threading, time
    from datetime import datetime, timedelta
    from core.intake import buffer
    from core.config import load_settings
    from core.cli.demo import generate_colors
    from core.runs.exports import write_csv
    from core.automation.scheduler import run_forever
    from core.schema import INPUT_COLUMNS
    from storage import open_store

    store_url, base, speed, owner, mode = sys.argv[1:]
    BASE, SPEED = datetime.fromisoformat(base), float(speed)
    CSV = write_csv(generate_colors(3, seed=1)[list(INPUT_COLUMNS)])
    store = open_store(store_url)
    open(f"{store_url}-ready-{owner}", "w").close()
    while True:  # the test starts the shared clock once every process has imported
        try:
            T0 = float(open(f"{store_url}-t0").read())
            break
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)

    def clock():
        return BASE + timedelta(seconds=(time.time() - T0) * SPEED)

    class Collected:
        def __init__(self, ids):
            self.ids = ids
            self.files = [("colors.csv", CSV)] + [
                (name, data) for _, name, data in ids]

        def on_success(self, run_id):
            buffer.mark_processed(store, [i for i, _, _ in self.ids], run_id)
            return []

        def on_failure(self, error=None):
            buffer.release(store, [i for i, _, _ in self.ids])
            return []

    def collect(store, job, settings, now):
        with open(f"{store_url}-calls-{owner}.txt", "a") as log:
            log.write(now.isoformat() + "\\n")
        claimed = buffer.claim_pending(store, f"job:{job.name}") if mode == "hang" else []
        return Collected(claimed)

    if mode == "hang":  # the first run hangs after writing its rows, before its record says so
        append = store.append
        def hanging_append(table, frame, partition):
            append(table, frame, partition)
            if table == "colors":
                time.sleep(600)
        store.append = hanging_append

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    run_forever(store, load_settings({}, {}), stop=stop, tick_s=0.05, owner=owner, clock=clock,
                collect=collect, notify=lambda *a: None)
''')


@pytest.fixture
def world(tmp_path):
    """A local store with one "* * * * *" job created just before the first fake slot."""
    url = str(tmp_path / "store")
    store = open_store(url)
    save_job(store, Actor("ayesha", ADMIN), Job(name="Minute", schedule="* * * * *"),
             now=BASE - timedelta(seconds=1))
    script = tmp_path / "scheduler_loop.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started: list[subprocess.Popen] = []
    t0: list[float] = []

    def start(owner: str, mode: str = "plain") -> subprocess.Popen:
        with open(tmp_path / f"{owner}.log", "ab") as log:  # a file: a full pipe would block
            proc = subprocess.Popen([PYTHON, str(script), url, BASE.isoformat(), str(SPEED),
                                     owner, mode], cwd=tmp_path, env=env,
                                    stdout=subprocess.DEVNULL, stderr=log)
        started.append(proc)
        return proc

    def go(*owners: str) -> None:
        """Start the shared fake clock at BASE once these processes are ready."""
        wait_for(lambda: all(Path(f"{url}-ready-{o}").exists() for o in owners), timeout=60)
        t0.append(time.time())
        Path(f"{url}-t0").write_text(str(t0[0]))

    def clock() -> datetime:
        return BASE + timedelta(seconds=(time.time() - t0[0]) * SPEED)

    yield store, url, start, go, clock
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def wait_for(condition, timeout: float = 20.0, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def slots(store) -> Counter:
    """How many records each minute slot got (records carry the fake start time)."""
    return Counter(r.started_at[:16] for r in load_runs(store) if r.job == "Minute")


def holder(store, clock) -> str | None:
    found = lease_holder(store, LEASE, clock())
    return found[0] if found else None


def calls(url: str) -> list[str]:
    return [line for path in Path(url).parent.glob("store-calls-*.txt")
            for line in path.read_text().split()]


def test_two_schedulers_run_each_slot_once_and_the_standby_takes_over(world):
    store, url, start, go, clock = world
    procs = {"alpha": start("alpha"), "beta": start("beta")}
    go("alpha", "beta")
    wait_for(lambda: len(slots(store)) >= 3, timeout=30)
    active = holder(store, clock)
    standby = "beta" if active == "alpha" else "alpha"
    assert not Path(f"{url}-calls-{standby}.txt").exists()  # the standby collected nothing
    procs[active].kill()  # kill -9: no release, the lease has to expire
    wait_for(lambda: holder(store, clock) == standby)
    taken_over = len(slots(store))
    wait_for(lambda: len(slots(store)) >= taken_over + 2, timeout=30)
    stop(procs[standby])
    counts = slots(store)
    assert sorted(counts) == [(BASE + timedelta(minutes=i)).isoformat()[:16]
                              for i in range(len(counts))]
    assert set(counts.values()) == {1}
    assert len(calls(url)) == len(counts)
    assert Path(f"{url}-calls-{standby}.txt").exists()
    statuses = Counter(r.status for r in load_runs(store))
    assert set(statuses) <= {"success", "abandoned"}
    assert statuses["abandoned"] <= 1  # the holder may have been killed mid-run
    assert lease_holder(store, LEASE, clock()) is None  # released on SIGTERM


def test_kill_9_mid_run_publishes_nothing_and_is_abandoned_on_next_start(world):
    store, _url, start, go, _clock = world
    entry, = buffer.add_files(store, Actor("ayesha", ADMIN), [
        ("upload.csv", write_csv(generate_colors(2, seed=2)[list(INPUT_COLUMNS)]))],
        load_settings({}, {}))
    hung = start("alpha", mode="hang")
    go("alpha")
    wait_for(lambda: store.partitions("colors"), timeout=30)  # rows written, record not yet
    hung.kill()
    hung.wait(timeout=10)
    running = [r for r in load_runs(store) if r.status == "running"]
    assert [r.job for r in running] == ["Minute"]
    assert visible_run_ids(store) == []
    assert buffer.get_entry(store, entry.id).status == "claimed"
    successor = start("beta")
    wait_for(lambda: next((r for r in load_runs(store) if r.run_id == running[0].run_id
                           and r.status == "abandoned"), None), timeout=30)
    stop(successor)
    dead = next(r for r in load_runs(store) if r.run_id == running[0].run_id)
    assert dead.error == ABANDONED
    assert buffer.get_entry(store, entry.id).status == "pending"
    assert running[0].run_id not in visible_run_ids(store)
    assert running[0].run_id not in run_tables(store).runs("colors")


def test_python_m_core_scheduler_stops_cleanly_on_sigterm(tmp_path):
    url = str(tmp_path / "store")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKETPULSE_STORE_URL": url}
    with open(tmp_path / "scheduler.log", "ab") as log:
        proc = subprocess.Popen([PYTHON, "-m", "core.scheduler"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        store = open_store(url)

        def beat():
            try:
                return store.get(HEARTBEAT_KEY)[0]
            except ObjectNotFound:
                return None

        first = wait_for(beat, timeout=30)
        assert (first["pid"], first["stopped"]) == (proc.pid, False)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert beat()["stopped"] is True
        assert store.list("leases/") == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
