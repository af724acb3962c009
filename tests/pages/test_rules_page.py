"""Rules page (admins): the condition builder, Test, Save, the list, toggle, priority, duplicate,
delete, import/export as JSON, Revert of the last changes, and saved filters."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core.access import SYSTEM
from core.cli.demo import generate_colors
from core.compliance.revert import recent_changes
from core.config import load_settings
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, describe, load_rules, save_rule
from core.rules.presets import list_presets
from core.runs import pipeline
from core.runs.exports import write_xlsx
from core.schema import BIAS, CONFIDENCE, CUSIP, MESSAGE_ID, PX, RANK, SOURCE
from pages._ui.markdown import escape_markdown
from tests.pages.conftest import mounts_at, upload

PAGE = "pages/rules.py"
SETTINGS = load_settings({}, {})
DONE_WHEN = Group("or", [
    Condition(SOURCE, "equal_to", "DZ BANK"),
    Group("and", [Condition(BIAS, "equal_to", "VALUATION"), Condition(CONFIDENCE, "less_than", 5)]),
])
WORDS = "SOURCE equals 'DZ BANK' OR (BIAS equals 'VALUATION' AND CONFIDENCE less than 5)"
# Rows of the generated file the Done-when rule must exclude: DZ BANK (3, 17, 25) or VALUATION with
# CONFIDENCE < 5 (8, 25, 30). Row 12 is VALUATION at 5 and row 20 has CONFIDENCE 0 but is a BID.
MATCHED = [3, 8, 17, 25, 30]


@pytest.fixture
def colors() -> pd.DataFrame:
    frame = generate_colors(40, seed=11)
    frame.loc[frame[BIAS] == "VALUATION", [BIAS, RANK]] = ["BID", 3]
    frame[CONFIDENCE] = 10
    frame.loc[[3, 17, 25], SOURCE] = "DZ BANK"
    for row, confidence in ((25, 1), (8, 2), (30, 4), (12, 5)):
        frame.loc[row, [BIAS, RANK, CONFIDENCE]] = ["VALUATION", 6, confidence]
    frame.loc[20, CONFIDENCE] = 0
    assert frame[SOURCE].value_counts()["DZ BANK"] == 3
    return frame


@pytest.fixture
def colors_file(colors) -> tuple[str, bytes]:
    return "dz.xlsx", write_xlsx(colors)


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves: AppTest keeps them in a media storage made per run."""
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


def _page(app_as):
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert [t.value for t in at.title] == ["Rules"]
    return at


def _ok(node):
    """Run the app (node: the AppTest or a widget just set) and expect no exception or error."""
    at = node.run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def _field(at, name: str):
    """The rule form's widget (name, description, priority or active): drawn afresh, under a new
    key generation, each time a rule is loaded into the form."""
    key = f"rules.form.{at.session_state['rules.form_generation_state']}.{name}"
    return {"priority": at.number_input, "active": at.checkbox}.get(name, at.text_input)(key=key)


def _builder_key(at, name: str, builder: str = "rules.builder") -> str:
    """The key of a condition builder's widget ("0.column", "1.1.value", "join"): drawn afresh,
    under a new key generation, each time a rule is loaded or a condition is added or removed."""
    return f"{builder}.{at.session_state[f'{builder}_generation_state']}.{name}"


def _table(at, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _build_done_when(at, confidence: str = "5"):
    """Through the widgets: name, top-level OR, a condition, an AND sub-group of two."""
    _field(at, "name").input("No DZ")
    _field(at, "description").input("DZ BANK colors and weak valuations")
    at.radio(key=_builder_key(at, "join")).set_value("or")
    _ok(at.selectbox(key=_builder_key(at, "0.column")).set_value(SOURCE))
    _ok(at.selectbox(key=_builder_key(at, "0.operator")).set_value("equal_to"))
    at.multiselect(key=_builder_key(at, "0.picked")).set_value(["DZ BANK"])  # a dealer, typed
    _ok(at.button(key=_builder_key(at, "add_group")).click())
    _ok(at.selectbox(key=_builder_key(at, "1.0.column")).set_value(BIAS))
    at.text_input(key=_builder_key(at, "1.0.value")).input("VALUATION")
    _ok(at.button(key=_builder_key(at, "1.add_condition")).click())
    _ok(at.selectbox(key=_builder_key(at, "1.1.column")).set_value(CONFIDENCE))
    at.selectbox(key=_builder_key(at, "1.1.operator")).set_value("less_than")
    at.text_input(key=_builder_key(at, "1.1.value")).input(confidence)
    return _ok(at)


def _test_against(at, source: str, file: tuple[str, bytes] | None = None):
    at = _ok(at.radio(key="rules.test_source").set_value(source))
    if file:
        at = upload(at, "rules.test_file", file)
    return _ok(at.button(key="rules.test").click())


def _revert(at, change) -> None:
    _ok(at.button(key=f"rules.history.revert_{change.event_id}").click())


def test_admin_builds_tests_saves_toggles_and_reverts_the_done_when_rule(
        app_as, app_store, colors, colors_file):
    at = _build_done_when(_page(app_as))
    assert at.session_state["rules.builder_state"] == DONE_WHEN.to_dict()
    assert f"Reads: {WORDS}" in at.caption.values

    _test_against(at, "Uploaded file", colors_file)
    assert [i.value for i in at.info] == ["Would exclude 5 of 40 rows of dz.xlsx (40 rows)."]
    assert _table(at, "Rows matched").values.tolist() == [
        [1, "SOURCE equals 'DZ BANK'", 3], [2, "BIAS equals 'VALUATION'", 4],
        [3, "CONFIDENCE less than 5", 4]]
    samples = _table(at, "SOURCE_ROW")
    assert samples[CUSIP].tolist() == colors.loc[MATCHED, CUSIP].tolist()
    assert samples["SOURCE_ROW"].tolist() == [r + 2 for r in MATCHED]  # Excel's row numbers
    assert load_rules(app_store) == []  # testing saves nothing

    _ok(at.button(key="rules.save").click())
    (rule,) = load_rules(app_store)
    assert (rule.name, rule.description, rule.priority, rule.active, rule.created_by) == (
        "No DZ", "DZ BANK colors and weak valuations", 100, True, "admin")
    assert rule.conditions.to_dict() == DONE_WHEN.to_dict()
    assert [s.value for s in at.success] == [f"Saved rule 'No DZ': {WORDS}"]
    assert _field(at, "name").value == ""  # the form is empty again
    row = _table(at, "Conditions").iloc[0].to_dict()
    assert {k: row[k] for k in ("Priority", "Name", "Active", "Conditions", "Last changed by")} \
        == {"Priority": 100, "Name": "No DZ", "Active": True, "Conditions": WORDS,
            "Last changed by": "admin"}

    _ok(at.selectbox(key="rules.selected").set_value(rule.id))
    _ok(at.toggle(key="rules.active").set_value(False))
    assert [r.active for r in load_rules(app_store)] == [False]
    assert _table(at, "Conditions")["Active"].tolist() == [False]

    deactivated, created = recent_changes(app_store, "rules")
    assert (deactivated.action, created.action) == ("deactivate", "create")
    assert f"rules.history.revert_{created.event_id}" not in [b.key for b in at.button]
    assert f"Cannot be reverted: {created.reason}" in at.caption.values
    assert created.reason.startswith("rule 'No DZ' was changed by admin at ")
    assert created.reason.endswith(" after this change; revert that change first")

    _revert(at, deactivated)
    assert [r.active for r in load_rules(app_store)] == [True]
    _revert(at, created)
    assert load_rules(app_store) == []
    assert [s.value for s in at.success] == ["Reverted: created rule 'No DZ'"]
    assert _table(at, "Conditions").empty


def test_the_rule_is_tested_against_and_applied_by_the_latest_run(
        app_as, app_store, colors_file):
    pipeline.process_files(app_store, SYSTEM, [colors_file], settings=SETTINGS)
    at = _test_against(_build_done_when(_page(app_as)), "Latest run")
    assert [i.value for i in at.info] == [
        "Would exclude 5 of 40 rows of run 1 (40 published + 0 excluded rows)."]
    assert _table(at, "Rows matched")["Rows matched"].tolist() == [3, 4, 4]
    _ok(at.button(key="rules.save").click())

    # the same file again, on purpose (else its colors are skipped as already published)
    pipeline.process_files(app_store, SYSTEM, [colors_file], settings=SETTINGS, republish=True)
    table = _table(_ok(at), "Conditions")
    assert table[["Name", "Excluded in run 2"]].values.tolist() == [["No DZ", 5]]
    (rule,) = load_rules(app_store)
    _ok(at.selectbox(key="rules.selected").set_value(rule.id))  # in the form, nesting and all
    assert at.session_state["rules.builder_state"] == DONE_WHEN.to_dict()
    assert at.text_input(key=_builder_key(at, "1.1.value")).value == "5"
    at = _test_against(at, "Latest run")
    assert [i.value for i in at.info] == [
        "Would exclude 5 of 40 rows of run 2 (35 published + 5 excluded rows)."]


def test_an_invalid_value_shows_the_rule_error_naming_the_condition(app_as, app_store):
    at = _build_done_when(_page(app_as), confidence="abc")
    at.button(key="rules.save").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Not saved: rule 'No DZ': condition 3 (CONFIDENCE less than 'abc'): 'abc' is not a number"]
    assert load_rules(app_store) == []
    # The form keeps what was typed, so the admin can fix it.
    assert at.text_input(key=_builder_key(at, "1.1.value")).value == "abc"
    at.text_input(key=_builder_key(at, "1.1.value")).input("5")
    _ok(at.button(key="rules.save").click())
    assert [r.conditions.to_dict() for r in load_rules(app_store)] == [DONE_WHEN.to_dict()]


def test_the_form_is_kept_while_the_admin_visits_another_page(app_as, app_store):
    at = _build_done_when(_page(app_as))
    _ok(at.switch_page("pages/dashboard.py"))
    _ok(at.switch_page(PAGE))
    assert _field(at, "name").value == "No DZ"
    assert at.text_input(key=_builder_key(at, "1.1.value")).value == "5"
    _ok(at.button(key="rules.save").click())
    assert [(r.name, r.description, r.conditions) for r in load_rules(app_store)] == [
        ("No DZ", "DZ BANK colors and weak valuations", DONE_WHEN)]


def test_operators_follow_the_column_type_and_between_takes_two_values(app_as, app_store):
    at = _page(app_as)
    _field(at, "name").input("Cheap")
    _ok(at.selectbox(key=_builder_key(at, "0.column")).set_value("PX"))
    assert at.selectbox(key=_builder_key(at, "0.operator")).options == [
        "equals", "does not equal", "less than", "greater than", "less than or equal to",
        "greater than or equal to", "between", "in list", "not in list", "is empty",
        "is not empty"]
    _ok(at.selectbox(key=_builder_key(at, "0.operator")).set_value("between"))
    at.text_input(key=_builder_key(at, "0.value")).input("90")
    at.text_input(key=_builder_key(at, "0.value2")).input("80.5")
    _ok(at.button(key=_builder_key(at, "add_condition")).click())
    _ok(at.selectbox(key=_builder_key(at, "1.column")).set_value("DATE"))
    assert at.selectbox(key=_builder_key(at, "1.operator")).options == [
        "on", "not on", "before", "after", "between", "is empty", "is not empty"]
    at.selectbox(key=_builder_key(at, "1.operator")).set_value("before")
    at.text_input(key=_builder_key(at, "1.value")).input("2026-01-02")
    _ok(at.button(key=_builder_key(at, "add_condition")).click())
    _ok(at.selectbox(key=_builder_key(at, "2.column")).set_value(SOURCE))
    _ok(at.selectbox(key=_builder_key(at, "2.operator")).set_value("in_list"))
    at.multiselect(key=_builder_key(at, "2.picked")).set_value(["MS", "GS"])
    _ok(at.button(key=_builder_key(at, "add_condition")).click())
    _ok(at.selectbox(key=_builder_key(at, "3.column")).set_value("COV_PRICE"))
    _ok(at.selectbox(key=_builder_key(at, "3.operator")).set_value("is_empty"))
    assert _builder_key(at, "3.value") not in [t.key for t in at.text_input]
    _ok(at.button(key=_builder_key(at, "0.remove")).click())  # the later ones move up
    assert at.text_input(key=_builder_key(at, "0.value")).value == "2026-01-02"
    _ok(at.button(key="rules.save").click())
    (rule,) = load_rules(app_store)
    assert rule.conditions.to_dict() == {"join": "and", "items": [
        {"column": "DATE", "operator": "before", "value": "2026-01-02", "value2": None},
        {"column": SOURCE, "operator": "in_list", "value": ["MS", "GS"], "value2": None},
        {"column": "COV_PRICE", "operator": "is_empty", "value": None, "value2": None}]}

    _ok(at.selectbox(key="rules.selected").set_value(rule.id))  # no Edit step
    assert _field(at, "name").value == "Cheap"
    _ok(at.button(key=_builder_key(at, "add_condition")).click())
    _ok(at.selectbox(key=_builder_key(at, "3.column")).set_value("PX"))
    _ok(at.selectbox(key=_builder_key(at, "3.operator")).set_value("between"))
    at.text_input(key=_builder_key(at, "3.value")).input("90")
    at.text_input(key=_builder_key(at, "3.value2")).input("80.5")
    _ok(at.button(key="rules.save").click())
    (rule,) = load_rules(app_store)
    assert rule.conditions.items[-1] == Condition("PX", "between", 90, 80.5)
    assert describe(rule.conditions).endswith("PX between 90 and 80.5")


def test_priority_duplicate_and_delete_with_confirmation(app_as, app_store):
    first = save_rule(app_store, SYSTEM, Rule("No MS", DONE_WHEN.items[0], priority=10))
    at = _page(app_as)
    _ok(at.selectbox(key="rules.selected").set_value(first.id))
    _ok(at.number_input(key="rules.priority").set_value(3))
    assert [(r.name, r.priority) for r in load_rules(app_store)] == [("No MS", 3)]

    _ok(at.button(key="rules.duplicate").click())
    assert _field(at, "name").value == "No MS (copy)"
    _ok(at.button(key="rules.save").click())
    assert [(r.name, r.priority, r.conditions) for r in load_rules(app_store)] == [
        ("No MS", 3, first.conditions), ("No MS (copy)", 3, first.conditions)]

    copy = load_rules(app_store)[1]
    _ok(at.selectbox(key="rules.selected").set_value(copy.id))
    _ok(at.button(key="rules.delete").click())
    assert [w.value for w in at.warning] == [
        "Delete rule 'No MS (copy)'? It stops applying at once; the deletion can be reverted "
        "from the last rule changes."]
    _ok(at.button(key="rules.delete_cancel").click())
    assert len(load_rules(app_store)) == 2
    _ok(at.button(key="rules.delete").click())
    _ok(at.button(key="rules.delete_confirm").click())
    assert [r.name for r in load_rules(app_store)] == ["No MS"]
    assert [s.value for s in at.success] == ["Deleted rule 'No MS (copy)'."]


def test_export_then_import_round_trips_and_reports_each_rule(app_as, app_store, served):
    save_rule(app_store, SYSTEM, Rule("No DZ", DONE_WHEN, description="d", priority=5))
    save_rule(app_store, SYSTEM, Rule("Old", Group("and", [
        Condition("DATE", "between", "2026-01-01", "2026-01-31"),
        Condition(SOURCE, "not_in_list", ["MS", "GS"])]), active=False))
    before = [r.to_dict() for r in load_rules(app_store)]
    at = _page(app_as)
    button = next(b for b in at.get("download_button") if b.key == "rules.export")
    data, name = served(button)
    assert name == "marketpulse-rules.json"
    assert json.loads(data) == before

    for rule in load_rules(app_store):
        app_store.delete(f"rules/{rule.id}")
    bad = {"name": "Bad", "conditions": {"join": "and", "items": [
        {"column": "PX", "operator": "greater_than", "value": "high"}]}}
    rules_file = ("rules.json", json.dumps([*json.loads(data), bad, "nonsense"]).encode())
    at = upload(_page(app_as), "rules.import_file", rules_file)
    _ok(at.button(key="rules.import").click())
    assert _table(at, "Result").values.tolist() == [
        ["No DZ", "imported", WORDS],
        ["Old", "imported", "DATE between '2026-01-01' and '2026-01-31' AND SOURCE not in list "
                            "('MS', 'GS')"],
        ["Bad", "refused", "rule 'Bad': condition 1 (PX greater than 'high'): 'high' is not a "
                           "number"],
        ["entry 4", "refused", "entry 4: not a rule (a JSON object)"]]
    keep = ("id", "name", "description", "priority", "active", "conditions")
    assert [{k: r.to_dict()[k] for k in keep} for r in load_rules(app_store)] == [
        {k: r[k] for k in keep} for r in before]

    _ok(at.button(key="rules.import").click())  # the same file again changes nothing
    assert _table(at, "Result")["Result"].tolist() == ["unchanged", "unchanged", "refused",
                                                       "refused"]
    # Two creates by save_rule above, two by the first import; the second import wrote nothing.
    assert [c.action for c in recent_changes(app_store, "rules", limit=10)] == ["create"] * 4


def test_an_import_that_is_not_json_shows_the_reason_and_changes_nothing(app_as, app_store):
    at = upload(_page(app_as), "rules.import_file", ("rules.json", b"{not json"))
    at = at.button(key="rules.import").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Import: rules.json: not JSON (Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1))"]
    assert load_rules(app_store) == []


def test_a_saved_filter_is_built_listed_and_deleted(app_as, app_store):
    at = _page(app_as)
    at.text_input(key="rules.preset_name").input("MM only")
    at.checkbox(key="rules.preset_shared").check()
    _ok(at.selectbox(key=_builder_key(at, "0.column", "rules.preset_builder")).set_value("SECTOR"))
    at.multiselect(key=_builder_key(at, "0.picked", "rules.preset_builder")).set_value(["MM-CLO"])
    _ok(at.button(key="rules.preset_save").click())
    (preset,) = list_presets(app_store, SYSTEM)
    assert (preset.name, preset.owner, preset.shared, preset.conditions) == (
        "MM only", "admin", True, Group("and", [Condition("SECTOR", "equal_to", "MM-CLO")]))
    assert _table(at, "Owner").values.tolist() == [
        ["MM only", "admin", True, "SECTOR equals 'MM-CLO'"]]
    _ok(at.button(key="rules.preset_delete").click())
    assert list_presets(app_store, SYSTEM) == []

    deleted, created = recent_changes(app_store, "presets")
    assert (deleted.summary, created.summary) == (
        "deleted admin's saved filter 'MM only'", "created admin's saved filter 'MM only'")
    _ok(at.button(key=f"rules.presets_history.revert_{deleted.event_id}").click())
    assert list_presets(app_store, SYSTEM) == [preset]
    assert "Reverted: deleted admin's saved filter 'MM only'" in [s.value for s in at.success]


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_viewers_and_analysts_cannot_open_rules(app_as, role):
    at = app_as(role, role)
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_choosing_a_rule_shows_its_conditions_and_puts_it_in_the_form(app_as, app_store):
    rule = save_rule(app_store, SYSTEM, Rule("No DZ", DONE_WHEN, description="d"))
    at = _page(app_as)
    assert at.selectbox(key="rules.selected").value is None
    assert "rules.edit" not in [b.key for b in at.button]  # no separate Edit step
    at = _ok(at.selectbox(key="rules.selected").set_value(rule.id))
    assert f"**No DZ** excludes a row when {escape_markdown(WORDS)}" in [
        m.value for m in at.markdown]
    assert _field(at, "name").value == "No DZ"
    assert at.session_state["rules.builder_state"] == DONE_WHEN.to_dict()
    assert at.multiselect(key=_builder_key(at, "0.picked")).value == ["DZ BANK"]
    _ok(at.button(key="rules.new").click())
    assert (at.selectbox(key="rules.selected").value, _field(at, "name").value) \
        == (None, "")


def test_a_browser_that_missed_the_run_that_filled_the_form_mounts_it_at_the_forms_values(
        app_as, app_store):
    """Under load the run that fills the form can be superseded before the browser gets it, and
    the browser mounts the form from the next run. Each field must come with its value in that
    run too (it came at the widget's own default, priority 0 and inactive, and the next edit sent
    those back: the rule was saved so)."""
    rule = save_rule(app_store, SYSTEM, Rule("No DZ", DONE_WHEN, description="d", priority=7,
                                             active=False))
    at = _ok(_page(app_as))  # the run after the one that filled the new-rule form
    assert [mounts_at(_field(at, f)) for f in ("name", "description", "priority", "active")] \
        == ["", "", 100, True]
    at.selectbox(key="rules.selected").set_value(rule.id)
    at = _ok(_ok(at))  # the rule is put in the form; the run after that one
    assert [mounts_at(_field(at, f)) for f in ("name", "description", "priority", "active")] \
        == ["No DZ", "d", 7, False]
    _ok(at.switch_page("pages/dashboard.py"))  # another page, and back: the form as it was left
    at = _ok(_ok(at.switch_page(PAGE)))
    assert [mounts_at(_field(at, f)) for f in ("name", "description", "priority", "active")] \
        == ["No DZ", "d", 7, False]


def test_a_browser_that_missed_the_run_that_chose_the_rule_again_mounts_the_list_on_it(
        app_as, app_store):
    """Back on the page, the list chooses the rule the form holds; a browser that missed that
    run (superseded under load) must still mount the list on it (it came with nothing chosen,
    and the next edit emptied the form, dropping what was typed)."""
    rule = save_rule(app_store, SYSTEM, Rule("No DZ", DONE_WHEN))
    at = _page(app_as)
    at = _ok(at.selectbox(key="rules.selected").set_value(rule.id))
    at = _ok(_field(at, "description").input("typed, not saved"))
    _ok(at.switch_page("pages/dashboard.py"))
    at = _ok(_ok(at.switch_page(PAGE)))  # back, and the run after
    assert mounts_at(at.selectbox(key="rules.selected")) == "No DZ"
    assert mounts_at(_field(at, "description")) == "typed, not saved"


def _builder_mounts(at) -> dict[str, object]:
    """What a browser mounting the rule builder from this run shows, by widget (key after the
    generation: "join", "0.column", "2.1.value")."""
    prefix = _builder_key(at, "")
    return {w.key.removeprefix(prefix): mounts_at(w)
            for kind in (at.radio, at.selectbox, at.multiselect, at.text_input)
            for w in kind if w.key and w.key.startswith(prefix)}


def test_a_browser_that_missed_the_run_that_loaded_a_rule_mounts_the_builder_at_its_values(
        app_as, app_store):
    """The builder's widgets, like the form's fields, must come with the loaded rule's values in
    every run: they came with them only in the run that loaded the rule, and a browser that
    missed that run mounted the first column, its first operator, no picked dealers, empty
    values and AND, and sent those back with the next edit."""
    conditions = Group("or", [
        Condition(SOURCE, "in_list", ["DZ BANK", "MS"]),
        Condition(CONFIDENCE, "less_than", 5),
        Group("and", [Condition(PX, "between", 90, 95.5), Condition(BIAS, "equal_to", "BID")]),
    ])
    rule = save_rule(app_store, SYSTEM, Rule("Mixed", conditions))
    at = _page(app_as)
    at.selectbox(key="rules.selected").set_value(rule.id)
    at = _ok(_ok(at))  # the rule is put in the builder; the run after that one
    loaded = {
        "join": "ANY of these (OR)",
        "0.column": SOURCE, "0.operator": "in list", "0.picked": ["DZ BANK", "MS"],
        "1.column": CONFIDENCE, "1.operator": "less than", "1.value": "5",
        "2.join": "ALL of these (AND)",
        "2.0.column": PX, "2.0.operator": "between", "2.0.value": "90", "2.0.value2": "95.5",
        "2.1.column": BIAS, "2.1.operator": "equals", "2.1.value": "BID"}
    assert _builder_mounts(at) == loaded
    _ok(at.button(key=_builder_key(at, "2.add_condition")).click())  # the paths are drawn anew
    at = _ok(at)
    assert _builder_mounts(at) == {**loaded, "2.2.column": MESSAGE_ID, "2.2.operator": "equals",
                                   "2.2.value": ""}
    _ok(at.switch_page("pages/dashboard.py"))  # another page, and back: the builder as it was
    at = _ok(_ok(at.switch_page(PAGE)))
    assert _builder_mounts(at) == {**loaded, "2.2.column": MESSAGE_ID, "2.2.operator": "equals",
                                   "2.2.value": ""}
    at.text_input(key=_builder_key(at, "2.2.value")).input("90000000000000001")
    _ok(at.button(key="rules.save").click())
    assert [r.conditions for r in load_rules(app_store)] == [Group("or", [
        *conditions.items[:2], Group("and", [*conditions.items[2].items, Condition(
            MESSAGE_ID, "equal_to", "90000000000000001")])])]


def test_conditions_on_sector_and_source_offer_the_published_values(app_as, app_store, colors,
                                                                      colors_file):
    pipeline.process_files(app_store, SYSTEM, [colors_file], settings=SETTINGS)
    at = _page(app_as)
    _ok(at.selectbox(key=_builder_key(at, "0.column")).set_value(SOURCE))
    _ok(at.selectbox(key=_builder_key(at, "0.operator")).set_value("in_list"))
    assert at.multiselect(key=_builder_key(at, "0.picked")).options == sorted(
        colors[SOURCE].unique())
    _ok(at.selectbox(key=_builder_key(at, "0.operator")).set_value("contains"))
    assert _builder_key(at, "0.picked") not in [m.key for m in at.multiselect]  # typed
    assert _builder_key(at, "0.value") in [t.key for t in at.text_input]
    _ok(at.selectbox(key=_builder_key(at, "0.operator")).set_value("in_list"))
    _ok(at.selectbox(key=_builder_key(at, "0.column")).set_value("SECTOR"))
    assert at.multiselect(key=_builder_key(at, "0.picked")).options == sorted(
        colors["SECTOR"].unique())
    at.multiselect(key=_builder_key(at, "0.picked")).set_value(["MM-CLO", "NEW SECTOR"])
    _field(at, "name").input("Sectors")
    _ok(at.button(key="rules.save").click())
    (rule,) = load_rules(app_store)
    assert rule.conditions.items == [Condition("SECTOR", "in_list", ["MM-CLO", "NEW SECTOR"])]
