"""Every file of the hostile corpus (tests/data/hostile/, expectations from its files_*.py)
through `python -m core process`, the upload buffer and an inbox job under a real
`python -m core.scheduler`: a refused file gets a message naming it and its reason, exit status
2, a failed/ move with a failed run record, and nothing published changes; the scheduler keeps
beating and runs the other jobs."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.access import ADMIN, SYSTEM, Actor
from core.automation.jobs import Job, request_run, save_job
from core.automation.scheduler import HEARTBEAT_KEY
from core.config import load_settings
from core.errors import FileProblem
from core.intake import buffer
from core.runs import pipeline
from core.runs.records import load_runs
from storage import ObjectNotFound, open_store

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "data" / "hostile"
SAMPLE = ROOT / "tests" / "data" / "colors-2026-01-11.xlsx"
SETTINGS = load_settings({}, {})
ADMIN_USER = Actor("ayesha", ADMIN)


def _corpus() -> list[tuple[str, bool, str]]:
    spec = importlib.util.spec_from_file_location("hostile_build", HOSTILE / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return [(name, refused, fragment) for name, _data, refused, fragment in build.corpus()]


CORPUS = _corpus()
REFUSED = [(n, f) for n, refused, f in CORPUS if refused]
READ = [(n, f) for n, refused, f in CORPUS if not refused]


def _published(store) -> tuple:
    """What a refused file must not change: the run records and every published row."""
    rows = store.scan("colors")
    return ([vars(r) for r in load_runs(store)],
            rows.sort_values(list(rows.columns)[:3]).to_csv(index=False) if len(rows) else "")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A store with the sample published once (run 1)."""
    url = str(tmp_path_factory.mktemp("hostile") / "store")
    store = open_store(url)
    pipeline.process_files(store, SYSTEM, [(SAMPLE.name, SAMPLE.read_bytes())],
                           settings=SETTINGS, trigger="cli")
    return url


def test_the_corpus_on_disk_is_the_one_the_modules_declare():
    on_disk = sorted(p.name for p in HOSTILE.iterdir() if p.suffix != ".py" and p.is_file()
                     and p.name != "__pycache__")
    assert on_disk == sorted(name for name, _, _ in CORPUS)
    assert all((HOSTILE / name).stat().st_size < 1024 * 1024 for name in on_disk)


def test_every_refused_file_exits_2_from_the_cli_naming_it_and_publishes_nothing(seeded):
    store = open_store(seeded)
    before = _published(store)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKETPULSE_STORE_URL": seeded}
    for name, fragment in REFUSED:
        done = subprocess.run([sys.executable, "-m", "core", "process", str(HOSTILE / name)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (name, done.stdout, done.stderr[-2000:])
        assert done.stderr.startswith(f"error: {name}"), (name, done.stderr[-2000:])
        assert fragment in done.stderr, (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, name
    assert _published(store) == before


def test_a_file_read_despite_its_shape_reaches_validation(tmp_path):
    store = open_store(str(tmp_path / "store"))
    for name, fragment in READ:
        data = (HOSTILE / name).read_bytes()
        prepared = pipeline.prepare_files(store, [(name, data)], SETTINGS)
        messages = [p.message for p in prepared.report.problems]
        assert any(fragment in m for m in messages), (name, messages)


def test_the_buffer_refuses_every_refused_file_and_queues_nothing(tmp_path):
    store = open_store(str(tmp_path / "store"))
    for name, fragment in REFUSED:
        with pytest.raises(FileProblem) as refused:
            buffer.add_files(store, ADMIN_USER, [(name, (HOSTILE / name).read_bytes())], SETTINGS)
        assert refused.value.file == name
        assert fragment in str(refused.value), str(refused.value)
    entries = buffer.list_entries(store)
    assert sorted(e.name for e in entries) == sorted(n for n, _ in REFUSED)
    assert {e.status for e in entries} == {buffer.FAILED}


def _beat(store):
    try:
        return store.get(HEARTBEAT_KEY)[0]
    except ObjectNotFound:
        return None


def _wait(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_inbox_jobs_under_the_real_scheduler_fail_each_hostile_file_and_run_the_others(tmp_path):
    url = str(tmp_path / "store")
    store = open_store(url)
    now = datetime.now(UTC)
    jobs = {}
    for i, (name, _refused, _fragment) in enumerate([*CORPUS, (SAMPLE.name, False, "")]):
        inbox = tmp_path / f"inbox{i}"
        inbox.mkdir()
        source = SAMPLE if name == SAMPLE.name else HOSTILE / name
        (inbox / name).write_bytes(source.read_bytes())
        job = save_job(store, ADMIN_USER, Job(name=f"job {i}", schedule="0 0 1 1 *", sources=[
            {"kind": "inbox", "path": str(inbox)}]), now=now)
        jobs[name] = (job, inbox)
        request_run(store, ADMIN_USER, job.id, now=now)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKETPULSE_STORE_URL": url}
    with open(tmp_path / "scheduler.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "core.scheduler"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        records = _wait(lambda: (lambda rs: rs if len([r for r in rs if r.status != "running"])
                                 >= len(jobs) else None)(load_runs(store)), timeout=240)
        first = _wait(lambda: _beat(store), timeout=30)
        by_job = {r.job: r for r in records}
        for name, refused, fragment in CORPUS:
            job, inbox = jobs[name]
            record = by_job[job.name]
            if refused:
                assert record.status == "failed", (name, record)
                assert name in record.error, (name, record.error)
                assert fragment in record.error, (name, record.error)
                assert (inbox / "failed" / name).exists(), name
                assert fragment in (inbox / "failed" / f"{name}.error.txt").read_text()
                assert not (inbox / name).exists()
            else:
                assert record.status == "success", (name, record)
        assert by_job[jobs[SAMPLE.name][0].name].status == "success"
        _wait(lambda: (_beat(store) or {}).get("at", "") > first.get("at", ""), timeout=30)
        assert proc.poll() is None  # still running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
