"""Removing a published run and undoing it: out of search, history, exports and the duplicate
check; back exactly on undo; reason required, admins only, version-checked, logged, revertible;
watchers not alerted again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM, Actor
from core.alerts.watchlists import WatchItem, check_watchlists, list_alerts, watch
from core.audit import load_changes
from core.compliance.revert import recent_changes, revert_change
from core.config import load_settings
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.identity.users import create_user
from core.reads import history
from core.reads.search import SearchQuery, search_colors
from core.runs import records as runs
from core.runs import removal
from core.runs.pipeline import process_files

ZOE, ANA = Actor("zoe", "admin"), Actor("ana", "analyst")
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SETTINGS = load_settings({}, {})
HEADER = "MESSAGE_ID,TICKER,SECTOR,CUSIP,DATE,PX,SOURCE,BIAS\n"
FIRST = (HEADER + "1001,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-13,99.5,JPM,BID\n"
         "1002,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-12,99.0,GS,BID\n").encode()
SECOND = (HEADER + "2001,OCP 2020-19A D,2.0_Mezz,67113AAN3,2026-03-13,95.25,MS,BID\n").encode()


@pytest.fixture(params=["memory", "local"])
def store(request):
    store = request.getfixturevalue(f"{request.param}_store")
    process_files(store, SYSTEM, [("first.csv", FIRST)], settings=SETTINGS, now=T0)
    process_files(store, SYSTEM, [("second.csv", SECOND)], settings=SETTINGS, now=T0)
    return store


def _cusips(store) -> list[str]:
    return sorted(history.published_colors(store, ZOE)["CUSIP"].unique())


def _found(store, cusip: str) -> int:
    return search_colors(store, ZOE, replace(SearchQuery(), text=cusip, kind="cusip")).total_rows


def test_a_removed_run_leaves_every_read_and_undo_brings_it_back_exactly(store):
    before = history.published_colors(store, ZOE)
    removed = removal.remove_run(store, ZOE, 1, "sent twice by the dealer", now=T0)
    assert (removed.status, removed.removal) == (runs.REMOVED, {
        "by": "zoe", "at": T0.isoformat(), "reason": "sent twice by the dealer"})
    assert runs.visible_run_ids(store) == [2]
    assert _cusips(store) == ["67113AAN3"]
    assert (_found(store, "97988RBL5"), _found(store, "67113AAN3")) == (0, 1)
    restored = removal.restore_run(store, ZOE, 1)
    assert (restored.status, restored.removal) == (runs.SUCCESS, {})
    assert runs.visible_run_ids(store) == [1, 2]
    assert_frame_equal(history.published_colors(store, ZOE), before)
    assert _found(store, "97988RBL5") == 2


def test_a_removed_run_no_longer_counts_as_published(store):
    removal.remove_run(store, ZOE, 1, "wrong file")
    again = process_files(store, SYSTEM, [("first.csv", FIRST)], settings=SETTINGS, now=T0)
    assert (again.record.counts["published"], again.record.already_published) == (2, {})


def test_removal_and_undo_are_logged_and_undo_is_revert(store):
    removal.remove_run(store, ZOE, 1, "wrong file")
    log = load_changes(store, area="runs")
    assert log[["ACTOR", "ACTION", "ENTITY", "DETAIL"]].values.tolist()[0] == [
        "zoe", "run_removed", "run 1", "wrong file"]
    (latest, *_) = recent_changes(store, "runs")
    assert (latest.action, latest.revertible) == ("run_removed", True)
    revert_change(store, ZOE, latest.event_id)
    assert runs.get_run(store, 1).status == runs.SUCCESS
    assert runs.visible_run_ids(store) == [1, 2]


def test_a_reason_is_required_and_only_admins_remove(store):
    with pytest.raises(InvalidInput, match="say why the run is removed"):
        removal.remove_run(store, ZOE, 1, "  ")
    with pytest.raises(PermissionDenied):
        removal.remove_run(store, ANA, 1, "mine")
    with pytest.raises(PermissionDenied):
        removal.restore_run(store, ANA, 1)
    assert runs.visible_run_ids(store) == [1, 2]


def test_only_a_published_run_is_removed_and_only_a_removed_one_restored(store):
    removal.remove_run(store, ZOE, 1, "wrong file")
    with pytest.raises(InvalidInput, match="run 1 is removed: only a published run"):
        removal.remove_run(store, ZOE, 1, "again")
    with pytest.raises(InvalidInput, match="run 2 is success, not removed"):
        removal.restore_run(store, ZOE, 2)


def test_a_run_changed_meanwhile_is_a_conflict(store):
    stale = removal.state(runs.get_run(store, 1))
    removal.remove_run(store, ZOE, 1, "wrong file")
    with pytest.raises(Conflict, match="run 1 is removed now, not success"):
        removal.set_state(store, 1, stale, {**stale, "status": runs.REMOVED})


def test_watchers_are_not_alerted_again_after_undo(store):
    create_user(store, SYSTEM, "ana", name="Ana", email="ana@desk.example", role="analyst")
    watch(store, ANA, WatchItem("97988RBL5"), now=T0)
    third = process_files(store, SYSTEM, [("third.csv", FIRST.replace(b"1001", b"3001")
                                           .replace(b"1002", b"3002")
                                           .replace(b"99.5", b"98.5"))],
                          settings=SETTINGS, now=T0).record
    assert [a.kind for a in check_watchlists(store, third, T0)] == ["watch_new_color"]
    alerts = list_alerts(store, ANA)
    assert len(alerts) == 1
    removal.remove_run(store, ZOE, third.run_id, "wrong prices")
    restored = removal.restore_run(store, ZOE, third.run_id)
    assert check_watchlists(store, restored, T0) == []
    assert len(list_alerts(store, ANA)) == len(alerts)


def test_the_cli_removes_and_restores_a_run(tmp_path, monkeypatch, capsys):
    from core.__main__ import main
    from storage import open_store

    root = tmp_path / "store"
    process_files(open_store(str(root)), SYSTEM, [("first.csv", FIRST)], settings=SETTINGS,
                  now=T0)
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(root))
    assert main(["runs", "remove", "1"]) == 2
    assert "say why the run is removed" in capsys.readouterr().err
    assert main(["runs", "remove", "1", "--reason", "sent twice"]) == 0
    assert capsys.readouterr().out.startswith("Run 1 removed: ")
    assert runs.visible_run_ids(open_store(str(root))) == []
    assert main(["runs", "restore", "1"]) == 0
    assert capsys.readouterr().out == "Run 1 restored: its colors are published again\n"
    assert runs.visible_run_ids(open_store(str(root))) == [1]
