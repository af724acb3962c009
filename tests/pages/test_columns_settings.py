"""Settings → Columns (admins): aliases, display names, flags, custom columns, the mapping preview
and Revert, each checked by what core.ingest.color_file then reads."""

from __future__ import annotations

import pandas as pd
import pytest

from core.cli.demo import generate_colors
from core.compliance.revert import recent_changes
from core.errors import MissingColumns
from core.ingest.color_file import read_colors
from core.ingest.columns import load_column_config
from core.runs.exports import write_xlsx
from core.schema import CUSIP, SOURCE, ColumnSpec
from tests.pages.conftest import mounts_at

PAGE = "pages/settings.py"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def colors() -> pd.DataFrame:
    return generate_colors(12, seed=3)


def _ok(node):
    at = node.run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def _columns_tab(app_as, column: str | None = None):
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert "Columns" in [t.label for t in at.tabs]
    if column:
        _ok(at.selectbox(key="settings.column").set_value(column))
    return at


def _table(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "Aliases" in d.value.columns)


def _spec(store, name: str) -> ColumnSpec:
    return next(s for s in load_column_config(store) if s.name == name)


def _display_name(at):
    """The display name box: drawn afresh, under a new key generation, each time a column (or a
    new configuration version) is put in the editor."""
    generation = at.session_state["settings.column_edit_generation_state"]
    return at.text_input(key=f"settings.column_edit.{generation}.display")


def _add_alias(at, alias: str):
    at.text_input(key="settings.alias_new").input(alias)
    return at.button(key="settings.alias_add").click()


def test_the_table_lists_the_canonical_columns_with_their_settings(app_as, app_store):
    at = _columns_tab(app_as)
    table = _table(at)
    specs = load_column_config(app_store)
    assert table["Column"].tolist() == [s.name for s in specs]
    assert len(table) == 18
    assert table[table["Column"] == SOURCE].iloc[0].to_dict() == {
        "Column": SOURCE, "Display name": "Source", "Type": "text", "Required": True,
        "Visible": True, "Custom": False, "Aliases": "DEALER, CONTRIBUTOR, BROKER"}


def test_a_file_with_a_new_alias_ingests_once_the_alias_is_added(app_as, app_store, colors):
    data = write_xlsx(colors.rename(columns={SOURCE: "Dealer Code"}))
    with pytest.raises(MissingColumns):
        read_colors(data, "dealer.xlsx", columns=load_column_config(app_store))
    at = _columns_tab(app_as, SOURCE)
    _ok(_add_alias(at, "Dealer Code"))
    assert _spec(app_store, SOURCE).aliases == ["DEALER", "CONTRIBUTOR", "BROKER", "Dealer Code"]
    assert [s.value for s in at.success] == ["Files may now name SOURCE 'Dealer Code'."]
    assert at.text_input(key="settings.alias_new").value == ""
    batch = read_colors(data, "dealer.xlsx", columns=load_column_config(app_store))
    assert batch.frame[SOURCE].tolist() == colors[SOURCE].tolist()

    # The preview maps the header the same way.
    at.file_uploader(key="settings.columns_preview_file").set_value([("dealer.xlsx", data, XLSX)])
    preview = next(d.value for d in _ok(at).dataframe if "NOTE" in d.value.columns)
    assert preview[preview["HEADER"] == "Dealer Code"][["COLUMN", "NOTE"]].values.tolist() == [
        [SOURCE, ""]]


@pytest.mark.parametrize(("column", "alias", "message"), [
    (SOURCE, "dealer", "Alias not added: alias: column SOURCE already accepts 'dealer'"),
    ("BIAS", "Dealer", "Alias not added: column configuration: alias 'Dealer' of column BIAS is "
                       "also an alias of column SOURCE; each header must map to one column"),
])
def test_a_duplicate_alias_shows_cores_message(app_as, app_store, column, alias, message):
    before = load_column_config(app_store)
    at = _add_alias(_columns_tab(app_as, column), alias).run()
    assert not at.exception
    assert [e.value for e in at.error] == [message]
    assert load_column_config(app_store) == before
    assert recent_changes(app_store, "columns") == []


def test_removing_an_alias_and_reverting_the_change(app_as, app_store):
    at = _columns_tab(app_as, SOURCE)
    _ok(at.button(key="settings.alias_remove_0").click())  # DEALER
    assert _spec(app_store, SOURCE).aliases == ["CONTRIBUTOR", "BROKER"]
    (change,) = recent_changes(app_store, "columns")
    assert change.summary == "removed alias 'DEALER' from SOURCE"
    assert change.revertible
    _ok(at.button(key=f"settings.columns_history.revert_{change.event_id}").click())
    assert _spec(app_store, SOURCE).aliases == ["DEALER", "CONTRIBUTOR", "BROKER"]
    assert [s.value for s in at.success] == ["Reverted: removed alias 'DEALER' from SOURCE"]
    revert, removed = recent_changes(app_store, "columns")
    assert (revert.action, removed.revertible) == ("revert", False)
    assert f"Cannot be reverted: {removed.reason}" in at.caption.values
    assert removed.reason.startswith("already reverted by admin at ")


def test_reverting_an_alias_change_that_a_later_change_covers_is_explained(app_as, app_store):
    at = _columns_tab(app_as, CUSIP)
    _ok(_add_alias(at, "ISIN OR CUSIP"))
    _ok(_add_alias(at, "SEC ID"))
    later, first = recent_changes(app_store, "columns")
    assert f"settings.columns_history.revert_{first.event_id}" not in [b.key for b in at.button]
    assert first.reason.startswith("the column configuration was changed by admin at ")
    _ok(at.button(key=f"settings.columns_history.revert_{later.event_id}").click())
    assert _spec(app_store, CUSIP).aliases == ["CUSIP ID", "SECURITY ID", "ISIN OR CUSIP"]


def test_a_custom_column_is_added_ingested_and_removed(app_as, app_store, colors):
    at = _columns_tab(app_as)
    at.text_input(key="settings.custom_name").input("desk_note")
    at.selectbox(key="settings.custom_type").set_value("text")
    at.text_input(key="settings.custom_display").input("Desk note")
    _ok(at.button(key="settings.custom_add").click())
    assert _spec(app_store, "DESK_NOTE") == ColumnSpec(
        name="DESK_NOTE", type="text", display_name="Desk note", custom=True)
    assert [s.value for s in at.success] == ["Added custom column DESK_NOTE (text)."]
    assert _table(at)["Column"].tolist()[-1] == "DESK_NOTE"
    assert at.text_input(key="settings.custom_name").value == ""

    data = write_xlsx(colors.assign(**{"Desk note": [f"n{i}" for i in range(12)]}))
    batch = read_colors(data, "notes.xlsx", columns=load_column_config(app_store))
    assert batch.frame["DESK_NOTE"].tolist() == [f"n{i}" for i in range(12)]

    _ok(at.selectbox(key="settings.column").set_value("DESK_NOTE"))
    _ok(at.button(key="settings.custom_remove").click())
    assert "DESK_NOTE" not in [s.name for s in load_column_config(app_store)]
    assert "settings.custom_remove" not in [b.key for b in at.button]  # canonical: no button


def test_a_custom_column_with_a_system_name_is_refused(app_as, app_store):
    at = _columns_tab(app_as)
    at.text_input(key="settings.custom_name").input("RUN_ID")
    at.button(key="settings.custom_add").click().run()
    assert [e.value for e in at.error] == [
        "Column not added: column configuration: custom column RUN_ID: the name is used by "
        "MarketPulse for its own column"]
    assert at.text_input(key="settings.custom_name").value == "RUN_ID"  # kept to fix it


def test_visible_and_display_name_apply_and_a_refused_required_flag_springs_back(
        app_as, app_store):
    at = _columns_tab(app_as, "BID")
    _ok(at.toggle(key="settings.column_visible").set_value(False))
    assert _spec(app_store, "BID").visible is False
    _display_name(at).input("Bid price")
    _ok(at.button(key="settings.column_display_save").click())
    assert _spec(app_store, "BID").display_name == "Bid price"
    assert _table(at).set_index("Column").loc["BID", ["Display name", "Visible"]].tolist() == [
        "Bid price", False]

    _ok(at.selectbox(key="settings.column").set_value(CUSIP))
    at.toggle(key="settings.column_required").set_value(False).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "CUSIP not changed: column configuration: column CUSIP must stay required: the engine "
        "needs it (of the required columns only TICKER can be made optional)"]
    assert _spec(app_store, CUSIP).required is True
    assert at.toggle(key="settings.column_required").value is True


def test_a_browser_that_missed_the_run_that_chose_a_column_mounts_its_display_name(
        app_as, app_store):
    """Under load the run that puts a column in the editor can be superseded before the browser
    gets it, and the browser mounts the editor from the next run. The display name must come
    with the column's in that run too (it came empty, and Save display name sent that back)."""
    at = _columns_tab(app_as, "BID")
    _display_name(at).input("Bid price")
    _ok(at.button(key="settings.column_display_save").click())
    _ok(at.selectbox(key="settings.column").set_value(CUSIP))
    _ok(at.selectbox(key="settings.column").set_value("BID"))
    at = _ok(at)  # the run after the one that put BID in the editor
    assert mounts_at(_display_name(at)) == "Bid price"
    _ok(at.button(key="settings.column_display_save").click())
    assert _spec(app_store, "BID").display_name == "Bid price"
