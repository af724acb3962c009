"""Security page: opened by ?cusip= or the box; header, price history chart, dealer dispersion,
every color, runs, the access log, sector entitlements, and watching a CUSIP until its alert."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.access import SYSTEM
from core.alerts.watchlists import (
    NEW_COLOR,
    PX_MOVE,
    WatchItem,
    check_watchlists,
    load_watchlist,
    watch,
)
from core.compliance.access_log import load_access_log
from core.identity.user_records import get_user
from core.reads.security_page import dealer_dispersion, security_history
from core.schema import COLOR_ID, RUN_ID, SECTOR
from tests.pages.conftest import mounts_at
from tests.pages.test_search_page import (
    MM,
    RUNS,
    build_published,
    chart,
    ok,
    open_page,
    publish,
    use_store,
    values,
    watch_field,
)

PAGE = "pages/security.py"
AC0 = "V4BS8NAC0"  # A_BSL, MAGNE 2023-92A A2: 8 colors, 1 in run 1 and 7 in run 2


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return build_published(tmp_path_factory.mktemp("security"))


@pytest.fixture
def shared(published, monkeypatch):
    return use_store(published[0], monkeypatch)


def _open(store, cusip: str | None = AC0, username: str = "ana", **kwargs):
    params = {"cusip": cusip} if cusip else None
    return open_page(store, PAGE, username, query_params=params, **kwargs)


def cusip_box(at):
    """The CUSIP box: drawn afresh, under a new key generation, each time the page puts a CUSIP
    in it (opened, or a new ?cusip=)."""
    return at.text_input(key=f"security.box.{at.session_state['security.box_generation_state']}"
                             ".cusip")


def _table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _points(spec: dict, *, lines: bool = False) -> int:
    return sum(len(values(t["y"])) for t in spec["data"]
               if (t.get("mode") == "lines") == lines)


def test_without_a_cusip_the_page_asks_for_one(shared):
    at = _open(shared, None)
    assert [t.value for t in at.title] == ["Security"]
    assert [i.value for i in at.info] == [
        "Enter a CUSIP, or open a security from a Search result."]
    assert list(at.metric) == []


def test_the_header_names_the_security_and_its_latest_parent(shared):
    at = _open(shared)
    assert [s.value for s in at.subheader][:1] == [f"{AC0} · MAGNE 2023-92A A2"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Ticker", "MAGNE 2023-92A A2"), ("Sector", "A_BSL"),
        ("Latest parent", "BID 96.875"), ("Parent since", "2026-03-13 09:00 UTC")]
    assert at.caption[0].value == ("8 colors in 2 runs · latest parent quoted by NOMURA · dated "
                                   "2026-03-13 · run 2 · unchanged since run 2")


def test_the_price_chart_plots_every_color_and_the_coverage_line(shared):
    spec = chart(_open(shared), "security.price_chart")
    assert spec["layout"]["title"]["text"] == f"{AC0}: price history"
    assert spec["layout"]["yaxis"]["title"]["text"] == "price (% of par)"
    assert [b["label"] for b in spec["layout"]["xaxis"]["rangeselector"]["buttons"]] == [
        "1m", "3m", "6m", "YTD", "1y", "all"]
    assert _points(spec) == 8  # every color of the security has a PX
    assert [t["name"] for t in spec["data"] if t.get("mode") == "lines"] == ["COV_PRICE"]
    assert _points(spec, lines=True) == 2  # one coverage price per day


def test_dealer_dispersion_shows_the_quotes_of_the_chosen_day(shared):
    at = _open(shared)
    assert at.selectbox(key="security.day").value == date(2026, 3, 13)
    newest = dealer_dispersion(shared, SYSTEM, AC0, "2026-03-13")
    assert len(newest) == 5
    assert _points(chart(at, "security.dispersion_chart")) == 5
    assert "5 distinct quote(s) from 3 dealer(s) on 2026-03-13." in [c.value for c in at.caption]

    at = ok(at.selectbox(key="security.day").set_value(date(2026, 3, 12)).run())
    older = dealer_dispersion(shared, SYSTEM, AC0, "2026-03-12")
    assert _points(chart(at, "security.dispersion_chart")) == len(older) == 1


def test_every_color_and_every_run_are_listed(shared):
    at = _open(shared)
    assert _table(at, COLOR_ID)[COLOR_ID].tolist() == security_history(
        shared, SYSTEM, AC0)[COLOR_ID].tolist()
    runs = next(d.value for d in at.dataframe if "CHILDREN_COUNT" in d.value.columns
                and COLOR_ID not in d.value.columns)
    assert runs[RUN_ID].tolist() == [2, 1]


def test_each_view_is_logged_once(shared):
    at = _open(shared, username="looker")
    ok(at.selectbox(key="security.day").set_value(date(2026, 3, 12)).run())  # same view
    at = ok(cusip_box(at).input("v4bs8nag1").run())
    assert (at.metric[0].label, at.metric[0].value) == ("Ticker", "MAGNE 2023-92A C")
    log = load_access_log(shared, username="looker")
    assert log[["ACTION", "WHAT", "ROWS"]].values.tolist() == [
        ["security_view", "V4BS8NAG1", 15], ["security_view", AC0, 8]]


def test_a_browser_that_missed_the_run_that_opened_a_link_mounts_the_box_at_its_cusip(shared):
    """Under load the run that puts the link's CUSIP in the box can be superseded before the
    browser gets it, and the browser mounts the box from the next run. It must come with the
    CUSIP in that run too (it came empty, and the next edit, a day chosen, cleared the page)."""
    at = ok(_open(shared).run())  # the run after the one that filled the box
    assert mounts_at(cusip_box(at)) == AC0
    at = ok(at.selectbox(key="security.day").set_value(date(2026, 3, 12)).run())
    assert (at.query_params["cusip"], mounts_at(cusip_box(at))) == (AC0, AC0)


def test_a_viewer_limited_to_one_sector_sees_nothing_of_another(shared):
    at = _open(shared, username="vera", role="viewer", sectors=[MM])
    assert [i.value for i in at.info] == [f"No colors of {AC0} that you may see."]
    assert (list(at.metric), at.get("plotly_chart"), list(at.dataframe)) == ([], [], [])
    log = load_access_log(shared, username="vera")
    assert log[["ACTION", "WHAT", "ROWS"]].values.tolist() == [["security_view", AC0, 0]]

    at = ok(cusip_box(at).input("V4BS8NAE6").run())
    assert [(m.label, m.value) for m in at.metric][:2] == [("Ticker", "MAGNE 2023-92A B"),
                                                          ("Sector", MM)]
    assert set(_table(at, COLOR_ID)[SECTOR]) == {MM}


def test_a_browser_that_missed_the_run_that_filled_the_alerts_mounts_them_at_their_values(
        app_store):
    """Under load the run that fills the alert settings (a new CUSIP's, a stored item's) can be
    superseded before the browser gets it, and the browser mounts them from the next run. Each
    must come with its value in that run too (they came unticked at 0.01 points, and Watch this
    CUSIP saved an item that raises no alert)."""
    (day1, at1), _ = RUNS
    publish(app_store, day1, at1)
    at = ok(_open(app_store, "V4BS8NAG1").run())  # the run after the one that filled them
    fields = ("new_color", "better_rank", "px_on", "px")
    assert [mounts_at(watch_field(at, f, "security")) for f in fields] == [True, True, False, 1.0]
    actor = get_user(app_store, "ana").actor()
    watch(app_store, actor, WatchItem("V4BS8NAG1", new_color=False, px_move=0.5))
    at = ok(ok(at.run()).run())  # the stored item is put in them; the run after
    assert [mounts_at(watch_field(at, f, "security")) for f in fields] == [False, True, True, 0.5]
    at = ok(at.button(key="security.watch").click().run())
    assert [(i.new_color, i.px_move, i.better_rank) for i in load_watchlist(app_store, actor)] \
        == [(False, 0.5, True)]


def test_a_watched_cusip_raises_its_alert_once_after_the_next_run(app_store):
    (day1, at1), (day2, at2) = RUNS
    publish(app_store, day1, at1)
    at = _open(app_store, "V4BS8NAG1")
    assert at.button(key="security.watch").label == "Watch this CUSIP"
    assert "No watchlist alerts of V4BS8NAG1 yet." in [c.value for c in at.caption]
    at = ok(watch_field(at, "px_on", "security").check().run())
    watch_field(at, "px", "security").set_value(0.1)
    at = ok(at.button(key="security.watch").click().run())
    assert [t.value for t in at.toast] == ["Watching V4BS8NAG1"]
    assert at.button(key="security.watch").label == "Save alert settings"
    actor = get_user(app_store, "ana").actor()
    assert [(i.cusip, i.new_color, i.px_move, i.better_rank)
            for i in load_watchlist(app_store, actor)] == [("V4BS8NAG1", True, 0.1, True)]

    result = publish(app_store, day2, at2)
    now = datetime(2026, 3, 13, 9, 5, tzinfo=UTC)
    alerts = check_watchlists(app_store, result.record, now)
    assert [(a.cusip, a.kind) for a in alerts] == [("V4BS8NAG1", NEW_COLOR),
                                                   ("V4BS8NAG1", PX_MOVE)]
    assert alerts[1].title == "V4BS8NAG1: PX moved +0.125 in run 2"
    assert check_watchlists(app_store, result.record, now) == []  # once per event

    search = open_page(app_store, "pages/search.py", "ana")
    shown = next(d.value for d in search.dataframe if "Alert" in d.value.columns)
    assert shown["Alert"].tolist() == [a.title for a in reversed(alerts)]
    at = _open(app_store, "V4BS8NAG1")  # the security page lists its own alerts
    shown = next(d.value for d in at.dataframe if "Alert" in d.value.columns)
    assert shown["Alert"].tolist() == [a.title for a in reversed(alerts)]

    at = ok(at.button(key="security.unwatch").click().run())
    assert load_watchlist(app_store, actor) == []
