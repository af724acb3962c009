"""Sources of an automated run: inbox folders, the upload buffer and SQL queries (PostgreSQL here,
Oracle compiled, and live only when MARKETPULSE_ORACLE_DSN is set)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import oracle

from core.access import SYSTEM
from core.config import load_settings
from core.errors import InvalidInput, UnreadableFile
from core.ingest.color_file import read_colors
from core.intake.sources import Collected, check_sources, collect_inputs, resolve_inbox
from core.intake.sql_source import (
    SourceUnavailable,
    bind_names,
    check_sql_query,
    rows_to_frame,
    source_url,
)
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv, write_xlsx
from core.schema import (
    CUSIP,
    DATE,
    DATE_1,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PX,
    RANK,
    SOURCE,
    SOURCE_FILE,
)
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Read at import: the autouse fixture clears MARKETPULSE_* before each test.
ORACLE_DSN = os.environ.get("MARKETPULSE_ORACLE_DSN")


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


# -- SQL: validation and Oracle ------------------------------------------------------------------
@pytest.mark.parametrize(("query", "message"), [
    ("DELETE FROM colors", "only a SELECT"),
    ("SELECT 1; DROP TABLE colors", "one statement only"),
    ("SELECT * FROM colors WHERE d > :since AND s = :sector", "unknown parameter(s) :sector"),
    ("", "enter a SELECT statement"),
])
def test_sql_queries_other_than_one_select_are_refused(query, message):
    with pytest.raises(InvalidInput, match=r"^query: .*" + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        check_sql_query(query)


def test_a_select_with_comments_cast_and_trailing_semicolon_is_accepted():
    query = "-- today\n/* desk */ WITH x AS (SELECT 1 AS n) SELECT n::text FROM x WHERE :since > n;"
    assert check_sql_query(query) == query[:-1]
    assert bind_names(query) == {"since"}


def test_a_job_may_not_carry_a_database_password():
    with pytest.raises(InvalidInput, match="leave the password out"):
        check_sources([{"kind": "sql", "url": "oracle+oracledb://scott:tiger@db:1521/?service_name=C",
                        "query": "SELECT 1 FROM dual"}])


def test_column_map_targets_must_be_columns():
    with pytest.raises(InvalidInput, match=r"'MSG' → 'MSG_ID': the target must be one of ASK"):
        check_sources([{"kind": "sql", "query": "SELECT 1", "column_map": {"MSG": "MSG_ID"}}])


def test_the_password_comes_from_the_environment():
    settings = load_settings({}, {"MARKETPULSE_SOURCES_SQL_PASSWORD": "tiger"})
    url = source_url({"url": "oracle+oracledb://scott@db.desk:1521/?service_name=COLORS"}, settings)
    assert url.password == "tiger"
    assert url.render_as_string(hide_password=True) == (
        "oracle+oracledb://scott:***@db.desk:1521/?service_name=COLORS")


def test_the_url_can_come_from_a_setting():
    settings = load_settings(
        {}, {"MARKETPULSE_SOURCES_SQL_URL": "oracle+oracledb://scott@db:1521/?service_name=C"})
    assert str(source_url({"kind": "sql"}, settings)) == (
        "oracle+oracledb://scott@db:1521/?service_name=C")
    with pytest.raises(SourceUnavailable, match=r"sources\.sql_url is not set"):
        source_url({"kind": "sql"}, SETTINGS)


def test_the_query_and_guard_compile_for_oracle():
    dialect = oracle.dialect()
    query = check_sql_query("SELECT MSG_ID, CUSIP, PX FROM DESK.COLORS WHERE RECEIVED >= :since;")
    compiled = sa.text(query).compile(dialect=dialect)
    assert str(compiled) == "SELECT MSG_ID, CUSIP, PX FROM DESK.COLORS WHERE RECEIVED >= :since"
    assert list(compiled.params) == ["since"]
    assert str(sa.text("SET TRANSACTION READ ONLY").compile(dialect=dialect)) == (
        "SET TRANSACTION READ ONLY")
    engine = sa.create_engine("oracle+oracledb://scott@db:1521/?service_name=C")  # no connection
    assert engine.dialect.name == "oracle"


def test_oracle_numbers_become_exact_text_for_text_columns():
    # SQLAlchemy hands Oracle NUMBER values over as Decimal; a 17-digit id must not pass via float.
    rows = [(Decimal("17734072432755619"), Decimal("99.5"), Decimal("3"), None)]
    frame = rows_to_frame(["msg_id", "px", "rank", "cusip"], rows, {"MSG_ID": "MESSAGE_ID"})
    assert frame.to_dict("records") == [
        {"MESSAGE_ID": "17734072432755619", "px": 99.5, "rank": 3, "cusip": None}]


# -- SQL against PostgreSQL ----------------------------------------------------------------------
ROWS = [  # msg_id, cusip, trade_date, px, dealer, bias, received_at
    (17734072432755619, "97988RBL5", date(2026, 3, 13), Decimal("99.5000"), "JPM", "BID",
     datetime(2026, 3, 13, 8, 0, tzinfo=UTC)),
    (17734072432755621, "97988RBL5", date(2026, 3, 13), Decimal("98.2500"), "GS", "OFFER",
     datetime(2026, 3, 13, 8, 5, tzinfo=UTC)),
    (17734072432755623, "000840AG3", date(2026, 3, 13), Decimal("95.0000"), "BOA", "BWIC COVER",
     datetime(2026, 3, 13, 8, 10, tzinfo=UTC)),
    (17734072432755625, "037833100", date(2026, 3, 13), Decimal("101.1250"), "MS", "TRADE",
     datetime(2026, 3, 13, 8, 15, tzinfo=UTC)),
    (17734072432755627, "037833100", date(2026, 3, 12), Decimal("90.0000"), "DB", "VALUATION",
     datetime(2026, 3, 11, 17, 0, tzinfo=UTC)),
]
COLUMN_MAP = {"MSG_ID": "MESSAGE_ID", "TRADE_DATE": "DATE", "DEALER": "SOURCE",
              "RECEIVED_AT": "DATE_1"}


@pytest.fixture
def pg_colors():
    """A colors table with 5 rows in a schema of its own, dropped afterwards."""
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        engine.connect().close()
    except sa.exc.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"mp_test_{uuid.uuid4().hex[:12]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        connection.execute(sa.text(
            f"CREATE TABLE {schema}.colors (msg_id NUMERIC(17, 0), ticker TEXT, sector TEXT, "
            "cusip CHAR(9), trade_date DATE, bid NUMERIC(10, 4), ask NUMERIC(10, 4), "
            "px NUMERIC(10, 4), dealer TEXT, bias TEXT, received_at TIMESTAMPTZ)"))
        connection.execute(
            sa.text(f"INSERT INTO {schema}.colors VALUES (:m, :t, '2.0_Mezz', :c, :d, "
                    ":b, :a, :p, :s, :bias, :r)"),
            [{"m": m, "t": f"DEAL {i}A A", "c": c, "d": d, "p": p, "s": s, "bias": bias, "r": r,
              "b": Decimal(0) if bias == "OFFER" else p, "a": p if bias == "OFFER" else Decimal(0)}
             for i, (m, c, d, p, s, bias, r) in enumerate(ROWS)])
    yield schema
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def _sql_source(schema: str, where: str = "") -> dict:
    return {"kind": "sql", "url": PG_URL, "column_map": COLUMN_MAP,
            "query": f"SELECT msg_id, ticker, sector, cusip, trade_date, bid, ask, px, dealer, "
                     f"bias, received_at FROM {schema}.colors {where} ORDER BY msg_id"}


@pytest.mark.postgres
def test_a_sql_source_ingests_like_a_file_with_exact_message_ids(memory_store, pg_colors):
    collected = _collect(memory_store, [_sql_source(pg_colors)])
    assert [name for name, _ in collected.files] == ["sql-desk.parquet"]
    assert collected.descriptions == [
        "sql postgresql+psycopg://postgres@127.0.0.1:5432/test: 5 rows as sql-desk.parquet"]

    batch = read_colors(collected.files[0][1], "sql-desk.parquet")
    assert batch.problems == []
    assert list(batch.frame.columns[:len(INPUT_COLUMNS)]) == list(INPUT_COLUMNS)
    assert batch.frame[MESSAGE_ID].dtype == "string"
    expected = pd.DataFrame({
        MESSAGE_ID: [str(r[0]) for r in ROWS],
        CUSIP: [r[1] for r in ROWS],
        DATE: pd.to_datetime([r[2] for r in ROWS]).astype("datetime64[us]"),
        PX: [float(r[3]) for r in ROWS],
        SOURCE: [r[4] for r in ROWS],
        RANK: [3, 4, 2, 1, 6],
        DATE_1: pd.to_datetime(["2026-03-13"] * 4 + ["2026-03-11"]).astype("datetime64[us]"),
        SOURCE_FILE: ["sql-desk.parquet"] * 5,
    }).astype({MESSAGE_ID: "string", CUSIP: "string", PX: "Float64", SOURCE: "string",
               RANK: "Int64", SOURCE_FILE: "string"})
    pd.testing.assert_frame_equal(batch.frame[list(expected.columns)], expected)
    assert batch.frame[MESSAGE_ID].tolist()[0] == "17734072432755619"


@pytest.mark.postgres
def test_since_binds_the_previous_run_time(memory_store, pg_colors):
    collected = _collect(memory_store, [_sql_source(pg_colors, "WHERE received_at >= :since")],
                         since=datetime(2026, 3, 13, 8, 5, tzinfo=UTC))
    batch = read_colors(collected.files[0][1], "sql-desk.parquet")
    assert batch.frame[MESSAGE_ID].tolist() == [str(r[0]) for r in ROWS[1:4]]


@pytest.mark.postgres
def test_a_sql_source_with_no_rows_adds_no_file(memory_store, pg_colors):
    collected = _collect(memory_store, [_sql_source(pg_colors, "WHERE px > 1000")])
    assert collected.files == []
    assert collected.descriptions == [
        "sql postgresql+psycopg://postgres@127.0.0.1:5432/test: 0 rows"]


@pytest.mark.postgres
def test_a_query_cannot_change_data(memory_store, pg_colors):
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:  # a SELECT can still call a function that writes
        connection.execute(sa.text(
            f"CREATE FUNCTION {pg_colors}.wipe() RETURNS bigint LANGUAGE sql AS "
            f"'DELETE FROM {pg_colors}.colors; SELECT 0::bigint'"))
    sneaky = {"kind": "sql", "url": PG_URL, "query": f"SELECT {pg_colors}.wipe() AS n"}
    with pytest.raises(SourceUnavailable, match="cannot execute DELETE in a read-only transaction"):
        _collect(memory_store, [sneaky])
    with engine.connect() as connection:
        assert connection.execute(sa.text(f"SELECT count(*) FROM {pg_colors}.colors")).scalar() == 5


@pytest.mark.postgres
def test_a_missing_mapped_column_names_what_the_query_returns(memory_store, pg_colors):
    source = {**_sql_source(pg_colors), "column_map": {"MESSAGE_NO": "MESSAGE_ID"}}
    with pytest.raises(SourceUnavailable, match="returns no column MESSAGE_NO; it returns msg_id"):
        _collect(memory_store, [source])


def test_an_unreachable_database_is_reported_without_its_password(memory_store):
    settings = load_settings({}, {"MARKETPULSE_SOURCES_SQL_PASSWORD": "s3cret-pw"})
    source = {"kind": "sql", "url": "postgresql+psycopg://postgres@127.0.0.1:1/test",
              "query": "SELECT 1"}
    with pytest.raises(SourceUnavailable) as failure:
        _collect(memory_store, [source], settings)
    assert str(failure.value).startswith(
        "SQL source postgresql+psycopg://postgres:***@127.0.0.1:1/test: ")
    assert "s3cret-pw" not in str(failure.value)


@pytest.mark.postgres
def test_inbox_and_sql_rows_publish_as_one_run(memory_store, pg_colors, inbox):
    collected = _collect(memory_store, [{"kind": "inbox", "path": str(inbox)},
                                        _sql_source(pg_colors)])
    result = pipeline.process_files(memory_store, SYSTEM, collected.files, settings=SETTINGS,
                                    kind=pipeline.AUTOMATED, trigger="scheduled")
    assert result.record.counts["published"] == 2 + 3 + 5
    assert [f["name"] for f in result.record.files] == ["a.xlsx", "b.csv", "sql-desk.parquet"]
    collected.on_success(result.record.run_id)
    assert _tree(inbox) == ["processed/1-a.xlsx", "processed/1-b.csv"]


@pytest.mark.skipif(not ORACLE_DSN, reason="set MARKETPULSE_ORACLE_DSN to test a live Oracle")
def test_a_live_oracle_source(memory_store, monkeypatch):
    table = f"MP_TEST_{uuid.uuid4().hex[:10].upper()}"
    url = sa.engine.make_url(ORACLE_DSN)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(
            f"CREATE TABLE {table} (MSG_ID NUMBER(17), TICKER VARCHAR2(40), SECTOR VARCHAR2(40), "
            "CUSIP VARCHAR2(9), TRADE_DATE DATE, PX NUMBER(10, 4), DEALER VARCHAR2(40), "
            "BIAS VARCHAR2(20))"))
        connection.execute(sa.text(
            f"INSERT INTO {table} VALUES (17734072432755619, 'DEAL 1A A', '2.0_Mezz', "
            "'97988RBL5', DATE '2026-03-13', 99.5, 'JPM', 'BID')"))
    try:
        # The way production runs: the password only in the environment.
        settings = load_settings({}, {"MARKETPULSE_SOURCES_SQL_PASSWORD": url.password or ""})
        source = {"kind": "sql", "url": url.set(password=None).render_as_string(False),
                  "column_map": {"MSG_ID": "MESSAGE_ID", "TRADE_DATE": "DATE",
                                 "DEALER": "SOURCE"},
                  "query": f"SELECT MSG_ID, TICKER, SECTOR, CUSIP, TRADE_DATE, PX, PX AS BID, "
                           f"0 AS ASK, DEALER, BIAS FROM {table} WHERE TRADE_DATE < :since"}
        collected = _collect(memory_store, [source], settings)
        batch = read_colors(collected.files[0][1], collected.files[0][0])
        assert batch.frame[MESSAGE_ID].tolist() == ["17734072432755619"]
        assert batch.problems == []
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE {table} PURGE"))
        engine.dispose()
