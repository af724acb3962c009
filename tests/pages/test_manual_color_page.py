"""Manual Color: a persisted session (start, load, validate, preview ranked, act on rows, apply
rules, undo/redo), saved as exactly one MANUAL run or discarded."""

from __future__ import annotations

import io
import sqlite3
from dataclasses import replace

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core.access import SYSTEM, Actor
from core.automation.jobs import Job, save_job
from core.config import load_settings
from core.intake import buffer
from core.manual import actions as session_actions
from core.manual import sessions
from core.reads import history
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, apply_rules, save_rule
from core.rules.presets import Preset, save_preset
from core.runs import records as runs
from core.runs.exports import write_csv
from core.schema import (
    BIAS,
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    EXCLUDED_BY,
    IS_PARENT,
    PX,
    RANK,
    SECTOR,
    SOURCE,
)
from tests.factories import SAMPLE
from tests.pages.conftest import upload

PAGE = "pages/manual_color.py"
SETTINGS = load_settings({}, {})
ANA = Actor("ana", "analyst")
MEZZ = "2.0_Mezz"
STALE = "the session changed in another window; reload"


@pytest.fixture
def sample() -> tuple[str, bytes]:
    return SAMPLE.name, SAMPLE.read_bytes()


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves. AppTest keeps them in an in-memory media storage created
    (and dropped) by every run; this records each one so a test can read them."""
    storages = []

    class Recording(app_test.MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            storages.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(button: DownloadButton) -> tuple[bytes, str | None]:
        file = storages[-1].get_file(button.proto.url.rsplit("/", 1)[1])
        return file.content, file.filename

    return read


# -- driving the page -----------------------------------------------------------------------------
def _ok(at):
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def _page(app_as, username="ana", role="analyst", **kwargs):
    at = app_as(username, role, page=PAGE, **kwargs)
    assert at.title[0].value == "Manual Color"
    return _ok(at)


def _click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception
    return at


def _session(app_as, *files, **kwargs):
    """The page with a started session and `files` loaded through the uploader."""
    at = _ok(_click(_page(app_as, **kwargs), "manual_color.start"))
    if files:
        at = upload(at, "manual_color.files", *files)
        _ok(_click(at, "manual_color.load_files"))
    return at


def _select(at, *rows: int):
    """Select rows of the Rows table (AppTest cannot click a row; the selection is widget state)."""
    at.session_state["manual_color.rows"] = {"selection": {"rows": list(rows), "columns": []}}
    return _ok(at.run())


def _rows(at) -> pd.DataFrame:
    return at.dataframe(key="manual_color.rows").value.reset_index(drop=True)


def _preview(at) -> pd.DataFrame:
    return at.dataframe(key="manual_color.preview").value.reset_index(drop=True)


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _counts(colors, parents, excluded=0, quarantined=0) -> dict[str, str]:
    return {"Colors": str(colors), "Parents": str(parents), "Children": str(colors - parents),
            "Excluded": str(excluded), "Quarantined": str(quarantined)}


def _toasts(at) -> list[str]:
    return [t.value for t in at.toast]


def _core_view(store, actor=ANA) -> sessions.SessionView:
    return sessions.preview(store, actor, SETTINGS)


def _expected_rows(view: sessions.SessionView) -> list[tuple]:
    ranked = view.ranked
    roles = ["pinned parent" if p and c in view.session.pinned else "parent" if p else "child"
             for p, c in zip(ranked[IS_PARENT], ranked[COLOR_ID], strict=True)]
    return list(zip(ranked[COLOR_ID], roles, ranked[CUSIP], ranked[PX], strict=True))


def _shown_rows(at) -> list[tuple]:
    rows = _rows(at)
    return list(zip(rows[COLOR_ID], rows["Role"], rows[CUSIP], rows[PX], strict=True))


def _edit(at, color_id: str, column: str, value: str):
    at.selectbox(key="manual_color.edit_row").set_value(color_id)
    at.selectbox(key="manual_color.edit_column").set_value(column)
    at.text_input(key="manual_color.edit_value").set_value(value)
    return _click(at, "manual_color.edit")


# -- tests ----------------------------------------------------------------------------------------
def test_a_user_without_a_session_is_offered_to_start_one(app_as, app_store):
    at = _page(app_as)
    assert at.info[0].value.startswith("You have no open manual session.")
    assert sessions.read_session(app_store, "ana") is None  # visiting stores nothing
    _ok(_click(at, "manual_color.start"))
    session = sessions.load_session(app_store, ANA)
    assert (session.status, session.files, session.rule_ids) == ("open", [], [])
    assert _toasts(at) == ["Session started"]
    assert at.button(key="manual_color.load_files").disabled
    assert at.button(key="manual_color.undo").disabled
    assert at.button(key="manual_color.save").disabled  # nothing to save yet


def test_uploading_the_sample_previews_ten_parents(app_as, app_store, sample):
    at = _session(app_as, sample)
    assert _toasts(at) == ["Loaded 1 file(s); the session has 50 rows"]
    view = _core_view(app_store)
    assert view.counts["rows"] == 50
    assert _metrics(at) == {"Quality score": "50.0/100", "Blocking problems": "0",
                            "Warnings": "50", **_counts(50, 10)}
    preview = _preview(at)
    parents = view.ranked[view.ranked[IS_PARENT]]
    assert preview[CUSIP].tolist() == parents[CUSIP].tolist()
    assert preview[CHILDREN_COUNT].tolist() == parents[CHILDREN_COUNT].tolist()
    assert preview[CUSIP].nunique() == 10
    assert _shown_rows(at) == _expected_rows(view)
    assert "10 parents, 40 children. Select a parent to see its children." in at.caption.values
    assert runs.load_runs(app_store) == []  # a session publishes nothing until it is saved
    # Reloading the page resumes the session from the store.
    again = _page(app_as)
    assert _metrics(again) == _metrics(at)


def test_deleting_the_first_parent_promotes_the_next_best_color(app_as, app_store, sample):
    at = _session(app_as, sample)
    before = _core_view(app_store).ranked
    group = before[before[CUSIP] == before[CUSIP].iloc[0]]
    gone, heir = group[COLOR_ID].iloc[0], group[COLOR_ID].iloc[1]
    assert _rows(at)[COLOR_ID].iloc[0] == gone

    _select(at, 0)
    assert at.button(key="manual_color.delete").label == "Delete 1 selected row(s)"
    _ok(_click(at, "manual_color.delete"))
    assert _toasts(at) == ["Deleted 1 row(s)"]
    assert _metrics(at) | _counts(49, 10) == _metrics(at)
    rows = _rows(at)
    assert (rows[COLOR_ID].iloc[0], rows["Role"].iloc[0]) == (heir, "parent")
    assert gone not in rows[COLOR_ID].tolist()
    assert _preview(at)[CHILDREN_COUNT].iloc[0] == len(group) - 2
    assert _shown_rows(at) == _expected_rows(_core_view(app_store))
    assert at.button(key="manual_color.delete").disabled  # the selection was cleared


def test_a_child_edited_above_its_parent_becomes_the_parent_and_undo_redo(app_as, app_store,
                                                                           sample):
    at = _session(app_as, sample)
    assert (at.button(key="manual_color.undo").disabled,
            at.button(key="manual_color.redo").disabled) == (True, True)
    ranked = _core_view(app_store).ranked
    group = ranked[ranked[CUSIP] == ranked[CUSIP].iloc[0]]
    parent = group.iloc[0]
    same_rank = group[(group[RANK] == parent[RANK]) & ~group[IS_PARENT]]
    child = same_rank[COLOR_ID].iloc[-1]
    higher = float(parent[PX]) + 1

    _ok(_edit(at, child, "BID", str(higher)))  # PX follows BID (DOMAIN.md §0)
    assert _toasts(at) == [f"BID of {child} set to {higher}"]
    rows = _rows(at)
    assert (rows[COLOR_ID].iloc[0], rows["Role"].iloc[0], rows[PX].iloc[0]) == (
        child, "parent", higher)
    assert rows.loc[rows[COLOR_ID] == parent[COLOR_ID], "Role"].tolist() == ["child"]
    assert at.button(key="manual_color.undo").disabled is False

    _ok(_click(at, "manual_color.undo"))
    assert _toasts(at) == [f"Undo: edit BID of {child}"]
    assert _shown_rows(at) == _expected_rows(_core_view(app_store))
    assert (_rows(at)[COLOR_ID].iloc[0], _rows(at)[PX].iloc[0]) == (parent[COLOR_ID], parent[PX])
    assert (at.button(key="manual_color.undo").disabled,
            at.button(key="manual_color.redo").disabled) == (True, False)

    _ok(_click(at, "manual_color.redo"))
    assert (_rows(at)[COLOR_ID].iloc[0], _rows(at)[PX].iloc[0]) == (child, higher)


def test_an_unreadable_edit_is_refused_naming_the_row_and_column(app_as, app_store, sample):
    at = _session(app_as, sample)
    child = _rows(at)[COLOR_ID].iloc[1]
    _edit(at, child, PX, "abc")
    (error,) = [e.value for e in at.error]
    assert error.startswith(f"Editing a cell: row {child}, column PX: 'abc' ")
    assert _core_view(app_store).session.undo == []  # nothing changed


def test_pinning_a_child_makes_it_the_parent_until_unpinned(app_as, app_store, sample):
    at = _session(app_as, sample)
    first = _rows(at)[COLOR_ID].iloc[0]
    last_of_group = _rows(at)[_rows(at)[CUSIP] == _rows(at)[CUSIP].iloc[0]].index[-1]
    pinned = _rows(at)[COLOR_ID].iloc[last_of_group]
    _select(at, last_of_group)
    assert at.button(key="manual_color.unpin").disabled
    _ok(_click(at, "manual_color.pin"))
    assert _toasts(at) == [f"{pinned} is now its CUSIP's parent"]
    assert (_rows(at)[COLOR_ID].iloc[0], _rows(at)["Role"].iloc[0]) == (pinned, "pinned parent")
    assert _core_view(app_store).session.pinned == [pinned]

    _select(at, 0)
    _ok(_click(at, "manual_color.unpin"))
    assert (_rows(at)[COLOR_ID].iloc[0], _rows(at)["Role"].iloc[0]) == (first, "parent")


def test_adding_a_row_ranks_it_with_its_cusip(app_as, app_store, sample):
    at = _session(app_as, sample)
    cusip = _rows(at)[CUSIP].iloc[0]
    values = {"MESSAGE_ID": "17734072432755618", "TICKER": "WDMNT 2022-9A ER",
              "SECTOR": "MM-CLO", "CUSIP": cusip, "DATE": "2026-01-11", "PX": "105.5",
              "SOURCE": "JPM", "BIAS": "BID"}
    for column, value in values.items():
        at.text_input(key=f"manual_color.add.{column}").set_value(value)
    _ok(_click(at, "manual_color.add"))
    token = _core_view(app_store).session.token
    assert _toasts(at) == [f"Added row {token}-51"]
    assert _metrics(at) | _counts(51, 10) == _metrics(at)
    rows = _rows(at)
    assert (rows[COLOR_ID].iloc[0], rows[PX].iloc[0], rows[RANK].iloc[0]) == (
        f"{token}-51", 105.5, 3)
    assert at.text_input(key="manual_color.add.CUSIP").value == ""  # the form starts over


def test_rules_show_what_they_exclude_before_they_apply(app_as, app_store, sample):
    ms = save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    valuations = save_rule(app_store, SYSTEM, Rule(
        name="No valuations", priority=200, active=False,
        conditions=Group("or", [Condition(BIAS, "equal_to", "VALUATION")])))
    at = _session(app_as, sample)
    assert at.multiselect(key="manual_color.rules").value == [ms.id]  # active ones pre-selected
    assert "6 rows excluded; No MS: 6" in at.caption.values
    assert _metrics(at) | _counts(44, 8, excluded=6) == _metrics(at)

    rows = sessions.load_frame(app_store, _core_view(app_store).session.rows_key)
    both = apply_rules(rows, [ms, replace(valuations, active=True)])
    assert (len(both.excluded), both.counts) == (8, {"No MS": 6, "No valuations": 2})
    at.multiselect(key="manual_color.rules").select(valuations.id).run()
    _ok(at)
    assert "With this selection 8 rows would be excluded; No MS: 6; No valuations: 2" in (
        at.caption.values)
    excluded = [d.value for d in at.dataframe if d.key is None and EXCLUDED_BY in d.value.columns]
    assert excluded[0][EXCLUDED_BY].tolist() == both.excluded[EXCLUDED_BY].tolist()
    assert _metrics(at)["Excluded"] == "6"  # only a preview: the session still has one rule

    _ok(_click(at, "manual_color.apply_rules"))
    assert _toasts(at) == ["Applied 2 rule(s)"]
    assert _core_view(app_store).session.rule_ids == [ms.id, valuations.id]
    assert "8 rows excluded; No MS: 6; No valuations: 2" in at.caption.values
    assert _metrics(at)["Excluded"] == "8"
    _ok(_click(at, "manual_color.undo"))
    assert at.multiselect(key="manual_color.rules").value == [ms.id]


def test_save_publishes_exactly_one_manual_run(app_as, app_store, sample):
    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    at = _session(app_as, sample)
    _ok(_click(at, "manual_color.save"))
    (record,) = runs.load_runs(app_store)
    assert (record.kind, record.status, record.actor, record.trigger, record.rules_applied) == (
        "MANUAL", runs.SUCCESS, "ana", "manual_save", ["No MS"])
    assert {k: record.counts[k] for k in ("read", "published", "parents", "excluded",
                                          "quarantined")} == {
        "read": 50, "published": 44, "parents": 8, "excluded": 6, "quarantined": 0}
    assert [s.value for s in at.success] == [
        f"Published run {record.run_id}: 44 colors (8 parents), 6 excluded, 0 quarantined."]
    assert _toasts(at) == [f"Published run {record.run_id}"]
    assert sessions.load_session(app_store, ANA) is None
    published = history.published_colors(app_store, SYSTEM)
    assert (len(published), set(published["PROCESSING_TYPE"])) == (44, {"MANUAL"})

    # A second click reaches a page without a Save button: nothing is published again.
    assert "manual_color.save" not in [b.key for b in at.button]
    _ok(at.run())
    assert [r.run_id for r in runs.load_runs(app_store)] == [record.run_id]
    assert [s.value for s in at.success] == [
        f"Published run {record.run_id}: 44 colors (8 parents), 6 excluded, 0 quarantined."]


def test_a_second_save_of_the_same_session_returns_the_same_run(app_as, app_store, sample):
    at = _session(app_as, sample)
    other = _page(app_as)  # a second window (or a second click) still showing Save
    _ok(_click(at, "manual_color.save"))
    (record,) = runs.load_runs(app_store)
    key = at.session_state["manual_color.save_key_state"][1]
    again = session_actions.save(app_store, ANA, SETTINGS, idempotency_key=key)
    assert again.record.run_id == record.run_id
    _ok(_click(other, "manual_color.save"))
    assert [r.run_id for r in runs.load_runs(app_store)] == [record.run_id]


def test_the_download_is_the_runs_output_workbook(app_as, app_store, sample, served):
    at = _ok(_click(_session(app_as, sample), "manual_color.save"))
    (record,) = runs.load_runs(app_store)
    button = next(b for b in at.get("download_button") if b.key == "manual_color.download")
    assert button.label == "Download the output workbook"
    data, name = served(button)
    assert name == f"colors-run-{record.run_id}.xlsx"
    assert data == app_store.get_blob(record.output)
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0][:4]) == ["RUN_ID", "PROCESSED_AT", "PROCESSING_TYPE", "MESSAGE_ID"]
    assert len(rows) == 51  # header + the 50 published colors
    assert ({r[0] for r in rows[1:]}, {r[2] for r in rows[1:]}) == ({record.run_id}, {"MANUAL"})


def test_discard_asks_first_and_releases_the_buffer_files(app_as, app_store, sample):
    (entry,) = buffer.add_files(app_store, SYSTEM, [sample], SETTINGS)
    at = _session(app_as)
    at.multiselect(key="manual_color.buffer_pick").select(entry.id).run()
    _ok(_click(at, "manual_color.load_buffer"))
    assert _toasts(at) == ["Claimed and loaded 1 buffer file(s)"]
    assert _metrics(at) | _counts(50, 10) == _metrics(at)
    held = buffer.get_entry(app_store, entry.id)
    assert (held.status, held.claimed_by) == ("claimed", "session:ana")

    _ok(_click(at, "manual_color.discard"))
    assert [w.value for w in at.warning] == [
        "Discard this session? Its 50 rows and every change are dropped; its 1 buffer file(s) "
        "go back to the queue."]
    _ok(_click(at, "manual_color.discard_cancel"))
    assert [w.value for w in at.warning] == []
    assert sessions.load_session(app_store, ANA) is not None

    _ok(_click(at, "manual_color.discard"))
    _ok(_click(at, "manual_color.discard_confirm"))
    assert _toasts(at) == ["Session discarded"]
    assert sessions.load_session(app_store, ANA) is None
    assert buffer.get_entry(app_store, entry.id).status == "pending"
    assert at.info[0].value.startswith("You have no open manual session.")
    assert runs.load_runs(app_store) == []


def test_a_change_made_in_another_window_is_refused_until_reload(app_as, app_store, sample):
    at = _session(app_as, sample)
    _select(at, 0)
    elsewhere = session_actions.delete_rows(app_store, ANA, [_rows(at)[COLOR_ID].iloc[5]])
    at.button(key="manual_color.delete").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"Deleting rows: {STALE}"]
    assert _core_view(app_store).session.version == elsewhere.version  # nothing deleted here
    _select(at, 0)  # the page now shows the current session: acting works again
    _ok(_click(at, "manual_color.delete"))
    assert _core_view(app_store).counts["rows"] == 48


def test_quick_filters_and_presets_narrow_the_preview(app_as, app_store, sample):
    at = _session(app_as, sample)
    ranked = _core_view(app_store).ranked
    at.text_input(key="manual_color.f_cusip").set_value("9798").run()
    assert _preview(at)[CUSIP].tolist() == ["97988RBL5"]
    assert _metrics(at) | _counts(50, 10) == _metrics(at)  # totals stay the session's
    at.text_input(key="manual_color.f_cusip").set_value("").run()
    at.multiselect(key="manual_color.f_source").select("MS").run()
    ms = ranked[ranked[SOURCE] == "MS"]
    assert _rows(at)[COLOR_ID].tolist() == ms[COLOR_ID].tolist()
    at.multiselect(key="manual_color.f_source").unselect("MS").run()

    preset = save_preset(app_store, ANA, Preset(
        name="Mezz only", conditions=Group("and", [Condition(SECTOR, "equal_to", MEZZ)])))
    at.run()
    at.selectbox(key="manual_color.preset").set_value(preset.id).run()
    _ok(at)
    mezz = ranked[(ranked[SECTOR] == MEZZ) & ranked[IS_PARENT]]
    assert _preview(at)[CUSIP].tolist() == mezz[CUSIP].tolist()


def test_a_sector_limited_analyst_sees_only_their_sector(app_as, app_store, sample):
    at = _session(app_as, sample, username="mo", sectors=[MEZZ])
    mo = Actor("mo", "analyst", (MEZZ,))
    ranked = _core_view(app_store, mo).ranked
    mezz = ranked[ranked[SECTOR] == MEZZ]
    parents = int(mezz[IS_PARENT].sum())
    assert (len(mezz), parents) == (14, 5)
    assert _metrics(at) | _counts(14, 5) == _metrics(at)
    assert set(_preview(at)[SECTOR]) == {MEZZ}
    assert _rows(at)[COLOR_ID].tolist() == mezz[COLOR_ID].tolist()
    assert at.multiselect(key="manual_color.f_sector").options == [MEZZ]


def test_quarantined_rows_are_reported_and_downloadable(app_as, app_store, sample, served):
    frame = pd.read_excel(io.BytesIO(sample[1]), dtype={"MESSAGE_ID": str}, engine="openpyxl")
    frame.loc[[3, 7], CUSIP] = ""  # no CUSIP: quarantined, never grouped
    at = _session(app_as, ("two-blank.csv", frame.to_csv(index=False).encode()))
    view = _core_view(app_store)
    assert (view.counts["rows"], len(view.quarantined)) == (48, 2)
    assert _metrics(at) | _counts(48, 10, quarantined=2) == _metrics(at)
    assert _metrics(at)["Blocking problems"] == str(len(view.report.blocking))
    button = next(b for b in at.get("download_button") if b.key == "manual_color.quarantined")
    assert button.label == "Download the 2 quarantined rows (CSV)"
    data, name = served(button)
    assert name == "quarantined.csv"
    assert data == write_csv(view.quarantined)
    assert pd.read_csv(io.BytesIO(data), dtype=str)["MESSAGE_ID"].tolist() == (
        frame.loc[[3, 7], "MESSAGE_ID"].tolist())


def test_the_configured_sql_source_is_fetched_into_the_session(app_as, app_store, sample,
                                                                tmp_path):
    at = _session(app_as)
    assert "manual_color.fetch" not in [b.key for b in at.button]  # no job reads a database
    frame = pd.read_excel(io.BytesIO(sample[1]), dtype={"MESSAGE_ID": str}, engine="openpyxl")
    with sqlite3.connect(tmp_path / "desk.db") as con:
        frame.astype({"DATE": str, "DATE_1": str}).to_sql("colors", con, index=False)
    save_job(app_store, SYSTEM, Job(name="Desk SQL", schedule="0 7 * * 1-5", sources=[
        {"kind": "sql", "url": f"sqlite:///{tmp_path / 'desk.db'}",
         "query": "SELECT * FROM colors"}]))
    _ok(at.run())
    assert at.selectbox(key="manual_color.source").value == "Desk SQL"
    _ok(_click(at, "manual_color.fetch"))
    assert _toasts(at) == ["Fetched the source of Desk SQL"]
    assert _metrics(at) | _counts(50, 10) == _metrics(at)
    assert [f["name"] for f in _core_view(app_store).session.files] == ["sql-session-ana.parquet"]


def test_a_viewer_cannot_open_the_page(app_as):
    at = app_as("vera", "viewer")
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)



def test_rows_already_published_are_shown_before_saving_and_skipped(app_as, app_store, sample):
    first = _ok(_click(_session(app_as, sample), "manual_color.save"))
    (run,) = runs.load_runs(app_store)
    at = _session(app_as, sample)
    when = run.finished_at[:16].replace("T", " ")
    assert [w.value for w in at.warning] == [
        f"50 of these colors were already published in run {run.run_id} (file {SAMPLE.name}, "
        f"by ana at {when} UTC). Saving skips them."]
    assert "manual_color.republish" not in [c.key for c in at.checkbox]  # analysts cannot
    assert runs.load_runs(app_store) == [run]  # shown before anything is published
    _ok(_click(at, "manual_color.save"))
    second = runs.load_runs(app_store)[0]
    assert (second.counts["published"], second.already_published["count"]) == (0, 50)
    assert at.info[0].value == (
        f"50 colors skipped: already published in run {run.run_id} (file {SAMPLE.name}, by ana "
        f"at {when} UTC)")
    assert len(history.published_colors(app_store, SYSTEM)) == 50
    assert first.session_state["manual_color.result_state"].record.run_id == run.run_id


def test_an_admin_may_tick_publish_again(app_as, app_store, sample):
    _ok(_click(_session(app_as, sample), "manual_color.save"))
    at = _session(app_as, sample, username="ada", role="admin")
    at.checkbox(key="manual_color.republish").check().run()
    _ok(_click(at, "manual_color.save"))
    second = runs.load_runs(app_store)[0]
    assert (second.actor, second.republished, second.counts["published"]) == ("ada", True, 50)
    assert len(history.published_colors(app_store, SYSTEM)) == 100
