"""The job editor's SQL table source (Automation, admins): its fields, Test the connection against a
SQLite table of the desk's, the errors it names, and the source saved with the job."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.automation.jobs import Job, load_jobs, save_job
from pages._ui import automation_views
from tests.desk_tables import COLUMN_MAP, Desk, row

PAGE = "pages/automation.py"
NOW = datetime(2026, 3, 13, 4, 0, tzinfo=UTC)
DOWN = ("The scheduler is not running — start it with `python -m core.scheduler` "
        "(make run starts it)")
MAP_TEXT = "\n".join(f"{k} = {v}" for k, v in COLUMN_MAP.items())


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    monkeypatch.setattr(automation_views, "clock", lambda: NOW)


@pytest.fixture
def desk(tmp_path, monkeypatch):
    """The desk's colors table (7 rows) and its connection named "desk" in the environment."""
    desk = Desk(f"sqlite:///{tmp_path / 'desk.db'}", None)
    desk.add(*(row(n, n) for n in range(1, 8)))
    monkeypatch.setenv("MARKETPULSE_SOURCES_DESK_URL", desk.url)
    return desk


def _errors(at: AppTest) -> list[str]:
    assert not at.exception, at.exception
    return [e.value for e in at.error if e.value != DOWN]


def _fill(at: AppTest, *, secret: str = "desk", table: str = "colors", column_map: str = MAP_TEXT,
          watermark: str = "received_at", limit: int = 0) -> AppTest:
    at.text_input(key="automation.sql_secret").input(secret)
    at.text_input(key="automation.sql_table").input(table)
    at.text_area(key="automation.sql_map").input(column_map)
    at.text_input(key="automation.sql_watermark").input(watermark)
    at.number_input(key="automation.sql_row_limit").set_value(limit)
    return at.run()


def _sql_page(app_as) -> AppTest:
    at = app_as("admin", "admin", page=PAGE)
    assert "automation.sql_secret" not in [t.key for t in at.text_input]  # until ticked
    at.checkbox(key="automation.sql").check().run()
    assert _errors(at) == []
    return at


def test_an_admin_tests_the_connection_and_saves_the_sql_source(app_as, app_store, desk):
    at = _sql_page(app_as)
    assert "Connections set on this host: desk" in [c.value for c in at.caption]
    at.text_input(key="automation.name").input("Desk SQL")
    _fill(at, limit=5)
    at.button(key="automation.sql_test").click().run()
    assert _errors(at) == []
    assert [s.value for s in at.success] == [
        "Connected: colors has 7 row(s) to read (no run of this job has read it yet); the next "
        "run reads 5, the first 5:"]
    [preview] = [d.value for d in at.dataframe if "MESSAGE_ID" in d.value.columns]
    assert list(preview.columns) == list(COLUMN_MAP.values())
    assert preview["MESSAGE_ID"].tolist() == [str(17734072432755600 + n) for n in range(1, 6)]
    assert load_jobs(app_store) == []  # testing saves nothing

    at.checkbox(key="automation.buffer").uncheck()
    at.button(key="automation.save").click().run()
    assert _errors(at) == []
    assert [job.sources for job in load_jobs(app_store)] == [[{
        "kind": "sql", "secret": "desk", "table": "colors", "column_map": COLUMN_MAP,
        "watermark_column": "received_at", "row_limit": 5}]]


@pytest.mark.parametrize(("fields", "error"), [
    ({"table": "colours"}, "sql:desk colours: no table or view colours (there are: colors)"),
    ({"secret": "nope"}, "sql:nope colors: no connection named 'nope': set sources.nope.url in "
                         "the secrets file or MARKETPULSE_SOURCES_NOPE_URL (the URL with its "
                         "password)"),
    ({"watermark": "updated_at"}, "sql:desk colors: colors has no column updated_at (its "
                                  "columns: Dealer, ask, bias, bid, cusip, msg_id, px, "
                                  "received_at, sector, ticker, trade_date)"),
    ({"column_map": MAP_TEXT.replace("px = PX", "price = PX")},
     "sql:desk colors: colors has no column price (its columns: "),
    ({"column_map": MAP_TEXT.replace("bias = BIAS", "bias")},
     "column map: line 10: 'bias' is not SOURCE_COLUMN = OUR_COLUMN (e.g. MSG_ID = MESSAGE_ID)"),
    ({"column_map": MAP_TEXT.replace("cusip = CUSIP\n", "")},
     "sources[0].column_map: map a column to CUSIP (required)"),
])
def test_the_connection_test_names_what_is_wrong(app_as, desk, fields, error):
    at = _fill(_sql_page(app_as), **fields)
    at.button(key="automation.sql_test").click().run()
    [shown] = [e.replace("\\", "") for e in _errors(at)]  # as read: Markdown escapes dropped
    assert shown.startswith(f"Testing the connection: {error}"), shown
    assert at.success == []


def test_a_sql_job_opens_with_its_source_and_tests_past_its_watermark(app_as, app_store, desk):
    job = save_job(app_store, SYSTEM, Job(name="Desk SQL", schedule="30 9 * * 1-5", sources=[
        {"kind": "sql", "secret": "desk", "table": "colors", "column_map": COLUMN_MAP,
         "watermark_column": "received_at"}]), now=NOW)
    from core.intake.watermarks import save_watermark

    save_watermark(app_store, job.id, job.sources[0], datetime(2026, 3, 13, 8, 5), run_id=1,
                   at=NOW)
    at = app_as("admin", "admin", page=PAGE)
    at.selectbox(key="automation.edit").select(job.id).run()
    assert at.checkbox(key="automation.sql").value is True
    assert [at.text_input(key=k).value for k in ("automation.sql_secret", "automation.sql_table",
                                                 "automation.sql_watermark")] == [
        "desk", "colors", "received_at"]
    assert at.text_area(key="automation.sql_map").value == MAP_TEXT
    at.button(key="automation.sql_test").click().run()
    assert [s.value for s in at.success] == [
        "Connected: colors has 2 row(s) to read (after the watermark 2026-03-13 08:05:00); the "
        "next run reads 2, the first 2:"]
