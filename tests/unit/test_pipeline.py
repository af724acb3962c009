"""The pipeline end to end: files in → one published run, atomically, with its record."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.access import SYSTEM, Actor
from core.cli.demo import generate_colors
from core.config import load_settings
from core.errors import FileProblem, MissingColumns, PermissionDenied, PublishRefused
from core.reads import history
from core.rules.exclusion import Condition, Group, Rule, save_rule
from core.runs import pipeline, workbooks
from core.runs import records as runs
from core.runs.exports import write_csv, write_xlsx
from core.schema import (
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    EXCLUDED_BY,
    INPUT_COLUMNS,
    IS_PARENT,
    PARENT_COLOR_ID,
    PROCESSING_TYPE,
    RUN_ID,
    SECTOR,
    SOURCE,
)
from tests.factories import SAMPLE

SETTINGS = load_settings({}, {})


def _xlsx(n: int, **kwargs) -> bytes:
    return write_xlsx(generate_colors(n, **kwargs)[list(INPUT_COLUMNS)])


def _store_state(store) -> tuple:
    return (
        [k for k in store.list("") if not k.startswith("sequences/")],
        {t: store.partitions(t) for t in runs.RUN_TABLES},
        store.list_blobs(""),
    )


def test_shared_sample_publishes_ten_parents(memory_store):
    result = pipeline.process_files(memory_store, SYSTEM, [(SAMPLE.name, SAMPLE.read_bytes())],
                                    settings=SETTINGS)
    rec = result.record
    assert rec.status == runs.SUCCESS
    assert rec.counts == {"read": 50, "quarantined": 0, "excluded": 0, "published": 50,
                          "parents": 10, "children": 40, "cusips": 10}
    published = history.published_colors(memory_store, SYSTEM)
    assert len(published) == 50
    assert published.groupby(CUSIP)[IS_PARENT].sum().tolist() == [1] * 10
    parent = published[(published[CUSIP] == "97988RBL5") & published[IS_PARENT]].iloc[0]
    assert parent[CHILDREN_COUNT] == 7
    assert set(published[PROCESSING_TYPE]) == {"MANUAL"}


def test_run_applies_active_rules_and_keeps_excluded_rows(memory_store):
    save_rule(memory_store, SYSTEM, Rule(
        name="No JPM", conditions=Group("or", [Condition(SOURCE, "equal_to", "jpm")])))
    frame = generate_colors(300, seed=3)
    jpm = int((frame[SOURCE] == "JPM").sum())
    result = pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", write_xlsx(
        frame[list(INPUT_COLUMNS)]))], settings=SETTINGS, kind=pipeline.AUTOMATED)
    assert jpm > 0
    assert result.record.counts["excluded"] == jpm
    assert result.record.per_rule == {"No JPM": jpm}
    excluded = memory_store.scan(runs.EXCLUDED_TABLE)
    assert len(excluded) == jpm
    assert set(excluded[EXCLUDED_BY]) == {"No JPM"}
    assert "JPM" not in set(history.published_colors(memory_store, SYSTEM)[SOURCE])


def test_override_run_applies_no_rules(memory_store):
    save_rule(memory_store, SYSTEM, Rule(
        name="Everything", conditions=Group("or", [Condition("PX", "greater_than", 0)])))
    result = pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", _xlsx(40))],
                                    settings=SETTINGS, kind=pipeline.OVERRIDE)
    assert result.record.counts["excluded"] == 0
    assert result.record.counts["published"] == 40


def test_several_files_rank_together_one_parent_per_cusip(memory_store):
    files = [("day1.xlsx", _xlsx(200, seed=1, date="2026-03-12")),
             ("day2.csv", write_csv(generate_colors(200, seed=1, date="2026-03-13")[
                 list(INPUT_COLUMNS)]))]
    result = pipeline.process_files(memory_store, SYSTEM, files, settings=SETTINGS)
    published = result.published
    per_cusip = published.groupby(published[CUSIP].str.upper())[IS_PARENT].sum()
    assert set(per_cusip.tolist()) == {1}
    children = published[~published[IS_PARENT]]
    ids = set(published.loc[published[IS_PARENT], COLOR_ID])
    assert set(children[PARENT_COLOR_ID]) <= ids
    assert [f["name"] for f in result.record.files] == ["day1.xlsx", "day2.csv"]
    assert published[RUN_ID].unique().tolist() == [result.record.run_id]


def test_quarantined_rows_are_kept_with_the_run_not_published(memory_store):
    result = pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", _xlsx(100, bad_rows=4))],
                                    settings=SETTINGS)
    counts = result.record.counts
    # generate_colors spoils 4 rows: blank CUSIP and unknown BIAS block; a blank PX is derived from
    # BID/ASK; a wrong check digit is only a warning.
    assert counts["quarantined"] == len(result.quarantined) == 2
    assert sorted(p.code for p in result.report.blocking) == ["missing_value", "unknown_bias"]
    assert "cusip_check_digit" in {p.code for p in result.report.warnings}
    assert counts["read"] == 100
    assert counts["published"] + counts["quarantined"] + counts["excluded"] == 100
    assert len(memory_store.scan(runs.QUARANTINED_TABLE)) == counts["quarantined"]


def test_whole_file_problem_stores_nothing(local_store):
    pipeline.process_files(local_store, SYSTEM, [("good.xlsx", _xlsx(20))], settings=SETTINGS)
    before = _store_state(local_store)
    headers_only = pd.DataFrame({"NAME": ["Ann"], "ADDRESS": ["1 Main St"]}).to_csv(index=False)
    for name, data, error in [
        ("junk.xlsx", b"PK\x03\x04 not really a zip", FileProblem),
        ("people.csv", headers_only.encode(), FileProblem),
        ("nocusip.csv", write_csv(generate_colors(5).drop(columns=[CUSIP])), MissingColumns),
    ]:
        with pytest.raises(error, match=name.replace(".", r"\.")):
            pipeline.process_files(local_store, SYSTEM, [("good.xlsx", _xlsx(5)), (name, data)],
                                   settings=SETTINGS)
    assert _store_state(local_store) == before


def test_failed_publish_leaves_nothing_visible_and_records_the_failure(local_store, monkeypatch):
    def disk_full(*args, **kwargs):  # after the run's rows are written, before it is visible
        raise OSError("disk full")

    monkeypatch.setattr(workbooks, "mark_pending", disk_full)
    at = datetime(2026, 3, 13, 18, tzinfo=UTC)  # the caller's clock stamps both ends
    with pytest.raises(OSError, match="disk full"):
        pipeline.process_files(local_store, SYSTEM, [("a.xlsx", _xlsx(30))], settings=SETTINGS,
                               now=at)
    [record] = runs.load_runs(local_store)
    assert record.status == runs.FAILED
    assert record.error == "disk full"
    assert record.started_at == at.isoformat()
    assert timedelta(0) < datetime.fromisoformat(record.finished_at) - at < timedelta(minutes=1)
    assert runs.visible_run_ids(local_store) == []
    assert {t: local_store.partitions(t) for t in runs.RUN_TABLES} == {
        t: [] for t in runs.RUN_TABLES}
    assert history.published_colors(local_store, SYSTEM).empty
    assert local_store.list(workbooks.PENDING_PREFIX) == []


def test_a_publish_refused_by_the_gate_while_rows_are_written_leaves_nothing(local_store,
                                                                            monkeypatch):
    def refuse(published):  # checked beside the writing of the run's rows
        raise PublishRefused(f"not exactly one parent per (RUN_ID, CUSIP): {len(published)} rows")

    monkeypatch.setattr(pipeline, "check_invariants", refuse)
    with pytest.raises(PublishRefused, match="30 rows"):
        pipeline.process_files(local_store, SYSTEM, [("a.xlsx", _xlsx(30))], settings=SETTINGS)
    [record] = runs.load_runs(local_store)
    assert (record.status, record.error) == (
        runs.FAILED, "not exactly one parent per (RUN_ID, CUSIP): 30 rows")
    assert {t: local_store.partitions(t) for t in runs.RUN_TABLES} == {
        t: [] for t in runs.RUN_TABLES}
    assert local_store.list(workbooks.PENDING_PREFIX) == []


def test_a_workbook_that_cannot_be_built_leaves_the_run_published_and_says_why(
        local_store, monkeypatch):
    def broken_workbook(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(workbooks, "write_xlsx", broken_workbook)
    result = pipeline.process_files(local_store, SYSTEM, [("a.xlsx", _xlsx(30))],
                                    settings=SETTINGS)
    record = runs.get_run(local_store, result.record.run_id)
    assert (record.status, record.workbook, record.workbook_error, record.output) == (
        runs.SUCCESS, workbooks.FAILED, "disk full", "")
    assert result.record == record
    assert result.workbook == b""
    assert runs.visible_run_ids(local_store) == [record.run_id]
    assert len(history.published_colors(local_store, SYSTEM)) == 30
    assert local_store.list_blobs("outputs/") == []
    assert local_store.list(workbooks.PENDING_PREFIX) == []
    assert workbooks.workbook_note(record) == (
        "The output workbook could not be built (disk full); the colors are published: export "
        "them as CSV from Search.")


def test_publishing_takes_the_prepared_rows_and_counts_them(memory_store):
    prepared = pipeline.prepare_files(memory_store, [("a.xlsx", _xlsx(30))], SETTINGS)
    result = pipeline.publish_run(memory_store, SYSTEM, prepared, settings=SETTINGS)
    assert prepared.valid.empty  # released once ranked: the published copy is the run's
    assert (result.record.counts["read"], len(result.published)) == (30, 30)


def test_run_ids_come_from_a_sequence(memory_store):
    ids = [pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", _xlsx(10))],
                                  settings=SETTINGS).record.run_id for _ in range(3)]
    assert ids == [1, 2, 3]


def test_viewer_cannot_publish(memory_store):
    viewer = Actor("vera", "viewer")
    with pytest.raises(PermissionDenied, match="vera is not allowed to work manual color"):
        pipeline.process_files(memory_store, viewer, [("a.xlsx", _xlsx(5))], settings=SETTINGS)
    analyst = Actor("ann", "analyst")
    with pytest.raises(PermissionDenied, match="ann is not allowed to trigger runs"):
        pipeline.process_files(memory_store, analyst, [("a.xlsx", _xlsx(5))], settings=SETTINGS,
                               kind=pipeline.AUTOMATED)
    assert runs.load_runs(memory_store) == []


def test_sector_limited_reader_sees_only_their_sector(memory_store):
    frame = generate_colors(200, seed=9)
    sectors = sorted(set(frame[SECTOR]))
    pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", write_xlsx(
        frame[list(INPUT_COLUMNS)]))], settings=SETTINGS)
    reader = Actor("sam", "viewer", sectors=(sectors[0],))
    seen = history.published_colors(memory_store, reader)
    assert set(seen[SECTOR]) == {sectors[0]}
    assert len(seen) == int((frame[SECTOR] == sectors[0]).sum())


def test_output_workbook_is_stored_with_the_run(memory_store):
    result = pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", _xlsx(25))],
                                    settings=SETTINGS)
    assert result.record.output == runs.output_blob_key(result.record.run_id)
    assert result.record.workbook == workbooks.READY
    assert runs.get_run(memory_store, result.record.run_id) == result.record
    assert memory_store.get_blob(result.record.output) == result.workbook
    assert result.workbook[:2] == b"PK"
    assert memory_store.list(workbooks.PENDING_PREFIX) == []


def test_downloaded_workbook_keeps_to_the_readers_sectors_and_columns(memory_store):
    frame = generate_colors(120, seed=4)
    sector = sorted(set(frame[SECTOR]))[0]
    result = pipeline.process_files(memory_store, SYSTEM, [("a.xlsx", write_xlsx(
        frame[list(INPUT_COLUMNS)]))], settings=SETTINGS)
    assert pipeline.workbook_for(result, SYSTEM) == result.workbook
    reader = Actor("ann", "analyst", sectors=(sector,), columns=(CUSIP, SECTOR, "PX"))
    sheet = pd.read_excel(io.BytesIO(pipeline.workbook_for(result, reader)), engine="calamine")
    assert list(sheet.columns) == [SECTOR, CUSIP, "PX"]  # output order (DOMAIN.md §1.4)
    assert set(sheet[SECTOR]) == {sector}
    assert len(sheet) == int((result.published[SECTOR] == sector).sum())


def test_a_file_published_already_makes_an_empty_run_even_with_an_active_rule(memory_store):
    save_rule(memory_store, SYSTEM, Rule(
        name="No JPM", conditions=Group("or", [Condition(SOURCE, "equal_to", "jpm")])))
    files = [("a.xlsx", _xlsx(40))]
    first = pipeline.process_files(memory_store, SYSTEM, files, settings=SETTINGS)
    again = pipeline.process_files(memory_store, SYSTEM, files, settings=SETTINGS)
    assert first.record.status == again.record.status == "success"
    assert (again.record.counts["published"], again.record.counts["excluded"]) == (0, 0)
    assert again.record.per_rule == {"No JPM": 0}
    assert len(history.published_colors(memory_store, SYSTEM)) == first.record.counts["published"]
