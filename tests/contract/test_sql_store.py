"""What only the SQL store promises: every statement it issues compiles for Oracle 12c+ (bound
values, no JSON type, TIMESTAMP WITH TIME ZONE, no reserved or quoted names, names within 30
characters); real tables with indexes for the reads; a versioned schema; compare-and-set across
processes; vendor errors stopped at the adapter; frames with awkward columns round-trip. On
SQLite and on the PostgreSQL server (a schema per test); live Oracle only with
MARKETPULSE_ORACLE_DSN (tests/conftest.py)."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from pandas.testing import assert_frame_equal
from sqlalchemy.dialects import oracle
from sqlalchemy.sql.ddl import ExecutableDDLElement

from storage import InvalidKey, StoreUnavailable, open_store
from storage.run_tables import COLORS, EXCLUDED, run_tables
from storage.sql import SqlStore
from tests.conftest import POSTGRES_URL
from tests.contract.test_store_contract import JAN, increment_many, race_once, run_two

SENTINELS = ("rules/sentinel", "uploads/sentinel.csv", "SENTINEL1", "SENTINEL2", "MSG-SENTINEL",
             "sentinel bytes", "sentinel text", "2026-07")


def _colors(run_id: int, cusips: list[str]) -> pd.DataFrame:
    n = len(cusips)
    return pd.DataFrame({
        "RUN_ID": pd.array([run_id] * n, dtype="Int64"),
        "POSITION": pd.array(range(1, n + 1), dtype="Int64"),
        "MESSAGE_ID": pd.array([f"MSG-SENTINEL-{run_id}-{k}" for k in range(n)], dtype="string"),
        "CUSIP": pd.array(cusips, dtype="string"),
        "DATE": pd.to_datetime(["2026-03-13"] * n).astype("datetime64[us]"),
        "PROCESSED_AT": pd.to_datetime(["2026-03-13T10:00Z"] * n).astype("datetime64[us, UTC]"),
        "PX": pd.array([90.5] * n, dtype="Float64"),
        "IS_PARENT": pd.array([True] * n, dtype="boolean"),
        "SECTOR": pd.array(["sentinel text"] * n, dtype="string"),
    })


def _rollup(src: str) -> tuple[str, list[Any]]:
    return f"SELECT RUN_ID, CUSIP, count(*) AS N FROM {src} GROUP BY ALL", []


def _latest(src: str) -> tuple[str, list[Any]]:
    return (f"SELECT * FROM {src} QUALIFY rank() OVER (PARTITION BY CUSIP ORDER BY RUN_ID DESC)"
            " = 1", [])


def _workload(store: SqlStore) -> None:
    """Every kind of call the product makes of a store."""
    v1 = store.put("rules/sentinel", {"n": "sentinel text"}, None)
    v2 = store.put("rules/sentinel", {"n": 2}, v1)
    store.put("rules/sentinel", {"n": 3}, "*")
    store.get("rules/sentinel")
    store.list("rules/")
    store.delete("rules/sentinel", str(int(v2) + 1))
    store.put_blob("uploads/sentinel.csv", b"sentinel bytes")
    store.put_blob("uploads/sentinel.csv", b"sentinel bytes 2")
    store.get_blob("uploads/sentinel.csv")
    store.list_blobs("uploads/")
    store.delete_blob("uploads/sentinel.csv")
    log = pd.DataFrame({"AT": pd.to_datetime(["2026-07-01T10:00Z"]).astype("datetime64[us, UTC]"),
                        "TO": ["sentinel text"], "LEVEL": [1], "NOTE": [None]})
    store.append("audit", log, "2026-07")
    store.append("audit", log.assign(NOTE=["sentinel text"], TAGS=[["a", "b"]]), "2026-07")
    store.scan("audit", ["2026-07"], ["AT", "TO"])
    store.compact("audit")
    store.register(duckdb.connect(), "audit")
    store.append_query(duckdb.connect(), "copy", "gen=1", "SELECT 1 AS N")
    store.delete_partition("audit", "2026-07")
    port = run_tables(store)
    port.append_run(1, {COLORS: _colors(1, ["SENTINEL1", "SENTINEL2"]),
                        EXCLUDED: _colors(1, ["SENTINEL1"])})
    port.append_run(2, {COLORS: _colors(2, ["SENTINEL2"])})
    con = duckdb.connect()
    port.open(con, COLORS, [1, 2], cusips=["SENTINEL1", *(f"Q{k:08d}" for k in range(1200))],
              message_ids=["MSG-SENTINEL-1-0"])
    port.describe(con, COLORS, [1, 2])
    port.read(EXCLUDED, [1], ["CUSIP"])
    port.open_rollups(con, [1, 2], _rollup)
    port.compact(con, [1, 2], _rollup, latest=_latest, force=True, now=pd.Timestamp(
        "2026-03-13T18:00Z").to_pydatetime())
    port.open_latest(con, [1, 2], _latest)
    port.plan(con, [1, 2], latest=True)
    port.remove_run(1)


@pytest.fixture
def statements(sqlite_store: SqlStore) -> list[Any]:
    """Every statement the store sent while doing the workload (SQLAlchemy constructs)."""
    sent: list[Any] = []
    sa.event.listen(sqlite_store._engine, "before_execute",
                    lambda conn, element, *args: sent.append(element))
    _workload(sqlite_store)
    return sent


def _oracle_12c() -> sa.Dialect:
    """The Oracle dialect as it sets itself up on connecting to a 12.1 server (its initialize):
    no BOOLEAN (23ai) and no JSON (21c) types."""
    dialect = oracle.dialect()
    dialect.server_version_info = (12, 1)
    dialect.supports_native_boolean = False
    dialect._supports_oracle_json = False
    return dialect  # type: ignore[no-any-return]  # the dialect module is untyped


ORACLE = _oracle_12c()


def _oracle(element: Any) -> str:
    return str(element.compile(dialect=ORACLE))


def test_every_statement_compiles_for_oracle_with_values_bound(statements: list[Any]):
    compiled = [_oracle(s) for s in statements]
    assert not [s for s in statements if isinstance(s, sa.TextClause)]  # constructs only
    leaked = [(v, sql) for sql in compiled for v in SENTINELS if v in sql]
    assert leaked == []
    kinds = {type(s).__name__ for s in statements}
    assert {"Select", "Insert", "Update", "Delete", "CreateTable", "CreateIndex",
            "AddColumn"} <= kinds


def test_oracle_ddl_uses_12c_types_and_plain_names(statements: list[Any]):
    ddl = [_oracle(s) for s in statements if isinstance(s, ExecutableDDLElement)]
    text = "\n".join(ddl)
    assert "JSON" not in text
    assert '"' not in text  # no reserved word needed quoting: DATE is date_, TO is to_
    names = re.findall(r"(?:TABLE|INDEX|ADD) (\w+)", text)
    assert names
    assert max(len(n) for n in names) <= 30
    colors = next(s for s in ddl if s.startswith("\nCREATE TABLE mp_t_colors"))
    assert "mp_part VARCHAR2(128 CHAR) NOT NULL" in colors
    added = {m[0]: m[1] for m in re.findall(r"ALTER TABLE mp_t_colors ADD (\w+) (.+)", text)}
    assert added == {
        "run_id": "NUMBER(19)", "position": "NUMBER(19)", "message_id": "VARCHAR2(1000 CHAR)",
        "cusip": "VARCHAR2(1000 CHAR)", "date_": "TIMESTAMP",
        "processed_at": "TIMESTAMP WITH TIME ZONE", "px": "BINARY_DOUBLE",
        "is_parent": "SMALLINT", "sector": "CLOB"}
    assert "CREATE INDEX mp_t_colors_cd ON mp_t_colors (cusip, date_)" in text
    assert "CREATE INDEX mp_t_colors_m ON mp_t_colors (message_id)" in text
    assert "CREATE INDEX mp_t_colors_p ON mp_t_colors (mp_part, mp_seq)" in text
    audit = {m[0]: m[1] for m in re.findall(r"ALTER TABLE mp_t_audit ADD (\w+) (.+)", text)}
    assert audit == {"at": "TIMESTAMP WITH TIME ZONE", "to_": "CLOB", "level_": "NUMBER(19)",
                     "note": "CLOB", "tags": "CLOB"}
    documents = next(s for s in ddl if "CREATE TABLE mp_documents" in s)
    assert "body CLOB NOT NULL" in documents
    assert "applied_at TIMESTAMP WITH TIME ZONE NOT NULL" in text


def test_a_document_write_is_one_compare_and_set_statement(statements: list[Any]):
    updates = {_oracle(s) for s in statements
               if isinstance(s, sa.Update) and s.table.name == "mp_documents"}
    assert ("UPDATE mp_documents SET version=:version, body=:body WHERE mp_documents.doc_key = "
            ":doc_key_1 AND mp_documents.version = :version_1") in updates


def test_reads_by_cusip_select_only_the_matching_rows_by_bound_lists(statements: list[Any]):
    lookups = [_oracle(s) for s in statements if isinstance(s, sa.Select)
               and "mp_t_colors.cusip IN" in _oracle(s)]
    assert lookups
    # 1,201 CUSIPs: lists of at most 500 (Oracle takes 1,000), each bound
    assert lookups[0].count("mp_t_colors.cusip IN") == 3
    assert "mp_t_colors.message_id IN" in lookups[0]


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest) -> SqlStore:
    return request.getfixturevalue(f"{request.param}_store")


def test_frames_with_awkward_columns_round_trip(sql_store: SqlStore):
    first = pd.DataFrame({"DATE": pd.to_datetime(["2026-01-02"]).astype("datetime64[us]"),
                          "select": ["a"], "Mixed Case": [1.5], "NOTE": [None],
                          "day": pd.to_datetime(["2026-01-02"]).date})
    second = pd.DataFrame({"DATE": pd.to_datetime(["2026-01-03"]).astype("datetime64[us]"),
                           "NOTE": pd.array(["later"], dtype="string"),
                           "TAGS": [["x", "y"]], "n_\u00e9": [7]})
    sql_store.append("awkward", first, "p1")
    sql_store.append("awkward", second, "p2")
    scanned = sql_store.scan("awkward")
    assert list(scanned.columns) == ["DATE", "select", "Mixed Case", "NOTE", "day", "TAGS",
                                     "n_\u00e9"]
    assert pd.isna(scanned["NOTE"].tolist()[0])
    assert scanned["NOTE"].tolist()[1] == "later"
    assert scanned["TAGS"].tolist()[1].tolist() == ["x", "y"]
    assert_frame_equal(sql_store.scan("awkward", ["p1"], ["DATE", "select", "Mixed Case"]),
                       first[["DATE", "select", "Mixed Case"]])
    with pytest.raises(ValueError, match="cannot be stored: column 'Mixed Case'"):
        sql_store.append("awkward", pd.DataFrame({"Mixed Case": ["text"]}), "p3")
    assert sql_store.partitions("awkward") == ["p1", "p2"]


def test_the_colors_table_has_the_indexes_of_the_reads(postgres_store: SqlStore):
    run_tables(postgres_store).append_run(1, {COLORS: _colors(1, ["A"])})
    inspector = sa.inspect(postgres_store._engine)
    indexes = {i["name"]: i["column_names"]
               for i in inspector.get_indexes("mp_t_colors", schema=postgres_store.schema)}
    assert indexes == {"mp_t_colors_p": ["mp_part", "mp_seq"],
                       "mp_t_colors_cd": ["cusip", "date_"], "mp_t_colors_m": ["message_id"]}


def test_a_schema_newer_than_the_code_is_refused(sql_store: SqlStore):
    sql_store.put("k", 1, None)
    with sql_store.writing() as conn:
        conn.execute(sa.insert(sql_store._fixed.versions).values(
            version=2, applied_at=pd.Timestamp("2026-03-13T00:00Z").to_pydatetime()))
    again = open_store(sql_store.url)
    with pytest.raises(StoreUnavailable, match="schema is version 2, newer than this"):
        again.get("k")
    again.dispose()  # type: ignore[attr-defined]  # a SqlStore


def test_an_unreachable_server_is_unavailable_and_the_password_never_shows():
    store = open_store("postgresql+psycopg://desk:s3cret@127.0.0.1:1/test")
    with pytest.raises(StoreUnavailable) as raised:
        store.put("k", 1, None)
    assert "127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in store.url


@pytest.mark.parametrize("url", [f"{POSTGRES_URL}?schema=Bad-Name", "sqlite:///x.db?schema=s"])
def test_bad_schemas_are_refused(url: str):
    with pytest.raises(InvalidKey):
        open_store(url)


def test_the_schema_can_come_from_the_options(postgres_schema: str):
    store = open_store(POSTGRES_URL, {"sql.schema": postgres_schema})
    store.put("k", 1, None)
    assert store.url.endswith(f"?schema={postgres_schema}")
    assert open_store(store.url).get("k") == (1, "1")


def test_two_processes_writing_one_version_exactly_one_wins(postgres_store: SqlStore):
    version = postgres_store.put("counter", 41, None)
    assert sorted(run_two(race_once, postgres_store.url)) == ["conflict", "won"]
    assert postgres_store.get("counter") == (42, str(int(version) + 1))


def test_two_processes_incrementing_lose_nothing(postgres_store: SqlStore):
    postgres_store.put("counter", 0, None)
    run_two(increment_many, postgres_store.url, 40)
    assert postgres_store.get("counter") == (80, "81")


def test_a_run_s_rows_are_one_transaction(postgres_store: SqlStore):
    """A run whose second table fails in the database (not in validation) leaves no rows."""
    port = run_tables(postgres_store)
    port.append_run(1, {COLORS: JAN})
    bad = JAN.assign(RANK=pd.array([2**62] * len(JAN), dtype="Int64"))
    with postgres_store.writing() as conn:  # a check the rows of run 2 break, in the database
        conn.execute(sa.text(f'ALTER TABLE "{postgres_store.schema}".mp_t_colors '
                             "ADD CONSTRAINT small_rank CHECK (rank < 1000)"))
    with pytest.raises(StoreUnavailable):
        port.append_run(2, {EXCLUDED: JAN, COLORS: bad})
    assert (port.runs(COLORS), port.runs(EXCLUDED)) == ([1], [])


def _all(con: duckdb.DuckDBPyConnection, src: str | None) -> list[tuple[Any, ...]]:
    assert src is not None
    return con.execute(f"SELECT * FROM {src} ORDER BY MESSAGE_ID").fetchall()


def test_the_read_copy_is_what_the_database_holds_and_never_stale(postgres_store: SqlStore,
                                                                    tmp_path: Any):
    """Whole runs are read from the node's Parquet copy: the one the writer kept, one fetched
    again after the folder went, and another node's, all say what the tables say, also after
    the run's rows were rewritten."""
    import shutil

    port = run_tables(postgres_store)
    port.append_run(1, {COLORS: _colors(1, ["B", "A"])})
    con = duckdb.connect()
    written = port.open(con, COLORS, [1])
    kept = (_all(con, written), port.describe(con, COLORS, [1], written))
    shutil.rmtree(postgres_store.read_copy.folder)
    fetched = port.open(con, COLORS, [1])
    assert (_all(con, fetched), port.describe(con, COLORS, [1], fetched)) == kept
    assert [r[3] for r in kept[0]] == ["B", "A"]  # MESSAGE_ID order: -1-0 is B
    other = open_store(postgres_store.url, {"sql.cache_dir": str(tmp_path / "node-b")})
    assert _all(con, run_tables(other).open(con, COLORS, [1])) == kept[0]
    postgres_store.delete_partition(COLORS, "run=00000001")
    port.append_run(1, {COLORS: _colors(1, ["C"])})
    assert [r[3] for r in _all(con, run_tables(other).open(con, COLORS, [1]))] == ["C"]
    other.dispose()  # type: ignore[attr-defined]  # a SqlStore


def test_many_small_runs_are_read_from_one_merged_copy_that_follows_the_database(
        postgres_store: SqlStore):
    """More than MERGE_FILES runs of few rows (each run's rollups) are read from one merged file
    of the node's copy, in run order; a run rewritten or added names another merged file."""
    from storage.sql_run_tables import MERGE_FILES

    port = run_tables(postgres_store)
    runs = list(range(1, MERGE_FILES + 3))
    for run in runs:
        port.append_run(run, {COLORS: _colors(run, [f"C{run}", "A"])})
    con = duckdb.connect()
    merged = postgres_store.read_copy.folder / f"{COLORS}.merged"

    def read() -> list[tuple[Any, ...]]:
        src = port.open(con, COLORS, runs)
        assert src is not None
        return con.execute(f"SELECT RUN_ID, CUSIP FROM {src}").fetchall()

    assert read() == [(run, cusip) for run in runs for cusip in ("A", f"C{run}")]  # sorted
    assert len(list(merged.rglob("*.parquet"))) == 1
    postgres_store.delete_partition(COLORS, "run=00000002")
    port.append_run(2, {COLORS: _colors(2, ["Z"])})
    assert read()[2:4] == [(2, "Z"), (3, "A")]
    assert len(list(merged.rglob("*.parquet"))) == 2  # the first goes once no reader can use it


def test_merged_copies_hold_blocks_of_runs_so_a_new_run_rebuilds_its_block_only(
        postgres_store: SqlStore, monkeypatch):
    """Runs 1–15 are block 0 and 16–31 block 1 (MERGE_BLOCK 16): a run added to block 1 leaves
    block 0's merged copy as it was."""
    from storage import sql_run_tables

    monkeypatch.setattr(sql_run_tables, "MERGE_FILES", 2)
    port = run_tables(postgres_store)
    runs = [1, 2, 3, 16, 17]
    for run in runs:
        port.append_run(run, {COLORS: _colors(run, [f"C{run}"])})
    con = duckdb.connect()
    merged = postgres_store.read_copy.folder / f"{COLORS}.merged"

    def read(asked: list[int]) -> list[tuple[Any, ...]]:
        src = port.open(con, COLORS, asked)
        assert src is not None
        return con.execute(f"SELECT RUN_ID, CUSIP FROM {src}").fetchall()

    assert read(runs) == [(run, f"C{run}") for run in runs]
    first = {p.relative_to(merged).parts[0]: p for p in merged.rglob("*.parquet")}
    assert sorted(first) == ["block=0", "block=1"]
    port.append_run(18, {COLORS: _colors(18, ["C18"])})
    assert read([*runs, 18]) == [(run, f"C{run}") for run in [*runs, 18]]
    files = sorted(p.relative_to(merged).as_posix() for p in merged.rglob("*.parquet"))
    assert [f.split("/")[0] for f in files] == ["block=0", "block=1", "block=1"]
    assert first["block=0"].relative_to(merged).as_posix() in files  # block 0 not rebuilt


def test_the_node_that_kept_rollups_reads_them_from_its_copy_without_fetching(
        postgres_store: SqlStore, monkeypatch):
    """Compaction writes each run's rollups and keeps this node's copies of them, as a run's
    colors are kept: the dashboard that follows reads them without going to the database."""
    from datetime import UTC, datetime

    port = run_tables(postgres_store)
    for run in (1, 2, 3):
        port.append_run(run, {COLORS: _colors(run, ["A", f"C{run}", "A"])})
    con = duckdb.connect()

    def rollup(src: str) -> tuple[str, list[Any]]:
        return f"SELECT RUN_ID, CUSIP, count(*) AS N FROM {src} GROUP BY ALL", []

    port.compact(con, [1, 2, 3], rollup, force=True, now=datetime(2026, 3, 13, tzinfo=UTC))

    def fetch(table: str, partition: str) -> None:
        raise AssertionError(f"fetched {table} {partition}")

    monkeypatch.setattr(port, "_fetch", fetch)
    src = port.open_rollups(con, [1, 2, 3], rollup)
    assert src is not None
    assert sorted(con.execute(f"SELECT * FROM {src}").fetchall()) == [
        (1, "A", 2), (1, "C1", 1), (2, "A", 2), (2, "C2", 1), (3, "A", 2), (3, "C3", 1)]


def test_a_write_that_grows_a_table_a_lot_gathers_its_statistics(postgres_store: SqlStore):
    """PostgreSQL without autovacuum never would: a lookup of 50 CUSIPs was planned as a scan."""
    port = run_tables(postgres_store)
    port.append_run(1, {COLORS: _colors(1, [f"C{k:05d}" for k in range(1500)])})
    with postgres_store.reading() as conn:
        counted = conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)"),
            {"name": f"{postgres_store.schema}.mp_t_colors"}).scalar()
    assert counted == 1500
