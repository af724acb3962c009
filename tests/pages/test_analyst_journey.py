"""Issue 6's Done-when, walked as one analyst on the demo store `make run` loads: find a CUSIP in
Search, open its chart, save the search, export it, watch the CUSIP, and see its alerts in the bell
after the scheduler's next run. The app runs whole (app.py, navigation, sidebar bell) in AppTest;
the next run goes through the scheduler's own step (core.automation.scheduler.run_once) from an
inbox."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
from pandas.testing import assert_frame_equal
from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.alerts.bell import list_notifications
from core.alerts.watchlists import NEW_COLOR, PX_MOVE, check_watchlists, list_alerts, load_watchlist
from core.automation.jobs import Job, save_job
from core.automation.scheduler import run_once
from core.cli.demo import generate_colors, load_demo
from core.compliance.access_log import load_access_log
from core.config import load_settings
from core.identity.user_records import get_user
from core.reads.history import published_colors
from core.reads.saved_searches import list_saved_searches
from core.reads.search import SearchQuery, search_rows
from core.reads.security_page import security_history
from core.runs.exports import output_columns, write_xlsx
from core.runs.pipeline import AUTOMATED
from core.runs.records import SUCCESS
from core.schema import (
    ASK,
    BIAS,
    BID,
    BOOLEAN,
    COLUMN_TYPE,
    CONFIDENCE,
    CUSIP,
    DATE,
    DATE_TYPE,
    INPUT_COLUMNS,
    INTEGER,
    IS_PARENT,
    NUMBER,
    PRICE_LEVEL,
    PX,
    RUN_ID,
    SOURCE,
    TIMESTAMP,
)
from pages._ui.tables import display_frame, roles
from pages._ui.widgets import SUMMARY_COLUMNS
from tests.pages.conftest import open_app
from tests.pages.test_search_page import (
    chart,
    form_key,
    ok,
    recording_media,
    values,
    watch_field,
)

SETTINGS = load_settings({}, {})
# load_demo's week ends on the business day before its `now`: 9–13 March 2026 (runs 1–5).
DEMO_NOW = datetime(2026, 3, 16, 3, tzinfo=UTC)
ROWS_PER_DAY = 400  # load_demo's default, and its universe of ROWS_PER_DAY // 5 CUSIPs
NEXT_DAY = "2026-03-16"
JOB = Job(name="Morning colors", schedule="30 9 * * 1-5", timezone="Asia/Karachi")
RUN_AT = datetime(2026, 3, 16, 4, 31, tzinfo=UTC)  # 09:31 in Karachi: a minute after the slot
THRESHOLD, MOVE = 2.0, 5.0  # the analyst's PX-move alert (points) and the next run's move
SAVED_NAME = "My CUSIP"
SEARCH = "pages/search.py"


# -- the demo store and the next run's file --------------------------------------------------------
def next_run_colors() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo generator's file for the next business day, as load_demo makes each day's (a few
    bad rows), and the same file without the bad rows."""
    shape = {"date": NEXT_DAY, "cusips": ROWS_PER_DAY // 5}
    return (generate_colors(ROWS_PER_DAY, bad_rows=3, **shape),
            generate_colors(ROWS_PER_DAY, **shape))


def pick_cusip(demo: pd.DataFrame, upcoming: pd.DataFrame, clean: pd.DataFrame) -> str:
    """The demo CUSIP with the most colors that has a parent in the latest demo run and clean
    colors in the next file (none spoiled, none dropped by the demo rule), so that every one of
    them is published."""
    latest = demo[demo[RUN_ID] == demo[RUN_ID].max()]
    candidates = []
    for cusip, colors in demo.groupby(CUSIP):
        coming = upcoming[upcoming[CUSIP] == cusip]
        noisy = (coming[BIAS] == "VALUATION") & (coming[CONFIDENCE] < 5)
        if (cusip in set(latest.loc[latest[IS_PARENT], CUSIP]) and len(coming)
                and coming.equals(clean[clean[CUSIP] == cusip]) and not noisy.any()):
            candidates.append((len(colors), cusip))
    return max(candidates)[1]


def move_prices(colors: pd.DataFrame, cusip: str, px: float) -> pd.DataFrame:
    """The CUSIP's every quote at `px`: PX and PRICE_LEVEL, and the side it is priced on (BID
    when there is one, else ASK); a two-sided quote keeps its spread."""
    moved = colors.copy()
    rows = moved[CUSIP] == cusip
    on_bid = rows & (moved[BID] > 0)
    spread = moved[ASK] - moved[BID]
    moved.loc[on_bid & (moved[ASK] > 0), ASK] = px + spread[on_bid & (moved[ASK] > 0)]
    moved.loc[on_bid, BID] = px
    moved.loc[rows & ~on_bid, ASK] = px
    moved.loc[rows, [PX, PRICE_LEVEL]] = px
    return moved


# -- reading the app -------------------------------------------------------------------------------
def heads(rows: pd.DataFrame) -> pd.DataFrame:
    """The Search table of a result: each (run, CUSIP) group's first row, its role as published
    and its size, as tables show them (pages._ui.tables)."""
    first = ~rows.duplicated([RUN_ID, CUSIP])
    rows = rows.assign(ROLE=roles(rows[IS_PARENT]))
    shown = list(dict.fromkeys(c for c in [CUSIP, "ROLE", *SUMMARY_COLUMNS] if c in rows.columns))
    sizes = first.cumsum().value_counts().sort_index().to_numpy()
    return display_frame(rows[first][shown].assign(COLORS=sizes).reset_index(drop=True))


def children_table(at: AppTest) -> pd.DataFrame:
    """The selected group's other colors (the unkeyed table under the results)."""
    (table,) = [d.value for d in at.dataframe if d.key is None and CUSIP in d.value.columns]
    return table.reset_index(drop=True)


def chart_points(spec: dict) -> list[tuple[str, str, str, float]]:
    """(SOURCE, BIAS, day, PX) of every marker of the price chart (a trace per SOURCE, BIAS)."""
    points = []
    for trace in spec["data"]:
        if trace.get("mode") == "lines":
            continue
        source, bias = trace["name"].split(", ")
        points += [(source, bias, x[:10], y) for x, y in
                   zip(trace["x"], values(trace["y"]), strict=True)]
    return sorted(points)


def history_points(rows: pd.DataFrame) -> list[tuple[str, str, str, float]]:
    return sorted((s, b, f"{d:%Y-%m-%d}", float(p)) for s, b, d, p in
                  rows[[SOURCE, BIAS, DATE, PX]].itertuples(index=False))


def popover(at: AppTest):
    """The bell: the one popover in the sidebar (inside the bell's fragment). AppTest shows
    app.py's sidebar on a session's first run only: it resets PagesManager.uses_pages_directory
    before every run, so with a pages/ folder each later run enters app.py through Streamlit's
    old pages/ navigation and the sidebar it draws is not in the tree (the browser keeps it)."""
    def walk(node):
        if getattr(node, "type", None) == "popover":
            yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    (found,) = walk(at.sidebar)
    return found


def texts(node, kind: str) -> list[str]:
    """The values of the elements of one kind (markdown, caption) under a node, in order."""
    found = [node.value] if getattr(node, "type", None) == kind else []
    for child in getattr(node, "children", {}).values():
        found += texts(child, kind)
    return found


# -- exported files, read back typed ---------------------------------------------------------------
def _cell(value, kind: str, stamps: Callable[[pd.Timestamp], pd.Timestamp]):
    if value is None or value is pd.NA or value is pd.NaT or value == "" or (
            isinstance(value, float) and math.isnan(value)):
        return None
    if kind in (DATE_TYPE, TIMESTAMP):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
        if kind == DATE_TYPE:
            return stamp.date()
        return stamps(stamp)
    if kind == BOOLEAN:
        return {"true": True, "false": False}[value] if isinstance(value, str) else bool(value)
    if kind == INTEGER:
        return int(value)
    if kind == NUMBER:
        return float(value)
    return str(value)


def typed_rows(frame: pd.DataFrame, stamps: Callable[[pd.Timestamp], pd.Timestamp]
               ) -> list[tuple]:
    """Every row as Python values by each column's declared type, timestamps naive UTC passed
    through `stamps` (to the file's resolution), so a frame and a file read back compare exactly."""
    kinds = [COLUMN_TYPE[c] for c in frame.columns]
    return [tuple(_cell(v, k, stamps) for v, k in zip(row, kinds, strict=True))
            for row in frame.itertuples(index=False)]


def to_excel(stamp: pd.Timestamp) -> pd.Timestamp:
    """Excel times compared to the second: a time is a float of days there, so one a hair from a
    half-millisecond came back 1 ms off now and then (the chance a float error straddles a
    rounding boundary is its size over the unit: ~1 in 1,000 per value at ms, ~1 in 10^6 at s)."""
    return stamp.round("s")


def to_s(stamp: pd.Timestamp) -> pd.Timestamp:
    """CSV times: written to the second ("%Y-%m-%d %H:%M:%S")."""
    return stamp.floor("s")


def read_xlsx(data: bytes) -> pd.DataFrame:
    return pd.read_excel(io.BytesIO(data), engine="calamine", dtype=object)


def read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")


# -- the journey -----------------------------------------------------------------------------------
def test_an_analyst_finds_charts_saves_exports_and_watches_a_cusip_until_its_alert(
        app_store, monkeypatch, tmp_path):
    served = recording_media(monkeypatch)
    assert load_demo(app_store, SETTINGS, now=DEMO_NOW) == 5
    demo = published_colors(app_store, SYSTEM)
    upcoming, clean = next_run_colors()
    cusip = pick_cusip(demo, upcoming, clean)

    # The analyst logs in: nothing in the bell yet.
    at = open_app(app_store, "ana", "analyst")
    ana = get_user(app_store, "ana").actor()
    assert popover(at).proto.popover.label == "🔔 0"
    assert texts(popover(at), "caption") == ["No notifications yet."]

    # Search: the box finds exactly the CUSIP's colors, a table row per run, children beneath.
    at = ok(at.switch_page(SEARCH).run())
    at = ok(at.text_input(key=form_key(at, "text")).input(cusip.lower()).run())
    query = SearchQuery(text=cusip.lower(), page_size=25)
    rows = search_rows(app_store, ana, query)
    assert len(rows) == (demo[CUSIP] == cusip).sum()
    assert set(rows[CUSIP]) == {cusip}
    table = at.dataframe(key="search.results").value.reset_index(drop=True)
    assert_frame_equal(table, heads(rows))
    assert table[RUN_ID].tolist() == [5, 4, 3, 2, 1]
    assert f"5 groups (a CUSIP in a run) · {len(rows)} colors · page 1 of 1" in [
        c.value for c in at.caption]
    for i, (run_id, size) in enumerate(table[[RUN_ID, "COLORS"]].itertuples(index=False)):
        at.session_state["search.results"] = {"selection": {"rows": [i], "columns": []}}
        at = ok(at.run())
        group = rows[rows[RUN_ID] == run_id].iloc[1:]
        others = group.assign(ROLE=roles(group[IS_PARENT]))
        assert_frame_equal(children_table(at), display_frame(
            others[[c for c in heads(rows).columns if c != "COLORS"]].reset_index(drop=True)))
        assert len(group) == size - 1

    # Open the security from the selected row: the Security page with ?cusip=, its chart.
    at = ok(at.button(key="search.open").click().run())
    assert at.query_params["cusip"] == cusip
    assert [t.value for t in at.title] == ["Security"]
    history = security_history(app_store, ana, cusip)
    assert len(history) == len(rows)
    spec = chart(at, "security.price_chart")
    assert spec["layout"]["title"]["text"] == f"{cusip}: price history"
    assert chart_points(spec) == history_points(history) == history_points(rows)

    # Back in Search (the form empty again), run the search again from the history and save it.
    at = ok(at.switch_page(SEARCH).run())
    assert at.text_input(key=form_key(at, "text")).value == ""
    at = ok(at.button(key="search.history_load").click().run())
    assert at.text_input(key=form_key(at, "text")).value == cusip.lower()
    at.text_input(key="search.save_name").input(SAVED_NAME)
    at = ok(at.button(key="search.save").click().run())
    assert [t.value for t in at.toast] == [f"Saved the search {SAVED_NAME!r}"]
    assert at.selectbox(key="search.saved").options == [SAVED_NAME]
    (saved,) = list_saved_searches(app_store, ana)
    assert (saved.name, saved.owner, saved.shared, saved.query) == (SAVED_NAME, "ana", False,
                                                                    query)

    # Export the whole result: the Excel and CSV files hold exactly the result's rows.
    exported = rows[output_columns(rows)]
    for fmt, read, precision in (("xlsx", read_xlsx, to_excel), ("csv", read_csv, to_s)):
        if fmt == "csv":
            at = ok(at.radio(key="search.export_format").set_value("csv").run())
        data, name = served(at.get("download_button")[0])
        assert name.endswith(f".{fmt}")
        back = read(data)
        assert list(back.columns) == list(exported.columns)
        assert typed_rows(back, precision) == typed_rows(exported, precision)

    # Watch the CUSIP: alerts on a new color and on a PX move of THRESHOLD points.
    at.text_input(key="search.watch_add").input(cusip)
    at = ok(at.button(key="search.watch_add_button").click().run())
    at = ok(watch_field(at, "px_on").check().run())
    watch_field(at, "px").set_value(THRESHOLD)
    watch_field(at, "better_rank").uncheck()
    at = ok(at.button(key="search.watch").click().run())
    assert [(i.cusip, i.new_color, i.px_move, i.better_rank)
            for i in load_watchlist(app_store, ana)] == [(cusip, True, THRESHOLD, False)]

    # The next run, as the scheduler makes it: the desk's job reads the day's file from its inbox.
    previous = demo[(demo[RUN_ID] == 5) & (demo[CUSIP] == cusip) & demo[IS_PARENT]]
    before = float(previous[PX].iloc[0])
    moved = move_prices(upcoming, cusip, before + MOVE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / f"colors_{NEXT_DAY}.xlsx").write_bytes(
        write_xlsx(moved[list(INPUT_COLUMNS)], sheet_name="Colors"))
    save_job(app_store, SYSTEM, Job(**{**JOB.to_dict(), "sources": [
        {"kind": "inbox", "path": str(inbox)}]}), now=DEMO_NOW)
    (record,) = run_once(app_store, SETTINGS, RUN_AT, owner="scheduler-test")
    assert (record.run_id, record.kind, record.trigger, record.job, record.status) == (
        6, AUTOMATED, "scheduled", JOB.name, SUCCESS)
    assert [p.name for p in (inbox / "processed").iterdir()] == [f"6-colors_{NEXT_DAY}.xlsx"]

    # Exactly the two alerts, once: a new color and the PX move, about the run's parent.
    published = security_history(app_store, ana, cusip)
    new = published[published[RUN_ID] == 6]
    assert len(new) == (moved[CUSIP] == cusip).sum()
    parent = new[new[IS_PARENT]].iloc[0]
    expected = [
        (PX_MOVE, f"{cusip}: PX moved +{MOVE:.3f} in run 6",
         f"From {before} (run 5) to {before + MOVE}", 6),
        (NEW_COLOR, f"{cusip}: {len(new)} new color(s) in run 6",
         f"Parent: {parent[BIAS]} at {before + MOVE} from {parent[SOURCE]}", 6),
    ]
    alerts = [(n.kind, n.title, n.body, n.run_id) for n in list_alerts(app_store, ana)]
    assert alerts == expected
    assert [(n.kind, n.title) for n in list_notifications(app_store, "ana")] == [
        (kind, title) for kind, title, _, _ in expected]
    assert check_watchlists(app_store, record, RUN_AT) == []
    assert run_once(app_store, SETTINGS, RUN_AT.replace(minute=40), owner="scheduler-test") == []
    assert [(n.kind, n.title, n.body, n.run_id) for n in list_alerts(app_store, ana)] == expected

    # The analyst opens the app again: the bell and My watchlist's recent alerts show them.
    at = open_app(app_store, "ana", "analyst")
    bell = popover(at)
    assert bell.proto.popover.label == "🔔 2"
    assert texts(bell, "markdown") == [f"🔵 **{title}**" for _, title, _, _ in expected]
    notes = list_notifications(app_store, "ana")
    assert texts(bell, "caption") == [
        f"{body} · {pd.Timestamp(n.at).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"
        for (_, _, body, _), n in zip(expected, notes, strict=True)]
    at = ok(at.switch_page(SEARCH).run())
    recent = next(d.value for d in at.dataframe if "Alert" in d.value.columns)
    assert recent[["Alert", "Detail", "Read"]].values.tolist() == [
        [title, body, False] for _, title, body, _ in expected]

    # The access log names the analyst: the search, the security view, the search run again from
    # the history, both exports.
    what = json.dumps({k: v for k, v in query.to_dict().items() if k != "page"}, sort_keys=True)
    log = load_access_log(app_store, username="ana")
    assert log[["ACTOR", "ACTION", "WHAT", "ROWS", "DETAIL"]].values.tolist() == [
        ["ana", "export", what, len(rows), "csv"],
        ["ana", "export", what, len(rows), "xlsx"],
        ["ana", "search", what, len(rows), ""],
        ["ana", "security_view", cusip, len(rows), ""],
        ["ana", "search", what, len(rows), ""],
    ]
