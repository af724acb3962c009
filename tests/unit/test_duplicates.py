"""The same colors are never published twice by accident (DOMAIN.md §1.5): colors and files already
published by a visible run are skipped and reported, whichever path they come by (Manual Color, the
buffer, an inbox, the CLI); identical rows count as a multiset; an admin may republish on purpose.
Real Parquet store, real DuckDB, the scheduler's run_once with a fixed clock."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.access import SYSTEM, Actor
from core.automation.jobs import Job, save_job
from core.automation.scheduler import run_once
from core.config import load_settings
from core.errors import PermissionDenied
from core.intake import buffer
from core.manual import actions as session_actions
from core.manual import edits, sessions
from core.reads.compaction import compact_colors
from core.reads.dashboard import DashboardFilters, dashboard_data
from core.reads.history import published_colors
from core.runs import records as runs
from core.runs.duplicates import COLOR_KEY, color_keys, run_notes
from core.runs.exports import write_csv
from core.runs.pipeline import prepare_files, process_files, publish_run
from core.schema import INPUT_COLUMNS, PX
from storage.run_tables import run_tables
from tests.factories import SAMPLE, make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
ANN = Actor("ann", "analyst")
ADMIN = Actor("ada", "admin")


def _csv(frame: pd.DataFrame) -> bytes:
    return write_csv(frame[list(INPUT_COLUMNS)])


def _save_sample_session(store, actor=ANN, key="save-1", **kwargs):
    sessions.open_session(store, actor, SETTINGS, NOW)
    sessions.add_files(store, actor, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS, now=NOW)
    return session_actions.save(store, actor, SETTINGS, idempotency_key=key, now=NOW, **kwargs)


def _latest_parents(store) -> int:
    data = dashboard_data(store, SYSTEM, DashboardFilters(latest_limit=1000), NOW)
    return len(data.latest_parents)


def _history(store) -> int:
    return len(published_colors(store, SYSTEM))


def test_the_sample_saved_in_manual_color_then_buffered_then_in_an_inbox_is_published_once(
        local_store, tmp_path):
    data = SAMPLE.read_bytes()
    first = _save_sample_session(local_store).record
    assert (first.run_id, first.counts["published"], _latest_parents(local_store)) == (1, 50, 10)

    [entry] = buffer.add_files(local_store, ANN, [(SAMPLE.name, data)], SETTINGS, now=NOW)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    save_job(local_store, SYSTEM, Job(id="", name="Desk", schedule="*/10 * * * *",
                                      timezone="UTC", sources=[{"kind": "buffer"},
                                                               {"kind": "inbox",
                                                                "path": str(inbox)}]), now=NOW)
    [second] = run_once(local_store, SETTINGS, NOW + timedelta(minutes=10, seconds=5),
                        owner="scheduler-a")
    assert (second.run_id, second.status, second.counts["read"], second.counts["published"]) == (
        2, runs.SUCCESS, 50, 0)
    assert second.already_published == {"count": 50, "first": [
        {"run_id": 1, "file": SAMPLE.name, "actor": "ann", "at": first.finished_at, "count": 50}]}
    assert run_notes(runs.get_run(local_store, 2)) == [
        f"50 colors skipped: already published in run 1 (file {SAMPLE.name}, by ann at "
        f"{first.finished_at[:16].replace('T', ' ')} UTC)"]
    sha = hashlib.sha256(data).hexdigest()
    assert [(f["name"], f["sha256"], f["rows"]) for f in second.files] == [(SAMPLE.name, sha, 50)]
    assert (_history(local_store), _latest_parents(local_store)) == (50, 10)
    [done] = buffer.list_entries(local_store)
    assert (done.id, done.status, done.run_id) == (entry.id, "processed", 2)

    (inbox / SAMPLE.name).write_bytes(data)  # byte-identical: skipped whole, never read
    [third] = run_once(local_store, SETTINGS, NOW + timedelta(minutes=20, seconds=5),
                       owner="scheduler-a")
    note = f"identical to {SAMPLE.name}, already published in run 2"
    assert (third.run_id, third.status, third.counts["read"], third.counts["published"]) == (
        3, runs.SUCCESS, 0, 0)
    assert third.files == [{"name": SAMPLE.name, "sha256": sha, "rows": 0, "skipped": note}]
    assert run_notes(third) == [f"file {SAMPLE.name} skipped: {note}"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [f"3-{SAMPLE.name}"]
    assert (_history(local_store), _latest_parents(local_store)) == (50, 10)


def test_a_buffered_file_identical_to_a_published_one_is_marked_with_the_note(local_store):
    data = _csv(make_colors(4))
    process_files(local_store, SYSTEM, [("desk.csv", data)], settings=SETTINGS, now=NOW)
    [entry] = buffer.add_files(local_store, ANN, [("again.csv", data)], SETTINGS, now=NOW)
    save_job(local_store, SYSTEM, Job(id="", name="Buffer", schedule="*/10 * * * *",
                                      timezone="UTC", sources=[{"kind": "buffer"}]), now=NOW)
    [run] = run_once(local_store, SETTINGS, NOW + timedelta(minutes=10, seconds=5), owner="s")
    assert run.files[0]["skipped"] == "identical to desk.csv, already published in run 1"
    [done] = buffer.list_entries(local_store)
    assert (done.id, done.status, done.run_id, done.events[-1]["note"]) == (
        entry.id, "processed", 2, "skipped: identical to desk.csv, already published in run 1")
    assert _history(local_store) == 4


def test_identical_rows_are_a_multiset_a_third_copy_publishes_exactly_one(local_store):
    row = make_colors(1)
    twice = _csv(pd.concat([row, row], ignore_index=True))
    first = process_files(local_store, SYSTEM, [("twice.csv", twice)], settings=SETTINGS, now=NOW)
    assert first.record.counts["published"] == 2
    assert first.published[COLOR_KEY].nunique() == 1

    thrice = _csv(pd.concat([row, row, row], ignore_index=True))
    again = process_files(local_store, SYSTEM, [("thrice.csv", thrice)], settings=SETTINGS,
                          now=NOW)
    assert again.record.counts["published"] == 1
    assert again.record.already_published["count"] == 2
    assert [(p["run_id"], p["file"], p["count"]) for p in
            again.record.already_published["first"]] == [(1, "twice.csv", 2)]
    assert _history(local_store) == 3


def test_an_edited_manual_color_row_has_a_new_identity_and_publishes(local_store):
    _save_sample_session(local_store)
    sessions.open_session(local_store, ANN, SETTINGS, NOW)
    sessions.add_files(local_store, ANN, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS, now=NOW)
    row = sessions.preview(local_store, ANN, SETTINGS).ranked.iloc[3]
    edits.edit_cell(local_store, ANN, row["COLOR_ID"], "BID", "55.5", settings=SETTINGS)
    view = sessions.preview(local_store, ANN, SETTINGS)
    assert view.already.count == 49
    result = session_actions.save(local_store, ANN, SETTINGS, idempotency_key="save-2", now=NOW)
    assert result.record.counts["published"] == 1
    assert result.published[PX].tolist() == [55.5]
    assert _history(local_store) == 51


def test_a_removed_run_does_not_count_as_published(local_store):
    data = _csv(make_colors(5))
    first = process_files(local_store, SYSTEM, [("a.csv", data)], settings=SETTINGS, now=NOW)
    first.record.status = runs.REMOVED
    runs.save_run(local_store, first.record)
    runs.bump_data_version(local_store)
    again = process_files(local_store, SYSTEM, [("a.csv", data)], settings=SETTINGS, now=NOW)
    assert (again.record.counts["published"], again.record.already_published) == (5, {})
    assert "skipped" not in again.record.files[0]


def test_an_admin_republishes_on_purpose_and_the_run_records_it(local_store):
    data = _csv(make_colors(6))
    process_files(local_store, SYSTEM, [("a.csv", data)], settings=SETTINGS, now=NOW)
    again = process_files(local_store, ADMIN, [("a.csv", data)], settings=SETTINGS, now=NOW,
                          republish=True)
    record = runs.get_run(local_store, again.record.run_id)
    assert (record.republished, record.counts["published"],
            record.already_published["count"]) == (True, 6, 6)
    assert run_notes(record)[0].startswith("6 colors published again: already published in run 1")
    assert _history(local_store) == 12


def test_an_analyst_cannot_republish_and_nothing_changes(local_store):
    _save_sample_session(local_store)
    sessions.open_session(local_store, ANN, SETTINGS, NOW)
    sessions.add_files(local_store, ANN, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS, now=NOW)
    with pytest.raises(PermissionDenied):
        session_actions.save(local_store, ANN, SETTINGS, idempotency_key="save-2", now=NOW,
                             republish=True)
    with pytest.raises(PermissionDenied):
        process_files(local_store, ANN, [(SAMPLE.name, SAMPLE.read_bytes())], settings=SETTINGS,
                      republish=True)
    assert [r.run_id for r in runs.load_runs(local_store)] == [1]
    assert sessions.load_session(local_store, ANN).status == sessions.OPEN
    assert _history(local_store) == 50


def test_an_admin_republishes_from_a_manual_color_save(local_store):
    _save_sample_session(local_store)
    result = _save_sample_session(local_store, ADMIN, key="save-2", republish=True)
    assert (result.record.republished, result.record.counts["published"],
            result.record.already_published["count"]) == (True, 50, 50)


def test_a_compacted_history_and_runs_from_before_color_key_still_count(local_store):
    frame = make_colors(4)
    first = process_files(local_store, SYSTEM, [("a.csv", _csv(frame))], settings=SETTINGS,
                          now=NOW)
    # Run 1 as an older version wrote it: no COLOR_KEY column.
    tables = run_tables(local_store)
    old = tables.read(runs.COLORS_TABLE, [1]).drop(columns=[COLOR_KEY])
    tables.remove_run(1)
    tables.append_run(1, {runs.COLORS_TABLE: old})
    runs.bump_data_version(local_store)
    more = make_colors(2, PX=[91.0, 92.0])
    second = process_files(local_store, SYSTEM, [("b.csv", _csv(pd.concat([frame, more])))],
                           settings=SETTINGS, now=NOW)
    assert (second.record.counts["published"], second.record.already_published["count"]) == (2, 4)
    assert compact_colors(local_store, force=True).done
    third = process_files(local_store, SYSTEM, [("c.csv", _csv(pd.concat([more, frame])))],
                          settings=SETTINGS, now=NOW)
    assert (third.record.counts["published"], third.record.already_published["count"]) == (0, 6)
    assert sorted(color_keys(first.published)) == sorted(first.published[COLOR_KEY])


def test_the_cli_skips_a_file_already_published_and_republishes_on_request(tmp_path, monkeypatch,
                                                                          capsys):
    from core.__main__ import main
    from storage import open_store

    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "store"))
    assert main(["process", str(SAMPLE)]) == 0
    assert main(["process", str(SAMPLE)]) == 0
    printed = capsys.readouterr().out
    assert "published 0 (0 parents, 0 children)" in printed
    assert (f"file {SAMPLE.name} skipped: identical to {SAMPLE.name}, already published in run 1"
            in printed)
    assert main(["process", str(SAMPLE), "--republish"]) == 0
    printed = capsys.readouterr().out
    assert "published 50 (10 parents, 40 children)" in printed
    assert "50 colors published again: already published in run 1 (file " in printed
    store = open_store(str(tmp_path / "store"))
    assert [(r.run_id, r.republished, r.counts["published"]) for r in runs.load_runs(store)] == [
        (3, True, 50), (2, False, 0), (1, False, 50)]


def test_the_keys_hashed_while_validating_are_those_of_the_valid_rows_in_order(local_store):
    frame = make_colors(6, PX=[101.0, 102.0, 103.0, 104.0, 105.0, 106.0])
    frame.loc[[1, 4], "CUSIP"] = ["BAD", ""]  # quarantined: the keys of the others close ranks
    files = [("a.csv", _csv(frame)), ("b.csv", _csv(frame.iloc[::-1]))]
    prepared = prepare_files(local_store, files, SETTINGS)
    assert len(prepared.valid) == 8
    assert prepared.keys is not None
    assert prepared.keys.tolist() == color_keys(prepared.valid).tolist()
    result = publish_run(local_store, ANN, prepared, settings=SETTINGS, rules=[], now=NOW)
    assert result.published[COLOR_KEY].tolist() == color_keys(result.published).tolist()
    assert result.published[COLOR_KEY].nunique() == 4  # each file holds the same four colors
