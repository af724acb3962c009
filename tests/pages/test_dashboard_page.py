"""Dashboard: the latest run's KPIs as the user may see them, parents and children, the runs."""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core import pipeline, runs
from core.access import SYSTEM
from core.conditions import Condition, Group
from core.config import load_settings
from core.demo import generate_colors
from core.exports import write_xlsx
from core.rules import Rule, save_rule
from core.schema import (
    BIAS,
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    IS_PARENT,
    MESSAGE_ID,
    PARENT_COLOR_ID,
    RANK,
    SECTOR,
    SOURCE,
    TICKER,
)

SETTINGS = load_settings({}, {})
MM, BSL = "MM-CLO", "A_BSL"
DATES = ("2026-03-12", "2026-03-13")
NO_RUNS = ("No runs yet. Publish colors from the Manual Color page, or run "
           "`python -m core process FILE`.")
SHOWN = [CUSIP, SOURCE, BIAS, RANK, MESSAGE_ID, CHILDREN_COUNT]  # columns compared row by row


def _colors(date: str) -> pd.DataFrame:
    """36 generated colors on 6 CUSIPs (2 bad rows); alternate CUSIPs are MM-CLO, the rest A_BSL."""
    frame = generate_colors(36, seed=11, date=date, cusips=6, bad_rows=2)
    mm = set(sorted(frame[CUSIP].dropna().unique())[::2])
    frame[SECTOR] = pd.array([MM if c in mm else BSL for c in frame[CUSIP].fillna("")],
                             dtype="string")
    return frame


@cache
def _file(date: str) -> tuple[str, bytes]:
    return f"colors-{date}.xlsx", write_xlsx(_colors(date))


@pytest.fixture
def two_runs(app_store) -> list[pipeline.RunResult]:
    """Two AUTOMATED runs; an active rule excludes the PNCAP colors (only the second run has
    them), so the latest run has published, excluded and quarantined rows in both sectors."""
    save_rule(app_store, SYSTEM, Rule(
        name="No PNCAP", conditions=Group("or", [Condition(SOURCE, "equal_to", "PNCAP")])))
    return [pipeline.process_files(app_store, SYSTEM, [_file(d)], settings=SETTINGS,
                                   kind=pipeline.AUTOMATED, trigger="scheduled") for d in DATES]


def _in(frame: pd.DataFrame, sector: str | None) -> pd.DataFrame:
    return frame if sector is None else frame[frame[SECTOR] == sector]


def _expected_kpis(result: pipeline.RunResult, sector: str | None = None) -> list[tuple[str, str]]:
    published = _in(result.published, sector)
    return [("Published", str(len(published))),
            ("Parents", str(int(published[IS_PARENT].sum()))),
            ("Excluded", str(len(_in(result.excluded, sector)))),
            ("Quarantined", str(len(_in(result.quarantined, sector)))),
            ("Quality", f"{result.record.quality_score:.1f}")]


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row)
            for row in frame[SHOWN].astype(object).itertuples(index=False)]


def _table(at, column: str) -> pd.DataFrame:
    """The one unkeyed table with that column (AppTest keys only the selectable dataframe)."""
    (frame,) = [d.value for d in at.dataframe if d.key is None and column in d.value.columns]
    return frame


def _dashboard(app_as, username="admin", role="admin", **kwargs):
    at = app_as(username, role, **kwargs)
    assert not at.exception
    assert [e.value for e in at.error] == []
    assert at.title[0].value == "Dashboard"
    return at


def _select_parent(at, row: int):
    """Select a row of the parents table. AppTest cannot click a dataframe row, but a keyed
    dataframe's selection is its widget state, which at.session_state accepts before a run."""
    at.session_state["dashboard.parents"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception
    return at


def test_an_empty_store_says_there_are_no_runs(app_as):
    at = _dashboard(app_as)
    assert [i.value for i in at.info] == [
        "No jobs yet: create one on the Automation page.", NO_RUNS]  # the admin sees run buttons
    assert (list(at.metric), list(at.dataframe)) == ([], [])


def test_admin_sees_the_latest_run(app_as, two_runs):
    first, latest = two_runs
    assert (first.record.counts["excluded"], latest.record.counts["excluded"]) == (0, 10)
    at = _dashboard(app_as)
    rec = latest.record
    assert [s.value for s in at.subheader] == [
        f"Latest run: 2 (AUTOMATED) at {rec.started_at[:19]} UTC", "Runs"]
    assert [(m.label, m.value) for m in at.metric] == _expected_kpis(latest)
    assert [(m.label, m.value) for m in at.metric][:4] == [
        ("Published", "24"), ("Parents", "6"), ("Excluded", "10"), ("Quarantined", "2")]

    parents = latest.published[latest.published[IS_PARENT]]
    assert _rows(at.dataframe(key="dashboard.parents").value) == _rows(parents)
    assert at.caption[0].value == (f"{len(parents)} parents, {24 - len(parents)} children. "
                                   "Select a parent to see its children.")


def test_the_runs_table_lists_every_run_newest_first(app_as, two_runs):
    at = _dashboard(app_as)
    table = _table(at, "Run")
    counts = [r.record.counts for r in reversed(two_runs)]
    expected = pd.DataFrame({
        "Run": [2, 1], "Kind": ["AUTOMATED"] * 2, "Status": [runs.SUCCESS] * 2,
        "Trigger": ["scheduled"] * 2, "By": ["system"] * 2,
        **{name.title(): [c[name] for c in counts]
           for name in ("read", "published", "parents", "excluded", "quarantined")},
        "Error": ["", ""],
    })
    assert_frame_equal(table[expected.columns], expected, check_dtype=False)
    assert table["Started (UTC)"].tolist() == [
        r.record.started_at[:19].replace("T", " ") for r in reversed(two_runs)]


def test_selecting_a_parent_shows_its_children(app_as, two_runs):
    latest = two_runs[1].published
    parents = latest[latest[IS_PARENT]].reset_index(drop=True)
    row = int(parents[CHILDREN_COUNT].astype(int).idxmax())
    parent = parents.iloc[row]
    children = latest[latest[PARENT_COLOR_ID] == parent[COLOR_ID]]
    assert len(children) == parent[CHILDREN_COUNT] == 8

    at = _select_parent(_dashboard(app_as), row)
    assert _rows(_table(at, CUSIP)) == _rows(children)
    assert [m.value for m in at.main.markdown] == [
        f"**{parent[CUSIP]}** {parent[TICKER]}: 8 children of parent {parent[COLOR_ID]}"]


def test_without_a_selection_no_children_are_shown(app_as, two_runs):
    at = _dashboard(app_as)
    assert [d.key for d in at.dataframe] == ["dashboard.parents", None]
    assert list(at.dataframe[1].value.columns)[:3] == ["Run", "Kind", "Status"]
    assert [m.value for m in at.main.markdown] == []


def _only_mm_clo(at, result: pipeline.RunResult) -> None:
    """No dataframe on the page holds a row or a CUSIP of another sector."""
    other = {c for f in (result.published, result.excluded, result.quarantined)
             for c in f.loc[f[SECTOR] == BSL, CUSIP].dropna()}
    assert len(other) == 3  # the A_BSL CUSIPs of the run
    for frame in (d.value for d in at.dataframe):
        if SECTOR in frame.columns:
            assert set(frame[SECTOR]) <= {MM}
        if CUSIP in frame.columns:
            assert set(frame[CUSIP]) & other == set()


def test_a_viewer_limited_to_one_sector_sees_only_its_colors(app_as, two_runs):
    latest = two_runs[1]
    at = _dashboard(app_as, "vera", "viewer", sectors=[MM])
    assert [(m.label, m.value) for m in at.metric] == _expected_kpis(latest, MM)
    assert [(m.label, m.value) for m in at.metric][:4] == [
        ("Published", "9"), ("Parents", "3"), ("Excluded", "3"), ("Quarantined", "1")]
    mm = _in(latest.published, MM)
    assert _rows(at.dataframe(key="dashboard.parents").value) == _rows(mm[mm[IS_PARENT]])
    assert at.caption[0].value == "3 parents, 6 children. Select a parent to see its children."
    assert _table(at, "Run")["Run"].tolist() == [2, 1]
    _only_mm_clo(at, latest)

    parents = mm[mm[IS_PARENT]].reset_index(drop=True)
    for row, parent in parents.iterrows():
        _select_parent(at, row)
        assert _rows(_table(at, CUSIP)) == _rows(
            mm[mm[PARENT_COLOR_ID] == parent[COLOR_ID]])
        _only_mm_clo(at, latest)
