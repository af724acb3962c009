"""Sources of an automated run: inbox folders and the upload buffer (the SQL source has
tests/unit/test_sql_source.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from core.access import SYSTEM
from core.config import load_settings
from core.errors import InvalidInput, UnreadableFile
from core.intake.sources import Collected, check_sources, collect_inputs, resolve_inbox
from core.intake.sql_source import SourceUnavailable
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv, write_xlsx
from core.schema import INPUT_COLUMNS
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)


def _xlsx(n: int = 2, **columns) -> bytes:
    return write_xlsx(make_colors(n, **columns)[list(INPUT_COLUMNS)])


def _tree(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.xlsx").write_bytes(_xlsx(2))
    (folder / "b.csv").write_bytes(write_csv(make_colors(3)[list(INPUT_COLUMNS)]))
    return folder


def _collect(store, sources, settings=SETTINGS, **kwargs) -> Collected:
    return collect_inputs(store, sources, settings, job_name="desk", now=NOW, **kwargs)


# -- inbox ---------------------------------------------------------------------------------------
def test_inbox_files_move_to_processed_with_the_run_id_after_a_published_run(memory_store, inbox):
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    assert [name for name, _ in collected.files] == ["a.xlsx", "b.csv"]
    assert collected.descriptions == [f"inbox {inbox}: 2 file(s) (a.xlsx, b.csv)"]

    result = pipeline.process_files(memory_store, SYSTEM, collected.files, settings=SETTINGS,
                                    kind=pipeline.AUTOMATED, trigger="scheduled")
    assert result.record.status == runs.SUCCESS
    assert collected.on_success(result.record.run_id) == []
    assert _tree(inbox) == ["processed/1-a.xlsx", "processed/1-b.csv"]
    assert collected.on_failure() == []  # settled once: a later call changes nothing
    assert _tree(inbox) == ["processed/1-a.xlsx", "processed/1-b.csv"]


def test_a_failed_run_leaves_readable_inbox_files_in_place_for_the_retry(memory_store, inbox):
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    assert collected.on_failure(RuntimeError("store went away")) == []
    assert _tree(inbox) == ["a.xlsx", "b.csv"]


def test_an_unreadable_file_moves_to_failed_with_its_reason_and_the_others_stay(memory_store,
                                                                                 inbox):
    (inbox / "broken.xlsx").write_bytes(b"not a workbook")
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    with pytest.raises(UnreadableFile) as failure:
        pipeline.process_files(memory_store, SYSTEM, collected.files, settings=SETTINGS,
                               kind=pipeline.AUTOMATED)
    assert collected.on_failure(failure.value) == []
    assert _tree(inbox) == ["a.xlsx", "b.csv", "failed/broken.xlsx", "failed/broken.xlsx.error.txt"]
    assert (inbox / "failed/broken.xlsx.error.txt").read_text() == f"{failure.value}\n"

    retry = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    assert [name for name, _ in retry.files] == ["a.xlsx", "b.csv"]


def test_inbox_takes_only_plain_color_files(memory_store, inbox):
    (inbox / "notes.txt").write_text("x")
    (inbox / ".hidden.csv").write_text("x")
    (inbox / "~$a.xlsx").write_text("x")
    (inbox / "sub.csv").mkdir()
    (inbox / "link.csv").symlink_to(inbox / "b.csv")
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    assert [name for name, _ in collected.files] == ["a.xlsx", "b.csv"]
    assert collected.warnings == [
        f"inbox {inbox}: skipped 'link.csv' (not a plain file with a usable name)",
        f"inbox {inbox}: skipped 'sub.csv' (not a plain file with a usable name)",
    ]


def test_a_file_younger_than_min_age_waits_for_the_next_run(memory_store, inbox):
    os.utime(inbox / "a.xlsx", (NOW.timestamp() - 60, NOW.timestamp() - 60))
    os.utime(inbox / "b.csv", (NOW.timestamp() - 2, NOW.timestamp() - 2))
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox), "min_age_s": 10}])
    assert [name for name, _ in collected.files] == ["a.xlsx"]


def test_a_file_changed_during_the_run_stays_in_the_inbox(memory_store, inbox):
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    (inbox / "b.csv").write_bytes(write_csv(make_colors(4)[list(INPUT_COLUMNS)]))
    assert collected.on_success(7) == [f"{inbox / 'b.csv'} changed during run 7: left in the inbox"]
    assert _tree(inbox) == ["b.csv", "processed/7-a.xlsx"]


def test_a_name_taken_in_processed_gets_a_suffix(memory_store, inbox):
    (inbox / "processed").mkdir()
    (inbox / "processed/3-a.xlsx").write_bytes(b"older")
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)}])
    collected.on_success(3)
    assert _tree(inbox) == ["processed/3-a-2.xlsx", "processed/3-a.xlsx", "processed/3-b.csv"]


def test_two_inboxes_with_the_same_file_name_give_unique_names(memory_store, inbox, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.xlsx").write_bytes(_xlsx(1))
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)},
                                        {"kind": "inbox", "path": str(other)}])
    assert [name for name, _ in collected.files] == ["a.xlsx", "b.csv", "a-2.xlsx"]
    collected.on_success(4)
    assert _tree(other) == ["processed/4-a.xlsx"]


@pytest.mark.parametrize("path", ["../outside", "inbox/../../etc", "/tmp/inbox/../etc", ""])
def test_inbox_paths_that_escape_are_refused(path, tmp_path):
    with pytest.raises(InvalidInput, match=r"^sources\[0\]\.path: "):
        check_sources([{"kind": "inbox", "path": path}], root=tmp_path)


def test_a_relative_inbox_stays_inside_the_project_even_through_a_link(tmp_path):
    project = tmp_path / "project"
    (project / "data/inbox").mkdir(parents=True)
    (project / "escape").symlink_to(tmp_path)
    assert resolve_inbox("data/inbox", root=project) == project / "data/inbox"
    with pytest.raises(InvalidInput, match="leads outside the project folder"):
        resolve_inbox("escape", root=project)


def test_a_missing_inbox_folder_fails_the_collection(memory_store, tmp_path):
    with pytest.raises(SourceUnavailable, match="does not exist or is not a folder"):
        _collect(memory_store, [{"kind": "inbox", "path": str(tmp_path / "nope")}])


# -- buffer --------------------------------------------------------------------------------------
@pytest.fixture
def fake_buffer(monkeypatch):
    """The real core.intake.buffer with its calls recorded and answered by stand-ins."""
    from core.intake import buffer

    calls: list[tuple] = []
    monkeypatch.setattr(buffer, "claim_pending", lambda store, owner: (
        calls.append(("claim", owner)) or [("e1", "up.xlsx", _xlsx(1)),
                                           ("e2", "bad.xlsx", b"not a workbook")]))
    monkeypatch.setattr(buffer, "mark_processed", lambda store, ids, run_id, owner, note=None:
                        calls.append(("processed", ids, run_id, owner)))
    monkeypatch.setattr(buffer, "mark_failed", lambda store, ids, error, owner:
                        calls.append(("failed", ids, owner)))
    monkeypatch.setattr(buffer, "release", lambda store, ids, owner:
                        calls.append(("release", ids, owner)))
    return calls


def test_buffer_files_are_claimed_and_marked_processed_with_the_run(memory_store, fake_buffer):
    collected = _collect(memory_store, [{"kind": "buffer"}])
    assert [name for name, _ in collected.files] == ["up.xlsx", "bad.xlsx"]
    assert collected.descriptions == ["buffer: 2 file(s) (up.xlsx, bad.xlsx)"]
    collected.on_success(12)
    assert fake_buffer == [("claim", "job:desk"), ("processed", ["e1", "e2"], 12, "job:desk")]


def test_a_failed_run_releases_its_buffer_files(memory_store, fake_buffer):
    collected = _collect(memory_store, [{"kind": "buffer"}])
    collected.on_failure(RuntimeError("boom"))
    assert fake_buffer == [("claim", "job:desk"), ("release", ["e1", "e2"], "job:desk")]


def test_an_unreadable_buffer_file_is_marked_failed_and_the_rest_released(memory_store,
                                                                           fake_buffer):
    collected = _collect(memory_store, [{"kind": "buffer"}])
    with pytest.raises(UnreadableFile) as failure:
        pipeline.prepare_files(memory_store, collected.files, SETTINGS)
    collected.on_failure(failure.value)
    assert fake_buffer == [("claim", "job:desk"), ("failed", ["e2"], "job:desk"),
                           ("release", ["e1"], "job:desk")]


def test_a_source_that_fails_releases_what_was_already_claimed(memory_store, fake_buffer,
                                                                tmp_path):
    with pytest.raises(SourceUnavailable):
        _collect(memory_store, [{"kind": "buffer"}, {"kind": "inbox", "path": str(tmp_path / "x")}])
    assert fake_buffer == [("claim", "job:desk"), ("release", ["e1", "e2"], "job:desk")]


def test_buffer_files_travel_through_the_real_buffer(memory_store):
    from core.intake import buffer

    buffer.add_files(memory_store, SYSTEM, [("up.xlsx", _xlsx(2))], settings=SETTINGS)
    collected = _collect(memory_store, [{"kind": "buffer"}])
    (entry,) = buffer.list_entries(memory_store)
    assert (entry.status, entry.claimed_by) == (buffer.CLAIMED, "job:desk")
    collected.on_failure(RuntimeError("boom"))
    assert buffer.get_entry(memory_store, entry.id).status == buffer.PENDING
    again = _collect(memory_store, [{"kind": "buffer"}])
    again.on_success(5)
    done = buffer.get_entry(memory_store, entry.id)
    assert (done.status, done.run_id) == (buffer.PROCESSED, 5)
