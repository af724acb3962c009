"""Races between real processes on one local store (tests/races.py is the worker): a unique name is
taken once however many processes create it together, the first admin is created once, a settings
document saved by two admins from the same version keeps one change and tells the other, and four
simultaneous "Run now" queue one run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core.alerts.email import load_smtp_config
from core.alerts.templates import load_email_settings
from core.alerts.webhooks import load_webhook_settings, mask_url
from core.automation.jobs import Job, load_jobs, pending_triggers, save_job
from core.identity.column_profiles import load_column_profiles
from core.identity.login import get_self_registration
from core.identity.users import list_users
from core.reads.saved_searches import list_saved_searches
from core.rules.exclusion import load_rules
from core.rules.presets import list_presets
from storage import open_store
from tests.races import ADMIN, ANALYST, JOB_NAME, PRESET_NAME, RULE_NAME, SEARCH_NAME, USER_NAME

ROOT = Path(__file__).resolve().parents[2]


def race(tmp_path: Path, op: str, processes: int, tries: int) -> Counter[str]:
    """Start `processes` workers doing `op` `tries` times each, all at once; their outcomes."""
    url, gate = str(tmp_path / "store"), str(tmp_path / f"gate-{op}-{time.monotonic_ns()}")
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.races", op, url, gate, str(i), str(tries)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(processes)]
    while not all(Path(f"{gate}.ready{i}").exists() for i in range(processes)):
        if any(w.poll() is not None for w in workers):
            break  # a worker died before the start: its stderr says why
        time.sleep(0.01)
    Path(gate).touch()
    outcomes: Counter[str] = Counter()
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        outcomes.update(json.loads(out.strip().splitlines()[-1]))
    return outcomes


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


# -- unique names: 100 creations of one name from 4 processes --------------------------------------
def test_one_hundred_concurrent_creations_of_a_rule_name_leave_exactly_one_rule(tmp_path, store):
    outcomes = race(tmp_path, "rule", 4, 25)
    assert outcomes == {"ok": 1, "InvalidRule": 99}
    assert [r.name.casefold() for r in load_rules(store)] == [RULE_NAME.casefold()]


def test_one_hundred_concurrent_creations_of_a_job_name_leave_exactly_one_job(tmp_path, store):
    outcomes = race(tmp_path, "job", 4, 25)
    assert outcomes == {"ok": 1, "InvalidInput": 99}
    assert [j.name for j in load_jobs(store)] == [JOB_NAME]


def test_one_hundred_concurrent_creations_of_a_username_leave_exactly_one_user(tmp_path, store):
    outcomes = race(tmp_path, "user", 4, 25)
    assert outcomes == {"ok": 1, "Conflict": 99}
    assert [u.username for u in list_users(store)] == [USER_NAME]


def test_one_hundred_concurrent_creations_of_a_preset_name_leave_exactly_one_preset(
        tmp_path, store):
    outcomes = race(tmp_path, "preset", 4, 25)
    assert outcomes == {"ok": 1, "InvalidInput": 99}
    assert [(p.name, p.owner) for p in list_presets(store, ANALYST)] == [(PRESET_NAME, "bob")]


def test_one_hundred_concurrent_saves_of_a_search_name_leave_exactly_one_saved_search(
        tmp_path, store):
    # Saving a name again replaces the search (that is the feature), so every save succeeds.
    outcomes = race(tmp_path, "search", 4, 25)
    assert outcomes == {"ok": 100}
    assert [s.name for s in list_saved_searches(store, ANALYST)] == [SEARCH_NAME]


# -- the first admin -------------------------------------------------------------------------------
@pytest.mark.parametrize("attempt", range(3))
def test_two_processes_racing_to_create_the_first_admin_create_exactly_one(tmp_path, attempt):
    outcomes = race(tmp_path, "first_admin", 2, 1)
    assert outcomes == {"ok": 1, "Conflict": 1}
    users = list_users(open_store(str(tmp_path / "store")))
    assert [u.role for u in users] == ["admin"]


# -- settings documents: two admins save from the same loaded version ------------------------------
@pytest.mark.parametrize(("op", "stored"), [
    ("smtp", lambda s: load_smtp_config(s).host),
    ("webhooks", lambda s: mask_url(load_webhook_settings(s).slack_url)),  # logged masked
    ("email", lambda s: load_email_settings(s).to[0]),
    ("signup", get_self_registration),
])
def test_two_admins_saving_a_settings_document_from_one_version_keep_one_change_and_tell_the_other(
        tmp_path, store, op, stored):
    outcomes = race(tmp_path, op, 2, 1)
    assert outcomes == {"ok": 1, "ChangedMeanwhile": 1}
    changes = store.scan("audit")
    assert len(changes) == 1  # exactly one save landed, and it is the stored value
    assert json.dumps(stored(store)) in changes["AFTER"].iloc[0]


def test_two_admins_creating_one_column_profile_name_create_it_once(tmp_path, store):
    outcomes = race(tmp_path, "profile", 2, 1)
    assert outcomes == {"ok": 1, "Conflict": 1}
    [(name, columns)] = load_column_profiles(store).items()
    assert (name, len(store.scan("audit"))) == ("Slim", 1)
    assert columns[0] == "CUSIP"


# -- Run now ---------------------------------------------------------------------------------------
def test_four_simultaneous_run_now_of_one_job_queue_one_run(tmp_path, store):
    save_job(store, ADMIN, Job(name=JOB_NAME, schedule="0 6 * * 1-5"))
    outcomes = race(tmp_path, "run_now", 4, 1)
    assert outcomes == {"ok": 1, "Conflict": 3}
    assert [t.job for t in pending_triggers(store)] == [JOB_NAME]
