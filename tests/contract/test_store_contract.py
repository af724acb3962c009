"""The Store contract (DESIGN.md §3): documents, tables and blobs behave the same on every backend.

Tests that take `store` run on every backend; tests that take `local_store` check what only the
disk backend promises (layout, crash safety, two processes sharing one folder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from storage import (
    ANY_VERSION,
    InvalidKey,
    ObjectNotFound,
    Store,
    StoreUnavailable,
    WriteConflict,
    get_many,
    open_store,
)
from storage.base import Blobs, Documents, PartitionedStore, Tables
from storage.run_tables import run_tables

ROOT = Path(__file__).resolve().parents[2]

INVALID_KEYS = ["../x", "/abs", "", "a//b", "a/../b", "./a", "a/", "a b", "a\\b", "a~b"]


def make_rows(cusips: list[str], dates: list[str], start: int = 0) -> pd.DataFrame:
    """Rows in every dtype the product stores, with a missing value in each nullable column."""
    n = len(cusips)
    seq = list(range(start, start + n))
    return pd.DataFrame(
        {
            "MESSAGE_ID": pd.array([str(17734072432755600 + i) for i in seq], dtype="string"),
            "CUSIP": pd.array(cusips, dtype="string"),
            "DATE": pd.to_datetime(dates).astype("datetime64[us]"),
            "PX": pd.array([None if i % 3 == 2 else 100 - i / 4 for i in seq], dtype="Float64"),
            "RANK": pd.array([None if i % 4 == 3 else 1 + i % 6 for i in seq], dtype="Int64"),
            "IS_PARENT": pd.array([None if i % 5 == 4 else i % 2 == 0 for i in seq], "boolean"),
            "PROCESSED_AT": pd.to_datetime(
                [f"2026-03-13T10:{i % 60:02d}:00Z" for i in seq]
            ).astype("datetime64[us, UTC]"),
            "TICKER": pd.array([None if i % 2 else f"DEAL {i}A" for i in seq], dtype="string"),
        }
    )


EXPECTED_DTYPES = {
    "MESSAGE_ID": "string",
    "CUSIP": "string",
    "DATE": "datetime64[us]",
    "PX": "Float64",
    "RANK": "Int64",
    "IS_PARENT": "boolean",
    "PROCESSED_AT": "datetime64[us, UTC]",
    "TICKER": "string",
}


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("MESSAGE_ID", kind="stable").reset_index(drop=True)


def dtypes_of(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in frame.dtypes.items()}


JAN = make_rows(["C", "A", "B", "A"], ["2026-01-05", "2026-01-07", "2026-01-01", "2026-01-02"])
FEB = make_rows(["B", "B"], ["2026-02-03", "2026-02-01"], start=10)


# -- documents ---------------------------------------------------------------------------------
def test_put_then_get_returns_the_value_and_its_version(store: Store):
    version = store.put("settings/app", {"theme": "dark"}, None)
    assert isinstance(version, str)
    assert store.get("settings/app") == ({"theme": "dark"}, version)


def test_every_put_returns_a_new_version_that_get_reports(store: Store):
    v1 = store.put("jobs/j1", 1, None)
    v2 = store.put("jobs/j1", 2, v1)
    v3 = store.put("jobs/j1", 3, v2)
    assert len({v1, v2, v3}) == 3
    assert store.get("jobs/j1") == (3, v3)


def test_put_expecting_none_only_creates(store: Store):
    v1 = store.put("users/ann", {"role": "admin"}, None)
    with pytest.raises(WriteConflict) as raised:
        store.put("users/ann", {"role": "viewer"}, None)
    assert (raised.value.key, raised.value.expected, raised.value.actual) == ("users/ann", None, v1)
    assert store.get("users/ann") == ({"role": "admin"}, v1)


def test_a_stale_version_conflicts_and_writes_nothing(store: Store):
    v1 = store.put("rules/r1", {"n": 1}, None)
    v2 = store.put("rules/r1", {"n": 2}, v1)
    with pytest.raises(WriteConflict) as raised:
        store.put("rules/r1", {"n": 3}, v1)
    assert (raised.value.expected, raised.value.actual) == (v1, v2)
    assert store.get("rules/r1") == ({"n": 2}, v2)


def test_expecting_a_version_of_a_missing_document_conflicts(store: Store):
    with pytest.raises(WriteConflict) as raised:
        store.put("rules/ghost", {"n": 1}, "1")
    assert (raised.value.expected, raised.value.actual) == ("1", None)
    assert store.list() == []


def test_any_version_writes_whether_or_not_the_document_exists(store: Store):
    v1 = store.put("heartbeat", {"beat": 1}, ANY_VERSION)
    v2 = store.put("heartbeat", {"beat": 2}, ANY_VERSION)
    assert v1 != v2
    assert store.get("heartbeat") == ({"beat": 2}, v2)


def test_expected_version_must_be_a_string(store: Store):
    store.put("k", 1, None)
    with pytest.raises(TypeError, match="expected_version"):
        store.put("k", 2, 1)  # type: ignore[arg-type]  # the mistake under test
    assert store.get("k")[0] == 1


def test_get_of_a_missing_document_raises_object_not_found(store: Store):
    with pytest.raises(ObjectNotFound) as raised:
        store.get("nope/never")
    assert raised.value.key == "nope/never"


def test_delete_removes_the_document_and_it_can_be_created_again(store: Store):
    v1 = store.put("sessions/s1", [1, 2], None)
    store.delete("sessions/s1", v1)
    with pytest.raises(ObjectNotFound):
        store.get("sessions/s1")
    assert store.list() == []
    v2 = store.put("sessions/s1", [3], None)
    assert store.get("sessions/s1") == ([3], v2)


def test_delete_of_a_missing_document_raises_object_not_found(store: Store):
    with pytest.raises(ObjectNotFound) as raised:
        store.delete("sessions/none")
    assert raised.value.key == "sessions/none"


def test_delete_with_a_stale_version_conflicts_and_keeps_the_document(store: Store):
    v1 = store.put("buffer/q", {"files": []}, None)
    v2 = store.put("buffer/q", {"files": ["a.xlsx"]}, v1)
    with pytest.raises(WriteConflict):
        store.delete("buffer/q", v1)
    assert store.get("buffer/q") == ({"files": ["a.xlsx"]}, v2)
    store.delete("buffer/q")  # ANY_VERSION by default
    assert store.list() == []


def test_list_returns_keys_starting_with_the_prefix_sorted(store: Store):
    for key in ["jobs/b", "users/zed", "jobs/a", "jobs2", "jobs/sub/c", "audit"]:
        store.put(key, key, None)
    assert store.list() == ["audit", "jobs/a", "jobs/b", "jobs/sub/c", "jobs2", "users/zed"]
    assert store.list("jobs/") == ["jobs/a", "jobs/b", "jobs/sub/c"]
    assert store.list("jobs") == ["jobs/a", "jobs/b", "jobs/sub/c", "jobs2"]
    assert store.list("jobs/sub/") == ["jobs/sub/c"]
    assert store.list("jobs/a.js") == []
    assert store.list("nothing/") == []


def test_get_many_returns_what_exists_with_the_versions_get_reports(store: Store):
    versions = {key: store.put(key, {"n": i}, None) for i, key in enumerate(
        [f"runs/{n:08d}" for n in range(40)])}
    store.delete("runs/00000007")
    wanted = [*versions, "runs/missing"]
    found = get_many(store, wanted)
    assert sorted(found) == sorted(k for k in versions if k != "runs/00000007")
    assert all(found[k] == ({"n": int(k[-2:])}, versions[k]) for k in found)
    assert get_many(store, []) == {}


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_unsafe_keys_are_rejected_everywhere(store: Store, key: str):
    with pytest.raises(InvalidKey):
        store.get(key)
    with pytest.raises(InvalidKey):
        store.put(key, 1, None)
    with pytest.raises(InvalidKey):
        store.delete(key)
    with pytest.raises(InvalidKey):
        store.put_blob(key, b"x")
    with pytest.raises(InvalidKey):
        store.get_blob(key)
    with pytest.raises(InvalidKey):
        store.delete_blob(key)
    assert (store.list(), store.list_blobs()) == ([], [])


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//b", "a/../"])
def test_unsafe_prefixes_are_rejected(store: Store, prefix: str):
    with pytest.raises(InvalidKey):
        store.list(prefix)
    with pytest.raises(InvalidKey):
        store.list_blobs(prefix)


def test_values_round_trip_as_json(store: Store):
    value = {
        "name": "Règle für CLO — 2.0_Mezz ✓",
        "nested": {"list": [1, 2.5, None, True, False, "x"], "empty": {}, "none": None},
        "big": 17734072432755618,
        "tuple": (1, 2),
    }
    store.put("rules/unicode", value, None)
    assert store.get("rules/unicode")[0] == {**value, "tuple": [1, 2]}


@pytest.mark.parametrize("value", [{1, 2}, {"when": pd.Timestamp("2026-01-01")}, float("nan")])
def test_a_value_that_is_not_json_is_rejected_and_nothing_written(store: Store, value: Any):
    with pytest.raises((TypeError, ValueError), match="not JSON"):
        store.put("bad", value, None)
    assert store.list() == []


def test_mutating_values_never_changes_the_stored_document(store: Store):
    value = {"sectors": ["2.0_Mezz"], "limits": {"px": 5}}
    version = store.put("users/bob", value, None)
    value["sectors"].append("A_BSL")
    read, _ = store.get("users/bob")
    read["limits"]["px"] = 99
    assert store.get("users/bob") == ({"sectors": ["2.0_Mezz"], "limits": {"px": 5}}, version)


def test_concurrent_increments_from_threads_lose_nothing(store: Store):
    store.put("counter", 0, None)

    def increment(times: int) -> None:
        for _ in range(times):
            while True:
                value, version = store.get("counter")
                try:
                    store.put("counter", value + 1, version)
                    break
                except WriteConflict:
                    continue

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(increment, [25] * 4))
    assert store.get("counter")[0] == 100


# -- tables ------------------------------------------------------------------------------------
def test_append_then_scan_round_trips_rows_and_dtypes(store: Store):
    store.append("colors", JAN, "2026-01")
    scanned = store.scan("colors")
    assert dtypes_of(scanned) == EXPECTED_DTYPES
    assert_frame_equal(by_id(scanned), by_id(JAN))


def test_rows_of_one_append_keep_their_order(store: Store):
    rows = make_rows(["C", "A", "B", "A", "A"], ["2026-01-05", "2026-01-07", "2026-01-01",
                                                 "2026-01-02", "2026-01-07"])
    store.append("colors", rows, "2026-01")
    assert_frame_equal(store.scan("colors"), rows)


def test_tables_lists_the_tables_holding_rows(store: Store):
    assert store.tables() == []
    store.append("colors", JAN, "2026-01")
    store.append("audit", FEB, "2026-02")
    store.append("excluded", JAN.iloc[:0], "2026-01")
    assert store.tables() == ["audit", "colors"]
    store.delete_partition("audit", "2026-02")
    assert store.tables() == ["colors"]


# -- local backend only ------------------------------------------------------------------------
def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_local_layout_is_json_envelopes_parquet_parts_and_plain_files(local_store: Any):
    root: Path = local_store.root
    version = local_store.put("jobs/nightly", {"cron": "0 6 * * *"}, None)
    local_store.append("colors", JAN, "2026-01")
    local_store.put_blob("uploads/a.csv", b"x,y\n")
    assert (root / "docs/jobs/nightly.json").read_text(encoding="utf-8") == (
        f'{{"version": {version}, "value": {{"cron": "0 6 * * *"}}}}\n'
    )
    assert (root / "blobs/uploads/a.csv").read_bytes() == b"x,y\n"
    [part] = (root / "tables/colors/2026-01").iterdir()
    assert re.fullmatch(r"part-\d{20}-[0-9a-f]{32}\.parquet", part.name)
    meta = pq.ParquetFile(part).metadata
    assert meta.row_group(0).column(1).compression == "ZSTD"
    cusip = meta.row_group(0).column(1).statistics
    assert (meta.schema.column(1).name, cusip.min, cusip.max) == ("CUSIP", "A", "C")
    assert files_under(root) == [
        ".lock", "blobs/uploads/a.csv", "docs/jobs/nightly.json",
        f"tables/colors/2026-01/{part.name}",
    ]


def test_local_parts_dictionary_encode_only_the_columns_that_repeat(local_store: Any):
    rows = pd.DataFrame({"CUSIP": pd.array(["A", "B"] * 50, dtype="string"),
                         "COLOR_KEY": pd.array([f"{i:032x}" for i in range(100)], dtype="string")})
    local_store.append("colors", rows, "run=00000001")
    [part] = (local_store.root / "tables/colors/run=00000001").iterdir()
    group = pq.ParquetFile(part).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(2)}
    assert "RLE_DICTIONARY" in encodings["CUSIP"]
    assert "RLE_DICTIONARY" not in encodings["COLOR_KEY"]
    assert_frame_equal(local_store.scan("colors"), rows)


def test_local_append_failing_halfway_leaves_no_file_and_keeps_rows(
    local_store: Any, monkeypatch: pytest.MonkeyPatch
):
    local_store.append("colors", JAN, "2026-01")
    before = files_under(local_store.root)

    def write_half_then_fail(table: Any, where: Any, **kwargs: Any) -> None:
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    with pytest.raises(StoreUnavailable, match=str(local_store.root)):
        local_store.append("colors", FEB, "2026-01")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="cannot be stored"):
        local_store.append("colors", FEB.assign(NOTE=[object(), object()]), "2026-01")
    assert files_under(local_store.root) == before
    assert_frame_equal(by_id(local_store.scan("colors")), by_id(JAN))


def test_local_leftovers_of_a_crash_are_invisible(local_store: Any):
    root: Path = local_store.root
    local_store.put("jobs/a", 1, None)
    local_store.append("colors", JAN, "2026-01")
    for leftover in [
        "docs/jobs/a.json~0badc0de.tmp",
        "blobs/uploads/x.csv~0badc0de.tmp",
        "tables/colors/2026-01/part-9.parquet~0badc0de.tmp",
        "tables/colors/2026-02~trash~0badc0de/part-1.parquet",
        "tables/colors/2026-03/part-2.parquet~0badc0de.tmp",
        "blobs/uploads/copied by hand.csv",
    ]:
        (root / leftover).parent.mkdir(parents=True, exist_ok=True)
        (root / leftover).write_bytes(b"half")
    assert local_store.list() == ["jobs/a"]
    assert local_store.list_blobs() == []
    assert local_store.partitions("colors") == ["2026-01"]
    assert_frame_equal(by_id(local_store.scan("colors")), by_id(JAN))


def test_local_register_works_under_a_folder_with_quotes_in_its_name(tmp_path: Path):
    store = open_store(str(tmp_path / "desk's \"data\""))
    store.append("colors", JAN, "2026-01")
    con = duckdb.connect()
    assert store.register(con, "colors") is True
    assert con.execute("SELECT count(*) FROM colors WHERE CUSIP = ?", ["A"]).fetchone() == (2,)


def test_local_key_clashing_with_another_keys_folder_is_invalid(local_store: Any):
    local_store.put_blob("uploads/a.csv", b"a")
    with pytest.raises(InvalidKey):
        local_store.put_blob("uploads", b"clash")
    assert local_store.get_blob("uploads/a.csv") == b"a"


def test_local_root_that_is_a_file_is_unavailable(tmp_path: Path):
    root = tmp_path / "not-a-folder"
    root.write_text("x")
    store = open_store(str(root))
    with pytest.raises(StoreUnavailable, match=str(root)):
        store.put("k", 1, None)
    with pytest.raises(StoreUnavailable, match=str(root)):
        store.append("colors", JAN, "2026-01")
    with pytest.raises(StoreUnavailable, match=str(root)):
        store.put_blob("k", b"x")


def test_local_document_lock_held_too_long_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import filelock

    import storage.local

    monkeypatch.setattr(storage.local, "LOCK_TIMEOUT", 0.2)
    store = open_store(str(tmp_path / "store"))
    store.put("k", 1, None)
    with filelock.FileLock(str(tmp_path / "store" / ".lock")), pytest.raises(
        StoreUnavailable, match="lock busy"
    ):
        store.put("k", 2, ANY_VERSION)
    assert store.get("k")[0] == 1


def race_once(root: str, barrier: Any, results: Any) -> None:
    """Child process: read the counter, wait for the other process, then write read+1."""
    store = open_store(root)
    value, version = store.get("counter")
    barrier.wait(timeout=60)
    try:
        store.put("counter", value + 1, version)
        results.put("won")
    except WriteConflict:
        results.put("conflict")


def increment_many(root: str, times: int, barrier: Any, results: Any) -> None:
    """Child process: add 1 to the counter `times` times, retrying on every conflict."""
    store = open_store(root)
    barrier.wait(timeout=60)
    conflicts = 0
    for _ in range(times):
        while True:
            value, version = store.get("counter")
            try:
                store.put("counter", value + 1, version)
                break
            except WriteConflict:
                conflicts += 1
    results.put(conflicts)


# A worker program: runs TARGET(*ARGS, barrier, results) of this module; the barrier is two files
# in FOLDER (each worker makes its own and waits for the other's), each result a line of JSON.
_WORKER = """
import json, sys, time
from pathlib import Path
import tests.contract.test_store_contract as contract
folder, index, target, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
class Barrier:
    def wait(self, timeout):
        (folder / f"ready-{index}").touch()
        deadline = time.monotonic() + timeout
        while len(list(folder.glob("ready-*"))) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the other worker never came")
            time.sleep(0.001)
class Results:
    def put(self, value):
        print(json.dumps(value), flush=True)
getattr(contract, target)(*args, Barrier(), Results())
"""


def run_two(target: Any, *args: Any) -> list[Any]:
    """target(*args, barrier, results) in two worker programs started together; each worker's
    results. Programs, not multiprocessing's spawn: a spawned child re-runs the parent's main
    module, and a page test (AppTest) leaves app.py as the main module."""
    with tempfile.TemporaryDirectory() as folder:
        workers = [subprocess.Popen(
            [sys.executable, "-c", _WORKER, folder, str(index), target.__name__,
             json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for index in range(2)]
        outs = [worker.communicate(timeout=120) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outs]
    return [json.loads(line) for out, _ in outs for line in out.splitlines() if line]


def test_local_two_processes_writing_one_version_exactly_one_wins(tmp_path: Path):
    root = str(tmp_path / "store")
    store = open_store(root)
    version = store.put("counter", 41, None)
    assert sorted(run_two(race_once, root)) == ["conflict", "won"]
    assert store.get("counter") == (42, str(int(version) + 1))


def test_local_two_processes_incrementing_lose_nothing(tmp_path: Path):
    root = str(tmp_path / "store")
    store = open_store(root)
    store.put("counter", 0, None)
    times = 40
    run_two(increment_many, root, times)
    assert store.get("counter") == (2 * times, str(2 * times + 1))
    assert sorted(os.listdir(Path(root) / "docs")) == ["counter.json"]


# -- the three parts, and what a backup lists ---------------------------------------------------
def test_every_backend_is_each_part_of_the_store(store: Store):
    assert [isinstance(store, part) for part in (Documents, Tables, Blobs, PartitionedStore)] == [
        True, True, True, True]


def test_listing_each_part_finds_everything_written(store: Store):
    store.put("jobs/nightly", {"cron": "0 6 * * *"}, None)
    store.put("users/ayesha", {}, None)
    store.put_blob("outputs/run-00000001.xlsx", b"PK")
    store.append("audit", JAN, "2026-01")
    run_tables(store).append_run(1, {"colors": JAN, "excluded": FEB})
    listing = {"documents": store.list(""), "blobs": store.list_blobs(""),
               "tables": {t: store.partitions(t) for t in store.tables()}}
    assert listing == {"documents": ["jobs/nightly", "users/ayesha"],
                       "blobs": ["outputs/run-00000001.xlsx"],
                       "tables": {"audit": ["2026-01"], "colors": ["run=00000001"],
                                  "excluded": ["run=00000001"]}}
