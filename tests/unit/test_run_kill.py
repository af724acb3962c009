"""A real `python -m core process BIGFILE` killed with kill -9 mid-run: `python -m core runs
sweep` marks its run abandoned and removes every byte it wrote; searches and the next run are
unaffected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest

from core.access import SYSTEM
from core.cli.demo import generate_colors
from core.reads.search import SearchQuery, search_colors
from core.runs.exports import write_csv
from core.runs.records import RUN_TABLES, get_run, output_blob_key, visible_run_ids
from core.schema import CUSIP, INPUT_COLUMNS
from storage import ObjectNotFound, open_store
from storage.run_tables import run_tables

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=300)


def _wait_for(check, proc: subprocess.Popen, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    raise AssertionError("the run never got half-way")


def _running(store, run_id: int) -> bool:
    try:
        return get_run(store, run_id).status == "running"
    except Exception:  # not written yet
        return False


def _mid_run(store, run_id: int) -> bool:
    """The run's record says running and some of its rows are stored."""
    try:
        record = get_run(store, run_id)
    except Exception:  # not written yet
        return False
    return record.status == "running" and run_id in run_tables(store).runs("colors")


def test_a_run_killed_mid_way_is_swept_to_abandoned_and_leaves_nothing(tmp_path):
    url = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKETPULSE_STORE_URL": str(url),
           "MARKETPULSE_DEMO": "0"}
    small = tmp_path / "small.csv"
    small.write_bytes(write_csv(generate_colors(40, seed=1)[list(INPUT_COLUMNS)]))
    big = tmp_path / "big.csv"  # its output workbook takes seconds to write: time to kill
    big.write_bytes(write_csv(generate_colors(100_000, seed=2)[list(INPUT_COLUMNS)]))
    assert _cli("process", str(small), env=env).returncode == 0
    store = open_store(str(url))
    cusip = store.scan("colors")[CUSIP].iloc[0]
    before = search_colors(store, SYSTEM, SearchQuery(text=cusip)).frame

    proc = subprocess.Popen([sys.executable, "-m", "core", "process", str(big)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Once the run says running, the test holds the store's document lock: the run can still
        # write its rows (tables take no document lock) but not the record that publishes them,
        # so it is caught mid-way however fast it runs.
        _wait_for(lambda: _running(store, 2), proc)
        with filelock.FileLock(str(url / ".lock")):
            _wait_for(lambda: _mid_run(store, 2), proc)
            proc.kill()  # SIGKILL: no cleanup of any kind runs
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind runs
        proc.wait(timeout=30)
    dead = get_run(store, 2)
    assert (dead.status, dead.owner["pid"], dead.owner["host"]) == (
        "running", proc.pid, socket.gethostname())

    swept = _cli("runs", "sweep", env=env)
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.splitlines() == [
        f"Run 2 abandoned: its process ({socket.gethostname()} pid {proc.pid}) died during the "
        "run; its partial data was removed", "1 run(s) abandoned"]
    assert get_run(store, 2).status == "abandoned"
    assert [t for t in RUN_TABLES if 2 in run_tables(store).runs(t)] == []
    with pytest.raises(ObjectNotFound):
        store.get_blob(output_blob_key(2))
    left = [p for folder in ("tables", "blobs") for p in (url / folder).rglob("*")
            if "00000002" in str(p)]  # temporary files of interrupted writes too
    assert left == []
    assert visible_run_ids(store) == [1]
    after = search_colors(store, SYSTEM, SearchQuery(text=cusip)).frame
    assert after.equals(before)

    again = _cli("process", str(small), env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Run 3 (MANUAL) success")
    assert visible_run_ids(store) == [1, 3]
    assert _cli("runs", "sweep", env=env).stdout == "0 run(s) abandoned\n"
