"""The scheduler keeps search fast: it compacts published colors once enough runs arrived outside
the compacted copy, reports it in its heartbeat, can be switched off, and pauses after a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM
from core.automation import upkeep
from core.automation.scheduler import HEARTBEAT_KEY, run_once
from core.cli.demo import generate_colors
from core.config import load_settings
from core.reads import compaction
from core.reads.search import SearchQuery, search_rows
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv
from core.runs.published import visible_runs
from core.schema import INPUT_COLUMNS
from storage import ObjectNotFound, WriteConflict, open_store
from storage.parquet_layout import MANIFEST_KEY, load_manifest
from storage.run_compaction import MIN_UNCOVERED_RUNS
from storage.run_tables import run_tables


def read_layout(store):
    return run_tables(store).layout(visible_runs(store))

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 20, 20, tzinfo=UTC)


def publish(store, n: int) -> None:
    """Publishes n runs of new colors, each a day after the store's last run (a file published
    already would be skipped, DOMAIN.md §1.5)."""
    first = len(runs.load_runs(store))
    for i in range(first, first + n):
        day = f"2026-03-{i + 1:02d}"
        frame = generate_colors(40, date=day, cusips=12, seed=i)[list(INPUT_COLUMNS)]
        pipeline.process_files(store, SYSTEM, [(f"{day}.csv", write_csv(frame))],
                               settings=SETTINGS, rules=[],
                               now=datetime.fromisoformat(f"{day}T18:00:00+00:00"))


def step(store, now=NOW, settings=SETTINGS):
    return run_once(store, settings, now, owner="sched-a", collect=lambda *a: None,
                    notify=lambda *a: None)


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


def test_the_scheduler_compacts_once_enough_runs_have_arrived(store):
    publish(store, MIN_UNCOVERED_RUNS - 1)
    step(store)
    assert load_manifest(store) == (None, None)
    assert store.get(HEARTBEAT_KEY)[0]["compaction"] is None

    publish(store, 1)
    before = search_rows(store, SYSTEM, SearchQuery())
    step(store)
    manifest, version = load_manifest(store)
    assert manifest["runs"] == list(range(1, MIN_UNCOVERED_RUNS + 1))
    assert read_layout(store).uncovered == ()
    beat = store.get(HEARTBEAT_KEY)[0]["compaction"]
    assert (beat["at"], beat["runs"], beat["rows"]) == (NOW.isoformat(), MIN_UNCOVERED_RUNS,
                                                        len(before))
    assert_frame_equal(search_rows(store, SYSTEM, SearchQuery()), before, check_dtype=False)

    step(store, NOW + timedelta(seconds=1))  # nothing new: the copy stays
    assert load_manifest(store)[1] == version

    publish(store, 1)  # the next run goes into the copy's delta at the next step
    step(store, NOW + timedelta(seconds=2))
    manifest, _ = load_manifest(store)
    assert manifest["delta"]["runs"] == [MIN_UNCOVERED_RUNS + 1]
    assert (read_layout(store).uncovered, manifest["runs"]) == (
        (), list(range(1, MIN_UNCOVERED_RUNS + 1)))
    assert store.get(HEARTBEAT_KEY)[0]["compaction"]["runs"] == 1


def test_compaction_can_be_switched_off(store):
    publish(store, MIN_UNCOVERED_RUNS)
    step(store, settings=load_settings({}, {"MARKETPULSE_SCHEDULER_COMPACT": "false"}))
    with pytest.raises(ObjectNotFound):
        store.get(MANIFEST_KEY)
    assert len(read_layout(store).uncovered) == MIN_UNCOVERED_RUNS


def test_a_compaction_that_loses_the_race_is_planned_again_at_the_next_step(store, monkeypatch):
    publish(store, MIN_UNCOVERED_RUNS)

    def lost(*args, **kwargs):
        raise WriteConflict(MANIFEST_KEY, None, "1")

    monkeypatch.setattr(upkeep, "compact_colors", lost)
    step(store)
    beat = store.get(HEARTBEAT_KEY)[0]
    assert (beat["last_errors"], beat["compaction"]) == ([], None)
    monkeypatch.setattr(upkeep, "compact_colors", compaction.compact_colors)
    step(store, NOW + timedelta(seconds=1))
    assert load_manifest(store)[0]["runs"] == list(range(1, MIN_UNCOVERED_RUNS + 1))


def test_a_failed_compaction_is_reported_and_retried_after_a_pause(store, monkeypatch):
    publish(store, MIN_UNCOVERED_RUNS)
    calls = []

    def broken(*args, **kwargs):
        calls.append(kwargs["now"])
        raise OSError("disk full")

    monkeypatch.setattr(upkeep, "compact_colors", broken)
    step(store)
    beat = store.get(HEARTBEAT_KEY)[0]
    assert [(e["job"], e["error"]) for e in beat["last_errors"]] == [
        ("compaction", "failed: disk full")]
    assert beat["compaction"] == {"failed_at": NOW.isoformat()}

    step(store, NOW + timedelta(minutes=14))
    assert calls == [NOW]
    monkeypatch.setattr(upkeep, "compact_colors", compaction.compact_colors)
    step(store, NOW + timedelta(minutes=16))
    assert load_manifest(store)[0]["runs"] == list(range(1, MIN_UNCOVERED_RUNS + 1))
    assert store.get(HEARTBEAT_KEY)[0]["compaction"]["runs"] == MIN_UNCOVERED_RUNS
