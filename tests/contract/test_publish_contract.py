"""Atomic publish and the scheduler lease on every backend (DESIGN.md §3): a run killed between
its rows and its record shows nothing and is swept away; exactly one of many schedulers holds the
lease, and a standby takes an expired one. Both rest on the store alone (versioned documents,
the run-table port), so they are part of every backend's contract."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from core.access import SYSTEM
from core.automation.leases import acquire_lease, lease_holder, release_lease, renew_lease
from core.automation.sweep import sweep_runs
from core.cli.demo import generate_colors
from core.config import load_settings
from core.reads import history
from core.reads.search import SearchQuery, search_colors
from core.runs import pipeline, workbooks
from core.runs import records as runs
from core.runs.exports import write_csv
from core.schema import CUSIP, INPUT_COLUMNS, RUN_ID
from storage import ObjectNotFound, Store
from storage.run_tables import run_tables

SETTINGS = load_settings({}, {})
AT = datetime(2026, 3, 13, 18, tzinfo=UTC)


class Killed(BaseException):
    """kill -9 in the middle of a run: no handler of the pipeline runs (they catch Exception)."""


def _csv(n: int, seed: int) -> bytes:
    return write_csv(generate_colors(n, seed=seed)[list(INPUT_COLUMNS)])


def _kill_after_the_rows(*args: object, **kwargs: object) -> None:
    raise Killed  # workbooks.mark_pending comes right after the rows, before the record says so


def test_a_run_killed_between_its_rows_and_its_record_is_invisible_then_swept(
        store: Store, monkeypatch: pytest.MonkeyPatch):
    pipeline.process_files(store, SYSTEM, [("a.csv", _csv(40, seed=1))], settings=SETTINGS, now=AT)
    published = history.published_colors(store, SYSTEM)
    cusip = str(published[CUSIP].iloc[0])
    before = search_colors(store, SYSTEM, SearchQuery(text=cusip)).frame

    monkeypatch.setattr(workbooks, "mark_pending", _kill_after_the_rows)
    with pytest.raises(Killed):
        pipeline.process_files(store, SYSTEM, [("b.csv", _csv(60, seed=2))], settings=SETTINGS,
                               now=AT)
    monkeypatch.undo()
    assert 2 in run_tables(store).runs(runs.COLORS_TABLE)  # its rows are stored...
    assert runs.get_run(store, 2).status == runs.RUNNING
    assert runs.visible_run_ids(store) == [1]  # ...and nobody sees them
    assert history.published_colors(store, SYSTEM)[RUN_ID].unique().tolist() == [1]
    assert search_colors(store, SYSTEM, SearchQuery(text=cusip)).frame.equals(before)

    # Its host died (another host's run, silent since): a sweep after runs.stale_seconds
    # abandons it and removes every row it wrote.
    value, version = store.get(runs.run_key(2))
    store.put(runs.run_key(2), {**value, "owner": {**value["owner"], "host": "gone-host"},
                                "heartbeat_at": AT.isoformat()}, version)
    later = AT + timedelta(seconds=SETTINGS["runs.stale_seconds"] + 1)
    assert [r.run_id for r in sweep_runs(store, SYSTEM, SETTINGS, now=later)] == [2]
    assert runs.get_run(store, 2).status == runs.ABANDONED
    assert [t for t in runs.RUN_TABLES if 2 in run_tables(store).runs(t)] == []
    with pytest.raises(ObjectNotFound):
        store.get_blob(runs.output_blob_key(2))
    again = pipeline.process_files(store, SYSTEM, [("b.csv", _csv(60, seed=2))],
                                   settings=SETTINGS, now=later)
    assert (again.record.run_id, runs.visible_run_ids(store)) == (3, [1, 3])


def test_the_lease_is_compare_and_set_with_expiry(store: Store):
    assert acquire_lease(store, "scheduler", "a", 30, AT)
    assert not acquire_lease(store, "scheduler", "b", 30, AT + timedelta(seconds=29))
    assert renew_lease(store, "scheduler", "a", 30, AT + timedelta(seconds=20))
    assert not acquire_lease(store, "scheduler", "b", 30, AT + timedelta(seconds=49))
    assert acquire_lease(store, "scheduler", "b", 30, AT + timedelta(seconds=51))
    assert not renew_lease(store, "scheduler", "a", 30, AT + timedelta(seconds=52))
    assert not release_lease(store, "scheduler", "a")
    assert release_lease(store, "scheduler", "b")
    assert lease_holder(store, "scheduler", AT) is None


@pytest.mark.parametrize("held_by", [None, "dead"])
def test_of_eight_schedulers_starting_at_once_exactly_one_holds_the_lease(
        store: Store, held_by: str | None):
    if held_by:  # a scheduler that died: its lease expired, every standby tries to take it over
        assert acquire_lease(store, "scheduler", held_by, 30, AT - timedelta(seconds=31))
    start = threading.Barrier(8)

    def take(owner: str) -> bool:
        start.wait(timeout=60)
        return acquire_lease(store, "scheduler", owner, 30, AT)

    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(take, [f"node-{i}" for i in range(8)]))
    assert won.count(True) == 1
    assert lease_holder(store, "scheduler", AT) == (f"node-{won.index(True)}",
                                                    AT + timedelta(seconds=30))
