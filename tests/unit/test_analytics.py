"""Dashboard data: KPIs, chart frames, runs and latest parents, driven by the filters and limited to
the reader's sectors and columns."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM, Actor
from core.config import load_settings
from core.errors import PermissionDenied
from core.reads.compaction import DELTA, FULL, compact_colors, plan_compaction
from core.reads.dashboard import (
    DashboardFilters,
    dashboard_data,
    export_dashboard,
    filter_sql,
)
from core.reads.history import load_rows
from core.reads.latest_parents import latest_parents, latest_parents_sql, parent_children
from core.rules.exclusion import Condition, Group, Rule
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv
from core.runs.published import duckdb_session, open_latest, rollup_sql, visible_runs
from storage import open_store
from storage.run_tables import run_tables
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
A, B, C, D = "97988RBL5", "000840AG3", "037833100", "94958LAG3"
MEZZ, MM, EQ = "2.0_Mezz", "MM-CLO", "US_Equity_2.0"
RUN1 = [  # CUSIP, SECTOR, TICKER, BIAS, PX, SOURCE, MESSAGE_ID (COV_PRICE is 99 on every row)
    (A, MEZZ, "WDMNT 2022-9A ER", "BID", 99.0, "JPM", "17734072432755611"),
    (A, MEZZ, "WDMNT 2022-9A ER", "OFFER", 99.5, "GS", "17734072432755612"),
    (A, MEZZ, "WDMNT 2022-9A ER", "BWIC TALK", 98.0, "BOA", "17734072432755613"),
    (B, MM, "ARES 2025-78A A2", "BID", 95.0, "MS", "17734072432755614"),
    (B, MM, "ARES 2025-78A A2", "OFFER", 96.0, "JPM", "17734072432755615"),
    (C, MEZZ, "ARES 2024-1A B", "BWIC COVER", 97.0, "CITI", "17734072432755616"),
]
RUN2 = [
    (A, MEZZ, "WDMNT 2022-9A ER", "BID", 99.25, "JPM", "17734072432755621"),
    (A, MEZZ, "WDMNT 2022-9A ER", "VALUATION", 90.0, "DB", "17734072432755622"),  # excluded
    (B, MM, "ARES 2025-78A A2", "TRADE CONFIRM", 95.5, "BARCAP", "17734072432755623"),
    (D, EQ, "OCT 2020-1A SUB", "OFFER", 40.0, "GS", "17734072432755624"),
    ("", MM, "ARES 2025-78A A2", "BID", 94.0, "MS", "17734072432755625"),  # quarantined
]
NO_DB = Rule(name="No DB", conditions=Group("and", [Condition("SOURCE", "equal_to", "DB")]))
NOW = datetime(2026, 3, 13, 20, tzinfo=UTC)
MARCH = pd.Timestamp("2026-03-01")
D12, D13 = pd.Timestamp("2026-03-12"), pd.Timestamp("2026-03-13")


def publish(store, rows, *, day, at, kind=pipeline.MANUAL, rules=()):
    cusip, sector, ticker, bias, px, source, message = (list(c) for c in zip(*rows, strict=True))
    frame = make_colors(CUSIP=cusip, SECTOR=sector, TICKER=ticker, BIAS=bias, PX=px,
                        SOURCE=source, MESSAGE_ID=message, DATE=[day] * len(rows))
    return pipeline.process_files(store, SYSTEM, [("colors.csv", write_csv(frame))],
                                  settings=SETTINGS, kind=kind, rules=list(rules), now=at).record


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path):
    store = (open_store("memory://analytics") if request.param == "memory"
             else open_store(str(tmp_path / "store")))
    publish(store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
    publish(store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC),
            kind=pipeline.AUTOMATED, rules=[NO_DB])
    return store


def rows(frame: pd.DataFrame, *columns: str) -> list[tuple]:
    return [tuple(r) for r in frame[list(columns or frame.columns)].itertuples(index=False)]


def kpis(data) -> tuple:
    k = data.kpis
    return (k["today_colors"], k["month_colors"], k["today_parents"], k["today_excluded"],
            k["today_quarantined"])


def test_kpis_count_today_and_this_month_and_name_the_last_run(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert kpis(data) == (3, 9, 3, 1, 1)
    assert (data.kpis["last_run_id"], data.kpis["last_run_status"],
            data.kpis["last_run_kind"], data.kpis["next_run_at"]) == (2, "success", "AUTOMATED",
                                                                      None)


def test_today_is_the_day_in_now_s_timezone(store):
    karachi = NOW.astimezone(ZoneInfo("Asia/Karachi"))  # already 14 March there
    assert kpis(dashboard_data(store, SYSTEM, DashboardFilters(), karachi)) == (0, 9, 0, 0, 0)


def test_colors_by_month_and_bias(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert rows(data.colors_by_month_bias) == [
        (MARCH, "BID", 3), (MARCH, "BWIC COVER", 1), (MARCH, "BWIC TALK", 1),
        (MARCH, "OFFER", 3), (MARCH, "TRADE CONFIRM", 1)]


def test_volume_by_day_by_sector_and_by_source(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert rows(data.volume_by_sector) == [
        (D12, MEZZ, 4), (D12, MM, 2), (D13, MEZZ, 1), (D13, MM, 1), (D13, EQ, 1)]
    assert rows(data.volume_by_source) == [
        (D12, "BOA", 1), (D12, "CITI", 1), (D12, "GS", 1), (D12, "JPM", 2), (D12, "MS", 1),
        (D13, "BARCAP", 1), (D13, "GS", 1), (D13, "JPM", 1)]


def test_the_px_minus_coverage_histogram_by_diff_status(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    significant, small = "Significant Difference", "Small Difference"
    assert rows(data.diff_distribution) == [  # -59 points lands in the edge bin at -5
        (significant, -5.0, -4.75, 1), (significant, -4.0, -3.75, 1),
        (significant, -3.5, -3.25, 1), (significant, -3.0, -2.75, 1),
        (significant, -2.0, -1.75, 1), (small, -1.0, -0.75, 1), (small, 0.0, 0.25, 1),
        (small, 0.25, 0.5, 1), (small, 0.5, 0.75, 1)]


def test_price_trends_of_the_chosen_cusips_follow_the_newest_parent_per_day(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(cusips=(A, C.lower())), NOW)
    assert rows(data.price_trend, "CUSIP", "DATE", "PX", "SOURCE") == [
        (C, D12, 97.0, "CITI"), (A, D12, 99.0, "JPM"), (A, D13, 99.25, "JPM")]
    assert dashboard_data(store, SYSTEM, DashboardFilters(), NOW).price_trend.empty


RUN_FACTS = ["RUN_ID", "KIND", "STATUS", "TRIGGER", "ACTOR", "REQUESTED_BY", "STARTED_AT",
             "DURATION_S"]


def test_runs_with_duration_speed_counts_and_quality(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert data.runs.columns.tolist() == [*RUN_FACTS, "READ", "ROWS_PER_S", "PUBLISHED",
                                          "PARENTS", "EXCLUDED", "QUARANTINED", "QUALITY",
                                          "ERROR"]
    assert rows(data.runs, "RUN_ID", "KIND", "STATUS", "TRIGGER", "ACTOR", "STARTED_AT", "READ",
                "PUBLISHED", "PARENTS", "EXCLUDED", "QUARANTINED", "QUALITY", "ERROR") == [
        (1, "MANUAL", "success", "manual", "system", "2026-03-12T18:00:00+00:00", 6, 6, 3, 0, 0,
         100.0, ""),
        (2, "AUTOMATED", "success", "manual", "system", "2026-03-13T18:00:00+00:00", 5, 3, 3, 1,
         1, 80.0, "")]
    assert data.runs["ROWS_PER_S"].tolist() == [
        round(read / seconds) for read, seconds in rows(data.runs, "READ", "DURATION_S")]


def test_a_sector_limited_user_gets_no_whole_run_counts(store):
    mia = Actor("mia", "viewer", (MM,))
    data = dashboard_data(store, mia, DashboardFilters(), NOW)
    assert data.runs.columns.tolist() == [*RUN_FACTS, "PUBLISHED", "PARENTS", "QUALITY",
                                          "ERROR"]
    # MM-CLO: run 1 published B's BID and OFFER (one parent); run 2 published B's TRADE
    # CONFIRM and quarantined the MM row without a CUSIP, which no longer counts.
    assert rows(data.runs, "RUN_ID", "STATUS", "PUBLISHED", "PARENTS", "QUALITY") == [
        (1, "success", 2, 1, 100.0), (2, "success", 1, 1, 80.0)]
    everyone = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert data.runs["DURATION_S"].tolist() == everyone.runs["DURATION_S"].tolist()
    sheets = pd.read_excel(io.BytesIO(export_dashboard(store, mia, DashboardFilters(), NOW)),
                           sheet_name=None, engine="calamine")
    assert sheets["Runs"].columns.tolist() == data.runs.columns.tolist()


def test_a_user_with_no_sectors_sees_runs_but_none_of_their_colors(store):
    data = dashboard_data(store, Actor("ned", "viewer", ()), DashboardFilters(), NOW)
    assert rows(data.runs, "RUN_ID", "PUBLISHED", "PARENTS") == [(1, 0, 0), (2, 0, 0)]
    assert "READ" not in data.runs.columns


def test_sector_run_counts_read_the_compacted_rollups_too(store):
    compact_colors(store, force=True, now=NOW)
    assert run_tables(store).layout(visible_runs(store)).covered == (1, 2)
    data = dashboard_data(store, Actor("mia", "viewer", (MM, EQ)), DashboardFilters(), NOW)
    assert rows(data.runs, "RUN_ID", "PUBLISHED", "PARENTS") == [(1, 2, 1), (2, 2, 2)]


def test_the_latest_parents_list_each_cusip_once_with_its_current_parent(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(), NOW)
    assert rows(data.latest_parents, "RUN_ID", "CUSIP", "PX", "IS_PARENT") == [
        (2, B, 95.5, True), (2, D, 40.0, True), (2, A, 99.25, True), (1, C, 97.0, True)]
    assert data.kpis["latest_parents"] == 4  # the KPI counts what the list holds
    assert "run" not in data.latest_parents.columns


def test_the_latest_parents_page_through_every_cusip(store):
    where, params = filter_sql(SYSTEM, DashboardFilters())
    first = latest_parents(store, SYSTEM, where, params, page=1, page_size=3)
    second = latest_parents(store, SYSTEM, where, params, page=2, page_size=3)
    assert (first.total, first.pages, second.total) == (4, 2, 4)
    assert rows(first.rows, "RUN_ID", "CUSIP") == [(2, B), (2, D), (2, A)]
    assert rows(second.rows, "RUN_ID", "CUSIP") == [(1, C)]
    assert latest_parents(store, SYSTEM, where, params, page=3, page_size=3).rows.empty


def test_a_filter_never_makes_an_older_parent_current(store):
    manual = dashboard_data(store, SYSTEM, DashboardFilters(processing_types=("MANUAL",)), NOW)
    # A and B were priced again by the AUTOMATED run 2: their current parents are not MANUAL.
    assert rows(manual.latest_parents, "RUN_ID", "CUSIP") == [(1, C)]
    assert manual.kpis["latest_parents"] == 1
    window = dashboard_data(store, SYSTEM, DashboardFilters(date_to=date(2026, 3, 12)), NOW)
    assert rows(window.latest_parents, "RUN_ID", "CUSIP") == [(1, C)]


def test_selecting_a_parent_gives_its_children_in_ranked_order(store):
    where, params = filter_sql(SYSTEM, DashboardFilters(processing_types=("MANUAL",)))
    run1 = pipeline_rows(store, 1)
    parent = run1[(run1["CUSIP"] == A) & run1["IS_PARENT"]].iloc[0]
    children = parent_children(store, SYSTEM, A.lower(), 1, parent["COLOR_ID"])
    assert rows(children, "BIAS", "PX", "SOURCE", "IS_PARENT") == [
        ("OFFER", 99.5, "GS", False), ("BWIC TALK", 98.0, "BOA", False)]
    assert set(children["PARENT_COLOR_ID"]) == {parent["COLOR_ID"]}
    assert int(parent["CHILDREN_COUNT"]) == len(children)
    assert latest_parents(store, SYSTEM, where, params).total == 1
    mia = Actor("mia", "viewer", (MM,))  # another sector's children stay hidden
    assert parent_children(store, mia, A, 1, parent["COLOR_ID"]).empty


def pipeline_rows(store, run_id: int) -> pd.DataFrame:
    return load_rows(store, SYSTEM, "colors", run_ids=[run_id])


def test_the_kpis_follow_the_date_window_too(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(date_from=date(2026, 3, 12),
                                                          date_to=date(2026, 3, 12)), NOW)
    assert kpis(data) == (0, 6, 0, 0, 0)  # today's run priced 13 March only
    assert data.kpis["latest_parents"] == 1  # C; A and B are current in run 2 (13 March)
    today = dashboard_data(store, SYSTEM, DashboardFilters(date_from=date(2026, 3, 13)), NOW)
    assert kpis(today) == (3, 3, 3, 1, 1)


def test_filters_drive_every_element(store):
    data = dashboard_data(store, SYSTEM, DashboardFilters(
        date_from=date(2026, 3, 13), date_to=date(2026, 3, 13)), NOW)
    assert rows(data.colors_by_month_bias) == [
        (MARCH, "BID", 1), (MARCH, "OFFER", 1), (MARCH, "TRADE CONFIRM", 1)]
    assert {r[0] for r in rows(data.volume_by_source)} == {D13}
    assert data.runs["RUN_ID"].tolist() == [2]
    assert data.latest_parents["RUN_ID"].unique().tolist() == [2]
    sector = dashboard_data(store, SYSTEM, DashboardFilters(sectors=(MM,)), NOW)
    assert kpis(sector) == (1, 3, 1, 0, 1)
    assert rows(sector.volume_by_sector) == [(D12, MM, 2), (D13, MM, 1)]
    manual = dashboard_data(store, SYSTEM, DashboardFilters(processing_types=("MANUAL",)), NOW)
    assert kpis(manual) == (0, 6, 0, 0, 0)
    assert manual.runs["RUN_ID"].tolist() == [1]


def test_a_sector_limited_user_sees_only_their_sector_on_the_dashboard(store):
    mia = Actor("mia", "viewer", (MM,))
    data = dashboard_data(store, mia, DashboardFilters(cusips=(A, B)), NOW)
    assert kpis(data) == (1, 3, 1, 0, 1)
    assert {r[1] for r in rows(data.volume_by_sector)} == {MM}
    assert data.latest_parents["SECTOR"].unique().tolist() == [MM]
    assert data.price_trend["CUSIP"].unique().tolist() == [B]
    assert sum(c for *_, c in rows(data.diff_distribution)) == 3
    sheets = pd.read_excel(io.BytesIO(export_dashboard(store, mia, DashboardFilters(), NOW)),
                           sheet_name=None, engine="calamine")
    assert sheets["Latest parents"]["SECTOR"].unique().tolist() == [MM]


def test_a_column_profile_trims_the_latest_parents(store):
    cal = Actor("cal", "viewer", None, ("RUN_ID", "CUSIP", "PX"))
    data = dashboard_data(store, cal, DashboardFilters(cusips=(A,)), NOW)
    assert data.latest_parents.columns.tolist() == ["RUN_ID", "CUSIP", "PX"]
    assert data.price_trend.columns.tolist() == ["CUSIP", "PX"]


def test_the_export_has_a_sheet_per_element(store):
    sheets = pd.read_excel(io.BytesIO(export_dashboard(store, SYSTEM, DashboardFilters(), NOW)),
                           sheet_name=None, engine="calamine")
    assert list(sheets) == ["KPIs", "Colors by month x bias", "Volume by sector",
                            "Volume by source", "Price trend", "PX - COV distribution", "Runs",
                            "Latest parents"]
    assert sheets["KPIs"]["month_colors"].tolist() == [9]
    assert sheets["Colors by month x bias"]["COLORS"].sum() == 9


def test_the_export_holds_numbers_and_dates_not_text(store):
    book = openpyxl.load_workbook(io.BytesIO(export_dashboard(store, SYSTEM, DashboardFilters(),
                                                              NOW)))
    header, first = list(book["KPIs"].iter_rows(max_row=2, values_only=True))
    kpi = dict(zip(header, first, strict=True))
    assert (kpi["month_colors"], kpi["last_run_id"], kpi["last_run_status"]) == (9, 2, "success")
    assert isinstance(kpi["last_run_at"], datetime)
    runs_sheet = list(book["Runs"].iter_rows(values_only=True))
    started = runs_sheet[0].index("STARTED_AT")
    assert all(isinstance(row[started], datetime) for row in runs_sheet[1:])
    assert len(runs_sheet) == 3


def test_an_empty_store_gives_an_empty_dashboard(memory_store):
    data = dashboard_data(memory_store, SYSTEM, DashboardFilters(cusips=(A,)), NOW)
    assert kpis(data) == (0, 0, 0, 0, 0)
    assert data.kpis["last_run_id"] is None
    assert data.colors_by_month_bias.empty
    assert data.latest_parents.empty
    assert data.runs.empty


def test_the_dashboard_needs_view_permission(store):
    with pytest.raises(PermissionDenied):
        dashboard_data(store, Actor("x", "nobody"), DashboardFilters(), NOW)


# -- the latest parents from the rows compaction keeps (storage's LATEST_TABLE) -------------------
RUN3 = [  # C moves to MM; A is priced again
    (C, MM, "ARES 2024-1A B", "BID", 97.5, "MS", "17734072432755631"),
    (A, MEZZ, "WDMNT 2022-9A ER", "OFFER", 99.75, "GS", "17734072432755632"),
]
READERS = (SYSTEM, Actor("mia", "viewer", (MM,)), Actor("max", "viewer", (MEZZ,)),
           Actor("cal", "viewer", None, ("RUN_ID", "CUSIP", "PX")))
LATEST_FILTERS = (DashboardFilters(), DashboardFilters(processing_types=("MANUAL",)),
                  DashboardFilters(date_to=date(2026, 3, 12)), DashboardFilters(sectors=(MM,)))


def latest_answers(store) -> list[tuple[int, pd.DataFrame]]:
    """Every latest-parents page (of 2) the readers get under each filter, with its total."""
    found = []
    for actor, filters, page in itertools.product(READERS, LATEST_FILTERS, (1, 2)):
        where, params = filter_sql(actor, filters)
        got = latest_parents(store, actor, where, params, page=page, page_size=2)
        found.append((got.total, got.rows))
    return found


def assert_same_latest(store, twin) -> None:
    got, expected = latest_answers(store), latest_answers(twin)
    assert [total for total, _ in got] == [total for total, _ in expected]
    for k, ((_, frame), (_, want)) in enumerate(zip(got, expected, strict=True)):
        assert_frame_equal(frame, want, obj=f"answer {k}")


def kept_latest(store) -> bool:
    """Whether the store answers from kept latest rows (not by reading the colors)."""
    with duckdb_session() as con:
        return open_latest(store, con, latest_parents_sql) is not None


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_the_latest_parents_read_the_same_with_and_without_compaction(kind, tmp_path):
    compacted, plain = ((open_store(f"memory://latest-{name}") if kind == "memory"
                         else open_store(str(tmp_path / name))) for name in ("compacted", "plain"))
    for store in (compacted, plain):
        publish(store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
        publish(store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC),
                kind=pipeline.AUTOMATED, rules=[NO_DB])
    assert not kept_latest(compacted)  # no copy yet: the colors are read
    compact_colors(compacted, force=True, now=NOW)
    assert kept_latest(compacted)
    assert_same_latest(compacted, plain)

    for store in (compacted, plain):  # a run published since is read beside the kept rows
        publish(store, RUN3, day="2026-03-13", at=datetime(2026, 3, 13, 19, tzinfo=UTC))
    assert (kept_latest(compacted), run_tables(compacted).layout(visible_runs(compacted))
            .uncovered) == (True, (3,))
    assert_same_latest(compacted, plain)
    mia, max_ = READERS[1], READERS[2]
    where, params = filter_sql(mia, DashboardFilters())
    assert rows(latest_parents(compacted, mia, where, params).rows, "RUN_ID", "CUSIP") == [
        (3, C), (2, B)]  # C is MM since run 3
    where, params = filter_sql(max_, DashboardFilters())
    assert rows(latest_parents(compacted, max_, where, params).rows, "RUN_ID", "CUSIP") == [
        (3, A), (1, C)]  # C's newest MEZZ parent is run 1's

    assert compact_colors(compacted, now=NOW).mode == DELTA  # the scheduler's next step
    assert kept_latest(compacted)
    assert_same_latest(compacted, plain)

    for store in (compacted, plain):  # run 3 removed: the kept rows hold its parents
        record = runs.get_run(store, 3)
        record.status = runs.REMOVED
        runs.save_run(store, record)
        runs.bump_data_version(store)
    assert not kept_latest(compacted)
    assert_same_latest(compacted, plain)
    compact_colors(compacted, now=NOW)
    assert kept_latest(compacted)
    assert_same_latest(compacted, plain)

    for store in (compacted, plain):  # one copy holding C in both sectors
        publish(store, RUN3, day="2026-03-13", at=datetime(2026, 3, 13, 20, tzinfo=UTC))
    compact_colors(compacted, force=True, now=NOW)
    assert kept_latest(compacted)
    assert_same_latest(compacted, plain)


def test_a_copy_without_latest_rows_is_replaced_by_the_next_compaction(store):
    with duckdb_session() as con:  # a copy compacted before latest rows were kept
        run_tables(store).compact(con, visible_runs(store), rollup_sql, force=True, now=NOW)
    assert not kept_latest(store)
    plan = plan_compaction(store)
    assert (plan.needed, plan.mode, plan.reason) == (
        True, FULL, "the copy keeps no latest rows (written before them)")
    assert compact_colors(store, now=NOW).done
    assert kept_latest(store)
    assert not plan_compaction(store).needed


def test_a_dashboard_on_s3_reads_each_document_and_listing_once_per_read(s3_store):
    """Each read of a shared store is a request: a warm dashboard lists the run records once and
    finds the visible runs in them (not the data version), opens one DuckDB connection for the
    latest parents and the charts, so it reads the copy's manifest once, and lists the copy's
    parts not again (a generation is written once): four requests (thirteen, then ten before).
    A run published since is listed once per dashboard (four times before: the live rollups,
    the latest rows, the latest parents and the price trend each listed it)."""
    publish(s3_store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
    publish(s3_store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC),
            kind=pipeline.AUTOMATED, rules=[NO_DB])
    compact_colors(s3_store, force=True, now=NOW)
    filters = DashboardFilters(cusips=(A,))
    first = dashboard_data(s3_store, SYSTEM, filters, NOW)  # the parts are now on this node
    calls: list[str] = []

    def seen(event_name: str, params: dict, **_: object) -> None:
        where = params.get("query_string", {}).get("prefix") or params.get("url_path", "")
        what = "/".join(where.split("desk/", 1)[-1].split("/")[:2])  # tables/<name>, docs/<area>
        calls.append(f"{event_name.rsplit('.', 1)[1]} {what}")

    s3_store._client.meta.events.register("before-call.s3.*", seen)  # an S3Store
    again = dashboard_data(s3_store, SYSTEM, filters, NOW)
    assert again.kpis == first.kpis
    assert sorted(calls) == [
        "GetObject docs/meta",  # the manifest, once: one connection
        "ListObjectsV2 docs/runs",
        "ListObjectsV2 tables/excluded", "ListObjectsV2 tables/quarantined"]  # the last run's
    publish(s3_store, RUN1, day="2026-03-14", at=datetime(2026, 3, 14, 18, tzinfo=UTC))
    dashboard_data(s3_store, SYSTEM, filters, NOW)
    calls.clear()
    dashboard_data(s3_store, SYSTEM, filters, NOW)
    assert calls.count("ListObjectsV2 tables/colors") == 1
