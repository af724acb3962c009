"""Moving a desk (`python -m core store copy --to URL`): every state document, blob, table and
run arrives equal, derived data is rebuilt rather than copied, the source is never changed, a
non-empty target is refused, and a copy that does not match its source is caught and named."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from core import audit_chain, catalog
from core.__main__ import main
from core.access import SYSTEM, VIEWER, Actor
from core.cli.demo import generate_colors, load_demo
from core.compliance.row_checksum import rows_checksum
from core.compliance.store_copy import MARKER_KEY, copy_store, shown_url, unfinished_copy
from core.compliance.store_inventory import compare, take_inventory
from core.config import load_settings
from core.errors import Conflict, PermissionDenied
from core.identity.users import create_first_admin
from core.intake import buffer
from core.reads import history
from core.reads.compaction import compact_colors
from core.rules.exclusion import Condition, Group, Rule, save_rule
from core.runs.exports import write_csv
from core.schema import INPUT_COLUMNS, RUN_ID, SOURCE
from storage import open_store
from storage.run_tables import RUN_TABLES, run_tables

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def _desk(store: Any) -> Any:
    """A small desk: two demo runs (rows, excluded and quarantined rows, output workbooks, a
    rule), an admin, a buffered file (a blob), the audit log; and derived data beside it (the
    compacted colors, a scheduler heartbeat) that a copy leaves behind."""
    settings = load_settings({}, {})
    nomura = Group("and", [Condition(SOURCE, "equal_to", "NOMURA")])
    save_rule(store, SYSTEM, Rule("No Nomura", nomura), now=NOW)
    load_demo(store, settings, days=2, rows_per_day=40, now=NOW)
    create_first_admin(store, "ayesha", "Ayesha", "ayesha@example.com", "correct horse battery 1",
                       now=NOW)
    data = write_csv(generate_colors(6, seed=3, date="2026-03-13")[list(INPUT_COLUMNS)])
    buffer.add_files(store, SYSTEM, [("noon.csv", data)], settings, now=NOW)
    compact_colors(store, force=True, now=NOW)
    store.put(catalog.HEARTBEAT.key, {"at": NOW.isoformat()}, expected_version=None)
    return store


def _chain(store: Any) -> tuple[int, str]:
    verdict = audit_chain.verify(store)
    assert (verdict.ok, verdict.problem) == (True, "")
    return verdict.entries, verdict.head_hash


def _same_state(source: Any, target: Any) -> None:
    """Every state document, blob, table partition and run's rows of the source is on the target,
    equal (read and compared directly, not through the checksums under test)."""
    docs = [k for k in source.list("") if catalog.entry_for(k).kind == catalog.STATE]
    assert [k for k in target.list("") if k in docs] == docs
    assert [target.get(k)[0] for k in docs] == [source.get(k)[0] for k in docs]
    assert target.list_blobs("") == source.list_blobs("")
    assert [target.get_blob(k) for k in target.list_blobs("")] == [
        source.get_blob(k) for k in source.list_blobs("")]
    for table in (catalog.AUDIT.key,):
        assert target.partitions(table) == source.partitions(table)
        for partition in source.partitions(table):
            pd.testing.assert_frame_equal(target.scan(table, [partition]),
                                          source.scan(table, [partition]))
    # the audit trail's hash chain holds on the target, with the source's head
    chain = audit_chain.verify(target)
    assert (chain.ok, chain.entries, chain.head_hash) == (True, *_chain(source))
    theirs, ours = run_tables(source), run_tables(target)
    for table in RUN_TABLES:
        assert ours.runs(table) == theirs.runs(table)
        for run in theirs.runs(table):
            pd.testing.assert_frame_equal(ours.read(table, [run]), theirs.read(table, [run]))


def test_a_demo_desk_copied_from_memory_to_a_folder_arrives_whole_and_the_source_is_untouched(
        local_store):
    source = _desk(open_store("memory://desk"))
    before = take_inventory(source)
    lines: list[str] = []

    report = copy_store(SYSTEM, source, local_store, progress=lines.append, now=NOW)

    assert (report.verified, report.problems, report.unknown) == (True, [], [])
    assert take_inventory(source) == before  # the source was only read
    _same_state(source, local_store)
    runs = run_tables(source).runs(catalog.COLORS.key)
    assert runs == [1, 2]
    assert (report.documents, report.blobs, report.runs) == (
        before.count("document"), len(source.list_blobs("")), 2)
    assert report.rows == before.size("table", "run")
    assert report.bytes == before.size("document", "blob")
    assert [b.split("/")[0] for b in source.list_blobs("")] == ["buffer", "outputs", "outputs"]
    # derived data was not copied; compaction was rebuilt on arrival, the heartbeat comes back
    # when a scheduler runs; the marker is gone
    assert local_store.list("scheduler/") == []
    assert unfinished_copy(local_store) is None
    assert report.rebuilt.startswith("compaction")
    # a search on the target answers as on the source
    ours = history.published_colors(local_store, SYSTEM).sort_values([RUN_ID, "MESSAGE_ID"])
    theirs = history.published_colors(source, SYSTEM).sort_values([RUN_ID, "MESSAGE_ID"])
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True))
    assert lines[0] == "copying memory://desk → " + local_store.url + (
        " (marked incomplete until verified)")
    assert lines[-4:] == ["run 1: 25 colors, 13 excluded, 2 quarantined",
                          "run 2: 38 colors, 2 quarantined",
                          "reading the target back to verify it ...",
                          "rebuilding derived data (compaction) ..."]


def test_a_folder_copied_to_s3_arrives_whole(local_store, s3_store):
    source = _desk(local_store)
    before = take_inventory(source)

    report = copy_store(SYSTEM, source, s3_store, now=NOW)

    assert (report.verified, report.problems) == (True, [])
    assert take_inventory(source) == before
    assert compare(before, take_inventory(s3_store)) == []
    _same_state(source, s3_store)


def test_a_target_holding_anything_is_refused_and_left_as_it_was(local_store):
    source = _desk(open_store("memory://desk"))
    local_store.put("rules/r1", {"name": "kept"}, expected_version=None)

    with pytest.raises(Conflict) as refused:
        copy_store(SYSTEM, source, local_store, now=NOW)

    assert str(refused.value) == (
        f"the target {local_store.url} already holds state (1 documents): store copy only fills "
        "an empty store; nothing was written")
    assert local_store.list("") == ["rules/r1"]


def test_only_an_admin_may_copy_a_store(local_store):
    with pytest.raises(PermissionDenied):
        copy_store(Actor("vic", VIEWER), open_store("memory://a"), local_store)
    assert local_store.list("") == []


class CorruptingStore:
    """A real store that flips a byte of one blob as it is written (a broken medium or network)."""

    def __init__(self, inner: Any, key: str) -> None:
        self._inner, self._key = inner, key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_blob(self, key: str, data: bytes) -> None:
        if key == self._key:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self._inner.put_blob(key, data)


def test_a_copy_that_does_not_match_names_the_blob_and_stays_marked_incomplete(local_store):
    source = _desk(open_store("memory://desk"))
    spoiled = source.list_blobs("outputs/")[0]

    report = copy_store(SYSTEM, source, CorruptingStore(local_store, spoiled), now=NOW)

    assert report.verified is False
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"blob {spoiled}: checksum differs (source ")
    marker = unfinished_copy(local_store)
    assert (marker["state"], marker["problems"]) == ("failed", report.problems)
    with pytest.raises(Conflict, match="memory://desk started at 2026-03-16T09:00:00\\+00:00 "
                                       "that failed its check: empty it and copy again"):
        copy_store(SYSTEM, source, local_store, now=NOW)


def test_an_altered_or_missing_item_on_a_target_is_named(local_store):
    source = _desk(open_store("memory://desk"))
    assert copy_store(SYSTEM, source, local_store, now=NOW).verified
    blob = local_store.list_blobs("buffer/")[0]
    local_store.put_blob(blob, local_store.get_blob(blob) + b"x")
    run_tables(local_store).remove_run(1)
    local_store.delete("users/ayesha")

    problems = compare(take_inventory(source), take_inventory(local_store))

    size = len(source.get_blob(blob))
    assert problems == [
        f"blob {blob}: {size} bytes in the source, {size + 1} in the target",
        "document users/ayesha: missing from the target",
        "rows of run 1 in table colors: missing from the target",
        "rows of run 1 in table excluded: missing from the target",
        "rows of run 1 in table quarantined: missing from the target",
    ]


class FailingStore:
    """A real store whose medium goes away when the first run's colors are written."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def append(self, table: str, frame: pd.DataFrame, partition: str) -> None:
        if table == catalog.COLORS.key:
            raise OSError("disk gone")
        self._inner.append(table, frame, partition)


def test_a_copy_cut_short_leaves_the_target_marked_and_refused(local_store):
    source = _desk(open_store("memory://desk"))

    with pytest.raises(OSError, match="disk gone"):
        copy_store(SYSTEM, source, FailingStore(local_store), now=NOW)

    assert unfinished_copy(local_store)["state"] == "copying"
    with pytest.raises(Conflict, match="that did not finish: empty it and copy again"):
        copy_store(SYSTEM, source, local_store, now=NOW)


def test_init_warns_about_a_copy_that_did_not_finish_and_loads_no_demo_into_it(
        local_store, monkeypatch, capsys):
    local_store.put(MARKER_KEY, {"state": "copying", "source": "data",
                                 "started_at": NOW.isoformat()}, expected_version=None)
    monkeypatch.setenv("MARKETPULSE_STORE_URL", local_store.url)

    assert main(["init"]) == 0

    assert capsys.readouterr().err == (
        f"warning: {local_store.url} holds a copy from data started at 2026-03-16T09:00:00+00:00 "
        "that did not finish: empty it and copy again\n")
    assert local_store.list("runs/") == []


def test_rows_checksum_ignores_order_and_backend_typing_but_not_values():
    frame = pd.DataFrame({"A": pd.array([1, 2, None], dtype="Int64"),
                          "B": pd.array(["x", None, "z"], dtype="string"),
                          "T": pd.to_datetime(["2026-03-13", None, "2026-03-14"]),
                          "F": pd.array([1.0, 2.5, None], dtype="Float64"),
                          "K": pd.array([True, False, None], dtype="boolean"),
                          "U": pd.array(["é", "a\x1fb", None], dtype="string")})
    untyped = pd.DataFrame({"K": [1, 0, None], "F": [1, 2.5, float("nan")],
                            "T": [datetime(2026, 3, 13, tzinfo=UTC), None,
                                  pd.Timestamp("2026-03-14").date()],
                            "B": ["x", None, "z"], "A": [1.0, 2.0, None],
                            "U": pd.Series(["é", "a\x1fb", None], dtype=object)}).iloc[[2, 0, 1]]
    assert rows_checksum(untyped) == rows_checksum(frame)
    # as a SQL driver may give them: Python objects (Decimal, int, str) in untyped columns
    drivers = untyped.astype(object).assign(
        F=pd.Series([None, Decimal(1), Decimal("2.5")], dtype=object, index=untyped.index))
    assert rows_checksum(drivers) == rows_checksum(frame)
    changed = frame.copy()
    changed.loc[1, "F"] = 2.25
    assert rows_checksum(changed) != rows_checksum(frame)
    assert rows_checksum(frame.rename(columns={"A": "Z"})) != rows_checksum(frame)
    assert rows_checksum(pd.concat([frame, frame.iloc[[0]]])) != rows_checksum(frame)


def test_a_password_in_a_store_url_is_never_shown():
    assert shown_url("postgresql+psycopg://mp:s3cret@db:5432/desk") == (
        "postgresql+psycopg://mp:***@db:5432/desk")
    assert shown_url("s3://bucket/desk") == "s3://bucket/desk"


def test_the_cli_copies_the_configured_store_with_progress_and_refuses_a_second_time(
        tmp_path, monkeypatch, capsys):
    source = _desk(open_store(str(tmp_path / "source")))
    before = take_inventory(source)
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "source"))
    target = str(tmp_path / "target")
    target_url = open_store(target).url

    assert main(["store", "copy", "--to", target]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"copying {source.url} → {target_url} (marked incomplete until verified)"
    assert "run 2: 38 colors, 2 quarantined" in out
    summary = next(line for line in out if line.startswith("Copied and verified: "))
    assert summary.startswith(f"Copied and verified: {before.count('document')} documents, "
                              f"3 blobs, 1 tables ({before.count('table')} partitions), 2 runs, "
                              f"{before.size('table', 'run')} rows, "
                              f"{before.size('document', 'blob')} bytes of documents and blobs, "
                              "in ")
    assert out[-1] == (f"Point MARKETPULSE_STORE_URL at {target_url} to use it; {source.url} is "
                       "unchanged")
    assert take_inventory(open_store(str(tmp_path / "source"))) == before
    assert compare(before, take_inventory(open_store(target))) == []

    assert main(["store", "copy", "--to", target]) == 2
    refused = capsys.readouterr().err
    assert refused.startswith(f"error: the target {target_url} already holds state (")


@pytest.mark.parametrize("backend", ["sqlite_store", "postgres_store"])
def test_a_folder_copied_to_a_sql_store_arrives_whole(local_store, backend, request):
    target = request.getfixturevalue(backend)
    source = _desk(local_store)
    before = take_inventory(source)

    report = copy_store(SYSTEM, source, target, now=NOW)

    assert (report.verified, report.problems) == (True, [])
    assert take_inventory(source) == before
    _same_state(source, target)


def test_a_postgres_store_copied_to_a_folder_arrives_whole(postgres_store, local_store):
    source = _desk(postgres_store)
    before = take_inventory(source)

    report = copy_store(SYSTEM, source, local_store, now=NOW)

    assert (report.verified, report.problems) == (True, [])
    assert take_inventory(source) == before
    _same_state(source, local_store)
