"""The upload buffer: validate before queueing, list, remove, clear, claim exactly once, release,
processed, history counts, the audit trail and the `buffer` CLI."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime, timedelta

import pytest

from core.access import SYSTEM, Actor
from core.audit import load_changes
from core.cli.buffer import add_parser, run
from core.config import load_settings
from core.errors import Conflict, FileProblem, NotFound, PermissionDenied
from core.intake import buffer
from core.runs.exports import write_csv
from core.schema import INPUT_COLUMNS
from storage import open_store
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
ANALYST = Actor("ann", "analyst")
VIEWER = Actor("vic", "viewer")
BAD = ("bad.csv", b"FOO,BAR\n1,2\n")


def _csv(n: int = 3, **columns) -> bytes:
    return write_csv(make_colors(n, **columns)[list(INPUT_COLUMNS)])


def _queue(store, *names: str) -> list[buffer.BufferEntry]:
    return buffer.add_files(store, ANALYST, [(name, _csv()) for name in names], SETTINGS, NOW)


def test_add_validates_and_queues_each_file_with_its_report(memory_store):
    entries = buffer.add_files(memory_store, ANALYST, [("a.csv", _csv(3)), ("b c.csv", _csv(2))],
                               SETTINGS, NOW)
    assert [(e.id, e.name, e.status, e.rows, e.quarantined) for e in entries] == [
        ("000001", "a.csv", "pending", 3, 0), ("000002", "b c.csv", "pending", 2, 0)]
    first = entries[0]
    assert (first.uploaded_by, first.uploaded_at) == ("ann", NOW.isoformat())
    assert first.summary == first.report.summary()
    assert first.quality_score == first.report.quality_score
    assert [e.blob for e in entries] == ["buffer/000001/a.csv", "buffer/000002/b_c.csv"]
    assert memory_store.get_blob("buffer/000002/b_c.csv") == _csv(2)
    assert buffer.list_entries(memory_store) == [
        buffer.BufferEntry.from_dict(e.to_dict()) for e in entries]
    changes = load_changes(memory_store, area="buffer")
    assert sorted(changes["ACTION"]) == ["file_queued", "file_queued"]
    assert set(changes["ACTOR"]) == {"ann"}


def test_a_row_problem_is_reported_and_the_file_still_queued(memory_store):
    [entry] = buffer.add_files(memory_store, ANALYST, [("a.csv", _csv(2, RANK=[3, 9]))],
                               SETTINGS, NOW)
    assert (entry.status, entry.rows, entry.quarantined) == ("pending", 2, 1)
    assert [p["column"] for p in entry.problems if p["blocking"]] == ["RANK"]
    assert buffer.stored_report(entry).rows_quarantined == 1


def test_an_unusable_file_refuses_the_whole_upload_and_is_kept_as_failed(memory_store):
    with pytest.raises(FileProblem, match=r"^bad\.csv: .*Nothing was queued") as caught:
        buffer.add_files(memory_store, ANALYST, [("good.csv", _csv()), BAD], SETTINGS, NOW)
    assert caught.value.file == "bad.csv"
    assert buffer.list_entries(memory_store, buffer.PENDING) == []
    [failed] = buffer.list_entries(memory_store)
    assert (failed.name, failed.status, failed.blob) == ("bad.csv", "failed", "")
    assert "does not look like a color file" in failed.error
    assert memory_store.list_blobs("buffer/") == []
    assert load_changes(memory_store, area="buffer")["ACTION"].tolist() == ["file_refused"]


def test_a_file_without_one_usable_row_is_refused(memory_store):
    with pytest.raises(FileProblem, match="none of its 2 rows is usable"):
        buffer.add_files(memory_store, ANALYST, [("a.csv", _csv(2, RANK=[9, 9]))], SETTINGS, NOW)
    assert buffer.list_entries(memory_store, buffer.PENDING) == []


def test_list_filters_by_status(memory_store):
    a, b, c = _queue(memory_store, "a.csv", "b.csv", "c.csv")
    buffer.remove(memory_store, ANALYST, b.id)
    buffer.claim_pending(memory_store, "run-7", [c.id])
    assert [e.id for e in buffer.list_entries(memory_store, "pending")] == [a.id]
    assert [e.id for e in buffer.list_entries(memory_store, ("claimed", "cancelled"))] == [
        b.id, c.id]


def test_remove_cancels_a_pending_file_and_keeps_its_bytes_for_a_revert(memory_store):
    [entry] = _queue(memory_store, "a.csv")
    removed = buffer.remove(memory_store, ANALYST, entry.id, now=NOW)
    assert removed.status == "cancelled"
    assert [e["status"] for e in removed.events] == ["pending", "cancelled"]
    assert memory_store.list_blobs("buffer/") == [entry.blob]
    assert buffer.get_entry(memory_store, entry.id).status == "cancelled"
    with pytest.raises(Conflict, match="is cancelled; only pending files can be removed"):
        buffer.remove(memory_store, ANALYST, entry.id)
    with pytest.raises(NotFound):
        buffer.remove(memory_store, ANALYST, "999999")


def test_a_claimed_file_cannot_be_removed(memory_store):
    [entry] = _queue(memory_store, "a.csv")
    buffer.claim_pending(memory_store, "run-3")
    with pytest.raises(Conflict, match="is claimed by run-3"):
        buffer.remove(memory_store, ANALYST, entry.id)


def test_clear_cancels_every_pending_file_only(memory_store):
    a, b, c = _queue(memory_store, "a.csv", "b.csv", "c.csv")
    buffer.claim_pending(memory_store, "run-1", [b.id])
    assert [e.id for e in buffer.clear(memory_store, ANALYST)] == [a.id, c.id]
    assert [e.status for e in buffer.list_entries(memory_store)] == [
        "cancelled", "claimed", "cancelled"]
    assert buffer.count_entries(memory_store) == {
        "pending": 0, "claimed": 1, "processed": 0, "failed": 0, "cancelled": 2,
        "total": 3, "rows": 9, "rows_processed": 0}


def test_claim_returns_the_bytes_and_a_second_claimer_gets_nothing(memory_store):
    a, b = _queue(memory_store, "a.csv", "b.csv")
    got = buffer.claim_pending(memory_store, "run-1", now=NOW)
    assert got == [(a.id, "a.csv", _csv()), (b.id, "b.csv", _csv())]
    assert buffer.claim_pending(memory_store, "run-2") == []
    entry = buffer.get_entry(memory_store, a.id)
    assert (entry.status, entry.claimed_by, entry.claimed_at) == (
        "claimed", "run-1", NOW.isoformat())


def test_two_stores_on_one_folder_claiming_at_once_get_each_file_exactly_once(tmp_path):
    first = open_store(str(tmp_path / "store"))
    ids = [e.id for e in _queue(first, *[f"f{i}.csv" for i in range(6)])]
    stores = [first, open_store(str(tmp_path / "store"))]
    start = threading.Barrier(2)
    got: dict[str, list[str]] = {}

    def claim(owner: str, store) -> None:
        start.wait()
        got[owner] = [entry_id for entry_id, _, _ in buffer.claim_pending(store, owner)]

    threads = [threading.Thread(target=claim, args=(f"run-{i}", s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got["run-0"] + got["run-1"]) == ids
    assert set(got["run-0"]).isdisjoint(got["run-1"])
    owners = {e.id: e.claimed_by for e in buffer.list_entries(first)}
    assert owners == {i: "run-0" if i in got["run-0"] else "run-1" for i in ids}


def test_release_returns_claims_to_pending_only_for_their_owner(memory_store):
    a, b = _queue(memory_store, "a.csv", "b.csv")
    buffer.claim_pending(memory_store, "run-1")
    assert buffer.release(memory_store, [a.id, b.id], owner="run-2") == []
    assert buffer.release(memory_store, [a.id], owner="run-1") == [a.id]
    released = buffer.get_entry(memory_store, a.id)
    assert (released.status, released.claimed_by) == ("pending", "")
    assert [e["status"] for e in released.events] == ["pending", "claimed", "pending"]


def test_processed_records_the_run_and_is_kept_in_history(memory_store):
    a, b = _queue(memory_store, "a.csv", "b.csv")
    buffer.claim_pending(memory_store, "run-1", [a.id])
    assert buffer.mark_processed(memory_store, [a.id, b.id], 12, owner="run-1", now=NOW) == [a.id]
    done = buffer.get_entry(memory_store, a.id)
    assert (done.status, done.run_id, done.processed_at) == ("processed", 12, NOW.isoformat())
    assert buffer.get_entry(memory_store, b.id).status == "pending"
    assert buffer.count_entries(memory_store)["processed"] == 1
    assert buffer.count_entries(memory_store)["rows_processed"] == 3


def test_mark_failed_keeps_the_reason(memory_store):
    [a] = _queue(memory_store, "a.csv")
    buffer.claim_pending(memory_store, "run-1")
    assert buffer.mark_failed(memory_store, [a.id], "boom", owner="run-1") == [a.id]
    assert (buffer.get_entry(memory_store, a.id).status,
            buffer.get_entry(memory_store, a.id).error) == ("failed", "boom")


def test_release_stale_frees_dead_claims_but_not_an_open_sessions(memory_store):
    a, b, c = _queue(memory_store, "a.csv", "b.csv", "c.csv")
    buffer.claim_pending(memory_store, "run-1", [a.id], now=NOW)
    buffer.claim_pending(memory_store, buffer.session_owner("ann"), [b.id, c.id], now=NOW)
    memory_store.put("sessions/ann", {"status": "open", "buffer_ids": [b.id]}, None)
    later = NOW + timedelta(hours=2)
    assert buffer.release_stale(memory_store, NOW - timedelta(minutes=1)) == []
    assert buffer.release_stale(memory_store, later, now=later) == [a.id, c.id]
    assert [e.status for e in buffer.list_entries(memory_store)] == [
        "pending", "claimed", "pending"]


def test_every_mutation_is_audited_with_the_real_actor(memory_store):
    [a] = _queue(memory_store, "a.csv")
    buffer.claim_pending(memory_store, buffer.session_owner("ann"), actor=ANALYST)
    buffer.release(memory_store, [a.id], actor=ANALYST)
    buffer.remove(memory_store, Actor("adam", "admin"), a.id)
    changes = load_changes(memory_store, area="buffer").sort_values("ACTION")
    assert list(zip(changes["ACTION"], changes["ACTOR"], strict=True)) == [
        ("file_claimed", "ann"), ("file_queued", "ann"), ("file_released", "ann"),
        ("file_removed", "adam")]


def test_a_viewer_may_not_touch_the_buffer(memory_store):
    [a] = _queue(memory_store, "a.csv")
    with pytest.raises(PermissionDenied):
        buffer.add_files(memory_store, VIEWER, [("b.csv", _csv())], SETTINGS, NOW)
    with pytest.raises(PermissionDenied):
        buffer.remove(memory_store, VIEWER, a.id)
    with pytest.raises(PermissionDenied):
        buffer.clear(memory_store, VIEWER)
    assert [e.status for e in buffer.list_entries(memory_store)] == ["pending"]


def _cli(store, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["buffer", *argv]), store, SETTINGS)


def test_cli_adds_lists_and_clears(memory_store, tmp_path, capsys):
    (tmp_path / "a.csv").write_bytes(_csv())
    assert _cli(memory_store, "add", str(tmp_path / "a.csv")) == 0
    out = capsys.readouterr().out
    assert out.startswith("Queued a.csv as 000001: 3 rows: 3 valid, 0 quarantined")
    assert _cli(memory_store, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "UPLOADED", "BY", "ROWS", "QUAR", "QUALITY", "FILE"]
    assert lines[1].split()[:2] == ["000001", "pending"]
    assert lines[1].split()[-4:] == ["3", "0", "100.0", "a.csv"]
    assert buffer.get_entry(memory_store, "000001").uploaded_by == SYSTEM.username
    assert _cli(memory_store, "clear") == 0
    assert capsys.readouterr().out == "Cancelled 1 pending file(s)\n"
    assert _cli(memory_store, "list") == 0
    assert capsys.readouterr().out == "The buffer is empty\n"
    assert _cli(memory_store, "list", "--all") == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["000001", "cancelled"]


def test_cli_refuses_an_unusable_file(memory_store, tmp_path):
    (tmp_path / "bad.csv").write_bytes(BAD[1])
    with pytest.raises(FileProblem, match="Nothing was queued"):
        _cli(memory_store, "add", str(tmp_path / "bad.csv"))
