"""Rules (admins): the exclusion rules and what they excluded in the latest run, the condition
builder with Test and Save, import/export as JSON, the last rule changes with Revert, and the saved
filters (presets). Core validates, checks the permission and logs every change."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from core.access import EDIT_RULES
from core.ingest.color_file import read_colors
from core.ingest.columns import custom_column_types, load_column_config
from core.reads.history import latest_run, load_rows
from core.rules.conditions import iter_conditions, validate_group
from core.rules.exclusion import (
    Rule,
    delete_rule,
    describe,
    get_rule,
    load_rules,
    rule_columns,
    save_rule,
    set_priority,
    test_rule,
    toggle_rule,
)
from core.rules.presets import Preset, delete_preset, list_presets, preset_columns, save_preset
from core.rules.rule_import import ADDED, REJECTED, UNCHANGED, UPDATED, import_rules
from core.runs.records import COLORS_TABLE, EXCLUDED_TABLE
from core.schema import COLUMN_TYPE, SECTOR, SOURCE
from pages._ui.change_history import render_change_history
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.rule_builder import load_builder, render_builder
from pages._ui.search_views import filter_options
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.tables import WRAPPED, show_table

FLASH = "rules.flash_state"  # (st function, text) to show after the rerun that follows an action
EDITING = "rules.editing_state"  # {"id", "version", "name"} of the rule in the form; None = new
FIELDS = FormValues("rules.form")  # the form's name, description, priority, active (across pages)
RESET = "rules.reset_state"  # empty the rule form before it renders (after a save or a delete)
CONFIRM = "rules.confirm_delete_state"  # id of the rule waiting for "Yes, delete"
IMPORTED = "rules.import_report_state"
SELECTED = "rules.selected"  # the rule chosen in the list, the one the form holds
PRESET_RESET = "rules.preset_reset_state"
BUILDER, PRESET_BUILDER = "rules.builder", "rules.preset_builder"
LATEST_RUN, UPLOADED = "Latest run", "Uploaded file"
FILE_TYPES = ["xlsx", "xls", "csv", "parquet"]
# Long sentences shown whole: a wide column, rows tall enough to wrap (pages._ui.tables.WRAPPED).
WORDY = {"Conditions": st.column_config.TextColumn("Conditions", width="large"),
         "Description": st.column_config.TextColumn("Description", width="medium")}
RESULTS = {ADDED: "imported", UPDATED: "updated", UNCHANGED: "unchanged", REJECTED: "refused"}

st.title("Rules")
st_store, actor = store(), current_actor()
if not actor.can(EDIT_RULES):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Rules.")
    st.stop()
for show, text in st.session_state.pop(FLASH, []):
    getattr(st, show)(escape_markdown(text))  # messages name rules and files
custom = custom_column_types(load_column_config(st_store))
columns = rule_columns(custom)  # what a rule may test
types = {**COLUMN_TYPE, **custom}  # how run rows and files are read when testing


def flash(text: str, show: str = "success") -> None:
    st.session_state.setdefault(FLASH, []).append((show, text))


def known_values() -> dict[str, list[str]]:
    """The sectors and dealers of the published colors: conditions on them offer these."""
    found: dict[str, list[str]] = {}
    with error_boundary("Loading the known sectors and dealers"):
        options = filter_options(st_store, actor)
        found = {SECTOR: options["sectors"], SOURCE: options["sources"]}
    return found


def when(value: Any) -> str:
    return "" if value is None else f"{pd.Timestamp(value).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


# -- the form --------------------------------------------------------------------------------------
def load_form(rule: Rule | None, version: str | None = None) -> None:
    """Put a rule in the form (an id and version: edit it; otherwise it is saved as a new rule).
    Its values are the widgets' defaults (pages._ui.form_values: a value put in a widget through
    the Session State API reached the browser only with the run that set it, and a browser that
    missed that run under load mounted priority 0, not active, and sent those back)."""
    FIELDS.load({"name": rule.name if rule else "",
                 "description": rule.description if rule else "",
                 "priority": rule.priority if rule else 100,
                 "active": rule.active if rule else True})
    st.session_state[EDITING] = ({"id": rule.id, "version": version, "name": rule.name}
                                 if rule and rule.id and version else None)
    load_builder(BUILDER, rule.conditions if rule else None, columns)


def edit(rule_id: str | None) -> None:
    """Put the chosen rule in the form (None: an empty form for a new rule)."""
    with error_boundary("Edit"):
        if rule_id:
            load_form(*get_rule(st_store, rule_id))
        else:
            load_form(None)


def chosen() -> None:
    """The list's selection changed: the form shows that rule, ready to change."""
    edit(st.session_state.get(SELECTED))


def new_rule() -> None:
    st.session_state[SELECTED] = None
    load_form(None)


def duplicate(rule_id: str) -> None:
    with error_boundary("Duplicate"):
        rule, _ = get_rule(st_store, rule_id)
        st.session_state[SELECTED] = None  # the form holds a new rule
        load_form(replace(rule, name=f"{rule.name} (copy)", id=""))
        st.toast(f"The form holds a copy of {escape_markdown(repr(rule.name))}: change it and "
                 "save it as a new rule.")


def switch(rule_id: str) -> None:
    with error_boundary("Not switched"):
        rule = toggle_rule(st_store, actor, rule_id, st.session_state["rules.active"],
                           columns=custom)
        st.toast(f"{escape_markdown(rule.name)} is {'on' if rule.active else 'off'}.")


def reprioritise(rule_id: str) -> None:
    with error_boundary("Priority not changed"):
        rule = set_priority(st_store, actor, rule_id, int(st.session_state["rules.priority"]))
        st.toast(f"{escape_markdown(rule.name)} now has priority {rule.priority}.")


def test_frame(source: str, upload: Any) -> tuple[pd.DataFrame, str] | None:
    """The rows to test against: the latest run's published and excluded rows, or a file."""
    if source == UPLOADED:
        if upload is None:
            return None
        batch = read_colors(upload.getvalue(), upload.name, columns=load_column_config(st_store),
                            settings=settings())
        return batch.frame, f"{upload.name} ({len(batch.frame):,} rows)"
    record = latest_run(st_store)
    if record is None:
        return None
    parts = [load_rows(st_store, actor, table, run_ids=[record.run_id])
             for table in (COLORS_TABLE, EXCLUDED_TABLE)]
    frame = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame()], ignore_index=True)
    return frame, (f"run {record.run_id} ({len(parts[0]):,} published + {len(parts[1]):,} "
                   "excluded rows)")


def tester(rule: Rule) -> None:
    source = st.radio("Test against", [LATEST_RUN, UPLOADED], key="rules.test_source",
                      horizontal=True)
    upload = (st.file_uploader("File to test against", type=FILE_TYPES, key="rules.test_file")
              if source == UPLOADED else None)
    if not st.button("Test", key="rules.test"):
        return
    with error_boundary("Test"):
        if next(iter_conditions(rule.conditions), None) is None:
            st.warning("Add a condition to test.")
            return
        validate_group(rule.conditions, columns, rule=rule.name)
        found = test_frame(source, upload)
        if found is None:
            st.warning("Upload a file to test against." if source == UPLOADED
                       else "No run has been published yet: upload a file to test against.")
            return
        frame, label = found
        result = test_rule(rule, frame, column_types=types)
        st.info(f"Would exclude {result['matched']:,} of {result['rows']:,} rows of {label}.")
        st.dataframe(pd.DataFrame(
            [(c["number"], c["condition"], c["matched"]) for c in result["conditions"]],
            columns=["#", "Condition", "Rows matched"]), hide_index=True, width="stretch")
        if len(result["samples"]):
            st.caption(f"First {len(result['samples'])} rows it would exclude")
            show_table(result["samples"])


def form() -> None:
    if (st.session_state.pop(RESET, False) or EDITING not in st.session_state
            or not FIELDS.loaded()):
        load_form(None)
    # The form comes back as it was left on another page: its widgets start from FIELDS.
    editing = st.session_state[EDITING]
    head, new = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(f"Edit rule {escape_markdown(repr(editing['name']))}" if editing else "New rule")
    new.button("New rule", key="rules.new", on_click=new_rule)
    name = st.text_input("Name", value=FIELDS["name"], key=FIELDS.key("name"))
    description = st.text_input("Description", value=FIELDS["description"],
                                key=FIELDS.key("description"))
    left, right = st.columns(2)
    priority = left.number_input("Priority (lower runs first)", min_value=0, step=1,
                                 value=FIELDS["priority"], key=FIELDS.key("priority"))
    active = right.checkbox("Active", value=FIELDS["active"], key=FIELDS.key("active"))
    FIELDS.keep(name=name, description=description, priority=priority, active=active)
    st.markdown("**Exclude a row when it matches**")
    group = render_builder(BUILDER, columns, known_values())
    st.caption(f"Reads: {describe(group, types)}")
    rule = Rule(name=name, conditions=group, description=description, priority=int(priority),
                active=active, id=editing["id"] if editing else "")
    tester(rule)
    if st.button("Save rule", key="rules.save", type="primary"):
        with error_boundary("Not saved"):
            saved = save_rule(st_store, actor, rule, columns=custom,
                              expected_version=editing["version"] if editing else None)
            flash(f"Saved rule {saved.name!r}: {describe(saved.conditions, types)}")
            st.session_state[RESET] = True
            st.rerun()


# -- the list --------------------------------------------------------------------------------------
def rules_list(rules: list[Rule]) -> None:
    record = latest_run(st_store)
    header = f"Excluded in run {record.run_id}" if record else "Excluded in the latest run"

    def excluded(rule: Rule) -> int | None:
        applied = record is not None and rule.name in record.rules_applied
        return record.per_rule.get(rule.name, 0) if applied else None

    st.dataframe(pd.DataFrame({
        "Priority": [r.priority for r in rules], "Name": [r.name for r in rules],
        "Active": [r.active for r in rules], "Description": [r.description for r in rules],
        "Conditions": [describe(r.conditions, types) for r in rules],
        "Last changed by": [r.updated_by for r in rules],
        "Last changed": [when(r.updated_at) for r in rules],
        header: pd.array([excluded(r) for r in rules], dtype="Int64"),
    }), hide_index=True, width="stretch", row_height=WRAPPED, column_config=WORDY)
    st.caption(f"Latest run: {record.run_id} ({record.kind}); a blank count: the rule was not "
               "applied in it." if record else "No run has been published yet.")
    if not rules:
        return
    by_id = {r.id: r for r in rules}
    editing = st.session_state.get(EDITING)
    if st.session_state.get(RESET) or st.session_state.get(SELECTED) not in by_id:
        st.session_state.pop(SELECTED, None)  # saved or deleted: nothing chosen, a new form
    if SELECTED not in st.session_state and editing and editing["id"] in by_id:
        st.session_state[SELECTED] = editing["id"]  # back on the page: the rule in the form
    # Sent with every run: a choice set through the Session State API in one run only reaches a
    # browser that missed that run (superseded under load) as nothing chosen, and the next edit
    # sends that back, which empties the form (chosen).
    st.session_state[SELECTED] = st.session_state.get(SELECTED)
    picked = st.selectbox("Rule", list(by_id), format_func=lambda i: by_id[i].name,
                          key=SELECTED, index=None, on_change=chosen,
                          placeholder="Choose a rule to see and change it")
    if picked is None:
        return
    rule = by_id[picked]
    st.markdown(f"**{escape_markdown(rule.name)}** excludes a row when "
                f"{escape_markdown(describe(rule.conditions, types))}")
    # Always the stored values: a refused change springs back.
    st.session_state.update({"rules.active": rule.active, "rules.priority": rule.priority})
    cells = st.columns([1.2, 2, 1, 1], vertical_alignment="bottom")
    cells[0].toggle("Active", key="rules.active", on_change=switch, args=(rule.id,))
    cells[1].number_input("Priority", min_value=0, step=1, key="rules.priority",
                          on_change=reprioritise, args=(rule.id,))
    cells[2].button("Duplicate", key="rules.duplicate", on_click=duplicate, args=(rule.id,))
    cells[3].button("Delete…", key="rules.delete", on_click=st.session_state.__setitem__,
                    args=(CONFIRM, rule.id))
    if st.session_state.get(CONFIRM) != rule.id:
        return
    st.warning(f"Delete rule {escape_markdown(repr(rule.name))}? It stops applying at once; the "
               "deletion can be reverted from the last rule changes.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", key="rules.delete_confirm", type="primary"):
        with error_boundary("Not deleted"):
            delete_rule(st_store, actor, rule.id)
            flash(f"Deleted rule {rule.name!r}.")
            st.session_state[CONFIRM] = None
            editing = st.session_state.get(EDITING)
            st.session_state[RESET] = bool(editing and editing["id"] == rule.id)
            st.rerun()
    if no.button("Cancel", key="rules.delete_cancel"):
        st.session_state[CONFIRM] = None
        st.rerun()


# -- import and export -----------------------------------------------------------------------------
def import_export(rules: list[Rule]) -> None:
    st.download_button("Export all rules (JSON)",
                       json.dumps([r.to_dict() for r in rules], indent=2).encode(),
                       file_name="marketpulse-rules.json", mime="application/json",
                       key="rules.export", disabled=not rules)
    upload = st.file_uploader("Import rules from a JSON file (a list of rules; the same id "
                              "updates a rule)", type=["json"], key="rules.import_file")
    if st.button("Import", key="rules.import", disabled=upload is None) and upload is not None:
        with error_boundary("Import"):
            st.session_state[IMPORTED] = import_rules(st_store, actor, upload.getvalue(),
                                                      columns=custom, source=upload.name)
            st.rerun()
    report = st.session_state.get(IMPORTED)
    if report is not None and not report.entries:
        st.info("The imported file held no rules.")
    elif report is not None:
        st.caption(", ".join(f"{n} {RESULTS[r]}" for r, n in report.counts.items()))
        st.dataframe(pd.DataFrame([(e.rule, RESULTS[e.result], e.detail) for e in report.entries],
                                  columns=["Rule", "Result", "Detail"]),
                     hide_index=True, width="stretch")


# -- saved filters ---------------------------------------------------------------------------------
def saved_filters() -> None:
    st.caption("A saved filter keeps the rows that match (rules exclude them); Manual Color and "
               "Search offer them. Listed: yours and everyone's shared ones.")
    presets = list_presets(st_store, actor)
    filter_columns = preset_columns(st_store)
    st.dataframe(pd.DataFrame({
        "Name": [p.name for p in presets], "Owner": [p.owner for p in presets],
        "Shared": [p.shared for p in presets],
        "Conditions": [describe(p.conditions, types) for p in presets]}),
        hide_index=True, width="stretch", row_height=WRAPPED, column_config=WORDY)
    mine = {p.id: p for p in presets if p.owner == actor.username or p.shared}
    if mine:
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        chosen = left.selectbox("Saved filter", list(mine), key="rules.preset_selected",
                                format_func=lambda i: f"{mine[i].name} ({mine[i].owner})")
        if right.button("Delete filter", key="rules.preset_delete"):
            with error_boundary("Not deleted"):
                delete_preset(st_store, actor, chosen)
                flash(f"Deleted saved filter {mine[chosen].name!r}.")
                st.rerun()
    st.markdown("**New saved filter**")
    if st.session_state.pop(PRESET_RESET, False):
        st.session_state.update({"rules.preset_name": "", "rules.preset_shared": False})
        load_builder(PRESET_BUILDER, None, filter_columns)
    name = st.text_input("Name", key="rules.preset_name")
    shared = st.checkbox("Shared with everyone", key="rules.preset_shared")
    st.markdown("**Keep a row when it matches**")
    group = render_builder(PRESET_BUILDER, filter_columns, known_values())
    if st.button("Save filter", key="rules.preset_save", type="primary"):
        with error_boundary("Not saved"):
            saved = save_preset(st_store, actor, Preset(name=name, conditions=group,
                                                        shared=shared))
            flash(f"Saved filter {saved.name!r}: {describe(saved.conditions, types)}")
            st.session_state[PRESET_RESET] = True
            st.rerun()


rules_tab, filters_tab = st.tabs(["Rules", "Saved filters"])
with rules_tab:
    all_rules: list[Rule] = []
    with error_boundary("Loading the rules"):
        all_rules = load_rules(st_store)
        rules_list(all_rules)
    with st.container(border=True), error_boundary("The rule form"):
        form()
    st.subheader("Import and export")
    with error_boundary("Import and export"):
        import_export(all_rules)
    st.subheader("Last rule changes")
    with error_boundary("Loading the rule changes"):
        render_change_history(st_store, actor, "rules", key="rules.history")
with filters_tab:
    with error_boundary("Loading the saved filters"):
        saved_filters()
    st.subheader("Last saved filter changes")
    with error_boundary("Loading the saved filter changes"):
        render_change_history(st_store, actor, "presets", key="rules.presets_history")
