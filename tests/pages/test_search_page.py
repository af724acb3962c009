"""Search page: the box (CUSIP, ticker, MESSAGE_ID), bulk ids, filters, pages, the export of the
whole result, saved searches, history, My watchlist, the access log and sector entitlements.

The pages are run as files (they are not registered in app.py's navigation yet), logged in through
the session's user as app.py leaves it."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import streamlit
from streamlit.testing.v1 import AppTest, app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core.access import SYSTEM
from core.alerts.watchlists import load_watch_email, load_watchlist, save_watch_email
from core.cli.demo import generate_colors
from core.compliance.access_log import load_access_log
from core.config import load_settings
from core.errors import NotFound
from core.identity.user_records import get_user
from core.reads.saved_searches import list_saved_searches, record_search_history, save_search
from core.reads.search import SearchQuery, filters_group
from core.reads.search_presets import with_preset
from core.rules.conditions import Condition, Group
from core.rules.presets import Preset, save_preset
from core.runs import pipeline
from core.runs.exports import write_xlsx
from core.schema import BIAS, CUSIP, DATE, IS_PARENT, MESSAGE_ID, PX, RUN_ID, SECTOR, SOURCE, TICKER
from pages._ui.search_views import history_label
from pages._ui.services import USER_KEY
from storage import open_store
from tests.pages.conftest import add_user, mounts_at

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/search.py"
SETTINGS = load_settings({}, {})
MM, BSL = "MM-CLO", "A_BSL"
RUNS = (("2026-03-12", datetime(2026, 3, 12, 9, tzinfo=UTC)),
        ("2026-03-13", datetime(2026, 3, 13, 9, tzinfo=UTC)))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# -- a small published store, shared by the module (tests write only under their own user) ------
def two_sector_colors(date: str) -> pd.DataFrame:
    """36 generated colors on 6 CUSIPs (2 bad rows): alternate CUSIPs MM-CLO, the rest A_BSL."""
    frame = generate_colors(36, seed=11, date=date, cusips=6, bad_rows=2)
    mm = set(sorted(frame[CUSIP].dropna().unique())[::2])
    frame[SECTOR] = pd.array([MM if c in mm else BSL for c in frame[CUSIP].fillna("")],
                             dtype="string")
    return frame


def publish(store, date: str, now: datetime) -> pipeline.RunResult:
    data = write_xlsx(two_sector_colors(date))
    return pipeline.process_files(store, SYSTEM, [(f"colors-{date}.xlsx", data)],
                                  settings=SETTINGS, kind=pipeline.AUTOMATED,
                                  trigger="scheduled", now=now)


def build_published(folder: Path) -> tuple[str, pd.DataFrame]:
    """(store url, every published row) after two runs of both sectors."""
    url = str(folder / "store")
    store = open_store(url)
    results = [publish(store, date, now) for date, now in RUNS]
    return url, pd.concat([r.published for r in results], ignore_index=True)


def use_store(url: str, monkeypatch):
    """Point the app under test at the store (the autouse fixture clears MARKETPULSE_*)."""
    monkeypatch.setenv("MARKETPULSE_STORE_URL", url)
    monkeypatch.setenv("MARKETPULSE_AUTH_COOKIE_KEY", "k" * 40)
    return open_store(url)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    return build_published(tmp_path_factory.mktemp("search"))


@pytest.fixture
def shared(published, monkeypatch):
    return use_store(published[0], monkeypatch)


@pytest.fixture
def rows(published) -> pd.DataFrame:
    return published[1]


# -- driving a page -------------------------------------------------------------------------------
def open_page(store, page: str, username: str, role: str = "analyst", *,
              sectors: list[str] | None = None, query_params: dict | None = None) -> AppTest:
    """A page file run as `username` is after app.py's login gate (created if missing)."""
    try:
        user = get_user(store, username)
    except NotFound:
        user = add_user(store, username, role, sectors)
    at = AppTest.from_file(str(ROOT / page), default_timeout=30)
    at.session_state[USER_KEY] = user
    at.query_params.update(query_params or {})
    return ok(at.run())


def form_key(at: AppTest, name: str) -> str:
    """The key of a search form widget (text, kind, sectors, px_min, sort, more...): drawn
    afresh, under a new key generation, each time a search is loaded into the form."""
    return f"search.form.{at.session_state['search.form_generation_state']}.{name}"


def watch_field(at: AppTest, name: str, prefix: str = "search"):
    """A watch alert widget (new_color, better_rank, px_on, px) of the search or security page,
    or the search page's email switch ("email"): drawn afresh, under a new key generation, each
    time the stored values are put in them."""
    form, field = ("search.watch_email", "on") if name == "email" else (f"{prefix}.watch_form",
                                                                       name)
    key = f"{form}.{at.session_state[f'{form}_generation_state']}.{field}"
    return (at.number_input if name == "px" else at.checkbox)(key=key)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    return at


def chart(at: AppTest, key: str) -> dict:
    """The plotly spec of the chart with that key (plotly charts are UnknownElements)."""
    (found,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    return json.loads(found.proto.spec)


def values(data) -> list:
    """A trace's x or y: plotly writes numeric arrays base64-encoded."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def recording_media(monkeypatch):
    """A reader of the bytes a download button serves. AppTest keeps them in an in-memory media
    storage created (and dropped) by every run; this records each one, and each run's media
    manager, which makes a deferred download's file as a click in the browser does."""
    storages, managers = [], []

    class Recording(app_test.MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            storages.append(self)

    class Manager(app_test.MediaFileManager):
        def __init__(self, storage) -> None:
            super().__init__(storage)
            managers.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    monkeypatch.setattr(app_test, "MediaFileManager", Manager)

    def read(button: DownloadButton) -> tuple[bytes, str | None]:
        url = button.proto.url
        if button.proto.deferred_file_id:  # made on the click
            url = managers[-1].execute_deferred(button.proto.deferred_file_id)
        file = storages[-1].get_file(url.rsplit("/", 1)[1])
        return file.content, file.filename

    return read


def recording_switches(monkeypatch) -> list:
    """st.switch_page calls, recorded (a page file run alone has no Security page to go to)."""
    calls: list = []
    monkeypatch.setattr(streamlit, "switch_page",
                        lambda page, query_params=None: calls.append((page, query_params)))
    return calls


@pytest.fixture
def served(monkeypatch):
    return recording_media(monkeypatch)


@pytest.fixture
def switched(monkeypatch) -> list:
    return recording_switches(monkeypatch)


def search_for(at: AppTest, text: str) -> AppTest:
    return ok(at.text_input(key=form_key(at, "text")).input(text).run())


def totals(at: AppTest) -> str:
    return next(c.value for c in at.caption if " colors · page " in c.value)


def results(at: AppTest) -> pd.DataFrame:
    return at.dataframe(key="search.results").value


def groups(frame: pd.DataFrame) -> list[tuple[int, str, int]]:
    """(RUN_ID, CUSIP, rows) of each group, in the page's order: score, newest run, CUSIP."""
    sizes = frame.groupby([RUN_ID, CUSIP]).size()
    return [(int(r), str(c), int(n)) for (r, c), n in
            sorted(sizes.items(), key=lambda kv: (-kv[0][0], kv[0][1]))]


def shown_groups(at: AppTest) -> list[tuple[int, str, int]]:
    table = results(at)
    return [(int(r), str(c), int(n)) for r, c, n in table[[RUN_ID, CUSIP, "COLORS"]].itertuples(
        index=False)]


def select(at: AppTest, row: int) -> AppTest:
    at.session_state["search.results"] = {"selection": {"rows": [row], "columns": []}}
    return ok(at.run())


def workbook_rows(data: bytes) -> list[tuple]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return list(book.worksheets[0].iter_rows(values_only=True))


# -- the box --------------------------------------------------------------------------------------
def test_an_empty_form_asks_for_something_to_search(shared):
    at = open_page(shared, PAGE, "ana")
    assert [t.value for t in at.title] == ["Search"]
    assert at.info[0].value == ("Type a CUSIP, a ticker or a MESSAGE_ID, paste a list of them, "
                                "or set a filter.")
    assert [d.key for d in at.dataframe] == []


def test_a_cusip_finds_its_parent_in_each_run_and_their_children(shared, rows):
    at = search_for(open_page(shared, PAGE, "ana"), "ryzmvcaa8 ")
    assert totals(at) == "2 groups (a CUSIP in a run) · 13 colors · page 1 of 1"
    assert shown_groups(at) == [(2, "RYZMVCAA8", 5), (1, "RYZMVCAA8", 8)]
    assert results(at)["ROLE"].tolist() == ["parent", "parent"]

    at = select(at, 0)
    run2 = rows[(rows[CUSIP] == "RYZMVCAA8") & (rows[RUN_ID] == 2)]
    children = next(d.value for d in at.dataframe if d.key is None and CUSIP in d.value.columns)
    assert children["MESSAGE_ID"].tolist() == run2[~run2[IS_PARENT]][MESSAGE_ID].tolist()
    assert [m.value for m in at.markdown if m.value.startswith("**RYZ")] == [
        "**RYZMVCAA8** run 2: 4 other color(s)"]


def test_open_security_goes_to_the_security_page_with_the_cusip(shared, switched):
    at = select(search_for(open_page(shared, PAGE, "ana"), "RYZMVCAA8"), 1)
    ok(at.button(key="search.open").click().run())
    assert switched == [("pages/security.py", {"cusip": "RYZMVCAA8"})]


def test_a_ticker_prefix_finds_every_cusip_of_the_deal(shared, rows):
    at = search_for(open_page(shared, PAGE, "ana"), "sndpt")
    expected = groups(rows[rows[TICKER].str.lower().str.startswith("sndpt")])
    assert expected == [(2, "4HFNZ9AA3", 4), (2, "RYZMVCAA8", 5), (1, "4HFNZ9AA3", 13),
                        (1, "RYZMVCAA8", 8)]
    assert shown_groups(at) == expected
    assert totals(at) == "4 groups (a CUSIP in a run) · 30 colors · page 1 of 1"


def test_a_ticker_can_match_anywhere_when_asked(shared, rows):
    at = open_page(shared, PAGE, "ana")
    at.selectbox(key=form_key(at, "match")).set_value("contains")
    at = search_for(at, "92A A")
    expected = groups(rows[rows[TICKER].str.contains("92A A", regex=False)])
    assert {c for _, c, _ in expected} == {"V4BS8NAA4", "V4BS8NAC0"}
    assert shown_groups(at) == expected


def test_a_message_id_finds_the_colors_it_quoted(shared, rows):
    at = search_for(open_page(shared, PAGE, "ana"), "17734190879265910")
    expected = groups(rows[rows[MESSAGE_ID] == "17734190879265910"])
    assert sum(n for *_, n in expected) == 14
    assert shown_groups(at) == expected
    assert totals(at) == f"{len(expected)} groups (a CUSIP in a run) · 14 colors · page 1 of 1"


# -- bulk lookup ----------------------------------------------------------------------------------
def test_a_pasted_list_reports_matched_unmatched_and_excel_mangled_ids(shared, rows):
    at = open_page(shared, PAGE, "ana")
    pasted = "RYZMVCAA8\n17733556666330183\n1.7734E+16\n037833100"
    at = ok(at.text_area(key=form_key(at, "bulk_text")).input(pasted).run())
    assert [m.value for m in at.markdown if m.value.startswith("**Bulk")] == [
        "**Bulk lookup:** 2 matched, 1 not found, 1 Excel-mangled."]
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Excel-mangled ids cannot be matched: 1.7734E+16 (Excel stored")
    report = next(d.value for d in at.dataframe if "STATUS" in d.value.columns)
    assert report[["ID", "KIND", "STATUS", "ROWS"]].values.tolist() == [
        ["RYZMVCAA8", "cusip", "matched", 13], ["17733556666330183", "message_id", "matched", 6],
        ["1.7734E+16", "mangled", "mangled", 0], ["037833100", "cusip", "unmatched", 0]]
    wanted = rows[(rows[CUSIP] == "RYZMVCAA8") | (rows[MESSAGE_ID] == "17733556666330183")]
    assert shown_groups(at) == groups(wanted)


def test_an_uploaded_file_of_ids_is_looked_up(shared):
    at = open_page(shared, PAGE, "ana")
    upload = next(u for u in at.file_uploader if u.key.startswith("search.bulk_file"))
    upload.set_value(("ids.csv", b"CUSIP\nV4BS8NAG1\n4HFNZ9AA3\n", "text/csv"))
    at = ok(at.run())
    assert [m.value for m in at.markdown if m.value.startswith("**Bulk")] == [
        "**Bulk lookup:** 2 matched, 0 not found, 0 Excel-mangled."]
    assert {c for _, c, _ in shown_groups(at)} == {"V4BS8NAG1", "4HFNZ9AA3"}


# -- filters, pages, export -----------------------------------------------------------------------
def test_filters_narrow_the_result_exactly(shared, rows):
    at = open_page(shared, PAGE, "ana")
    at.multiselect(key=form_key(at, "sectors")).set_value([MM])
    at.multiselect(key=form_key(at, "biases")).set_value(["BID"])
    at.date_input(key=form_key(at, "date_from")).set_value(datetime(2026, 3, 13).date())
    at = ok(at.run())
    wanted = rows[(rows[SECTOR] == MM) & (rows[BIAS] == "BID") & (rows[DATE] >= "2026-03-13")]
    assert shown_groups(at) == groups(wanted)
    assert totals(at) == (f"{len(groups(wanted))} groups (a CUSIP in a run) · {len(wanted)} "
                          "colors · page 1 of 1")

    at.number_input(key=form_key(at, "px_min")).set_value(100.0)
    at = ok(at.run())
    wanted = wanted[wanted["PX"] >= 100]
    assert shown_groups(at) == groups(wanted) == [(2, "4HFNZ9AA3", 2)]


def _parents_only(at: AppTest, size: int = 10) -> AppTest:
    at.checkbox(key=form_key(at, "parents_only")).check()
    at.selectbox(key=form_key(at, "page_size")).set_value(size)
    return ok(at.run())


def test_the_second_page_holds_the_rest_of_the_parents(shared, rows):
    at = _parents_only(open_page(shared, PAGE, "ana"))
    parents = groups(rows[rows[IS_PARENT]])
    assert len(parents) == 12
    assert totals(at) == "12 groups (a CUSIP in a run) · 12 colors · page 1 of 2"
    assert shown_groups(at) == parents[:10]
    at = ok(at.get("pagination")[0].set_value(2).run())
    assert totals(at) == "12 groups (a CUSIP in a run) · 12 colors · page 2 of 2"
    assert shown_groups(at) == parents[10:]


def test_sorting_by_a_column_orders_the_groups(shared, rows):
    at = _parents_only(open_page(shared, PAGE, "ana"), 25)
    at.selectbox(key=form_key(at, "sort")).set_value("PX")
    at.toggle(key=form_key(at, "descending")).set_value(False)
    at = ok(at.run())
    parents = rows[rows[IS_PARENT]].sort_values(["PX", RUN_ID], ascending=[True, False])
    assert results(at)["PX"].tolist() == parents["PX"].tolist()


def test_the_export_holds_the_whole_result_not_only_the_page(shared, rows, served):
    at = _parents_only(open_page(shared, PAGE, "exporter"))
    (button,) = at.get("download_button")
    assert button.proto.label == "Download all 12 colors (Excel (.xlsx))"
    data, name = served(button)  # one click: the file is made when it is clicked
    assert name.startswith("marketpulse-search-")
    assert name.endswith(".xlsx")
    table = workbook_rows(data)
    assert len(table) == 1 + 12  # the header and all 12 parents, though a page shows 10
    assert sorted(r[table[0].index(CUSIP)] for r in table[1:]) == sorted(
        rows[rows[IS_PARENT]][CUSIP])
    px, day = table[0].index("PX"), table[0].index(DATE)  # numbers and dates, not text
    assert {(type(r[px]), type(r[day])) for r in table[1:]} == {(float, datetime)}

    at = ok(at.radio(key="search.export_format").set_value("csv").run())
    data, name = served(at.get("download_button")[0])
    assert name.endswith(".csv")
    assert len(pd.read_csv(io.BytesIO(data))) == 12


def test_searches_and_exports_are_in_the_access_log(shared, served):
    at = _parents_only(open_page(shared, PAGE, "auditee"))
    at = ok(at.get("pagination")[0].set_value(2).run())  # another page of the same search
    assert load_access_log(shared, username="auditee")["ACTION"].tolist() == ["search"]
    served(at.get("download_button")[0])  # logged when downloaded, not when drawn
    at = search_for(at, "RYZMVCAA8")
    log = load_access_log(shared, username="auditee")
    assert log[["ACTION", "ROWS", "DETAIL"]].values.tolist() == [
        ["search", 2, ""], ["export", 12, "xlsx"], ["search", 12, ""]]
    assert json.loads(log["WHAT"].iloc[0])["text"] == "RYZMVCAA8"
    assert json.loads(log["WHAT"].iloc[1]) == json.loads(log["WHAT"].iloc[2])


# -- saved searches and history -------------------------------------------------------------------
def test_a_saved_search_loads_back_into_the_form(shared):
    at = search_for(open_page(shared, PAGE, "saver"), "sndpt")
    at.text_input(key="search.save_name").input("SNDPT deals")
    at.checkbox(key="search.save_shared").check()
    at = ok(at.button(key="search.save").click().run())
    assert [t.value for t in at.toast] == ["Saved the search 'SNDPT deals'"]
    (saved,) = [s for s in list_saved_searches(shared, get_user(shared, "saver").actor())
                if s.owner == "saver"]
    assert (saved.query.text, saved.shared) == ("sndpt", True)

    other = open_page(shared, PAGE, "reader")
    assert at.selectbox(key="search.saved").options == ["SNDPT deals (shared)"]
    assert other.selectbox(key="search.saved").options == ["SNDPT deals (shared by saver)"]
    other = ok(other.button(key="search.load").click().run())
    assert other.text_input(key=form_key(other, "text")).value == "sndpt"
    assert totals(other) == "4 groups (a CUSIP in a run) · 30 colors · page 1 of 1"
    assert other.button(key="search.delete").disabled  # not theirs

    at = ok(at.button(key="search.delete").click().run())
    assert list_saved_searches(shared, get_user(shared, "saver").actor()) == []


def test_a_browser_that_missed_the_run_that_loaded_a_search_mounts_the_form_at_its_values(
        shared):
    """Under load the run that puts a saved search in the form can be superseded before the
    browser gets it, and the browser mounts the form from the next run. Each field must come
    with the search's value in that run too (they came empty, at the first option, and the next
    edit sent those back: the search shown, and saved again, had lost its filters)."""
    at = open_page(shared, PAGE, "loader")
    loader = get_user(shared, "loader").actor()
    bids = save_preset(shared, loader, Preset("Bids", Group("and", [
        Condition(BIAS, "equal_to", "BID")])))
    filters = filters_group(date_from=date(2026, 3, 2), sectors=(MM,), biases=("BID",),
                            px_min=90.0, parents_only=True)
    query = SearchQuery(text="sndpt", kind="ticker", match="contains", sort=PX, descending=False,
                        page_size=100, filters=Group("and", [
                            *filters.items, Condition(SOURCE, "not_equal_to", "DZ BANK")]))
    query = with_preset(shared, loader, query, bids.id)
    save_search(shared, loader, "Everything", query)
    at = ok(ok(ok(at.run()).button(key="search.load").click().run()).run())  # and the run after
    prefix = form_key(at, "")
    mounted = {w.key.removeprefix(prefix): mounts_at(w)
               for kind in (at.text_input, at.text_area, at.selectbox, at.multiselect,
                            at.date_input, at.number_input, at.checkbox, at.toggle)
               for w in kind if w.key and w.key.startswith(prefix)}
    assert mounted == {
        "text": "sndpt", "kind": "Ticker", "match": "contains", "bulk_text": "",
        "date_from": ["2026-03-02"], "date_to": [], "px_min": 90.0, "px_max": None,
        "sectors": [MM], "sources": [], "biases": ["BID"], "ranks": [], "processing_types": [],
        "run_ids": [], "parents_only": True, "more": True, "sort": PX, "descending": False,
        "page_size": "100", "preset": "Bids (yours)"}
    assert at.selectbox(key="search.conditions.1.0.column").value == SOURCE
    at.text_input(key="search.save_name").input("Everything again")
    at = ok(at.button(key="search.save").click().run())
    again = {s.name: s.query for s in list_saved_searches(shared, loader)}["Everything again"]
    assert again == replace(query, filters=Group("and", [  # the builder's conditions: a group
        *filters.items, Group("and", [Condition(SOURCE, "not_equal_to", "DZ BANK")])]))


def test_the_history_keeps_the_last_20_searches_newest_first(shared):
    user = add_user(shared, "historian", "viewer")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(20):
        record_search_history(shared, user.actor(), SearchQuery(text=f"T{i:02d}"),
                              now=start + timedelta(minutes=i))
    at = search_for(open_page(shared, PAGE, "historian"), "RYZMVCAA8")
    options = at.selectbox(key="search.history").options
    assert len(options) == 20
    assert options[0].endswith(" · CUSIP RYZMVCAA8")
    assert options[1:] == [history_label((start + timedelta(minutes=i)).isoformat(),
                                         SearchQuery(text=f"T{i:02d}"))
                           for i in range(19, 0, -1)]  # T00 dropped out
    at = ok(at.selectbox(key="search.history").set_value(options[1]).run())
    at = ok(at.button(key="search.history_load").click().run())
    assert at.text_input(key=form_key(at, "text")).value == "T19"


# -- My watchlist ---------------------------------------------------------------------------------
def test_my_watchlist_adds_changes_and_removes_a_cusip(shared):
    at = open_page(shared, PAGE, "watcher")
    at.text_input(key="search.watch_add").input("v4bs8nag1")
    at = ok(at.button(key="search.watch_add_button").click().run())
    actor = get_user(shared, "watcher").actor()
    assert [(i.cusip, i.new_color, i.px_move, i.better_rank)
            for i in load_watchlist(shared, actor)] == [("V4BS8NAG1", True, None, True)]
    table = next(d.value for d in at.dataframe if "PX move (points)" in d.value.columns)
    assert table["CUSIP"].tolist() == ["V4BS8NAG1"]

    at = ok(watch_field(at, "px_on").check().run())
    watch_field(at, "px").set_value(0.5)
    watch_field(at, "new_color").uncheck()
    at = ok(at.button(key="search.watch").click().run())
    assert [(i.cusip, i.new_color, i.px_move) for i in load_watchlist(shared, actor)] == [
        ("V4BS8NAG1", False, 0.5)]
    at = ok(at.button(key="search.unwatch").click().run())
    assert load_watchlist(shared, actor) == []
    assert "You watch no CUSIPs yet" in " ".join(c.value for c in at.caption)


def test_watching_a_cusip_never_published_is_refused_with_the_reason(shared):
    at = open_page(shared, PAGE, "typo")
    at.text_input(key="search.watch_add").input("037833100")  # a valid CUSIP no run has quoted
    at = at.button(key="search.watch_add_button").click().run()
    assert [e.value for e in at.error] == [
        "Watching 037833100: cusip: 037833100 has never been published: check the CUSIP (a typo "
        "would never raise an alert)"]
    assert load_watchlist(shared, get_user(shared, "typo").actor()) == []


def test_the_email_switch_of_my_watchlist_changes_my_stored_choice(shared):
    at = open_page(shared, PAGE, "mailer")
    actor = get_user(shared, "mailer").actor()
    assert watch_field(at, "email").value is True
    assert ("After each run, one email with the alerts new to you, sent to mailer@desk.test. "
            "Email is not set up yet: an admin configures the SMTP server in Settings."
            ) in [c.value for c in at.caption]

    at = ok(watch_field(at, "email").uncheck().run())
    assert load_watch_email(shared, actor).on is False
    assert [t.value for t in at.toast] == ["Your watchlist alerts will no longer be emailed"]
    at = ok(at.run())
    assert watch_field(at, "email").value is False
    assert load_watch_email(shared, actor).on is False

    at = ok(watch_field(at, "email").check().run())
    assert load_watch_email(shared, actor).on is True
    assert [t.value for t in at.toast] == ["Your watchlist alerts will be emailed"]


def test_a_browser_that_missed_the_run_that_filled_the_email_switch_mounts_it_at_my_choice(
        shared):
    """Under load the run that puts my stored choice in the email switch (on opening, after a
    change elsewhere) can be superseded before the browser gets it, and the browser mounts the
    switch from the next run. It must come with my choice in that run too (it came off, and the
    next edit anywhere on the page saved it off)."""
    at = ok(open_page(shared, PAGE, "mailer2").run())  # the run after the one that filled it
    assert mounts_at(watch_field(at, "email")) is True
    actor = get_user(shared, "mailer2").actor()
    save_watch_email(shared, actor, False)  # changed in another window
    at = ok(ok(at.run()).run())
    assert mounts_at(watch_field(at, "email")) is False
    save_watch_email(shared, actor, True)
    at = ok(ok(at.run()).run())
    assert mounts_at(watch_field(at, "email")) is True
    assert load_watch_email(shared, actor).on is True


# -- entitlements ---------------------------------------------------------------------------------
def test_a_viewer_limited_to_one_sector_never_sees_the_other(shared, rows, served):
    at = open_page(shared, PAGE, "vera", "viewer", sectors=[MM])
    assert at.multiselect(key=form_key(at, "sectors")).options == [MM]
    at = search_for(at, "RYZMVCAA8")  # an A_BSL CUSIP
    assert totals(at) == "0 groups (a CUSIP in a run) · 0 colors · page 1 of 1"
    assert [i.value for i in at.info] == ["No colors match this search."]

    at = search_for(at, "MAGNE")
    mm = rows[(rows[SECTOR] == MM) & rows[TICKER].str.startswith("MAGNE")]
    assert shown_groups(at) == groups(mm)
    assert set(results(at)[SECTOR]) == {MM}

    table = workbook_rows(served(at.get("download_button")[0])[0])
    assert {r[table[0].index(SECTOR)] for r in table[1:]} == {MM}
    assert len(table) == 1 + len(mm)

    at = search_for(at, "")
    at = ok(at.text_area(key=form_key(at, "bulk_text")).input("RYZMVCAA8\nV4BS8NAA4").run())
    report = next(d.value for d in at.dataframe if "STATUS" in d.value.columns)
    assert report[["ID", "STATUS"]].values.tolist() == [["RYZMVCAA8", "unmatched"],
                                                         ["V4BS8NAA4", "matched"]]

