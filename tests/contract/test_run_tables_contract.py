"""The run-table port (storage.run_tables) on every backend: a run's rows land all or nothing, are
read back by runs, CUSIPs, message ids and columns, stay hidden from readers that do not name their
run, go away with the run, and read the same before and after compaction."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from storage import Store
from storage.run_tables import COLORS, EXCLUDED, QUARANTINED, RunTables, run_tables

NOW = datetime(2026, 3, 13, 18, tzinfo=UTC)


def rows(run_id: int, cusips: list[str], dates: list[str] | None = None) -> pd.DataFrame:
    """A run's colors as the pipeline stores them: RUN_ID, ranked POSITION, one MESSAGE_ID each."""
    n = len(cusips)
    return pd.DataFrame({
        "RUN_ID": pd.array([run_id] * n, dtype="Int64"),
        "POSITION": pd.array(range(1, n + 1), dtype="Int64"),
        "MESSAGE_ID": pd.array([f"{run_id}{k:04d}" for k in range(n)], dtype="string"),
        "CUSIP": pd.array(cusips, dtype="string"),
        "DATE": pd.to_datetime(dates or ["2026-03-13"] * n).astype("datetime64[us]"),
        "PX": pd.array([90.0 + k for k in range(n)], dtype="Float64"),
    })


def rollup(src: str) -> tuple[str, list[Any]]:
    return f"SELECT RUN_ID, CUSIP, count(*) AS N FROM {src} GROUP BY ALL", []


@pytest.fixture
def tables(store: Store) -> RunTables:
    port = run_tables(store)
    port.append_run(1, {COLORS: rows(1, ["C", "A", "B"]), EXCLUDED: rows(1, ["X"])})
    port.append_run(2, {COLORS: rows(2, ["B", "D"]), EXCLUDED: rows(2, [])})
    port.append_run(3, {COLORS: rows(3, ["A", "E", "A"], ["2026-03-14", "2026-03-13",
                                                          "2026-03-12"])})
    return port


def fetch(con: duckdb.DuckDBPyConnection, src: str | None) -> list[tuple[int, str, str]]:
    """(RUN_ID, CUSIP, MESSAGE_ID) of a FROM item, in that order."""
    assert src is not None
    return sorted(con.execute(f"SELECT RUN_ID, CUSIP, MESSAGE_ID FROM {src} AS x").fetchall())


def everything(tables: RunTables, runs: list[int]) -> dict[str, Any]:
    """Every kind of read of these runs' colors, to compare before and after compaction."""
    con = duckdb.connect()
    described = tables.describe(con, COLORS, runs)
    rolled = tables.open_rollups(con, runs, rollup)
    assert rolled is not None
    return {
        "all": fetch(con, tables.open(con, COLORS, runs)),
        "cusips": fetch(con, tables.open(con, COLORS, runs, cusips=["a ", "D"])),
        "ids": fetch(con, tables.open(con, COLORS, runs, message_ids=["20001", "30002"])),
        "columns": sorted(name for name, _ in described),
        "rollups": sorted(con.execute(f"SELECT * FROM {rolled}").fetchall()),
    }


def test_a_run_s_rows_are_read_back_per_table_sorted_by_cusip_then_position(tables: RunTables):
    colors = tables.read(COLORS, [3])
    assert colors["CUSIP"].tolist() == ["A", "A", "E"]
    assert colors["DATE"].dt.strftime("%d").tolist() == ["14", "12", "13"]
    assert colors["MESSAGE_ID"].tolist() == ["30000", "30002", "30001"]
    assert_frame_equal(tables.read(EXCLUDED, [1, 2]), rows(1, ["X"]), check_dtype=False)
    assert tables.read(QUARANTINED, [1, 2, 3]).empty


def test_the_runs_held_are_listed_per_table_and_tables_are_listed(store: Store,
                                                                  tables: RunTables):
    assert (tables.runs(), tables.runs(EXCLUDED), tables.runs(QUARANTINED)) == ([1, 2, 3], [1], [])
    assert store.tables() == [COLORS, EXCLUDED]


def test_reads_name_their_runs_so_other_runs_rows_stay_hidden(tables: RunTables):
    con = duckdb.connect()
    assert fetch(con, tables.open(con, COLORS, [1, 3])) == [
        (1, "A", "10001"), (1, "B", "10002"), (1, "C", "10000"),
        (3, "A", "30000"), (3, "A", "30002"), (3, "E", "30001")]
    assert tables.open(con, COLORS, []) is None
    assert tables.open(con, QUARANTINED, [1, 2]) is None
    assert tables.read(COLORS, []).empty


def test_reads_by_cusips_message_ids_and_columns(tables: RunTables):
    con = duckdb.connect()
    assert fetch(con, tables.open(con, COLORS, [1, 2, 3], cusips=[" b", "Z"])) == [
        (1, "B", "10002"), (2, "B", "20000")]
    assert fetch(con, tables.open(con, COLORS, [1, 2], message_ids=["10000", "30000"])) == [
        (1, "C", "10000")]
    assert fetch(con, tables.open(con, COLORS, [1, 2, 3], cusips=["A"],
                                  message_ids=["30002", "10002"])) == [(3, "A", "30002")]
    assert fetch(con, tables.open(con, EXCLUDED, [1, 2], cusips=["X"])) == [(1, "X", "10000")]
    assert tables.read(COLORS, [2], ["PX", "CUSIP"]).to_dict("list") == {
        "PX": [90.0, 91.0], "CUSIP": ["B", "D"]}
    assert [name for name, _ in tables.describe(con, COLORS, [2])] == [
        "RUN_ID", "POSITION", "MESSAGE_ID", "CUSIP", "DATE", "PX"]


def test_many_cusips_are_matched_as_exactly_as_a_few(tables: RunTables):
    con = duckdb.connect()
    wanted = ["A", "D", *(f"Q{k:08d}" for k in range(200))]
    assert fetch(con, tables.open(con, COLORS, [1, 2, 3], cusips=wanted)) == [
        (1, "A", "10001"), (2, "D", "20001"), (3, "A", "30000"), (3, "A", "30002")]


def test_a_run_whose_write_fails_halfway_leaves_no_rows(tables: RunTables):
    bad = rows(4, ["F"]).assign(NOTE=[object()])  # Parquet cannot hold it
    with pytest.raises(ValueError, match="cannot be stored"):
        tables.append_run(4, {COLORS: rows(4, ["F", "G"]), EXCLUDED: bad})
    assert (tables.runs(COLORS), tables.runs(EXCLUDED)) == ([1, 2, 3], [1])
    assert tables.read(COLORS, [4]).empty


def test_removing_a_run_removes_its_rows_from_every_table_once(tables: RunTables):
    tables.remove_run(1)
    tables.remove_run(1)
    tables.remove_run(99)
    assert (tables.runs(COLORS), tables.runs(EXCLUDED)) == ([2, 3], [])
    assert tables.read(COLORS, [1]).empty


def test_compaction_changes_no_answer(tables: RunTables):
    con = duckdb.connect()
    assert tables.plan(con, [1, 2, 3]).needed is False
    before = everything(tables, [1, 2, 3])
    report = tables.compact(con, [1, 2, 3], rollup, force=True, now=NOW)
    assert (report.done, report.runs, report.rows) == (True, 3, 8)
    assert everything(tables, [1, 2, 3]) == before
    assert everything(tables, [2, 3])["all"] == [  # the copy's rows of run 1 are filtered out
        (2, "B", "20000"), (2, "D", "20001"),
        (3, "A", "30000"), (3, "A", "30002"), (3, "E", "30001")]
    assert tables.runs() == [1, 2, 3]  # each run's own rows stay: the copy is derived


def test_runs_written_or_removed_after_compaction_read_as_without_it(tables: RunTables):
    con = duckdb.connect()
    tables.compact(con, [1, 2, 3], rollup, force=True, now=NOW)
    tables.append_run(4, {COLORS: rows(4, ["A", "F"])})
    tables.remove_run(2)
    after = everything(tables, [1, 3, 4])
    assert fetch(con, tables.open(con, COLORS, [1, 3])) == fetch(
        con, tables.open(con, COLORS, [1, 3], cusips=["A", "B", "C", "E", "F"]))
    assert tables.compact(con, [1, 3, 4], rollup, now=NOW).done
    assert everything(tables, [1, 3, 4]) == after
    assert after["all"] == [
        (1, "A", "10001"), (1, "B", "10002"), (1, "C", "10000"),
        (3, "A", "30000"), (3, "A", "30002"), (3, "E", "30001"),
        (4, "A", "40000"), (4, "F", "40001")]


def test_threads_reading_different_runs_at_once_each_get_their_own_rows(tables: RunTables):
    """More run sets than the layouts a port keeps, read from 8 threads at once."""
    sets = [s for n in range(1, 6) for s in itertools.combinations([1, 2, 3, 4, 5], n)]
    con = duckdb.connect()
    expected = {s: fetch(con, tables.open(con, COLORS, s)) if set(s) & {1, 2, 3} else None
                for s in sets}

    def read(runs: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        own = duckdb.connect()
        src = tables.open(own, COLORS, runs)
        return runs, None if src is None else fetch(own, src)

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(read, sets * 6))
    assert [rows == expected[runs] for runs, rows in found] == [True] * len(sets) * 6


def latest(src: str) -> tuple[str, list[Any]]:
    """Per CUSIP, the rows of its newest run."""
    return (f"SELECT * FROM {src} QUALIFY rank() OVER (PARTITION BY CUSIP ORDER BY RUN_ID DESC)"
            " = 1", [])


def newest(con: duckdb.DuckDBPyConnection, src: str | None) -> list[tuple[int, str, str]]:
    """What a reader picks from latest candidates: each CUSIP's newest run's rows."""
    assert src is not None
    return sorted(con.execute(f"SELECT RUN_ID, CUSIP, MESSAGE_ID FROM {src} AS x QUALIFY rank() "
                              "OVER (PARTITION BY CUSIP ORDER BY RUN_ID DESC) = 1").fetchall())


def test_kept_latest_rows_pick_what_the_runs_colors_would(tables: RunTables):
    con = duckdb.connect()
    assert tables.open_latest(con, [1, 2, 3], latest) is None  # none kept: the caller reads
    tables.compact(con, [1, 2, 3], rollup, latest=latest, force=True, now=NOW)
    assert newest(con, tables.open_latest(con, [1, 2, 3], latest)) == newest(
        con, tables.open(con, COLORS, [1, 2, 3])) == [
        (1, "C", "10000"), (2, "B", "20000"), (2, "D", "20001"),
        (3, "A", "30000"), (3, "A", "30002"), (3, "E", "30001")]
    tables.append_run(4, {COLORS: rows(4, ["A", "F"])})  # published since: computed now
    assert newest(con, tables.open_latest(con, [1, 2, 3, 4], latest)) == newest(
        con, tables.open(con, COLORS, [1, 2, 3, 4]))
    assert tables.plan(con, [1, 2, 3, 4], latest=True).needed
    tables.compact(con, [1, 2, 3, 4], rollup, latest=latest, now=NOW)
    assert newest(con, tables.open_latest(con, [1, 2, 3, 4], latest)) == newest(
        con, tables.open(con, COLORS, [1, 2, 3, 4]))
    # Run 3 left out: its rows were the newest of A and E, and what they hid is not kept.
    assert tables.open_latest(con, [1, 2, 4], latest) is None
