"""The SQL colors source: a table read past a watermark by real job runs on SQLite and PostgreSQL
(a schema of its own per test), its checks and errors, the connection test, the secret kept out
of the store, every statement compiled for Oracle, and a live Oracle when MARKETPULSE_ORACLE_DSN
is set."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from core.access import ANALYST, SYSTEM, Actor
from core.automation.job_runs import RunContext
from core.automation.jobs import Job, request_run, save_job
from core.automation.scheduler import run_once
from core.config import load_settings
from core.errors import ConfigError, InvalidInput, PermissionDenied
from core.intake.sources import check_sources
from core.intake.sql_reader import READ_ONLY, Target, count_rows, select_rows
from core.intake.sql_source import SourceUnavailable, probe_sql_source, rows_to_frame
from core.intake.watermarks import load_watermark
from core.runs import workbooks
from core.runs.records import RunRecord, load_runs, output_blob_key
from core.schema import CUSIP, MESSAGE_ID, PX, RANK, SOURCE, SOURCE_FILE
from storage.run_tables import run_tables
from tests.desk_tables import COLUMN_MAP, Desk, row

NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
# Read at import: the autouse fixture clears MARKETPULSE_* before each test.
ORACLE_DSN = os.environ.get("MARKETPULSE_ORACLE_DSN", "")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def desk(request, tmp_path):
    if request.param == "sqlite":
        yield Desk(f"sqlite:///{tmp_path / 'desk.db'}", None)
        return
    yield Desk(PG_URL, request.getfixturevalue("postgres_schema"))


def source(desk: Desk, **changes: Any) -> dict[str, Any]:
    return {"kind": "sql", "secret": "desk", "table": desk.table, "column_map": COLUMN_MAP,
            "watermark_column": "received_at", **changes}


def settings_for(desk: Desk, url: str | None = None):
    return load_settings({"sources": {"desk": {"url": url or desk.url}}}, {})


def add_job(store, *sources: dict[str, Any], name: str = "Desk SQL") -> Job:
    return save_job(store, SYSTEM, Job(name=name, schedule="0 7 * * 1-5", sources=list(sources)),
                    now=NOW)


def run(store, job: Job, settings) -> RunRecord:
    record = RunContext(store, settings, "test", now=NOW).execute(
        job, trigger="run_now", override=False, actor=SYSTEM, record_empty=True)
    assert record is not None
    return record


def published(store, run_id: int) -> pd.DataFrame:
    return run_tables(store).read("colors", [run_id])


def stored_texts(store) -> Iterator[tuple[str, str]]:
    """Everything a MemoryStore holds, as text: documents, blobs (each part of a workbook) and
    every table's rows."""
    for key in store.list(""):
        yield key, json.dumps(store.get(key)[0], default=str)
    for key in store.list_blobs(""):
        data = store.get_blob(key)
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as book:
                for part in book.namelist():
                    yield f"{key}:{part}", book.read(part).decode("utf-8", "replace")
        else:
            yield key, data.decode("utf-8", "replace")
    for table in store.tables():
        yield table, store.scan(table).to_csv()


# -- runs ------------------------------------------------------------------------------------------
def test_a_run_reads_the_table_publishes_and_the_next_reads_only_newer_rows(memory_store, desk):
    desk.add(row(1, 0), row(2, 5, bias="OFFER", dealer="GS"), row(3, 10, bias="NOT A BIAS"))
    job = add_job(memory_store, source(desk))
    settings = settings_for(desk)
    first = run(memory_store, job, settings)
    assert (first.status, first.counts["read"], first.counts["published"],
            first.counts["quarantined"]) == ("success", 3, 2, 1)  # an unknown BIAS: quarantined
    name = f"sql-desk-{desk.table}.parquet"
    assert [(f["name"], f["source"]) for f in first.files] == [(name, (
        f"sql:desk {desk.table}: rows 3, watermark (start) → {desk.stamp(10)}"))]
    rows = published(memory_store, first.run_id).sort_values(MESSAGE_ID)
    assert rows[[MESSAGE_ID, CUSIP, SOURCE, PX, RANK, SOURCE_FILE]].astype(object).values.tolist(
    ) == [["17734072432755601", "97988RBL5", "JPM", 98.5, 3, name],
          ["17734072432755602", "97988RBL5", "GS", 97.5, 4, name]]
    assert str(load_watermark(memory_store, job.id, job.sources[0]).value) == desk.stamp(10)

    desk.add(row(4, 7), row(5, 20, cusip="000840AG3"), row(6, 30, cusip="037833100"))
    second = run(memory_store, job, settings)  # 08:07 is older than the watermark: never read
    assert [f["source"] for f in second.files] == [
        f"sql:desk {desk.table}: rows 2, watermark {desk.stamp(10)} → {desk.stamp(30)}"]
    assert sorted(published(memory_store, second.run_id)[MESSAGE_ID]) == [
        "17734072432755605", "17734072432755606"]
    third = run(memory_store, job, settings)
    assert (third.status, third.error) == (
        "skipped", f"nothing to process: SQL source desk {desk.table} had no new input")


def test_a_failed_publish_keeps_the_watermark_and_the_next_run_reads_again(memory_store, desk,
                                                                            monkeypatch):
    desk.add(row(1, 0), row(2, 5))
    job = add_job(memory_store, source(desk))

    def disk_full(*args, **kwargs):  # after the rows are written, before the run is visible
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(workbooks, "mark_pending", disk_full)
        failed = run(memory_store, job, settings_for(desk))
    assert (failed.status, failed.error) == ("failed", "disk full")
    assert load_watermark(memory_store, job.id, job.sources[0]) is None
    again = run(memory_store, job, settings_for(desk))
    assert (again.status, again.counts["published"]) == ("success", 2)
    assert str(load_watermark(memory_store, job.id, job.sources[0]).value) == desk.stamp(5)


def test_the_row_limit_stops_between_watermarks_and_the_record_says_so(memory_store, desk):
    desk.add(row(1, 1), row(2, 2), row(3, 2), row(4, 3), row(5, 4))
    job = add_job(memory_store, source(desk, row_limit=2))
    settings = settings_for(desk)
    notes = [run(memory_store, job, settings).files[0]["source"] for _ in range(3)]
    assert notes == [
        f"sql:desk {desk.table}: rows 1, watermark (start) → {desk.stamp(1)}; row limit 2 "
        "reached: the next run reads on",  # 08:02 twice would cross the limit: left whole
        f"sql:desk {desk.table}: rows 2, watermark {desk.stamp(1)} → {desk.stamp(2)}; row limit "
        "2 reached: the next run reads on",
        f"sql:desk {desk.table}: rows 2, watermark {desk.stamp(2)} → {desk.stamp(4)}"]


def test_more_rows_at_one_watermark_than_the_limit_fail_with_a_hint(memory_store, desk):
    desk.add(row(1, 2), row(2, 2))
    job = add_job(memory_store, source(desk, row_limit=1))
    record = run(memory_store, job, settings_for(desk))
    assert (record.status, record.error) == ("failed", (
        f"sql:desk {desk.table}: more than 1 rows have received_at = {desk.stamp(2)}; raise "
        "the row limit to read them in one run"))


def test_the_setting_limits_rows_when_the_job_does_not(memory_store, desk):
    desk.add(row(1, 1), row(2, 2), row(3, 3))
    job = add_job(memory_store, source(desk))
    settings = load_settings({"sources": {"desk": {"url": desk.url}, "sql_row_limit": 2}}, {})
    assert run(memory_store, job, settings).counts["read"] == 2


@pytest.mark.parametrize(("change", "problem"), [
    ({"table": "colours"}, "no table or view colours{inside} (there are: colors)"),  # in its schema
    ({"column_map": {**COLUMN_MAP, "dealer_name": "SOURCE"} | {"Dealer": "COV_PRICE"}},
     "{table} has no column dealer_name (its columns: Dealer, ask, bias, bid, cusip, msg_id, px, "
     "received_at, sector, ticker, trade_date)"),
    ({"watermark_column": "updated_at"}, "{table} has no column updated_at (its columns: "),
    ({"secret": "nope"}, "no connection named 'nope': set sources.nope.url in the secrets file "
                         "or MARKETPULSE_SOURCES_NOPE_URL (the URL with its password)"),
])
def test_a_broken_source_fails_its_run_naming_what_is_wrong(memory_store, desk, change, problem):
    desk.add(row(1, 0))
    if "table" in change and desk.schema:
        change = {"table": f"{desk.schema}.{change['table']}"}
    job = add_job(memory_store, source(desk, **change))
    record = run(memory_store, job, settings_for(desk))
    inside = f" in schema {desk.schema}" if desk.schema else ""
    expected = f"sql:{job.sources[0]['secret']} {job.sources[0]['table']}: " + problem.format(
        inside=inside, table=desk.table)
    assert record.status == "failed"
    assert record.error.startswith(expected), record.error
    assert load_watermark(memory_store, job.id, job.sources[0]) is None


def test_the_scheduler_runs_the_other_jobs_when_a_source_is_broken(memory_store, desk):
    desk.add(row(1, 0))
    broken = add_job(memory_store, source(desk, table="missing"), name="Broken")
    good = add_job(memory_store, source(desk), name="Good")
    for job in (broken, good):
        request_run(memory_store, SYSTEM, job.id, now=NOW)
    records = run_once(memory_store, settings_for(desk), NOW, owner="sched-a")
    assert sorted((r.job, r.status) for r in records) == [("Broken", "failed"),
                                                          ("Good", "success")]
    assert sorted((r.job, r.status) for r in load_runs(memory_store)) == [
        ("Broken", "failed"), ("Good", "success")]


@pytest.mark.postgres
def test_a_view_cannot_change_data_while_it_is_read(memory_store, postgres_schema):
    desk = Desk(PG_URL, postgres_schema)
    desk.add(row(1, 0))
    with desk.engine.begin() as connection:  # reading a view can call a function that writes
        connection.execute(sa.text(
            f"CREATE FUNCTION {desk.schema}.wipe() RETURNS bigint LANGUAGE sql AS "
            f"'DELETE FROM {desk.schema}.colors; SELECT 0::bigint'"))
        connection.execute(sa.text(f"CREATE VIEW {desk.schema}.sneaky AS SELECT *, "
                                   f"{desk.schema}.wipe() AS n FROM {desk.schema}.colors"))
    job = add_job(memory_store, source(desk, table=f"{desk.schema}.sneaky"))
    record = run(memory_store, job, settings_for(desk))
    assert "cannot execute DELETE in a read-only transaction" in record.error
    with desk.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(desk.colors)
                                  ).scalar() == 1


@pytest.mark.postgres
def test_the_secret_never_reaches_the_store(memory_store, postgres_schema):
    desk = Desk(PG_URL, postgres_schema)
    desk.add(row(1, 0), row(2, 5))
    password = f"pw-{uuid.uuid4().hex}"  # trust auth: accepted and ignored by the server
    url = f"postgresql+psycopg://postgres:{password}@127.0.0.1:5432/test"
    settings = settings_for(desk, url)
    good = add_job(memory_store, source(desk), name="Good")
    broken = add_job(memory_store, source(desk, table="missing"), name="Broken")
    unreachable = load_settings({"sources": {"desk": {
        "url": f"postgresql+psycopg://postgres:{password}@127.0.0.1:1/test"}}}, {})
    records = [run(memory_store, good, settings), run(memory_store, broken, settings),
               run(memory_store, good, unreachable)]
    assert [r.status for r in records] == ["success", "failed", "failed"]
    assert records[2].error.startswith(f"sql:desk {desk.table}: connection failed: connection "
                                       'to server at "127.0.0.1", port 1 failed')
    with pytest.raises(SourceUnavailable, match="port 1 failed") as failure:
        probe_sql_source(memory_store, SYSTEM, good.sources[0], unreachable)
    assert password not in str(failure.value)
    texts = dict(stored_texts(memory_store))
    workbook = f"{output_blob_key(records[0].run_id)}:xl/worksheets/sheet1.xml"
    assert {"colors", "audit", workbook, f"sources/watermarks/{good.id}"} <= set(texts)
    assert [where for where, text in texts.items() if password in text] == []


# -- the connection test ---------------------------------------------------------------------------
def test_the_connection_test_counts_the_newer_rows_and_previews_five(memory_store, desk):
    desk.add(*(row(n, n) for n in range(1, 8)))
    job = add_job(memory_store, source(desk))
    settings = settings_for(desk)
    probe = probe_sql_source(memory_store, SYSTEM, job.sources[0], settings, job_id=job.id)
    assert (probe.table, probe.newer, probe.watermark) == (desk.table, 7, "(start)")
    assert list(probe.preview.columns) == list(COLUMN_MAP.values())
    assert probe.preview[MESSAGE_ID].tolist() == [str(17734072432755600 + n) for n in range(1, 6)]
    run(memory_store, job, settings.override(sources_sql_row_limit=4))
    probe = probe_sql_source(memory_store, SYSTEM, job.sources[0], settings, job_id=job.id)
    assert (probe.newer, probe.watermark) == (3, desk.stamp(4))
    assert probe.preview[MESSAGE_ID].tolist() == [str(17734072432755600 + n) for n in (5, 6, 7)]


def test_only_those_who_edit_jobs_test_a_connection(memory_store, desk):
    job = add_job(memory_store, source(desk))
    with pytest.raises(PermissionDenied, match="ana is not allowed to edit jobs"):
        probe_sql_source(memory_store, Actor("ana", ANALYST), job.sources[0], settings_for(desk))


# -- checks ----------------------------------------------------------------------------------------
def test_a_sql_source_is_checked_and_normalised():
    checked = check_sources([{"kind": "sql", "secret": " Desk ", "table": "DESK.COLORS",
                              "column_map": COLUMN_MAP, "watermark_column": "RECEIVED_AT",
                              "row_limit": "1000"}])
    assert checked == [{"kind": "sql", "secret": "desk", "table": "DESK.COLORS",
                        "column_map": COLUMN_MAP, "watermark_column": "RECEIVED_AT",
                        "row_limit": 1000}]


def good(**changes: Any) -> dict[str, Any]:
    return {"kind": "sql", "secret": "desk", "table": "colors", "column_map": COLUMN_MAP,
            "watermark_column": "received_at", **changes}


WITHOUT_CUSIP = {k: v for k, v in COLUMN_MAP.items() if v != CUSIP}


@pytest.mark.parametrize(("source", "message"), [
    (good(secret="desk-prod"), "sources[0].secret: 'desk-prod' is not a connection name"),
    (good(table="colors; DROP TABLE colors"), "sources[0].table: 'colors; DROP TABLE colors' is "
                                              "not a table name"),
    (good(table="a.b.c"), "sources[0].table: 'a.b.c' is not a table name"),
    (good(watermark_column=""), "sources[0].watermark_column: '' is not a column name"),
    (good(row_limit=-5), "sources[0].row_limit: -5: a whole number of rows, at least 1"),
    (good(column_map={}), "sources[0].column_map: map the table's columns to ours"),
    (good(column_map={**COLUMN_MAP, "px2": "PX"}), "sources[0].column_map: px and px2 both map "
                                                   "to PX"),
    (good(column_map={**COLUMN_MAP, "CUSIP": "COV_PRICE"}), "sources[0].column_map: cusip and "
                                                            "CUSIP are one column"),
    (good(column_map={**COLUMN_MAP, 'x" --': "COV_PRICE"}), "sources[0].column_map: 'x\" --' is "
                                                            "not a column name"),
    (good(column_map={**COLUMN_MAP, "cov": "COVERAGE"}), "sources[0].column_map: cov → "
                                                         "'COVERAGE': not one of our columns"),
    (good(column_map=WITHOUT_CUSIP), "sources[0].column_map: map a column to CUSIP (required)"),
    ({"kind": "sql", "query": "SELECT * FROM colors"}, "sources[0].table: the SQL source reads "
                                                       "a table or view now, not a query"),
])
def test_a_bad_sql_source_is_refused_naming_the_field(source, message):
    with pytest.raises(InvalidInput) as refused:
        check_sources([source])
    assert str(refused.value).startswith(message)


def test_derivable_columns_need_not_be_mapped():
    derived = {"m": "MESSAGE_ID", "t": "TICKER", "s": "SECTOR", "c": "CUSIP", "d": "DATE",
               "b": "BID", "a": "ASK", "dealer": "SOURCE", "bias": "BIAS"}  # PX, RANK, PRICE_LEVEL
    assert check_sources([good(column_map=derived)])[0]["column_map"] == derived


def test_connections_come_from_secrets_or_the_environment_never_shown():
    settings = load_settings({"sources": {"desk": {"url": "sqlite:///a.db"},
                                          "risk": {"url": "postgresql://u:hunter2@db/x"}}},
                             {"MARKETPULSE_SOURCES_DESK_URL": "sqlite:///b.db",
                              "MARKETPULSE_SOURCES_ORA_EU_URL": "oracle+oracledb://u:p@h/?s=x"})
    assert settings.source_names() == ["desk", "ora_eu", "risk"]
    assert (settings.source_url("desk"), settings.source_url("nope")) == ("sqlite:///b.db", None)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.public())
    with pytest.raises(ConfigError, match=r"setting sources\.sql_url: no longer used"):
        load_settings({"sources": {"sql_url": "oracle+oracledb://u@h/?s=x"}}, {})


def test_oracle_numbers_become_exact_text_for_text_columns():
    # SQLAlchemy hands Oracle NUMBER values over as Decimal; a 17-digit id must not pass via float.
    rows = [(Decimal("17734072432755619"), Decimal("99.5"), Decimal("3"), None)]
    frame = rows_to_frame(["msg_id", "px", "rank", "cusip"], rows, {"MSG_ID": "MESSAGE_ID"})
    assert frame.to_dict("records") == [
        {"MESSAGE_ID": "17734072432755619", "px": 99.5, "rank": 3, "cusip": None}]


# -- Oracle ----------------------------------------------------------------------------------------
ORACLE_TARGET = Target("DESK", "colors", {"MSG_ID": "msg_id", "Px": "Px", "cusip": "cusip"},
                       "received_at", {"msg_id": sa.Numeric(17, 0), "Px": sa.Numeric(10, 4),
                                       "cusip": sa.String(9),
                                       "received_at": sa.TIMESTAMP(timezone=True)})


def _oracle(statement: Any) -> tuple[str, dict[str, Any]]:
    dialect = sa.create_engine("oracle+oracledb://scott@db:1521/?service_name=C").dialect
    compiled = statement.compile(dialect=dialect)
    return " ".join(str(compiled).split()), compiled.params


def test_every_statement_of_the_source_compiles_for_oracle():
    since = datetime(2026, 3, 13, 8, 10, tzinfo=UTC)
    assert _oracle(select_rows(ORACLE_TARGET, since, 501)) == (
        'SELECT "DESK".colors.msg_id, "DESK".colors."Px", "DESK".colors.cusip, '
        '"DESK".colors.received_at AS mp_watermark FROM "DESK".colors '
        'WHERE "DESK".colors.received_at > :received_at_1 ORDER BY "DESK".colors.received_at '
        'FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY',
        {"received_at_1": since, "param_1": 501})
    assert _oracle(select_rows(ORACLE_TARGET, None, 6))[0].split(" WHERE ")[1] == (
        '"DESK".colors.received_at IS NOT NULL ORDER BY "DESK".colors.received_at '
        'FETCH FIRST __[POSTCOMPILE_param_1] ROWS ONLY')
    assert _oracle(count_rows(ORACLE_TARGET, Decimal(42))) == (
        'SELECT count(*) AS count_1 FROM "DESK".colors '
        'WHERE "DESK".colors.received_at > :received_at_1', {"received_at_1": Decimal(42)})
    assert _oracle(READ_ONLY) == ("SET TRANSACTION READ ONLY", {})


@pytest.mark.skipif(not ORACLE_DSN, reason="set MARKETPULSE_ORACLE_DSN to test a live Oracle")
def test_a_live_oracle_source(memory_store):
    table = f"MP_SRC_{uuid.uuid4().hex[:10].upper()}"
    engine = sa.create_engine(ORACLE_DSN, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(
            f"CREATE TABLE {table} (MSG_ID NUMBER(17), TICKER VARCHAR2(40), SECTOR VARCHAR2(40), "
            "CUSIP VARCHAR2(9), TRADE_DATE DATE, PX NUMBER(10, 4), DEALER VARCHAR2(40), "
            "BIAS VARCHAR2(20), SEQ NUMBER(12))"))
        connection.execute(sa.text(
            f"INSERT INTO {table} VALUES (17734072432755619, 'DEAL 1A A', '2.0_Mezz', "
            "'97988RBL5', DATE '2026-03-13', 99.5, 'JPM', 'BID', 1)"))
    try:
        oracle_source = {"kind": "sql", "secret": "ora", "table": table.lower(),
                         "column_map": {"MSG_ID": "MESSAGE_ID", "TICKER": "TICKER",
                                        "SECTOR": "SECTOR", "CUSIP": "CUSIP", "TRADE_DATE": "DATE",
                                        "PX": "PX", "DEALER": "SOURCE", "BIAS": "BIAS"},
                         "watermark_column": "seq"}
        job = add_job(memory_store, oracle_source)
        settings = load_settings({"sources": {"ora": {"url": ORACLE_DSN}}}, {})
        assert probe_sql_source(memory_store, SYSTEM, job.sources[0], settings).newer == 1
        record = run(memory_store, job, settings)
        assert (record.status, record.counts["published"]) == ("success", 1)
        assert published(memory_store, record.run_id)[MESSAGE_ID].tolist() == [
            "17734072432755619"]
        assert load_watermark(memory_store, job.id, job.sources[0]).value == 1
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE {table} PURGE"))
        engine.dispose()
