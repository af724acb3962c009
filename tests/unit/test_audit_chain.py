"""The audit trail's hash chain: every change-log and access-log entry is a link; an edited, a
deleted, a reordered entry and a rewritten head are each found and named."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core import audit_chain, catalog
from core.access import SYSTEM
from core.audit import load_changes, record_change
from core.compliance.access_log import load_access_log, record_access
from storage import open_store

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
AUDIT, ACCESS = catalog.AUDIT.key, catalog.ACCESS_LOG.key


def _a_day(store) -> None:
    """Five entries across both logs and two months: change, access, change, access, change."""
    record_change(store, "ana", "rules", "create", "r1", after={"name": "CLO"}, now=T0)
    record_access(store, "ana", "search", '{"cusip": "A"}', rows=3, now=T0)
    record_change(store, "bob", "auth", "login", "bob", detail="ok", now=T0 + timedelta(hours=1))
    record_access(store, "bob", "export", "dashboard", rows=10, detail="xlsx",
                  now=T0 + timedelta(days=1))
    record_change(store, SYSTEM, "jobs", "update", "j1", before={"a": 1}, after={"a": 2},
                  now=T0 + timedelta(days=1))


def _rewrite(store, table: str, change) -> None:
    """Tamper as someone with write access to the store would: rewrite every partition."""
    for partition in store.partitions(table):
        frame = store.scan(table, [partition])
        store.delete_partition(table, partition)
        changed = change(frame)
        if len(changed):
            store.append(table, changed.reset_index(drop=True), partition)


@pytest.fixture(params=["memory", "local"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def test_a_day_of_entries_makes_one_intact_chain_over_both_logs(store):
    _a_day(store)
    verdict = audit_chain.verify(store)
    assert verdict.ok
    assert (verdict.entries, verdict.tables, verdict.head_seq) == (5, {AUDIT: 3, ACCESS: 2}, 5)
    changes = load_changes(store).sort_values("SEQ")
    assert changes["SEQ"].tolist() == [1, 3, 5]
    assert changes["ACTOR"].tolist() == ["ana", "bob", "system"]
    # Each entry names the hash of the one before it, whichever log that one is in.
    accesses = store.scan(ACCESS).sort_values("SEQ")
    by_seq = {**dict(zip(changes["SEQ"], changes["HASH"], strict=True)),
              **dict(zip(accesses["SEQ"], accesses["HASH"], strict=True))}
    assert accesses["PREV_HASH"].tolist() == [by_seq[1], by_seq[3]]
    assert changes["PREV_HASH"].tolist() == [audit_chain.GENESIS, by_seq[2], by_seq[4]]
    assert verdict.head_hash == by_seq[5]
    assert verdict.summary() == (f"Audit chain intact: 5 entries, 2 in access_log, 3 in audit, "
                                 f"head 5 {by_seq[5][:16]}….")
    # The logs read as before.
    assert load_access_log(store)["ACTOR"].tolist() == ["bob", "ana"]


def test_an_edited_entry_is_named(store):
    _a_day(store)
    _rewrite(store, AUDIT, lambda f: f.assign(ACTOR=f["ACTOR"].where(f["SEQ"] != 3, "mallory")))
    verdict = audit_chain.verify(store)
    assert (verdict.ok, verdict.broken_seq) == (False, 3)
    assert "was changed after it was written" in verdict.problem
    assert "by mallory" in verdict.problem


def test_an_edited_access_entry_is_named(store):
    _a_day(store)
    _rewrite(store, ACCESS, lambda f: f.assign(ROWS=f["ROWS"].where(f["SEQ"] != 4, 0)))
    verdict = audit_chain.verify(store)
    assert (verdict.broken_seq, verdict.problem.endswith("was changed after it was written")) == (
        4, True)


def test_a_deleted_entry_is_named(store):
    _a_day(store)
    _rewrite(store, ACCESS, lambda f: f[f["SEQ"] != 2])
    verdict = audit_chain.verify(store)
    assert verdict.broken_seq == 2
    assert verdict.problem.startswith("missing (deleted or moved): the next entry found is 3, ")


def test_reordered_entries_are_named(store):
    _a_day(store)
    # Swap the places of entries 3 and 5 (both in the change log), hashes and all.
    _rewrite(store, AUDIT, lambda f: f.assign(SEQ=f["SEQ"].replace({3: 5, 5: 3})))
    verdict = audit_chain.verify(store)
    assert verdict.broken_seq == 3
    assert "does not follow the entry before it" in verdict.problem


def test_the_last_entry_deleted_is_found_through_the_head(store):
    _a_day(store)
    _rewrite(store, AUDIT, lambda f: f[f["SEQ"] != 5])
    verdict = audit_chain.verify(store)
    assert verdict.broken_seq == 5
    assert "though the chain head records entry 5" in verdict.problem


def test_a_rewritten_head_is_found(store):
    _a_day(store)
    value, version = store.get(audit_chain.HEAD_KEY)
    store.put(audit_chain.HEAD_KEY, {**value, "hash": "f" * 64}, version)
    verdict = audit_chain.verify(store)
    assert verdict.broken_seq == 5
    assert "the chain head does not match the last entry" in verdict.problem


def test_entries_written_before_the_chain_are_counted_not_checked(store):
    old = pd.DataFrame([{"EVENT_ID": "e0", "AT": pd.Timestamp(T0 - timedelta(days=40)),
                         "ACTOR": "ana", "AREA": "rules", "ACTION": "create", "ENTITY": "r0",
                         "BEFORE": None, "AFTER": None, "DETAIL": ""}])
    store.append(AUDIT, old, "2026-10")
    _a_day(store)
    verdict = audit_chain.verify(store)
    assert (verdict.ok, verdict.entries, verdict.unchained) == (True, 5, 1)
    assert verdict.summary().endswith("; 1 written before the chain began.")


def test_concurrent_writers_from_threads_each_take_their_own_place(store):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: record_change(store, f"u{i}", "rules", "create", f"r{i}", now=T0),
                      range(40)))
    verdict = audit_chain.verify(store)
    assert (verdict.ok, verdict.entries, verdict.head_seq) == (True, 40, 40)
    assert sorted(store.scan(AUDIT)["SEQ"].tolist()) == list(range(1, 41))


# A writer process: a program of its own (multiprocessing's spawn would re-run whatever script
# sys.modules["__main__"] names, and AppTest tests leave app.py there).
_WRITER = """
import sys
from datetime import UTC, datetime
from core.audit import record_change
from core.compliance.access_log import record_access
from storage import open_store
store, n, t0 = open_store(sys.argv[1]), sys.argv[2], datetime(2026, 11, 30, 9, tzinfo=UTC)
for i in range(10):
    if i % 2:
        record_access(store, f"p{n}", "search", f"q{i}", rows=i, now=t0)
    else:
        record_change(store, f"p{n}", "rules", "update", f"r{i}", now=t0)
"""


def test_concurrent_writers_in_processes_make_one_chain(tmp_path):
    root = str(tmp_path / "store")
    open_store(root)
    workers = [subprocess.Popen([sys.executable, "-c", _WRITER, root, str(n)], cwd=ROOT)
               for n in range(4)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    verdict = audit_chain.verify(open_store(root))
    assert (verdict.ok, verdict.entries, verdict.tables) == (True, 40, {AUDIT: 20, ACCESS: 20})


def test_cli_verify_exits_0_when_intact_and_1_naming_the_broken_entry(tmp_path):
    root = tmp_path / "store"
    store = open_store(str(root))
    _a_day(store)

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "core", "audit", "verify"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={"MARKETPULSE_STORE_URL": str(root), "PATH": "/usr/bin",
                                   "HOME": str(tmp_path)})

    done = verify()
    assert (done.returncode, done.stdout.startswith("Audit chain intact: 5 entries")) == (0, True)
    _rewrite(store, AUDIT, lambda f: f.assign(DETAIL=f["DETAIL"].where(f["SEQ"] != 3, "edited")))
    done = verify()
    assert done.returncode == 1
    assert done.stdout.startswith("Audit chain BROKEN at entry 3: audit entry ")
    assert "was changed after it was written" in done.stdout
