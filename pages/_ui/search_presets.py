"""Search page presets (saved filters in the rules' condition model): pick one, your own or anyone's
shared one, to keep only the rows matching it; create one with the Rules page's condition builder,
edit or delete your own (delete asks first). Core lists, applies, checks who may change a preset
and logs every change; this draws and collects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from core.access import Actor
from core.reads.search import SearchQuery
from core.reads.search_presets import search_preset_columns, with_preset
from core.rules.conditions import describe
from core.rules.presets import (
    Preset,
    delete_preset,
    get_preset,
    list_presets,
    may_change,
    save_preset,
)
from core.schema import SECTOR, SOURCE
from pages._ui.automation_views import flash
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.rule_builder import load_builder, render_builder
from pages._ui.search_views import PICK, filter_options, search_form
from pages._ui.services import error_boundary
from storage import Store

NO_PRESET = ""
SAVE = "search.preset_save"
FORM = FormValues("search.preset_form")  # the form's name and shared: the widgets' defaults
BUILDER = "search.preset_builder"
EDIT, NEW = "search.preset_edit", "search.preset_new"
DELETE, DELETE_YES, DELETE_NO = ("search.preset_delete", "search.preset_delete_confirm",
                                 "search.preset_delete_cancel")
EDITING = "search.preset_editing_state"  # {"id", "version"} of the preset in the form; None: new
CONFIRM = "search.preset_confirm_state"  # id of the preset waiting for "Yes, delete"
RESET = "search.preset_reset_state"  # empty the form before it is drawn (after a save or delete)


def preset_label(preset: Preset, actor: Actor) -> str:
    if preset.owner != actor.username:
        return f"{preset.name} (shared by {preset.owner})"
    return f"{preset.name} (yours, shared)" if preset.shared else f"{preset.name} (yours)"


def render_picker(store: Store, actor: Actor) -> Preset | None:
    """The preset selectbox (own and shared presets) and, when one is picked, what it keeps."""
    presets = {p.id: p for p in list_presets(store, actor)}
    form = search_form()  # the picked preset is the search form's ("preset"), kept with it
    if form["preset"] not in (NO_PRESET, *presets):
        if form["preset"]:  # deleted since it was picked, or a loaded search's, not shared
            st.warning("The preset picked is no longer there for you (deleted, or not shared): "
                       "the search runs without it.")
        form.keep(preset=NO_PRESET)
    options = [NO_PRESET, *presets]
    picked = st.selectbox("Preset (saved filter)", options, index=options.index(form["preset"]),
                          key=form.key("preset"),
                          format_func=lambda i: preset_label(presets[i], actor) if i
                          else "(no preset)",
                          help="Keep only the rows matching a saved filter: yours, or one "
                               "shared with everyone")
    form.keep(preset=picked)
    if not picked:
        return None
    preset = presets[picked]
    st.info(f"**Preset active: {escape_markdown(preset.name)}** · keeps rows where "
            f"{escape_markdown(describe(preset.conditions))}", icon=":material/filter_alt:")
    return preset


def apply(store: Store, actor: Actor, query: SearchQuery, preset: Preset | None) -> SearchQuery:
    """The query narrowed by the picked preset, as core reads it now."""
    return with_preset(store, actor, query, preset.id if preset else None)


# -- create, edit, delete ------------------------------------------------------------------------
def _reset_form(store: Store, actor: Actor) -> None:
    FORM.load({"name": "", "shared": False})
    st.session_state[EDITING] = None
    load_builder(BUILDER, None, search_preset_columns(store, actor))


def _start_editing(store: Store, actor: Actor, preset_id: str) -> None:
    """Edit's callback: the preset as stored now, in the form (before the form is drawn)."""
    with error_boundary("Opening the preset"):
        preset, version = get_preset(store, actor, preset_id)
        FORM.load({"name": preset.name, "shared": preset.shared})
        st.session_state[EDITING] = {"id": preset.id, "version": version}
        load_builder(BUILDER, preset.conditions, search_preset_columns(store, actor))


def _actions(store: Store, actor: Actor, preset: Preset | None) -> None:
    """Edit and Delete for the picked preset, when the user may change it (core checks again)."""
    if preset is None:
        st.caption("Pick one of your presets above to edit or delete it.")
        return
    allowed = may_change(actor, preset)
    if not allowed:
        st.caption(f"{escape_markdown(preset.name)} is shared by "
                   f"{escape_markdown(preset.owner)}: you can use it; only its owner or an "
                   "admin can change it.")
    edit, delete = st.columns(2)
    edit.button(f"Edit {preset.name!r}", key=EDIT, disabled=not allowed,
                on_click=_start_editing, args=(store, actor, preset.id))
    delete.button(f"Delete {preset.name!r}…", key=DELETE, disabled=not allowed,
                  on_click=st.session_state.__setitem__, args=(CONFIRM, preset.id))
    if not allowed or st.session_state.get(CONFIRM) != preset.id:
        return
    st.warning(f"Delete the preset {escape_markdown(repr(preset.name))}? Searches using it lose "
               "it; the deletion is in the saved filter changes.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", key=DELETE_YES, type="primary"):
        with error_boundary("Not deleted"):
            delete_preset(store, actor, preset.id)
            flash("search", f"Deleted the preset {preset.name!r}")
            st.session_state[CONFIRM] = None
            editing = st.session_state.get(EDITING)
            st.session_state[RESET] = bool(editing and editing["id"] == preset.id)
            st.rerun()
    if no.button("Cancel", key=DELETE_NO):
        st.session_state[CONFIRM] = None
        st.rerun()


def _choices(store: Store, actor: Actor, columns: dict[str, str]) -> dict[str, list[Any]]:
    """Known sectors and dealers to pick in the builder (as the Rules page offers them)."""
    options = filter_options(store, actor)
    return {column: options[name] for column, name in ((SECTOR, "sectors"), (SOURCE, "sources"))
            if column in columns}


def _form(store: Store, actor: Actor) -> None:
    """A new preset, or the one being edited: name, shared, conditions, Save."""
    columns = search_preset_columns(store, actor)
    if st.session_state.pop(RESET, False) or EDITING not in st.session_state:
        _reset_form(store, actor)
    editing = st.session_state.get(EDITING)
    head, new = st.columns([4, 1], vertical_alignment="bottom")
    head.markdown("**Editing the preset**" if editing else "**New preset**")
    if editing:
        new.button("New preset", key=NEW, on_click=_reset_form, args=(store, actor))
    name = st.text_input("Preset name", value=FORM["name"], key=FORM.key("name"),
                         max_chars=100)
    shared = st.checkbox("Shared with everyone", value=FORM["shared"], key=FORM.key("shared"),
                         help="Everyone can use a shared preset; only you (or an admin) can "
                              "change it")
    FORM.keep(name=name, shared=shared)
    st.markdown("**Keep a row when it matches**")
    group = render_builder(BUILDER, columns, _choices(store, actor, columns))
    if st.button("Save preset", key=SAVE, type="primary"):
        with error_boundary("Not saved"):
            preset = Preset(name=name, conditions=group, shared=shared)
            version = None
            if editing:
                current, _ = get_preset(store, actor, editing["id"])
                preset, version = replace(current, name=name, conditions=group,
                                          shared=shared), editing["version"]
            saved = save_preset(store, actor, preset, expected_version=version,
                                columns=columns)
            flash("search", f"Saved the preset {saved.name!r}: {describe(saved.conditions)}")
            st.session_state.update({RESET: True, PICK: saved.id})
            st.rerun()


def render_manager(store: Store, actor: Actor, picked: Preset | None) -> None:
    """Edit or delete the picked preset (if it is yours), and the form for a new or edited one."""
    _actions(store, actor, picked)
    _form(store, actor)
