"""Store.append_query and Store.compact (used by core.reads.compaction and the access log) on every
backend: a query's rows land in a partition all or nothing; merging parts keeps every row."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from storage import Store


def _source(con: duckdb.DuckDBPyConnection) -> None:
    frame = pd.DataFrame({
        "CUSIP": pd.array(["B", "A", "C", "A"], dtype="string"),
        "DATE": pd.to_datetime(["2026-03-13", "2026-03-12", "2026-03-13", "2026-03-13"]),
        "PX": pd.array([95.0, None, 97.5, 99.0], dtype="Float64"),
        "RUN_ID": pd.array([2, 1, 2, 2], dtype="Int64"),
    })
    con.register("source", frame)


def test_a_query_s_rows_land_in_the_partition(store: Store):
    con = duckdb.connect()
    _source(con)
    written = store.append_query(con, "copy", "gen=1", "SELECT * FROM source WHERE RUN_ID = ? "
                                                       "ORDER BY CUSIP, DATE", [2])
    assert written == 3
    assert store.partitions("copy") == ["gen=1"]
    rows = store.scan("copy", ["gen=1"]).sort_values(["CUSIP", "DATE"]).reset_index(drop=True)
    assert rows["CUSIP"].tolist() == ["A", "B", "C"]
    assert rows["PX"].tolist() == [99.0, 95.0, 97.5]
    assert store.register(con, "copy", ["gen=1"])
    assert con.execute("SELECT count(*), sum(PX) FROM copy").fetchall() == [(3, 291.5)]


def test_an_empty_result_writes_nothing(store: Store):
    con = duckdb.connect()
    _source(con)
    assert store.append_query(con, "copy", "gen=1", "SELECT * FROM source WHERE FALSE") == 0
    assert store.partitions("copy") == []


def test_a_failing_query_writes_nothing(store: Store):
    con = duckdb.connect()
    _source(con)
    with pytest.raises(duckdb.Error):
        store.append_query(con, "copy", "gen=1", "SELECT CAST(CUSIP AS INTEGER) FROM source")
    assert store.partitions("copy") == []


def test_appends_and_query_appends_share_a_partition(store: Store):
    con = duckdb.connect()
    _source(con)
    store.append("copy", pd.DataFrame({"CUSIP": ["Z"], "PX": [1.0]}), "gen=1")
    store.append_query(con, "copy", "gen=1", "SELECT CUSIP, PX FROM source")
    assert sorted(store.scan("copy")["CUSIP"].tolist()) == ["A", "A", "B", "C", "Z"]


def test_the_local_file_keeps_the_query_order_in_lookup_sized_row_groups(local_store):
    from storage.local_tables import QUERY_ROW_GROUP_SIZE

    con = duckdb.connect()
    con.execute("CREATE TABLE big AS SELECT printf('%09d', range) AS CUSIP, range AS N "
                "FROM range(45000)")
    assert local_store.append_query(con, "copy", "gen=1", "SELECT * FROM big ORDER BY N DESC") \
        == 45000
    [path] = (local_store.root / "tables" / "copy" / "gen=1").glob("*.parquet")
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        QUERY_ROW_GROUP_SIZE, QUERY_ROW_GROUP_SIZE, 45000 - 2 * QUERY_ROW_GROUP_SIZE]
    assert pq.read_table(path)["N"][0].as_py() == 44999
    assert not [p for p in path.parent.iterdir() if "~" in p.name]


def _part(cusip: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({"EVENT_ID": pd.array([f"e{n}"], dtype="string"),
                         "CUSIP": pd.array([cusip], dtype="string"),
                         "N": pd.array([n], dtype="Int64")})


def test_compact_merges_each_partition_s_parts_and_keeps_every_row(store: Store):
    for n in range(4):
        store.append("log", _part("A", n), "2026-03")
    store.append("log", _part("B", 9), "2026-04")
    before = store.scan("log").sort_values("N").reset_index(drop=True)
    assert store.compact("log") == 4  # the single part of 2026-04 is left alone
    after = store.scan("log").sort_values("N").reset_index(drop=True)
    assert_frame_equal(after, before)
    assert store.compact("log") == 0
    store.append("log", _part("A", 5), "2026-03")
    assert store.compact("log", ["2026-03"]) == 2
    assert store.scan("log", ["2026-03"])["N"].tolist() == [0, 1, 2, 3, 5]


def test_compacted_local_partitions_hold_one_file_in_append_order(local_store):
    for n in range(3):
        local_store.append("log", _part("A", n), "2026-03")
    local_store.compact("log")
    files = sorted((local_store.root / "tables" / "log" / "2026-03").iterdir())
    assert [f.suffix for f in files] == [".parquet"]
    local_store.append("log", _part("A", 7), "2026-03")
    names = sorted(f.name for f in (local_store.root / "tables" / "log" / "2026-03").iterdir())
    assert "merged" in names[0]  # an append made after the merge sorts after it
    assert local_store.scan("log")["N"].tolist() == [0, 1, 2, 7]
