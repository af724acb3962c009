"""Search over published colors: the box, bulk ids, filters, sorting, pagination, entitlements,
exports, the security page and the access log, on a two-run store (memory and local)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM, Actor
from core.compliance.access_log import (
    compact_access_log,
    load_access_log,
    log_export,
    log_search,
    log_security_view,
    record_access,
)
from core.config import load_settings
from core.errors import InvalidInput, InvalidRule, PermissionDenied
from core.reads.identifiers import MANGLED, SCIENTIFIC_REASON, parse_bulk
from core.reads.search import (
    SearchQuery,
    export_search,
    filters_group,
    search_colors,
    search_rows,
)
from core.reads.search_sql import condition_sql
from core.reads.security_page import dealer_dispersion, security_history, security_summary
from core.rules.exclusion import Condition, Group
from core.rules.masks import group_mask
from core.runs import pipeline
from core.runs.exports import write_csv
from storage import open_store
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
A, B, C, D = "97988RBL5", "000840AG3", "037833100", "94958LAG3"
RUN1 = [  # CUSIP, SECTOR, TICKER, BIAS, PX, SOURCE, MESSAGE_ID
    (A, "2.0_Mezz", "WDMNT 2022-9A ER", "BID", 99.0, "JPM", "17734072432755611"),
    (A, "2.0_Mezz", "WDMNT 2022-9A ER", "OFFER", 99.5, "GS", "17734072432755612"),
    (A, "2.0_Mezz", "WDMNT 2022-9A ER", "BWIC TALK", 98.0, "BOA", "17734072432755613"),
    (B, "MM-CLO", "ARES 2025-78A A2", "BID", 95.0, "MS", "17734072432755614"),
    (B, "MM-CLO", "ARES 2025-78A A2", "OFFER", 96.0, "JPM", "17734072432755615"),
    (C, "2.0_Mezz", "ARES 2024-1A B", "BWIC COVER", 97.0, "CITI", "17734072432755616"),
]
RUN2 = [
    (A, "2.0_Mezz", "WDMNT 2022-9A ER", "BID", 99.25, "JPM", "17734072432755621"),
    (A, "2.0_Mezz", "WDMNT 2022-9A ER", "VALUATION", 90.0, "DB", "17734072432755622"),
    (B, "MM-CLO", "ARES 2025-78A A2", "TRADE CONFIRM", 95.5, "BARCAP", "17734072432755623"),
    (D, "US_Equity_2.0", "OCT 2020-1A SUB", "OFFER", 40.0, "GS", "17734072432755624"),
]
RUN1_ROWS = [(1, B, 95.0), (1, B, 96.0), (1, C, 97.0), (1, A, 99.0), (1, A, 99.5), (1, A, 98.0)]
RUN2_ROWS = [(2, B, 95.5), (2, D, 40.0), (2, A, 99.25), (2, A, 90.0)]
MIA = Actor("mia", "viewer", ("MM-CLO",))


def publish(store, rows, *, day, at, kind=pipeline.MANUAL):
    """One run of the given rows through the real pipeline (no rules)."""
    cusip, sector, ticker, bias, px, source, message = (list(c) for c in zip(*rows, strict=True))
    frame = make_colors(CUSIP=cusip, SECTOR=sector, TICKER=ticker, BIAS=bias, PX=px,
                        SOURCE=source, MESSAGE_ID=message, DATE=[day] * len(rows))
    return pipeline.process_files(store, SYSTEM, [("colors.csv", write_csv(frame))],
                                  settings=SETTINGS, kind=kind, rules=[], now=at).record


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path):
    store = (open_store("memory://search") if request.param == "memory"
             else open_store(str(tmp_path / "store")))
    publish(store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
    publish(store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC),
            kind=pipeline.AUTOMATED)
    return store


def rows(frame: pd.DataFrame, *columns: str) -> list[tuple]:
    columns = columns or ("RUN_ID", "CUSIP", "PX")
    return [tuple(r) for r in frame[list(columns)].itertuples(index=False)]


def found(store, actor=SYSTEM, **query) -> list[tuple]:
    return rows(search_colors(store, actor, SearchQuery(**query)).frame)


# -- the box ---------------------------------------------------------------------------------------
def test_a_cusip_finds_every_run_of_the_security_parents_first(store):
    result = search_colors(store, SYSTEM, SearchQuery(text=" 97988rbl5 "))
    assert (result.total_parents, result.total_rows, result.pages) == (2, 5, 1)
    assert rows(result.frame, "RUN_ID", "CUSIP", "IS_PARENT", "PX") == [
        (2, A, True, 99.25), (2, A, False, 90.0), (1, A, True, 99.0), (1, A, False, 99.5),
        (1, A, False, 98.0)]
    assert result.text.kind == "cusip"


@pytest.mark.parametrize(("text", "match", "expected"), [
    ("ares 2025", "prefix", [(2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]),
    ("2024-1a", "contains", [(1, C, 97.0)]),
    ("ARES 2024-1A b", "exact", [(1, C, 97.0)]),
    ("ARES", "exact", []),
    ("2024-1a", "prefix", []),
])
def test_a_ticker_matches_by_prefix_contains_or_exactly_in_any_case(store, text, match, expected):
    assert found(store, text=text, match=match) == expected


@pytest.mark.parametrize(("text", "match", "expected"), [
    ("17734072432755622", "exact", [(2, A, 90.0)]),
    ("1773407243275562", "prefix", RUN2_ROWS),
    ("5561", "contains", RUN1_ROWS),
    ("1773407243275562", "exact", []),
])
def test_a_message_id_matches_exactly_by_prefix_or_contains(store, text, match, expected):
    assert found(store, text=text, match=match) == expected


def test_a_forced_kind_searches_that_column(store):
    assert found(store, text="97988", kind="ticker", match="contains") == []
    assert found(store, text="WDMNT 2022-9A ER", kind="ticker", match="exact")[0] == (2, A, 99.25)


def test_a_mangled_id_in_the_box_matches_nothing_and_says_why(store):
    result = search_colors(store, SYSTEM, SearchQuery(text="1.7734E+16"))
    assert (result.total_parents, result.total_rows, len(result.frame)) == (0, 0, 0)
    assert result.text.kind == MANGLED
    assert result.notes == (SCIENTIFIC_REASON,)


# -- bulk ------------------------------------------------------------------------------------------
def test_bulk_ids_report_matched_unmatched_and_mangled(store):
    ids = parse_bulk("97988RBL5\n037833100 1.7734E+16\nARES 2025-78A A2\n17734072432755699\n"
                     "17734072432755600")
    result = search_colors(store, SYSTEM, SearchQuery(bulk=tuple(ids)))
    assert (result.total_parents, result.total_rows) == (5, 9)
    report = result.bulk.to_frame()
    assert rows(report, "ID", "STATUS", "ROWS") == [
        ("97988RBL5", "matched", 5), ("037833100", "matched", 1), ("1.7734E+16", "mangled", 0),
        ("ARES 2025-78A A2", "matched", 3), ("17734072432755699", "unmatched", 0),
        ("17734072432755600", "mangled", 0)]
    assert [i.text for i in result.bulk.unmatched] == ["17734072432755699"]
    assert {r[1] for r in rows(result.frame)} == {A, B, C}


def test_bulk_matches_count_only_what_the_filters_leave(store):
    result = search_colors(store, SYSTEM, SearchQuery(
        bulk=tuple(parse_bulk(f"{A}\n{D}")), filters=filters_group(run_ids=(1,))))
    assert rows(result.bulk.to_frame(), "ID", "STATUS", "ROWS") == [
        (A, "matched", 3), (D, "unmatched", 0)]


# -- filters, sorting, pagination ------------------------------------------------------------------
@pytest.mark.parametrize(("filters", "expected"), [
    ({"date_from": "2026-03-13"}, RUN2_ROWS),
    ({"date_to": "2026-03-12"}, RUN1_ROWS),
    ({"date_from": "2026-03-12", "date_to": "2026-03-12"}, RUN1_ROWS),
    ({"sectors": ("mm-clo",)}, [(2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]),
    ({"sources": ("JPM",)}, [(2, A, 99.25), (1, B, 96.0), (1, A, 99.0)]),
    ({"biases": ("OFFER",)}, [(2, D, 40.0), (1, B, 96.0), (1, A, 99.5)]),
    ({"ranks": (1, 2)}, [(2, B, 95.5), (1, C, 97.0)]),
    ({"processing_types": ("AUTOMATED",)}, RUN2_ROWS),
    ({"px_min": 96, "px_max": 99.25},
     [(2, A, 99.25), (1, B, 96.0), (1, C, 97.0), (1, A, 99.0), (1, A, 98.0)]),
    ({"px_min": 99.5}, [(1, A, 99.5)]),
    ({"px_max": 40}, [(2, D, 40.0)]),
    ({"parents_only": True},
     [(2, B, 95.5), (2, D, 40.0), (2, A, 99.25), (1, B, 95.0), (1, C, 97.0), (1, A, 99.0)]),
    ({"run_ids": (1,)}, RUN1_ROWS),
])
def test_each_filter_keeps_only_matching_rows(store, filters, expected):
    assert found(store, filters=filters_group(**filters)) == expected


def test_filters_nest_with_and_or_in_the_shared_condition_model(store):
    either = Group("or", [Condition("SOURCE", "equal_to", "gs"),
                          Condition("PX", "less_than", 95.5)])
    assert found(store, filters=either) == [(2, D, 40.0), (2, A, 90.0), (1, B, 95.0),
                                            (1, A, 99.5)]


def test_a_bad_filter_or_sort_is_refused_with_its_reason(store):
    with pytest.raises(InvalidRule, match=r"condition 1 \(PX greater than 'abc'\)"):
        search_colors(store, SYSTEM, SearchQuery(
            filters=Group("and", [Condition("PX", "greater_than", "abc")])))
    with pytest.raises(InvalidRule, match="unknown column NOPE"):
        search_colors(store, SYSTEM, SearchQuery(filters=Group("and", [
            Condition("NOPE", "equal_to", "x")])))
    with pytest.raises(InvalidInput, match="not a column you can sort on"):
        search_colors(store, SYSTEM, SearchQuery(sort="PX; DROP TABLE colors"))


def test_groups_sort_by_the_column_of_their_best_ranked_row(store):
    assert found(store, sort="PX", descending=False) == [
        (2, D, 40.0), (1, B, 95.0), (1, B, 96.0), (2, B, 95.5), (1, C, 97.0), (1, A, 99.0),
        (1, A, 99.5), (1, A, 98.0), (2, A, 99.25), (2, A, 90.0)]


def test_page_two_holds_the_next_parents_with_their_children(store):
    result = search_colors(store, SYSTEM, SearchQuery(page=2, page_size=2))
    assert (result.total_parents, result.total_rows, result.pages) == (6, 10, 3)
    assert rows(result.frame, "RUN_ID", "CUSIP", "IS_PARENT", "PX") == [
        (2, A, True, 99.25), (2, A, False, 90.0), (1, B, True, 95.0), (1, B, False, 96.0)]
    children = result.frame[~result.frame["IS_PARENT"]]
    parents = result.frame[result.frame["IS_PARENT"]].set_index("COLOR_ID")
    assert set(children["PARENT_COLOR_ID"]) <= set(parents.index)


def test_a_page_past_the_end_is_empty_but_keeps_the_totals(store):
    result = search_colors(store, SYSTEM, SearchQuery(page=4, page_size=2))
    assert (result.total_parents, result.total_rows, len(result.frame)) == (6, 10, 0)
    with pytest.raises(InvalidInput):
        search_colors(store, SYSTEM, SearchQuery(page=0))


# -- entitlements ----------------------------------------------------------------------------------
def test_a_sector_limited_user_never_sees_another_sector(store):
    assert found(store, MIA) == [(2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]
    assert found(store, MIA, text=A) == []
    assert search_colors(store, MIA, SearchQuery(bulk=tuple(parse_bulk(A)))).bulk.to_frame()[
        "STATUS"].tolist() == ["unmatched"]
    assert security_history(store, MIA, A).empty
    assert security_summary(store, MIA, A).colors == 0
    assert dealer_dispersion(store, MIA, A, "2026-03-12").empty
    exported = pd.read_csv(io.BytesIO(export_search(store, MIA, SearchQuery(), "csv")), dtype=str)
    assert exported["SECTOR"].unique().tolist() == ["MM-CLO"]
    assert found(store, Actor("nobody", "viewer", ())) == []


def test_a_column_profile_trims_columns_and_what_can_be_filtered(store):
    cal = Actor("cal", "viewer", None, ("RUN_ID", "CUSIP", "PX"))
    result = search_colors(store, cal, SearchQuery(text=C))
    assert result.frame.columns.tolist() == ["RUN_ID", "CUSIP", "PX"]
    assert security_history(store, cal, C).columns.tolist() == ["RUN_ID", "CUSIP", "PX"]
    with pytest.raises(InvalidRule, match="unknown column SOURCE"):
        search_colors(store, cal, SearchQuery(filters=filters_group(sources=("GS",))))


def test_a_role_without_view_cannot_search(store):
    with pytest.raises(PermissionDenied):
        search_colors(store, Actor("x", "nobody"), SearchQuery())
    with pytest.raises(PermissionDenied):
        security_history(store, Actor("x", "nobody"), A)


# -- exports ---------------------------------------------------------------------------------------
def test_an_export_holds_the_whole_result_not_the_page(store):
    query = SearchQuery(text="ares", page_size=1)
    exported = pd.read_csv(io.BytesIO(export_search(store, SYSTEM, query, "csv")), dtype=str)
    assert list(zip(exported["RUN_ID"], exported["CUSIP"], exported["PX"], strict=True)) == [
        ("2", B, "95.5"), ("1", B, "95"), ("1", B, "96"), ("1", C, "97")]
    assert "POSITION" not in exported.columns
    workbook = pd.read_excel(io.BytesIO(export_search(store, SYSTEM, query, "xlsx")),
                             engine="calamine", dtype={"MESSAGE_ID": str})
    assert workbook["MESSAGE_ID"].tolist() == [
        "17734072432755623", "17734072432755614", "17734072432755615", "17734072432755616"]
    assert len(search_rows(store, SYSTEM, query)) == 4
    with pytest.raises(InvalidInput):
        export_search(store, SYSTEM, query, "pdf")


# -- the security page -----------------------------------------------------------------------------
def test_security_history_lists_every_color_newest_run_first(store):
    assert rows(security_history(store, SYSTEM, A), "RUN_ID", "BIAS", "PX") == [
        (2, "BID", 99.25), (2, "VALUATION", 90.0), (1, "BID", 99.0), (1, "OFFER", 99.5),
        (1, "BWIC TALK", 98.0)]


def test_the_summary_says_since_when_the_parent_has_stood(store):
    summary = security_summary(store, SYSTEM, A)
    assert (summary.ticker, summary.sector, summary.colors) == ("WDMNT 2022-9A ER", "2.0_Mezz", 5)
    assert summary.latest_parent["PX"] == 99.25
    assert summary.parent_since_run == 2
    publish(store, [RUN2[0]], day="2026-03-16", at=datetime(2026, 3, 16, 18, tzinfo=UTC))
    summary = security_summary(store, SYSTEM, A)
    assert (summary.parent_since_run, summary.parent_since) == (2, "2026-03-13T18:00:00+00:00")
    assert rows(summary.runs, "RUN_ID", "PX", "CHILDREN_COUNT") == [
        (3, 99.25, 0), (2, 99.25, 1), (1, 99.0, 2)]


def test_dealer_dispersion_shows_each_side_of_the_day(store):
    assert rows(dealer_dispersion(store, SYSTEM, A, "2026-03-12"), "SIDE", "SOURCE", "PX") == [
        ("bid", "JPM", 99.0), ("offer", "GS", 99.5), ("talk", "BOA", 98.0)]
    assert dealer_dispersion(store, SYSTEM, A, "2026-03-20").empty


def test_an_empty_store_finds_nothing(memory_store):
    result = search_colors(memory_store, SYSTEM, SearchQuery(bulk=tuple(parse_bulk(A))))
    assert (result.total_parents, result.total_rows, result.frame.empty) == (0, 0, True)
    assert result.bulk.to_frame()["STATUS"].tolist() == ["unmatched"]
    assert security_history(memory_store, SYSTEM, A).empty


# -- the query model -------------------------------------------------------------------------------
def test_a_query_round_trips_and_can_be_a_cache_key():
    query = SearchQuery(text="ares", bulk=tuple(parse_bulk("97988RBL5\n1.7734E+16")),
                        filters=filters_group(sectors=("MM-CLO",), px_min=90), sort="PX",
                        descending=False, page=3)
    again = SearchQuery.from_dict(query.to_dict())
    assert again == query
    assert {query: 1}[again] == 1
    assert again.with_page(1).page == 1


CONDITIONS = [
    Condition("SOURCE", "equal_to", " jpm "), Condition("SOURCE", "not_equal_to", "JPM"),
    Condition("SOURCE", "contains", "p"), Condition("SOURCE", "not_contains", "p"),
    Condition("SOURCE", "starts_with", "j"), Condition("SOURCE", "ends_with", "m"),
    Condition("SOURCE", "in_list", "jpm, gs"), Condition("SOURCE", "not_in_list", ["GS"]),
    Condition("SOURCE", "is_empty"), Condition("SOURCE", "is_not_empty"),
    Condition("PX", "equal_to", 0.3), Condition("PX", "not_equal_to", 99),
    Condition("PX", "less_than", 99), Condition("PX", "greater_than_or_equal_to", 99),
    Condition("PX", "between", 100, 0.3), Condition("PX", "in_list", [99, 0.3]),
    Condition("PX", "not_in_list", [99]), Condition("PX", "is_empty"),
    Condition("DATE", "equal_to", "2026-03-12"), Condition("DATE", "before", "2026-03-13"),
    Condition("DATE", "after", "2026-03-12"), Condition("DATE", "between", "2026-03-13",
                                                         "2026-03-01"),
    Condition("DATE", "not_equal_to", "2026-03-12"), Condition("DATE", "is_not_empty"),
    Condition("IS_PARENT", "equal_to", "yes"), Condition("IS_PARENT", "not_equal_to", True),
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=lambda c: f"{c.column}-{c.operator}")
def test_sql_filters_match_exactly_what_rule_masks_match(condition):
    frame = pd.DataFrame({
        "SOURCE": pd.array(["JPM", " jpm", "GS", None, "", "BNP"], dtype="string"),
        "PX": pd.array([99.0, 0.1 + 0.2, None, 100.0, 98.5, 0.0], dtype="Float64"),
        "DATE": pd.to_datetime(["2026-03-12", "2026-03-13", None, "2026-03-12", "2026-02-27",
                                "2026-03-14"]),
        "IS_PARENT": pd.array([True, False, None, True, False, True], dtype="boolean"),
    })
    types = {"SOURCE": "text", "PX": "number", "DATE": "date", "IS_PARENT": "boolean"}
    where, params = condition_sql(Group("and", [condition]), types)
    con = duckdb.connect()
    con.register("frame", frame.assign(_ROW=range(len(frame))))
    hits = [r[0] for r in con.execute(
        f"SELECT _ROW FROM frame WHERE {where} ORDER BY _ROW", params).fetchall()]
    assert hits == list(frame.index[group_mask(Group("and", [condition]), frame)])


# -- the access log --------------------------------------------------------------------------------
def test_searches_views_and_exports_are_logged_with_their_rows(memory_store):
    ada = Actor("ada", "analyst")
    query = SearchQuery(text=A, page=2)
    log_search(memory_store, ada, query, 5, now=datetime(2026, 3, 13, 9, tzinfo=UTC))
    log_security_view(memory_store, ada, " 97988rbl5", 5, now=datetime(2026, 3, 13, 10, tzinfo=UTC))
    log_export(memory_store, MIA, "dashboard", "xlsx", 40, now=datetime(2026, 4, 1, 8, tzinfo=UTC))
    log = load_access_log(memory_store)
    assert rows(log, "ACTOR", "ACTION", "ROWS", "DETAIL") == [
        ("mia", "export", 40, "xlsx"), ("ada", "security_view", 5, ""), ("ada", "search", 5, "")]
    assert log["WHAT"].tolist()[:2] == ["dashboard", A]
    assert '"page"' not in log["WHAT"].iloc[2]
    assert A in log["WHAT"].iloc[2]
    assert memory_store.partitions("access_log") == ["2026-03", "2026-04"]
    assert load_access_log(memory_store, username="ada", action="search")["ROWS"].tolist() == [5]
    assert load_access_log(memory_store, since=datetime(2026, 3, 13, 9, 30, tzinfo=UTC),
                           until=datetime(2026, 3, 31, tzinfo=UTC))["ACTION"].tolist() == [
        "security_view"]
    assert load_access_log(memory_store, limit=1)["ACTOR"].tolist() == ["mia"]


def test_results_are_ordered_by_run_even_when_run_ids_are_hidden(store):
    pam = Actor("pam", "viewer", None, ("CUSIP", "PX"))
    assert rows(search_colors(store, pam, SearchQuery(text=B)).frame, "CUSIP", "PX") == [
        (B, 95.5), (B, 95.0), (B, 96.0)]
    with pytest.raises(InvalidInput):
        search_colors(store, pam, SearchQuery(sort="SOURCE"))


def test_merging_the_access_log_keeps_every_access_once(memory_store):
    for minute in range(3):
        record_access(memory_store, "ada", "search", f"q{minute}", rows=minute,
                      now=datetime(2026, 3, 13, 9, minute, tzinfo=UTC))
    before = load_access_log(memory_store)
    assert compact_access_log(memory_store) == 3
    assert_frame_equal(load_access_log(memory_store), before)
    twice = load_access_log(memory_store).head(1)  # as a reader may see it mid-merge
    memory_store.append("access_log", twice, "2026-03")
    assert_frame_equal(load_access_log(memory_store), before)
    with pytest.raises(ValueError, match="unknown access action"):
        record_access(memory_store, "ada", "delete", "x", rows=0)


def test_a_cusip_search_pages_and_sorts_exactly_like_the_general_path(store):
    """The box's CUSIP lookup reads its rows once and pages them in Arrow; the same rows reached
    through a filter take the SQL path. Both must give the same pages for any sort, nulls last."""
    for day, covs in (("2026-03-16", [None, 97.0]), ("2026-03-17", [101.0, None]),
                      ("2026-03-18", [None, None])):
        frame = make_colors(CUSIP=[A, A], SECTOR=["2.0_Mezz"] * 2, BIAS=["OFFER", "BID"],
                            PX=[98.5, 97.5], COV_PRICE=covs, DATE=[day] * 2)
        pipeline.process_files(store, SYSTEM, [("more.csv", write_csv(frame))],
                               settings=SETTINGS, rules=[],
                               now=datetime.fromisoformat(f"{day}T18:00:00+00:00"))
    same_rows = Group("and", [Condition("CUSIP", "equal_to", A)])
    for sort in ("COV_PRICE", "PX", "BIAS", "RUN_ID", "IS_PARENT"):
        for descending in (True, False):
            for page in (1, 2, 3):
                query = SearchQuery(sort=sort, descending=descending, page=page, page_size=2)
                fast = search_colors(store, SYSTEM, replace(query, text=A))
                general = search_colors(store, SYSTEM, replace(query, filters=same_rows))
                assert (fast.total_parents, fast.total_rows) == (5, 11)
                assert (general.total_parents, general.total_rows) == (5, 11)
                assert_frame_equal(fast.frame.reset_index(drop=True),
                                   general.frame.reset_index(drop=True),
                                   obj=f"{sort} {descending} page {page}")


def test_a_cusip_lookup_on_s3_reads_the_data_version_and_the_manifest_once_each(s3_store):
    """Each read of a shared store is a request: a lookup makes two (the data version, the
    compacted copy's manifest), with the rows it finds; the copy's parts were listed once and are
    not again (a generation is written once). A run published since is listed each time: a run
    number may come back after a restore. (It made five, then three.)"""
    from core.reads.compaction import compact_colors

    publish(s3_store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
    publish(s3_store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC))
    compact_colors(s3_store, force=True, now=datetime(2026, 3, 13, 19, tzinfo=UTC))
    search_colors(s3_store, SYSTEM, SearchQuery(text=B))  # the parts are now on this node
    calls: list[str] = []
    s3_store._client.meta.events.register(  # an S3Store
        "before-call.s3.*", lambda event_name, **_: calls.append(event_name.rsplit(".", 1)[1]))
    found = search_colors(s3_store, SYSTEM, SearchQuery(text=A))
    assert (found.total_rows, sorted(calls)) == (5, ["GetObject", "GetObject"])
    publish(s3_store, [(A, "2.0_Mezz", "WDMNT 2022-9A ER", "BID", 97.0, "MS", "17734072432755631")],
            day="2026-03-14", at=datetime(2026, 3, 14, 18, tzinfo=UTC))
    search_colors(s3_store, SYSTEM, SearchQuery(text=B))  # the layout with run 3 is read once
    calls.clear()
    found = search_colors(s3_store, SYSTEM, SearchQuery(text=A))
    assert (found.total_rows, sorted(calls)) == (6, ["GetObject", "GetObject", "ListObjectsV2"])
