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
    INPUT_COLUMNS,
    IS_PARENT,
    SECTOR,
    SOURCE,
)
from pages._ui.markdown import escape_markdown
from tests.factories import SAMPLE
from tests.pages import manual_color_driver as mc

PAGE, SETTINGS, ANA = mc.PAGE, mc.SETTINGS, mc.ANA
MEZZ = "2.0_Mezz"


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


# -- tests ----------------------------------------------------------------------------------------
def test_a_user_without_a_session_is_offered_to_start_one(app_as, app_store):
    at = mc.page(app_as)
    assert at.info[0].value.startswith("You have no open manual session.")
    assert sessions.read_session(app_store, "ana") is None  # visiting stores nothing
    mc.ok(mc.click(at, "manual_color.start"))
    session = sessions.load_session(app_store, ANA)
    assert (session.status, session.files, session.rule_ids) == ("open", [], [])
    assert mc.toasts(at) == ["Session started"]
    assert at.button(key="manual_color.load_files").disabled
    assert at.button(key="manual_color.undo").disabled
    assert at.button(key="manual_color.save").disabled  # nothing to save yet


def test_uploading_the_sample_previews_ten_parents(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    assert mc.toasts(at) == ["Loaded 1 file(s); the session has 50 rows"]
    view = mc.core_view(app_store)
    assert view.counts["rows"] == 50
    assert mc.metrics(at) == {"Quality score": "50.0/100", "Blocking problems": "0",
                            "Warnings": "50", **mc.counts(50, 10)}
    preview = mc.preview(at)
    parents = view.ranked[view.ranked[IS_PARENT]]
    assert preview[CUSIP].tolist() == parents[CUSIP].tolist()
    assert preview[CHILDREN_COUNT].tolist() == parents[CHILDREN_COUNT].tolist()
    assert preview[CUSIP].nunique() == 10
    assert mc.shown_rows(at) == mc.expected_rows(view)
    assert "10 parents, 40 children. Select a parent to see its children." in at.caption.values
    assert runs.load_runs(app_store) == []  # a session publishes nothing until it is saved
    # Reloading the page resumes the session from the store.
    again = mc.page(app_as)
    assert mc.metrics(again) == mc.metrics(at)


def test_rules_show_what_they_exclude_before_they_apply(app_as, app_store, sample):
    ms = save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    valuations = save_rule(app_store, SYSTEM, Rule(
        name="No valuations", priority=200, active=False,
        conditions=Group("or", [Condition(BIAS, "equal_to", "VALUATION")])))
    at = mc.start(app_as, sample)
    assert at.multiselect(key="manual_color.rules").value == [ms.id]  # active ones pre-selected
    assert "6 rows excluded; No MS: 6" in at.caption.values
    assert mc.metrics(at) | mc.counts(44, 8, excluded=6) == mc.metrics(at)

    rows = sessions.load_frame(app_store, mc.core_view(app_store).session.rows_key)
    both = apply_rules(rows, [ms, replace(valuations, active=True)])
    assert (len(both.excluded), both.counts) == (8, {"No MS": 6, "No valuations": 2})
    at.multiselect(key="manual_color.rules").select(valuations.id).run()
    mc.ok(at)
    assert "With this selection 8 rows would be excluded; No MS: 6; No valuations: 2" in (
        at.caption.values)
    excluded = [d.value for d in at.dataframe if d.key is None and EXCLUDED_BY in d.value.columns]
    assert excluded[0][EXCLUDED_BY].tolist() == both.excluded[EXCLUDED_BY].tolist()
    assert mc.metrics(at)["Excluded"] == "6"  # only a preview: the session still has one rule

    mc.ok(mc.click(at, "manual_color.apply_rules"))
    assert mc.toasts(at) == ["Applied 2 rule(s)"]
    assert mc.core_view(app_store).session.rule_ids == [ms.id, valuations.id]
    assert "8 rows excluded; No MS: 6; No valuations: 2" in at.caption.values
    assert mc.metrics(at)["Excluded"] == "8"
    mc.ok(mc.click(at, "manual_color.undo"))
    assert at.multiselect(key="manual_color.rules").value == [ms.id]


def test_save_publishes_exactly_one_manual_run(app_as, app_store, sample):
    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    at = mc.start(app_as, sample)
    mc.ok(mc.save(at))
    (record,) = runs.load_runs(app_store)
    assert (record.kind, record.status, record.actor, record.trigger, record.rules_applied) == (
        "MANUAL", runs.SUCCESS, "ana", "manual_save", ["No MS"])
    assert {k: record.counts[k] for k in ("read", "published", "parents", "excluded",
                                          "quarantined")} == {
        "read": 50, "published": 44, "parents": 8, "excluded": 6, "quarantined": 0}
    assert [s.value for s in at.success] == [
        f"Published run {record.run_id}: 44 colors (8 parents), 6 excluded, 0 quarantined."]
    assert mc.toasts(at) == [f"Published run {record.run_id}"]
    assert sessions.load_session(app_store, ANA) is None
    published = history.published_colors(app_store, SYSTEM)
    assert (len(published), set(published["PROCESSING_TYPE"])) == (44, {"MANUAL"})

    # A second click reaches a page without a Save button: nothing is published again.
    assert "manual_color.save" not in [b.key for b in at.button]
    mc.ok(at.run())
    assert [r.run_id for r in runs.load_runs(app_store)] == [record.run_id]
    assert [s.value for s in at.success] == [
        f"Published run {record.run_id}: 44 colors (8 parents), 6 excluded, 0 quarantined."]


def test_a_second_save_of_the_same_session_returns_the_same_run(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    other = mc.page(app_as)  # a second window (or a second click) still showing Save
    mc.ok(mc.save(at))
    (record,) = runs.load_runs(app_store)
    key = at.session_state["manual_color.save_key_state"][1]
    again = session_actions.save(app_store, ANA, SETTINGS, idempotency_key=key)
    assert again.record.run_id == record.run_id
    mc.ok(mc.click(other, "manual_color.save"))  # it reruns on a saved session: no second run
    assert [r.run_id for r in runs.load_runs(app_store)] == [record.run_id]


def test_the_download_is_the_runs_output_workbook(app_as, app_store, sample, served):
    at = mc.ok(mc.save(mc.start(app_as, sample)))
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
    at = mc.start(app_as)
    at.multiselect(key="manual_color.buffer_pick").select(entry.id).run()
    mc.ok(mc.click(at, "manual_color.load_buffer"))
    assert mc.toasts(at) == ["Claimed and loaded 1 buffer file(s)"]
    assert mc.metrics(at) | mc.counts(50, 10) == mc.metrics(at)
    held = buffer.get_entry(app_store, entry.id)
    assert (held.status, held.claimed_by) == ("claimed", "session:ana")

    mc.ok(mc.click(at, "manual_color.discard"))
    assert [w.value for w in at.warning] == [
        "Discard this session? Its 50 rows and every change are dropped; its 1 buffer file(s) "
        "go back to the queue."]
    mc.ok(mc.click(at, "manual_color.discard_cancel"))
    assert [w.value for w in at.warning] == []
    assert sessions.load_session(app_store, ANA) is not None

    mc.ok(mc.click(at, "manual_color.discard"))
    mc.ok(mc.click(at, "manual_color.discard_confirm"))
    assert mc.toasts(at) == ["Session discarded"]
    assert sessions.load_session(app_store, ANA) is None
    assert buffer.get_entry(app_store, entry.id).status == "pending"
    assert at.info[0].value.startswith("You have no open manual session.")
    assert runs.load_runs(app_store) == []


def test_quick_filters_and_presets_narrow_the_preview(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    ranked = mc.core_view(app_store).ranked
    at.text_input(key="manual_color.f_cusip").set_value("9798").run()
    assert mc.preview(at)[CUSIP].tolist() == ["97988RBL5"]
    assert mc.metrics(at) | mc.counts(50, 10) == mc.metrics(at)  # totals stay the session's
    at.text_input(key="manual_color.f_cusip").set_value("").run()
    at.multiselect(key="manual_color.f_source").select("MS").run()
    ms = ranked[ranked[SOURCE] == "MS"]
    assert mc.rows(at)[COLOR_ID].tolist() == ms[COLOR_ID].tolist()
    at.multiselect(key="manual_color.f_source").unselect("MS").run()

    preset = save_preset(app_store, ANA, Preset(
        name="Mezz only", conditions=Group("and", [Condition(SECTOR, "equal_to", MEZZ)])))
    at.run()
    at.selectbox(key="manual_color.preset").set_value(preset.id).run()
    mc.ok(at)
    mezz = ranked[(ranked[SECTOR] == MEZZ) & ranked[IS_PARENT]]
    assert mc.preview(at)[CUSIP].tolist() == mezz[CUSIP].tolist()


def test_a_sector_limited_analyst_sees_only_their_sector(app_as, app_store, sample):
    at = mc.start(app_as, sample, username="mo", sectors=[MEZZ])
    mo = Actor("mo", "analyst", (MEZZ,))
    ranked = mc.core_view(app_store, mo).ranked
    mezz = ranked[ranked[SECTOR] == MEZZ]
    parents = int(mezz[IS_PARENT].sum())
    assert (len(mezz), parents) == (14, 5)
    assert mc.metrics(at) | mc.counts(14, 5) == mc.metrics(at)
    assert set(mc.preview(at)[SECTOR]) == {MEZZ}
    assert mc.rows(at)[COLOR_ID].tolist() == mezz[COLOR_ID].tolist()
    assert at.multiselect(key="manual_color.f_sector").options == [MEZZ]


def test_quarantined_rows_are_reported_and_downloadable(app_as, app_store, sample, served):
    frame = pd.read_excel(io.BytesIO(sample[1]), dtype={"MESSAGE_ID": str}, engine="openpyxl")
    frame.loc[[3, 7], CUSIP] = ""  # no CUSIP: quarantined, never grouped
    at = mc.start(app_as, ("two-blank.csv", frame.to_csv(index=False).encode()))
    view = mc.core_view(app_store)
    assert (view.counts["rows"], len(view.quarantined)) == (48, 2)
    assert mc.metrics(at) | mc.counts(48, 10, quarantined=2) == mc.metrics(at)
    assert mc.metrics(at)["Blocking problems"] == str(len(view.report.blocking))
    button = next(b for b in at.get("download_button") if b.key == "manual_color.quarantined")
    assert button.label == "Download the 2 quarantined rows (CSV)"
    data, name = served(button)
    assert name == "quarantined.csv"
    assert data == write_csv(view.quarantined)
    assert pd.read_csv(io.BytesIO(data), dtype=str)["MESSAGE_ID"].tolist() == (
        frame.loc[[3, 7], "MESSAGE_ID"].tolist())


def test_the_configured_sql_source_is_fetched_into_the_session(app_as, app_store, sample,
                                                                tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETPULSE_SOURCES_DESK_URL", f"sqlite:///{tmp_path / 'desk.db'}")
    at = mc.start(app_as)
    assert "manual_color.fetch" not in [b.key for b in at.button]  # no job reads a database
    frame = pd.read_excel(io.BytesIO(sample[1]), dtype={"MESSAGE_ID": str}, engine="openpyxl")
    frame["SEQ"] = range(len(frame))
    with sqlite3.connect(tmp_path / "desk.db") as con:
        frame.astype({"DATE": str, "DATE_1": str}).to_sql("colors", con, index=False)
    save_job(app_store, SYSTEM, Job(name="Desk SQL", schedule="0 7 * * 1-5", sources=[
        {"kind": "sql", "secret": "desk", "table": "colors", "watermark_column": "seq",
         "column_map": {c: c for c in INPUT_COLUMNS if c in frame.columns}}]))
    mc.ok(at.run())
    assert at.selectbox(key="manual_color.source").value == "Desk SQL"
    mc.ok(mc.click(at, "manual_color.fetch"))
    assert mc.toasts(at) == ["Fetched the source of Desk SQL"]
    assert mc.metrics(at) | mc.counts(50, 10) == mc.metrics(at)
    assert [f["name"] for f in mc.core_view(app_store).session.files] == ["sql-desk-colors.parquet"]


def test_a_viewer_cannot_open_the_page(app_as):
    at = app_as("vera", "viewer")
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)



def test_rows_already_published_are_shown_before_saving_and_skipped(app_as, app_store, sample):
    first = mc.ok(mc.save(mc.start(app_as, sample)))
    (run,) = runs.load_runs(app_store)
    at = mc.start(app_as, sample)
    when = run.finished_at[:16].replace("T", " ")
    assert [w.value for w in at.warning] == [
        f"50 of these colors were already published in run {run.run_id} (file {SAMPLE.name}, "
        f"by ana at {when} UTC). Saving skips them."]
    assert "manual_color.republish" not in [c.key for c in at.checkbox]  # analysts cannot
    assert runs.load_runs(app_store) == [run]  # shown before anything is published
    mc.ok(mc.save(at))
    second = runs.load_runs(app_store)[0]
    assert (second.counts["published"], second.already_published["count"]) == (0, 50)
    assert at.info[0].value == (
        f"50 colors skipped: already published in run {run.run_id} (file {SAMPLE.name}, by ana "
        f"at {when} UTC)")
    assert len(history.published_colors(app_store, SYSTEM)) == 50
    assert first.session_state["manual_color.result_state"].record.run_id == run.run_id


def test_an_admin_may_tick_publish_again(app_as, app_store, sample):
    mc.ok(mc.save(mc.start(app_as, sample)))
    at = mc.start(app_as, sample, username="ada", role="admin")
    at.checkbox(key="manual_color.republish").check().run()
    mc.ok(mc.save(at))
    second = runs.load_runs(app_store)[0]
    assert (second.actor, second.republished, second.counts["published"]) == ("ada", True, 50)
    assert len(history.published_colors(app_store, SYSTEM)) == 100


def test_save_and_publish_asks_first_and_says_what_it_will_publish(app_as, app_store, sample):
    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    at = mc.ok(mc.click(mc.start(app_as, sample), "manual_color.save"))
    assert [w.value for w in at.warning] == ["\n".join([
        "**Publish this session as one MANUAL run?**",
        "- 44 colors, 8 parents (from 50 rows)",
        "- 6 excluded by rules: No MS 6",
        "- 0 already published, skipped",
        "- 0 quarantined rows left out",
        "- 50 validation warnings (see Validation)"])]
    assert runs.load_runs(app_store) == []  # asking publishes nothing
    mc.ok(mc.click(at, "manual_color.save_cancel"))
    assert ([w.value for w in at.warning], runs.load_runs(app_store)) == ([], [])
    mc.ok(mc.save(at))
    (record,) = runs.load_runs(app_store)
    assert (record.counts["published"], record.counts["parents"]) == (44, 8)


def test_the_confirmation_counts_colors_already_published_as_skipped(app_as, app_store, sample):
    mc.ok(mc.save(mc.start(app_as, sample)))
    (run,) = runs.load_runs(app_store)
    at = mc.ok(mc.click(mc.start(app_as, sample), "manual_color.save"))
    when = run.finished_at[:16].replace("T", " ")
    assert at.warning[-1].value.splitlines()[1:4] == [
        "- 0 colors, 0 parents (from 50 rows)", "- 0 excluded by rules",
        "- 50 already published, skipped (first in "
        + escape_markdown(f"run {run.run_id} (file {SAMPLE.name}, by ana at {when} UTC)") + ")"]
