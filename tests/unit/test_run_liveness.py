"""Runs whose process died: the sweep marks them abandoned (from a gone pid on this host at once,
from a silent heartbeat on another host after runs.stale_seconds), removes their partial data and
releases their buffer claims; a heartbeat that lost its run stops and publishing it fails."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from core.access import SYSTEM, VIEWER, Actor
from core.automation.sweep import sweep_runs
from core.cli.demo import generate_colors
from core.config import load_settings
from core.errors import Conflict, PermissionDenied
from core.intake import buffer
from core.runs.exports import write_csv
from core.runs.liveness import Heartbeat, abandon_run, current_owner, remove_run_data
from core.runs.records import RunRecord, get_run, output_blob_key, run_key, save_run
from core.schema import INPUT_COLUMNS
from storage.run_tables import run_tables

SETTINGS = load_settings({}, {})  # runs.stale_seconds = 300
T = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
ELSEWHERE = {"host": "box-7.desk.example", "pid": 4242, "started": "99", "boot": "b"}


def _running(store, run_id: int, owner: dict, *, beat: datetime = T, job: str = "") -> None:
    save_run(store, RunRecord(run_id=run_id, kind="MANUAL", trigger="cli", actor="system",
                              started_at=(beat - timedelta(minutes=1)).isoformat(), job=job,
                              owner=owner, heartbeat_at=beat.isoformat()))
    run_tables(store).append_run(run_id, {table: generate_colors(3, seed=run_id)
                                          for table in ("colors", "excluded", "quarantined")})
    store.put_blob(output_blob_key(run_id), b"half a workbook")


def _leftovers(store, run_id: int) -> list[str]:
    return [t for t in ("colors", "excluded", "quarantined")
            if run_id in run_tables(store).runs(t)] + [
        k for k in store.list_blobs("outputs/") if k == output_blob_key(run_id)]


def _gone_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_another_hosts_run_is_abandoned_only_once_its_heartbeat_is_older_than_the_limit(
        memory_store):
    _running(memory_store, 4, ELSEWHERE)
    assert sweep_runs(memory_store, SYSTEM, SETTINGS, now=T + timedelta(seconds=300)) == []
    assert get_run(memory_store, 4).status == "running"
    assert _leftovers(memory_store, 4) == ["colors", "excluded", "quarantined",
                                           "outputs/run-00000004.xlsx"]
    later = T + timedelta(seconds=301)
    found = sweep_runs(memory_store, SYSTEM, SETTINGS, now=later)
    record = get_run(memory_store, 4)
    assert [r.run_id for r in found] == [4]
    assert (record.status, record.finished_at) == ("abandoned", later.isoformat())
    assert record.error == ("abandoned: no heartbeat from box-7.desk.example pid 4242 for 301 s "
                            "(the limit is 300 s)")
    assert _leftovers(memory_store, 4) == []
    assert sweep_runs(memory_store, SYSTEM, SETTINGS, now=later) == []  # once


def test_a_run_whose_process_on_this_host_is_gone_is_abandoned_at_once(memory_store):
    owner = {**current_owner(), "pid": _gone_pid()}
    _running(memory_store, 2, owner, beat=T)
    sweep_runs(memory_store, SYSTEM, SETTINGS, now=T)  # heartbeat 0 s old: the pid decides
    record = get_run(memory_store, 2)
    assert (record.status, record.error) == (
        "abandoned", f"abandoned: its process ({owner['host']} pid {owner['pid']}) died during "
                     "the run")
    assert _leftovers(memory_store, 2) == []


def test_a_pid_reused_by_another_process_does_not_keep_a_dead_run_alive(memory_store):
    owner = {**current_owner(), "started": "1"}  # our pid, but not the process that ran it
    _running(memory_store, 3, owner)
    assert [r.run_id for r in sweep_runs(memory_store, SYSTEM, SETTINGS, now=T)] == [3]


def test_a_live_process_keeps_its_run_however_old_its_heartbeat(memory_store):
    _running(memory_store, 5, current_owner(), beat=T - timedelta(days=3))
    assert sweep_runs(memory_store, SYSTEM, SETTINGS, now=T) == []
    assert get_run(memory_store, 5).status == "running"
    assert _leftovers(memory_store, 5) == ["colors", "excluded", "quarantined",
                                           "outputs/run-00000005.xlsx"]


def test_a_record_from_before_owners_were_kept_is_judged_by_its_start(memory_store):
    save_run(memory_store, RunRecord(run_id=6, kind="MANUAL", trigger="cli", actor="system",
                                     started_at=T.isoformat()))
    assert sweep_runs(memory_store, SYSTEM, SETTINGS, now=T + timedelta(seconds=299)) == []
    found = sweep_runs(memory_store, SYSTEM, SETTINGS, now=T + timedelta(minutes=6))
    assert [(r.run_id, r.error) for r in found] == [
        (6, "abandoned: no heartbeat from an unknown process for 360 s (the limit is 300 s)")]


def test_the_buffer_files_a_dead_job_run_claimed_go_back_to_pending(memory_store):
    boss = Actor("boss", "admin")
    data = write_csv(generate_colors(2)[list(INPUT_COLUMNS)])
    entry, = buffer.add_files(memory_store, boss, [("up.csv", data)], SETTINGS, now=T)
    buffer.claim_pending(memory_store, "job:Morning", now=T - timedelta(minutes=2))
    _running(memory_store, 8, ELSEWHERE, job="Morning")
    sweep_runs(memory_store, SYSTEM, SETTINGS, now=T + timedelta(minutes=10))
    assert buffer.get_entry(memory_store, entry.id).status == "pending"


def test_a_viewer_cannot_sweep(memory_store):
    with pytest.raises(PermissionDenied):
        sweep_runs(memory_store, Actor("vic", VIEWER), SETTINGS, now=T)


def test_a_heartbeat_refreshes_until_a_sweep_abandons_the_run_and_then_publishing_fails(
        memory_store):
    record = RunRecord(run_id=9, kind="MANUAL", trigger="cli", actor="system",
                       started_at=T.isoformat())
    beat = Heartbeat(memory_store, record, SETTINGS)
    stored = get_run(memory_store, 9)
    assert (stored.status, stored.owner) == ("running", current_owner())
    assert beat.beat(T + timedelta(seconds=30)) is True
    assert get_run(memory_store, 9).heartbeat_at == (T + timedelta(seconds=30)).isoformat()
    version = memory_store.get(run_key(9))[1]
    assert abandon_run(memory_store, 9, "abandoned: judged dead", T, version) is not None
    assert beat.beat(T + timedelta(seconds=60)) is False
    run_tables(memory_store).append_run(9, {"colors": generate_colors(3)})  # after the sweep
    record.status = "success"
    with pytest.raises(Conflict, match="run 9 was marked abandoned while it published"):
        beat.publish(record)
    assert (get_run(memory_store, 9).status, _leftovers(memory_store, 9)) == ("abandoned", [])


def test_removing_a_runs_data_also_removes_a_workbook_write_a_kill_interrupted(local_store):
    local_store.put_blob(output_blob_key(7), b"xlsx")
    folder = local_store.root / "blobs" / "outputs"
    (folder / "run-00000007.xlsx~0123abcd.tmp").write_bytes(b"half")
    (folder / "run-00000070.xlsx~0123abcd.tmp").write_bytes(b"another run's")
    remove_run_data(local_store, 7)
    assert sorted(p.name for p in folder.iterdir()) == ["run-00000070.xlsx~0123abcd.tmp"]
