"""Watchlists: a user's CUSIPs and alert rules, checked after each published run, delivered once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.access import SYSTEM, Actor
from core.alerts.bell import list_notifications
from core.alerts.watchlists import (
    BETTER_RANK,
    NEW_COLOR,
    PX_MOVE,
    WatchItem,
    check_watchlists,
    list_alerts,
    load_watchlist,
    unwatch,
    watch,
)
from core.audit import load_changes
from core.config import load_settings
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.identity.users import create_user
from core.runs import pipeline
from core.runs.exports import write_csv
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
A, B, D = "97988RBL5", "000840AG3", "94958LAG3"
RUN1 = [(A, "2.0_Mezz", "BID", 99.0, "JPM"), (A, "2.0_Mezz", "OFFER", 99.5, "GS"),
        (B, "MM-CLO", "BID", 95.0, "MS"), (B, "MM-CLO", "OFFER", 96.0, "JPM")]
RUN2 = [(A, "2.0_Mezz", "BID", 99.25, "JPM"), (A, "2.0_Mezz", "VALUATION", 90.0, "DB"),
        (B, "MM-CLO", "TRADE CONFIRM", 95.5, "BARCAP"), (D, "US_Equity_2.0", "OFFER", 40.0, "GS")]
NOW = datetime(2026, 3, 13, 19, tzinfo=UTC)


def publish(store, rows, day):
    cusip, sector, bias, px, source = (list(c) for c in zip(*rows, strict=True))
    frame = make_colors(CUSIP=cusip, SECTOR=sector, BIAS=bias, PX=px, SOURCE=source,
                        DATE=[day] * len(rows))
    return pipeline.process_files(store, SYSTEM, [("c.csv", write_csv(frame))],
                                  settings=SETTINGS, rules=[],
                                  now=datetime.fromisoformat(f"{day}T18:00:00+00:00")).record


@pytest.fixture
def people(memory_store):
    """ana (analyst, every sector) and mia (viewer, MM-CLO only), with run 1 published."""
    ana, _ = create_user(memory_store, SYSTEM, "ana", name="Ana", email="ana@desk.example",
                         role="analyst")
    mia, _ = create_user(memory_store, SYSTEM, "mia", name="Mia", email="mia@desk.example",
                         role="viewer", sectors=["MM-CLO"])
    publish(memory_store, RUN1, "2026-03-12")
    return memory_store, ana.actor(), mia.actor()


def test_a_watchlist_lists_its_cusips_in_order_and_is_audited(people):
    store, ana, _ = people
    watch(store, ana, WatchItem(" 97988rbl5 ", px_move=0.5), now=NOW)
    watch(store, ana, WatchItem(B, better_rank=False), now=NOW)
    watch(store, ana, WatchItem(A, px_move=0.25), now=NOW)  # replaces the rules
    assert [(i.cusip, i.px_move, i.better_rank) for i in load_watchlist(store, ana)] == [
        (B, None, False), (A, 0.25, True)]
    unwatch(store, ana, B, now=NOW)
    assert [i.cusip for i in load_watchlist(store, ana)] == [A]
    log = load_changes(store, area="watchlists")
    assert log["ACTION"].tolist() == ["watch_removed", "watch_saved", "watch_saved",
                                      "watch_saved"]


def test_a_cusip_never_published_is_refused_unless_watched_as_a_new_issue(people):
    store, ana, mia = people
    with pytest.raises(InvalidInput) as refused:
        watch(store, ana, WatchItem(D), now=NOW)  # a valid CUSIP, but no run has quoted it
    assert str(refused.value) == ("cusip: 94958LAG3 has never been published: check the CUSIP "
                                  "(a typo would never raise an alert)")
    assert load_watchlist(store, ana) == []
    watch(store, mia, WatchItem(A), now=NOW)  # published in a sector mia cannot see: it exists
    watch(store, ana, WatchItem(D), now=NOW, new_issue=True)
    watch(store, ana, WatchItem(D, px_move=0.5), now=NOW)  # already watched: its rules change
    assert [(i.cusip, i.px_move) for i in load_watchlist(store, ana)] == [(D, 0.5)]
    assert [i.cusip for i in load_watchlist(store, mia)] == [A]


def test_bad_watches_are_refused(people):
    store, ana, _ = people
    with pytest.raises(InvalidInput, match="not a CUSIP"):
        watch(store, ana, WatchItem("ARES 2025"))
    with pytest.raises(InvalidInput, match="positive"):
        watch(store, ana, WatchItem(A, px_move=0))
    with pytest.raises(NotFound):
        unwatch(store, ana, A)
    with pytest.raises(PermissionDenied):
        watch(store, Actor("x", "nobody"), WatchItem(A))


def test_alerts_fire_once_per_user_cusip_run_and_kind(people):
    store, ana, mia = people
    watch(store, ana, WatchItem(A, px_move=0.2), now=NOW)
    watch(store, ana, WatchItem(B), now=NOW)
    watch(store, mia, WatchItem(A), now=NOW)  # mia may not see 2.0_Mezz: never alerted
    watch(store, mia, WatchItem(B, new_color=False, px_move=0.1), now=NOW)
    record = publish(store, RUN2, "2026-03-13")
    alerts = check_watchlists(store, record, NOW)
    assert [(a.username, a.cusip, a.kind) for a in alerts] == [
        ("ana", B, NEW_COLOR), ("ana", B, BETTER_RANK), ("ana", A, NEW_COLOR),
        ("ana", A, PX_MOVE), ("mia", B, PX_MOVE), ("mia", B, BETTER_RANK)]
    by_kind = {(a.username, a.cusip, a.kind): a for a in alerts}
    px = by_kind[("ana", A, PX_MOVE)]
    assert (px.title, px.body) == (f"{A}: PX moved +0.250 in run 2", "From 99.0 (run 1) to 99.25")
    assert by_kind[("ana", A, NEW_COLOR)].title == f"{A}: 2 new color(s) in run 2"
    assert by_kind[("mia", B, BETTER_RANK)].body == "TRADE CONFIRM (rank 1) replaces BID (rank 3)"
    assert check_watchlists(store, record, NOW) == []
    assert [n.kind for n in list_alerts(store, ana)].count(NEW_COLOR) == 2
    assert len(list_notifications(store, "ana")) == 4
    assert sorted(n.title for n in list_alerts(store, mia)) == [
        f"{B}: PX moved +0.500 in run 2", f"{B}: better parent in run 2"]
    assert sorted(n.title for n in list_alerts(store, ana, cusip=A.lower())) == [
        f"{A}: 2 new color(s) in run 2", f"{A}: PX moved +0.250 in run 2"]
    assert list_alerts(store, mia, cusip=A) == []


def test_a_run_without_the_cusip_or_a_failed_run_raises_nothing(people):
    store, ana, _ = people
    watch(store, ana, WatchItem(D), now=NOW, new_issue=True)
    record = publish(store, RUN1, "2026-03-13")
    assert check_watchlists(store, record, NOW) == []
    record.status = "failed"
    record.run_id = 99
    assert check_watchlists(store, record, NOW) == []


def test_the_first_color_of_a_security_is_new_but_has_nothing_to_compare(people):
    store, ana, _ = people
    watch(store, ana, WatchItem(D, px_move=0.01), now=NOW, new_issue=True)
    record = publish(store, RUN2, "2026-03-13")
    assert [(a.cusip, a.kind) for a in check_watchlists(store, record, NOW)] == [(D, NEW_COLOR)]
