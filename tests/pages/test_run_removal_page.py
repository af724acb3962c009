"""Removing a run from its detail on the Automation page: a reason, a confirmation, then undo."""

from __future__ import annotations

from core.access import SYSTEM
from core.audit import load_changes
from core.config import load_settings
from core.runs import records as runs
from core.runs.pipeline import process_files

PAGE = "pages/automation.py"
DOWN = "The scheduler is not running"  # no scheduler in page tests
CSV = (b"MESSAGE_ID,TICKER,SECTOR,CUSIP,DATE,PX,SOURCE,BIAS\n"
       b"1001,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-13,99.5,JPM,BID\n")


def _page(app_as, app_store):
    process_files(app_store, SYSTEM, [("a.csv", CSV)], settings=load_settings({}, {}))
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    return at


def _click(at, key):
    at.button(key=key).click().run()
    assert not at.exception
    assert [e.value for e in at.error if not e.value.startswith(DOWN)] == []
    return at


def test_remove_needs_a_reason_then_a_confirmation_and_undo_brings_it_back(app_as, app_store):
    at = _page(app_as, app_store)
    assert at.button(key="automation.remove_run").disabled  # no reason yet
    at.text_input(key="automation.remove_reason").input("sent twice by the dealer").run()
    _click(at, "automation.remove_run")
    assert [w.value for w in at.warning] == [
        "Remove run 1? Its 1 colors leave search, the dashboard and exports until you undo it."]
    assert runs.visible_run_ids(app_store) == [1]  # nothing yet
    _click(at, "automation.remove_cancel")
    assert runs.visible_run_ids(app_store) == [1]
    _click(at, "automation.remove_run")
    _click(at, "automation.remove_confirm")
    assert runs.visible_run_ids(app_store) == []
    assert "Run 1 removed. Undo brings it back." in [s.value for s in at.success]
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Removed by admin at ")
    assert warning.endswith(" UTC: sent twice by the dealer. Its colors are out of search, the "
                            "dashboard and exports; its rows are kept.")
    _click(at, "automation.restore_run")
    assert runs.visible_run_ids(app_store) == [1]
    assert "Run 1 is published again." in [s.value for s in at.success]
    assert load_changes(app_store, area="runs")["ACTION"].tolist()[:2] == [
        "run_restored", "run_removed"]
