"""Dashboard: KPIs, charts, price trends, the latest parents, the runs and the export, all under the
filters and the user's sectors, at a pinned time (Friday 13 March 2026, 17:00 in Karachi)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import openpyxl
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM
from core.automation.jobs import Job, save_job
from core.automation.scheduler import run_once
from core.cli.demo import generate_colors
from core.compliance.access_log import load_access_log
from core.config import load_settings
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, save_rule
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.schema import BIAS, CUSIP, IS_PARENT, RUN_ID, SECTOR, SOURCE
from pages._ui import automation_views
from storage import open_store
from tests.pages.conftest import open_app
from tests.pages.test_search_page import (
    BSL,
    MM,
    chart,
    ok,
    publish,
    recording_media,
    recording_switches,
    two_sector_colors,
    use_store,
    values,
)

NOW = datetime(2026, 3, 13, 12, tzinfo=UTC)  # 17:00 in Asia/Karachi, the desk's timezone
RUN_TIMES = (("2026-03-02", datetime(2026, 3, 2, 10, tzinfo=UTC)),
             ("2026-03-13", datetime(2026, 3, 13, 10, tzinfo=UTC)))
NO_RUNS = ("No runs yet. Publish colors from the Manual Color page, or run "
           "`python -m core process FILE`.")
SECTOR_COUNTS = ("Published and Parents count your sectors' colors; run totals are shown to users "
                 "who see every sector.")
TITLES = {"dashboard.chart_month_bias": "Colors by month and BIAS",
          "dashboard.chart_source": "Daily volume by source",
          "dashboard.chart_runs": "Run duration and throughput",
          "dashboard.chart_sector": "Daily volume by sector",
          "dashboard.chart_diff": "PX − COV_PRICE distribution by DIFF_STATUS",
          "dashboard.chart_quality": "Data quality score per run"}


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setattr(automation_views, "clock", lambda: NOW)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[str, list[pipeline.RunResult]]:
    """Two AUTOMATED runs (2 and 13 March) of both sectors; an active rule excludes the PNCAP
    colors; a weekday 09:30 job in Karachi is the next run."""
    url = str(tmp_path_factory.mktemp("dashboard") / "store")
    store = open_store(url)
    save_rule(store, SYSTEM, Rule(
        name="No PNCAP", conditions=Group("or", [Condition(SOURCE, "equal_to", "PNCAP")])))
    save_job(store, SYSTEM, Job(name="Morning", schedule="30 9 * * 1-5",
                                timezone="Asia/Karachi"), now=NOW)
    return url, [publish(store, day, at) for day, at in RUN_TIMES]


@pytest.fixture
def served(monkeypatch):
    return recording_media(monkeypatch)


@pytest.fixture
def switched(monkeypatch) -> list:
    return recording_switches(monkeypatch)


@pytest.fixture
def store(two_runs, monkeypatch):
    return use_store(two_runs[0], monkeypatch)


@pytest.fixture
def results(two_runs) -> list[pipeline.RunResult]:
    return two_runs[1]


def _dashboard(store, username="admin", role="admin", **kwargs):
    at = ok(open_app(store, username, role, **kwargs))
    assert at.title[0].value == "Dashboard"
    return at


def _kpis(at) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def _in(frame: pd.DataFrame, sector: str | None) -> pd.DataFrame:
    return frame if sector is None else frame[frame[SECTOR] == sector]


def _totals(spec: dict) -> dict[str, int]:
    """Each trace's name → the sum of its y values (colors)."""
    return {t["name"]: int(sum(values(t["y"]))) for t in spec["data"]}


def _table(at, column: str) -> pd.DataFrame:
    (frame,) = [d.value for d in at.dataframe if d.key is None and column in d.value.columns]
    return frame


# -- an empty store -------------------------------------------------------------------------------
def test_an_empty_store_says_there_are_no_runs(app_as):
    at = ok(app_as("admin", "admin"))
    assert [i.value for i in at.info] == [
        "No jobs yet: create one on the Automation page.", NO_RUNS]  # the admin sees run buttons
    assert (list(at.metric), list(at.dataframe), at.get("plotly_chart")) == ([], [], [])


# -- KPIs -----------------------------------------------------------------------------------------
def test_the_kpis_count_today_this_month_and_the_runs(store, results):
    first, latest = results
    at = _dashboard(store)
    assert len(latest.published) == 24
    finished = pd.Timestamp(latest.record.finished_at).tz_convert("Asia/Karachi")
    assert _kpis(at) == [
        ("Today's colors", "24"), ("This month", str(24 + len(first.published))),
        ("Today's parents", "6"), ("Excluded today", "10"), ("Quarantined today", "2"),
        ("Latest parents", "6"), ("Last run", "Run 2: success"),
        ("Last run at (Asia/Karachi)", f"{finished:%d %b %H:%M}"),
        ("Next run", "in 2 d 16 h")]  # Monday 09:30 in Karachi
    assert at.metric[7].help == f"{finished:%a %d %b %Y %H:%M:%S} PKT"
    assert at.metric[8].help == "Morning at Mon 16 Mar 2026 09:30 PKT"
    assert at.caption[0].value == "DATE window: 12 Feb 2026 to 13 Mar 2026."  # the last 30 days


def test_the_charts_are_titled_and_count_every_color(store, results):
    at = _dashboard(store)
    published = pd.concat([r.published for r in results])
    specs = {key: chart(at, key) for key in TITLES}
    assert {k: s["layout"]["title"]["text"] for k, s in specs.items()} == TITLES
    assert specs["dashboard.chart_month_bias"]["layout"]["yaxis"]["title"]["text"] == (
        "colors (rows)")
    assert specs["dashboard.chart_month_bias"]["layout"]["barmode"] == "stack"
    assert _totals(specs["dashboard.chart_month_bias"]) == published.groupby(BIAS).size().to_dict()
    assert _totals(specs["dashboard.chart_sector"]) == published.groupby(SECTOR).size().to_dict()
    assert _totals(specs["dashboard.chart_source"]) == published.groupby(SOURCE).size().to_dict()
    assert _totals(specs["dashboard.chart_quality"]) == {
        "quality": int(sum(r.record.quality_score for r in results))}
    assert [t["name"] for t in specs["dashboard.chart_runs"]["data"]] == ["duration (s)",
                                                                          "rows/s"]
    assert [i.value for i in at.info] == ["Choose CUSIPs to compare their parent prices."]


def test_price_trends_show_the_chosen_cusips(store, results):
    at = _dashboard(store)
    at = ok(at.multiselect(key="dashboard.cusips").set_value(["V4BS8NAG1"]).run())
    spec = chart(at, "dashboard.chart_trend")
    assert spec["layout"]["yaxis"]["title"]["text"] == "price (% of par)"
    parents = pd.concat([r.published for r in results])
    parents = parents[parents[IS_PARENT] & (parents[CUSIP] == "V4BS8NAG1")]
    assert {t["name"]: values(t["y"]) for t in spec["data"]} == {
        "V4BS8NAG1": parents["PX"].tolist(), "V4BS8NAG1 COV_PRICE": parents["COV_PRICE"].tolist()}


# -- filters --------------------------------------------------------------------------------------
def test_a_shorter_window_leaves_the_older_colors_out_of_charts_and_kpis(store, results):
    at = _dashboard(store)
    at = ok(at.selectbox(key="dashboard.window").select("Last 7 days").run())
    assert at.caption[0].value == "DATE window: 07 Mar 2026 to 13 Mar 2026."
    latest = results[1].published
    assert _totals(chart(at, "dashboard.chart_sector")) == latest.groupby(SECTOR).size().to_dict()
    assert _kpis(at)[1] == ("This month", "24")  # the 2 March colors are outside the window
    at = ok(at.selectbox(key="dashboard.window").select("All dates").run())
    assert at.caption[0].value == "DATE window: every date."
    assert _kpis(at)[1] == ("This month", str(24 + len(results[0].published)))


def test_a_date_range_narrows_the_charts_and_the_runs(store, results):
    at = _dashboard(store)
    at = ok(at.selectbox(key="dashboard.window").select("Custom").run())
    at = ok(at.date_input(key="dashboard.date_from").set_value(date(2026, 3, 13)).run())
    latest = results[1].published
    assert _totals(chart(at, "dashboard.chart_month_bias")) == latest.groupby(
        BIAS).size().to_dict()
    assert {values(t["x"])[0] for t in chart(at, "dashboard.chart_sector")["data"]} == {
        "2026-03-13T00:00:00.000"}
    assert _table(at, "Run")["Run"].tolist() == [2]
    assert set(at.dataframe(key="dashboard.parents").value[RUN_ID]) == {2}
    assert _kpis(at)[:3] == [("Today's colors", "24"),
                             ("This month", "24"),  # the KPIs follow the dates too
                             ("Today's parents", "6")]


def test_the_sector_and_processing_type_filters_drive_the_kpis(store, results):
    at = _dashboard(store)
    at = ok(at.multiselect(key="dashboard.sectors").set_value([MM]).run())
    latest = results[1]
    assert _kpis(at)[:5] == [
        ("Today's colors", str(len(_in(latest.published, MM)))),
        ("This month", str(sum(len(_in(r.published, MM)) for r in results))),
        ("Today's parents", "3"), ("Excluded today", str(len(_in(latest.excluded, MM)))),
        ("Quarantined today", str(len(_in(latest.quarantined, MM))))]
    assert list(_totals(chart(at, "dashboard.chart_sector"))) == [MM]

    at = ok(at.multiselect(key="dashboard.types").set_value(["MANUAL"]).run())
    assert _kpis(at)[:5] == [("Today's colors", "0"), ("This month", "0"),
                             ("Today's parents", "0"), ("Excluded today", "0"),
                             ("Quarantined today", "0")]
    assert "No colors for these filters." in [i.value for i in at.info]
    assert _table(at, "Run").empty


# -- tables and export ----------------------------------------------------------------------------
def test_the_latest_parents_list_each_cusip_once_and_show_a_parents_children(store, results,
                                                                             switched):
    at = _dashboard(store)
    parents = at.dataframe(key="dashboard.parents").value
    latest = results[1].published  # run 2 priced every CUSIP of run 1 again
    expected = latest[latest[IS_PARENT]]
    assert parents[[RUN_ID, CUSIP]].values.tolist() == expected[[RUN_ID, CUSIP]].values.tolist()
    assert parents[CUSIP].is_unique
    assert ("Latest parents", str(len(parents))) in _kpis(at)
    assert ("6 CUSIPs, each with its current parent (from the newest run that priced it); 1–6 "
            "shown. Select one to see its children.") in [c.value for c in at.caption]
    pick = next(i for i, n in enumerate(expected["CHILDREN_COUNT"]) if n > 0)  # one with children
    at.session_state["dashboard.parents"] = {"selection": {"rows": [pick], "columns": []}}
    at = ok(at.run())
    parent = expected.iloc[pick]
    children = _table(at, CUSIP)  # beneath the parents (a table without selection has no key)
    mine = latest[latest["PARENT_COLOR_ID"] == parent["COLOR_ID"]]
    assert children[[RUN_ID, CUSIP, "PX", "SOURCE"]].values.tolist() == mine[
        [RUN_ID, CUSIP, "PX", "SOURCE"]].values.tolist()
    assert len(children) == parent["CHILDREN_COUNT"] > 0
    ok(at.button(key="dashboard.open").click().run())
    assert switched == [("pages/security.py", {"cusip": parents[CUSIP].iloc[pick]})]


def test_the_latest_parents_page_through_many_cusips(app_as, app_store):
    colors = generate_colors(400, seed=5, date="2026-03-13")
    pipeline.process_files(app_store, SYSTEM, [("many.xlsx", write_xlsx(colors))],
                           settings=load_settings({}, {}), now=NOW)
    cusips = colors["CUSIP"].nunique()
    assert cusips > 50
    at = ok(app_as("admin", "admin"))
    assert ("Latest parents", f"{cusips:,}") in _kpis(at)
    first = at.dataframe(key="dashboard.parents").value
    assert at.number_input(key="dashboard.parents_page").label == "Page (of 2)"
    at = ok(at.number_input(key="dashboard.parents_page").set_value(2).run())
    second = at.dataframe(key="dashboard.parents").value
    assert (len(first), len(second)) == (50, cusips - 50)
    assert set(first[CUSIP]) | set(second[CUSIP]) == set(colors["CUSIP"])
    assert (f"{cusips} CUSIPs, each with its current parent (from the newest run that priced "
            f"it); 51–{cusips} shown. Select one to see its children.") in [
        c.value for c in at.caption]


def test_the_runs_table_lists_every_run_newest_first(store, results):
    at = _dashboard(store)
    table = _table(at, "Run")
    counts = [r.record.counts for r in reversed(results)]
    expected = pd.DataFrame({
        "Run": [2, 1], "Kind": ["AUTOMATED"] * 2, "Status": [runs.SUCCESS] * 2,
        "Trigger": ["scheduled"] * 2, "Requested by": ["system"] * 2,
        **{name.title(): [c[name] for c in counts]
           for name in ("read", "published", "parents", "excluded", "quarantined")},
        "Error": ["", ""],
    })
    assert_frame_equal(table[expected.columns], expected, check_dtype=False)


def test_run_now_on_the_dashboard_is_followed_and_the_runs_refresh(app_as, app_store, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "colors.xlsx").write_bytes(write_xlsx(two_sector_colors("2026-03-13")))
    save_job(app_store, SYSTEM, Job(name="Inbox", schedule="30 9 * * 1-5",
                                    sources=[{"kind": "inbox", "path": str(inbox)}]), now=NOW)
    at = ok(app_as("admin", "admin"))
    assert [i.value for i in at.info] == [NO_RUNS]
    at = ok(at.button(key="dashboard.run_now").click().run())
    assert [p.proto.text for p in at.get("progress")] == [
        "A run of Inbox is queued, requested by admin: waiting 0 s for the scheduler to pick it "
        "up."]
    [record] = run_once(app_store, load_settings({}, {}), NOW, owner="sched",
                        notify=lambda *a: None)
    at = ok(at.run())
    assert at.success[0].value.startswith(f"Run 1 of Inbox succeeded in {record.duration_s:.1f} s: "
                                          f"{record.counts['published']} colors published")
    table = _table(at, "Run")
    assert table[["Run", "Trigger", "Requested by"]].values.tolist() == [[1, "run_now", "admin"]]


def _sheets(data: bytes) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in book.worksheets}


def test_the_export_is_the_dashboards_data_and_is_logged(store, results, served):
    at = _dashboard(store, "exporter", "analyst")
    assert load_access_log(store, username="exporter").empty  # logged when downloaded
    data, name = served(at.get("download_button")[0])  # one click: made when clicked
    assert name == "marketpulse-dashboard-20260313-1200.xlsx"
    sheets = _sheets(data)
    assert list(sheets) == ["KPIs", "Colors by month x bias", "Volume by sector",
                            "Volume by source", "Price trend", "PX - COV distribution", "Runs",
                            "Latest parents"]
    kpis = dict(zip(*sheets["KPIs"], strict=True))  # a column each: numbers and dates, not text
    assert (kpis["today_colors"], kpis["next_run_at"]) == (24, datetime(2026, 3, 16, 4, 30))
    assert len(sheets["Latest parents"]) == 1 + 6  # each CUSIP once
    log = load_access_log(store, username="exporter")
    assert log[["ACTION", "DETAIL"]].values.tolist() == [["export", "xlsx"]]
    assert log["WHAT"].iloc[0].startswith("dashboard {")


# -- entitlements ---------------------------------------------------------------------------------
def _only_mm_clo(at, results: list[pipeline.RunResult]) -> None:
    """No dataframe or chart on the page holds a row, a CUSIP or a sector of another sector."""
    other = {c for r in results for f in (r.published, r.excluded, r.quarantined)
             for c in f.loc[f[SECTOR] == BSL, CUSIP].dropna()}
    assert len(other) == 3  # the A_BSL CUSIPs
    for frame in (d.value for d in at.dataframe):
        if SECTOR in frame.columns:
            assert set(frame[SECTOR]) <= {MM}
        if CUSIP in frame.columns:
            assert set(frame[CUSIP]) & other == set()
    for element in at.get("plotly_chart"):
        assert BSL not in element.proto.spec
        assert not any(c in element.proto.spec for c in other)


def test_a_viewer_limited_to_one_sector_sees_only_its_colors(store, results, served):
    first, latest = results
    at = _dashboard(store, "vera", "viewer", sectors=[MM])
    assert at.multiselect(key="dashboard.sectors").options == [MM]
    assert _kpis(at)[:5] == [
        ("Today's colors", str(len(_in(latest.published, MM)))),
        ("This month", str(len(_in(first.published, MM)) + len(_in(latest.published, MM)))),
        ("Today's parents", "3"), ("Excluded today", "3"), ("Quarantined today", "1")]
    assert len(_in(latest.published, MM)) == 9
    mm = pd.concat([_in(r.published, MM) for r in results])
    assert _totals(chart(at, "dashboard.chart_month_bias")) == mm.groupby(BIAS).size().to_dict()
    assert _totals(chart(at, "dashboard.chart_sector")) == {MM: len(mm)}
    assert [t["name"] for t in chart(at, "dashboard.chart_runs")["data"]] == ["duration (s)"]
    assert set(at.dataframe(key="dashboard.parents").value[SECTOR]) == {MM}
    table = _table(at, "Run")
    assert table.columns.tolist() == ["Run", "Kind", "Status", "Trigger", "Requested by",
                                      "Started (Asia/Karachi)",
                                      "Seconds", "Published", "Parents", "Error"]
    assert table[["Run", "Published", "Parents"]].values.tolist() == [  # MM-CLO's colors only
        [r.record.run_id, len(_in(r.published, MM)),
         int(_in(r.published, MM)[IS_PARENT].sum())] for r in reversed(results)]
    assert SECTOR_COUNTS in [c.value for c in at.caption]
    _only_mm_clo(at, results)

    at = ok(at.multiselect(key="dashboard.cusips").set_value(["V4BS8NAG1"]).run())  # A_BSL
    assert "Choose CUSIPs to compare their parent prices." in [i.value for i in at.info]
    _only_mm_clo(at, results)

    sheets = _sheets(served(at.get("download_button")[0])[0])
    header, *body = sheets["Latest parents"]
    assert {row[header.index(SECTOR)] for row in body} == {MM}
    assert sheets["Runs"][0] == ("RUN_ID", "KIND", "STATUS", "TRIGGER", "ACTOR", "REQUESTED_BY",
                                 "STARTED_AT", "DURATION_S", "PUBLISHED", "PARENTS", "QUALITY",
                                 "ERROR")
    assert not any(BSL in str(cell) for rows in sheets.values() for row in rows for cell in row)
