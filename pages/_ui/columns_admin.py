"""The Columns tab of Settings (admins): the column configuration (aliases accepted in files,
display names, required and visible flags, custom columns), how an uploaded file's header maps, and
the last column changes with Revert. Core validates and logs each change; its messages show as
they are."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.access import Actor
from core.config import Settings
from core.ingest.columns import (
    add_alias,
    add_custom_column,
    get_column_config,
    preview_mapping,
    remove_alias,
    remove_custom_column,
    set_display_name,
    set_required,
    set_visible,
)
from core.schema import COLUMN_TYPES, TEXT, ColumnSpec
from pages._ui.change_history import render_change_history
from pages._ui.form_values import FormValues
from pages._ui.services import error_boundary
from pages._ui.users_admin import flash
from storage import Store

# The display name box's value and the (column, config version) it was filled for ("for"): the
# widget's default, never set on its key.
DISPLAY = FormValues("settings.column_edit")
CUSTOM_RESET = "settings.custom_reset_state"  # empty the custom column form before it renders
CUSTOM_KEYS = {"settings.custom_name": "", "settings.custom_type": TEXT,
               "settings.custom_display": "", "settings.custom_required": False}
FILE_TYPES = ["xlsx", "xls", "csv", "parquet"]


def columns_table(specs: list[ColumnSpec]) -> pd.DataFrame:
    return pd.DataFrame({
        "Column": [s.name for s in specs], "Display name": [s.display_name for s in specs],
        "Type": [s.type for s in specs], "Required": [s.required for s in specs],
        "Visible": [s.visible for s in specs], "Custom": [s.custom for s in specs],
        "Aliases": [", ".join(s.aliases) for s in specs]})


def _flag(store: Store, actor: Actor, column: str, key: str,
          change: Callable[..., list[ColumnSpec]], words: tuple[str, str]) -> None:
    """A toggle's callback; a refusal shows core's message and the toggle springs back (the page
    sets it from the stored configuration on every run)."""
    value = bool(st.session_state[key])
    with error_boundary(f"{column} not changed"):
        change(store, actor, column, value)
        st.toast(f"{column} is now {words[0] if value else words[1]}.")


def _done(message: str) -> None:
    flash(message)
    st.rerun()


def column_editor(store: Store, actor: Actor, specs: list[ColumnSpec], version: str | None
                  ) -> None:
    by_name = {s.name: s for s in specs}
    if st.session_state.get("settings.column") not in by_name:
        st.session_state.pop("settings.column", None)
    name = st.selectbox("Column to edit", list(by_name), key="settings.column",
                        format_func=lambda n: f"{n} (custom)" if by_name[n].custom else n)
    spec = by_name[name]
    if DISPLAY.get("for") != (name, version):
        DISPLAY.load({"for": (name, version), "display": spec.display_name})
        st.session_state["settings.alias_new"] = ""  # the box's own default
    st.session_state.update({"settings.column_visible": spec.visible,
                             "settings.column_required": spec.required})
    left, right = st.columns(2)
    left.toggle("Visible", key="settings.column_visible", on_change=_flag,
                args=(store, actor, name, "settings.column_visible", set_visible,
                      ("shown", "hidden")))
    right.toggle("Required in files", key="settings.column_required", on_change=_flag,
                 args=(store, actor, name, "settings.column_required", set_required,
                       ("required", "optional")))

    text, button = st.columns([4, 1], vertical_alignment="bottom")
    display = text.text_input("Display name", value=DISPLAY["display"],
                              key=DISPLAY.key("display"))
    DISPLAY.keep(display=display)
    if button.button("Save display name", key="settings.column_display_save"):
        with error_boundary("Display name not saved"):
            set_display_name(store, actor, name, display)
            _done(f"{name} is shown as {display.strip()!r}.")

    st.markdown(f"**Aliases of {name}** (headers accepted in files; case, spaces, _ and - are "
                "ignored)")
    if not spec.aliases:
        st.caption("No aliases.")
    for i, alias in enumerate(spec.aliases):
        text, button = st.columns([4, 1], vertical_alignment="center")
        text.write(alias)
        if button.button("Remove", key=f"settings.alias_remove_{i}"):
            with error_boundary("Alias not removed"):
                remove_alias(store, actor, name, alias)
                _done(f"Files can no longer name {name} {alias!r}.")
    text, button = st.columns([4, 1], vertical_alignment="bottom")
    alias = text.text_input("New alias", key="settings.alias_new")
    if button.button("Add alias", key="settings.alias_add"):
        with error_boundary("Alias not added"):
            add_alias(store, actor, name, alias)
            _done(f"Files may now name {name} {alias.strip()!r}.")
    if spec.custom and st.button(f"Remove custom column {name}", key="settings.custom_remove"):
        with error_boundary("Column not removed"):
            remove_custom_column(store, actor, name)
            _done(f"Removed custom column {name}; rows published before keep their values.")


def custom_column_form(store: Store, actor: Actor) -> None:
    if st.session_state.pop(CUSTOM_RESET, False):
        st.session_state.update(CUSTOM_KEYS)
    with st.form("settings.custom_form"):
        st.markdown("**Add a custom column** (carried through ingest, publish, search and "
                    "exports)")
        a, b, c = st.columns(3)
        name = a.text_input("Name (upper case, e.g. DESK_NOTE)", key="settings.custom_name")
        kind = b.selectbox("Type", COLUMN_TYPES, key="settings.custom_type")
        display = c.text_input("Display name (optional)", key="settings.custom_display")
        required = st.checkbox("Required in files", key="settings.custom_required")
        added = st.form_submit_button("Add column", key="settings.custom_add")
    if added:
        with error_boundary("Column not added"):
            add_custom_column(store, actor, name, kind, display, required=required)
            st.session_state[CUSTOM_RESET] = True
            _done(f"Added custom column {name.strip().upper()} ({kind}).")


def mapping_preview(specs: list[ColumnSpec], settings: Settings) -> None:
    upload = st.file_uploader("Preview how a file's header maps", type=FILE_TYPES,
                              key="settings.columns_preview_file")
    if upload is None:
        return
    with error_boundary(f"Reading {upload.name}"):
        mapping = preview_mapping(upload.getvalue(), upload.name, specs, settings=settings)
        st.dataframe(mapping, hide_index=True, width="stretch")


def render_columns_admin(store: Store, actor: Actor, settings: Settings) -> None:
    specs, version = get_column_config(store)
    st.caption("Changes apply to the next file read, validation, search fields and exports.")
    st.dataframe(columns_table(specs), hide_index=True, width="stretch")
    column_editor(store, actor, specs, version)
    custom_column_form(store, actor)
    mapping_preview(specs, settings)
    st.subheader("Last column changes")
    render_change_history(store, actor, "columns", key="settings.columns_history")
