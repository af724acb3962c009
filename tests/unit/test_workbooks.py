"""The output workbook is built after a run's colors are visible: the record says pending, then
ready or failed; a workbook whose builder died is rebuilt by the scheduler's next step."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from python_calamine import CalamineWorkbook

from core.access import SYSTEM
from core.automation.scheduler import run_once
from core.cli.demo import generate_colors
from core.config import load_settings
from core.reads.search import SearchQuery, search_colors
from core.rules.exclusion import Condition, Group, Rule
from core.runs import exports, pipeline, workbooks
from core.runs import records as runs
from core.runs.liveness import current_owner
from core.schema import COLOR_ID, CUSIP, EXCLUDED_BY, INPUT_COLUMNS, SOURCE

SETTINGS = load_settings({}, {})  # runs.stale_seconds = 300
T = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
ELSEWHERE = {"host": "box-7.desk.example", "pid": 4242, "started": "99", "boot": "b"}
NO_RBC = Rule(name="No RBC", conditions=Group("or", [Condition(SOURCE, "equal_to", "RBC")]))


def _files(n: int = 40, seed: int = 3, bad_rows: int = 2) -> list[tuple[str, bytes]]:
    frame = generate_colors(n, seed=seed, bad_rows=bad_rows)[list(INPUT_COLUMNS)]
    return [("colors.csv", exports.write_csv(frame))]


def _publish(store, *, build: bool = False, files=None) -> pipeline.RunResult:
    prepared = pipeline.prepare_files(store, files or _files(), SETTINGS)
    return pipeline.publish_run(store, SYSTEM, prepared, settings=SETTINGS, rules=[NO_RBC],
                                now=T, build_workbook=build)


def _sheets(data: bytes) -> dict[str, list[list]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def _gone_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def _builder(store, run_id: int, owner: dict, at: datetime) -> None:
    """Make the run's pending workbook look as if `owner` started building it at `at`."""
    store.put(workbooks.pending_key(run_id), {"run_id": run_id, "owner": owner,
                                              "at": at.isoformat()}, expected_version="*")


def test_colors_are_searchable_while_the_workbook_is_pending(local_store):
    result = _publish(local_store)
    run_id = result.record.run_id
    record = runs.get_run(local_store, run_id)
    assert (record.status, record.workbook, record.output) == (runs.SUCCESS, "pending", "")
    assert local_store.list(workbooks.PENDING_PREFIX) == [workbooks.pending_key(run_id)]
    assert local_store.list_blobs("outputs/") == []
    assert workbooks.workbook_note(record) == workbooks.BEING_PREPARED
    cusip = result.published[CUSIP].iloc[0]
    found = search_colors(local_store, SYSTEM, SearchQuery(text=cusip)).frame
    assert sorted(found[COLOR_ID]) == sorted(
        result.published.loc[result.published[CUSIP] == cusip, COLOR_ID])


def test_building_the_workbook_settles_the_record_ready_and_drops_the_pending_note(local_store):
    result = _publish(local_store)
    run_id = result.record.run_id
    frames = workbooks.RunFrames(result.published, result.excluded, result.quarantined)
    record, data = workbooks.build_workbook(local_store, run_id, frames)
    assert record == runs.get_run(local_store, run_id)
    assert (record.workbook, record.workbook_error, record.output) == (
        "ready", "", runs.output_blob_key(run_id))
    assert local_store.get_blob(record.output) == data
    assert list(_sheets(data)) == ["Colors", "Excluded", "Quarantined"]
    assert local_store.list(workbooks.PENDING_PREFIX) == []
    assert workbooks.workbook_note(record) == ""


def test_a_record_from_before_pending_workbooks_with_an_output_counts_as_ready():
    old = runs.RunRecord.from_dict({"run_id": 3, "kind": "MANUAL", "trigger": "cli",
                                    "actor": "system", "status": "success",
                                    "output": "outputs/run-00000003.xlsx"})
    assert workbooks.workbook_state(old) == "ready"
    assert workbooks.workbook_state(runs.RunRecord(3, "MANUAL", "cli", "system")) == ""


def test_the_scheduler_rebuilds_a_workbook_whose_builder_died_from_the_stored_rows(local_store):
    result = _publish(local_store)
    run_id = result.record.run_id
    in_memory = workbooks.render_workbook(workbooks.RunFrames(
        result.published, result.excluded, result.quarantined))  # what the builder would have made
    _builder(local_store, run_id, {**current_owner(), "pid": _gone_pid()}, T)

    run_once(local_store, SETTINGS, T + timedelta(seconds=1), owner="sched-a")

    record = runs.get_run(local_store, run_id)
    assert (record.workbook, record.output) == ("ready", runs.output_blob_key(run_id))
    assert local_store.list(workbooks.PENDING_PREFIX) == []
    rebuilt = _sheets(local_store.get_blob(record.output))
    assert list(rebuilt) == ["Colors", "Excluded", "Quarantined"]
    assert rebuilt == _sheets(in_memory)
    ids = rebuilt["Colors"][0].index(COLOR_ID)
    assert [row[ids] for row in rebuilt["Colors"][1:]] == result.published[COLOR_ID].tolist()
    assert rebuilt["Excluded"][0][-1] == EXCLUDED_BY


def test_a_live_builder_is_left_alone_until_it_is_older_than_the_stale_limit(local_store):
    run_id = _publish(local_store).record.run_id
    _builder(local_store, run_id, current_owner(), T)  # this process: alive
    assert workbooks.orphaned(local_store, 300, T + timedelta(seconds=300)) == []
    _builder(local_store, run_id, ELSEWHERE, T)  # another host: only its age tells
    assert workbooks.orphaned(local_store, 300, T + timedelta(seconds=300)) == []
    [(found, _)] = workbooks.orphaned(local_store, 300, T + timedelta(seconds=301))
    assert found == run_id


def test_a_rebuild_claimed_by_another_scheduler_first_is_not_built_twice(local_store):
    run_id = _publish(local_store).record.run_id
    _builder(local_store, run_id, ELSEWHERE, T)
    [(_, version)] = workbooks.orphaned(local_store, 300, T + timedelta(hours=1))
    assert workbooks.rebuild(local_store, run_id, version, T + timedelta(hours=1)) is not None
    assert workbooks.rebuild(local_store, run_id, version, T + timedelta(hours=1)) is None
    assert runs.get_run(local_store, run_id).workbook == "ready"


def test_a_pending_note_of_a_run_that_never_became_visible_is_dropped_without_a_build(
        local_store):
    run_id = _publish(local_store).record.run_id
    record = runs.get_run(local_store, run_id)
    record.status = runs.ABANDONED
    runs.save_run(local_store, record)
    running = runs.RunRecord(run_id + 1, "MANUAL", "cli", "system")  # still publishing
    runs.save_run(local_store, running)
    _builder(local_store, run_id + 1, ELSEWHERE, T)
    assert workbooks.orphaned(local_store, 300, T + timedelta(hours=1)) == []
    assert local_store.list(workbooks.PENDING_PREFIX) == [workbooks.pending_key(run_id + 1)]
    assert local_store.list_blobs("outputs/") == []


def test_a_workbook_finished_after_its_run_went_keeps_nothing(local_store):
    run_id = _publish(local_store).record.run_id
    record = runs.get_run(local_store, run_id)
    record.status = runs.REMOVED
    runs.save_run(local_store, record)
    assert workbooks.build_workbook(local_store, run_id) == (None, b"")
    assert local_store.list_blobs("outputs/") == []
    assert local_store.list(workbooks.PENDING_PREFIX) == []


def test_a_run_larger_than_a_sheet_gets_every_row_on_numbered_sheets(local_store, monkeypatch):
    monkeypatch.setattr(exports, "MAX_SHEET_ROWS", 10)
    result = _publish(local_store, build=True)
    assert result.record.counts["published"] == 28
    sheets = _sheets(result.workbook)
    colors = ["Colors (1 of 3)", "Colors (2 of 3)", "Colors (3 of 3)"]
    assert list(sheets) == [*colors, "Excluded", "Quarantined"]
    assert [len(sheets[name]) - 1 for name in colors] == [10, 10, 8]  # under one header each
    ids = sheets[colors[0]][0].index(COLOR_ID)
    assert [row[ids] for name in colors for row in sheets[name][1:]] == (
        result.published[COLOR_ID].tolist())
