"""Manual Color session pieces: quick filters and presets, the rule selection with what it excludes,
and the ranked preview (the rows editor is pages._ui.row_editor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import streamlit as st

from core.access import Actor, entitled_rows
from core.manual import actions as session_actions
from core.manual import sessions
from core.manual.sessions import SessionView
from core.rules.conditions import CONTAINS, IN_LIST, Condition, Group
from core.rules.exclusion import apply_rules, filter_frame, load_rules
from core.rules.presets import list_presets
from core.schema import (
    BIAS,
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    EXCLUDED_BY,
    IS_PARENT,
    PARENT_COLOR_ID,
    SECTOR,
    SOURCE,
)
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from pages._ui.tables import show_table
from pages._ui.widgets import parents_with_children
from storage import Store

FLASH = "manual_color.flash_state"  # toasts for the next run
RESET = "manual_color.reset_state"  # widget values to set before the next run renders them
RULES = "manual_color.rules"
RULES_FOR = "manual_color.rules_for_state"  # the applied selection the multiselect was synced to
NO_PRESET = "(no preset)"
# Columns the session needs to work on rows, kept even outside a user's column profile.
WORKING = (COLOR_ID, IS_PARENT, PARENT_COLOR_ID, CHILDREN_COUNT, EXCLUDED_BY)


# -- run bookkeeping ----------------------------------------------------------------------------
def done(message: str, reset: dict | None = None) -> None:
    """After a successful action: queue a toast, rerun (which re-ranks)."""
    st.session_state.setdefault(FLASH, []).append(message)
    st.session_state[RESET] = dict(reset or {})
    st.rerun()


def start_run() -> None:
    """At the top of the page: apply queued widget resets (before any widget renders), toast."""
    for key, value in st.session_state.pop(RESET, {}).items():
        st.session_state[key] = value
    for message in st.session_state.pop(FLASH, []):
        st.toast(escape_markdown(message))  # messages name files, values and rules


def act(label: str, action: Callable[[], object], message: Callable[[object], str],
        reset: dict | None = None) -> None:
    """Run one session action inside the error boundary; on success toast and rerun."""
    with error_boundary(label):
        outcome = action()
        done(message(outcome), reset)


# -- what the user may see ----------------------------------------------------------------------
def visible(frame: pd.DataFrame, actor: Actor) -> pd.DataFrame:
    """The rows of the actor's sectors and the columns of their profile (plus the working ones)."""
    frame = entitled_rows(frame, actor)
    if actor.columns is None:
        return frame
    allowed = {*actor.columns, *WORKING}
    return frame[[c for c in frame.columns if c in allowed]]


def options_for(key: str, options: list[str]) -> list[str]:
    """Options of a multiselect, dropping chosen values that are no longer offered (a deleted row,
    a claimed buffer file) before the widget renders."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
    return options


def _options(frame: pd.DataFrame, column: str, key: str) -> list[str]:
    values = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
    return options_for(key, values)


def filters(store: Store, actor: Actor, ranked: pd.DataFrame) -> Group:
    """Quick filters (sector, source, bias, CUSIP contains) and a preset, as one AND group."""
    a, b, c, d, e = st.columns(5)
    sectors = a.multiselect("Sector", _options(ranked, SECTOR, "manual_color.f_sector"),
                            key="manual_color.f_sector")
    dealers = b.multiselect("Source", _options(ranked, SOURCE, "manual_color.f_source"),
                            key="manual_color.f_source")
    biases = c.multiselect("Bias", _options(ranked, BIAS, "manual_color.f_bias"),
                           key="manual_color.f_bias")
    cusip = d.text_input("CUSIP contains", key="manual_color.f_cusip").strip()
    items: list[Condition | Group] = [
        Condition(column, IN_LIST, chosen)
        for column, chosen in ((SECTOR, sectors), (SOURCE, dealers), (BIAS, biases)) if chosen]
    if cusip:
        items.append(Condition(CUSIP, CONTAINS, cusip))
    presets = {p.id: p for p in list_presets(store, actor)}
    if presets:
        names = {p.id: p.name + (f" ({p.owner})" if p.owner != actor.username else "")
                 for p in presets.values()}
        if st.session_state.get("manual_color.preset") not in (NO_PRESET, *presets):
            st.session_state.pop("manual_color.preset", None)  # deleted since it was picked
        picked = e.selectbox("Preset", [NO_PRESET, *presets], key="manual_color.preset",
                             format_func=lambda i: names.get(i, i))
        if picked in presets:
            items.append(presets[picked].conditions)
    return Group("and", items)


# -- rules ----------------------------------------------------------------------------------------
def _per_rule(excluded: pd.DataFrame, names: list[str]) -> str:
    counts = excluded[EXCLUDED_BY].value_counts() if len(excluded) else pd.Series(dtype=int)
    return "".join(f"; {name}: {int(counts.get(name, 0))}" for name in names)


def rules_section(store: Store, actor: Actor, view: SessionView, version: str) -> None:
    """Pick the rules to apply (active ones are selected when the session opens); a changed
    selection first shows what it would exclude, then Apply makes it the session's."""
    st.subheader("Exclusion rules")
    rules = load_rules(store)
    labels = {r.id: r.name + ("" if r.active else " (inactive)") for r in rules}
    applied = [i for i in view.session.rule_ids if i in labels]
    if st.session_state.get(RULES_FOR) != applied:  # undo, another window: show the session's
        st.session_state[RULES], st.session_state[RULES_FOR] = applied, applied
    chosen = st.multiselect("Rules applied to this session", options_for(RULES, list(labels)),
                            key=RULES,
                            format_func=lambda i: labels.get(i, i),
                            placeholder="No rules" if labels else "No rules are defined")
    if set(chosen) != set(applied):
        candidate = [replace(r, active=True) for r in rules if r.id in set(chosen)]
        rows = sessions.load_frame(store, view.session.rows_key)
        outcome = apply_rules(rows, candidate)
        excluded = visible(outcome.excluded, actor)
        st.caption(f"With this selection {len(excluded)} rows would be excluded"
                   + _per_rule(excluded, list(outcome.counts)))
        if st.button("Apply the selected rules", key="manual_color.apply_rules", type="primary"):
            act("Applying rules",
                lambda: session_actions.select_rules(store, actor, chosen, version=version),
                lambda _: f"Applied {len(chosen)} rule(s)")
    else:
        excluded = visible(view.excluded, actor)
        st.caption(f"{len(excluded)} rows excluded" + _per_rule(excluded, list(view.per_rule)))
    if len(excluded):
        first = [EXCLUDED_BY, *[c for c in excluded.columns if c != EXCLUDED_BY]]
        show_table(excluded[first], height=200)


# -- preview and rows -----------------------------------------------------------------------------
def preview_section(store: Store, actor: Actor, view: SessionView
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts of what the user may see, the filters, and the ranked parents with their children.
    Returns the kept and the excluded rows shown (filtered, entitled) for the rows editor."""
    st.subheader("Ranked preview")
    ranked = visible(view.ranked, actor)
    parents = int(ranked[IS_PARENT].sum()) if len(ranked) else 0
    cells = st.columns(5)
    for cell, (label, value) in zip(cells, (
            ("Colors", len(ranked)), ("Parents", parents), ("Children", len(ranked) - parents),
            ("Excluded", len(visible(view.excluded, actor))),
            ("Quarantined", len(visible(view.quarantined, actor)))), strict=True):
        cell.metric(label, f"{value:,}")
    group, shown = filters(store, actor, ranked), ranked
    excluded = visible(view.excluded, actor)
    with error_boundary("Filtering the preview"):  # e.g. a preset on a column no longer known
        shown = visible(filter_frame(view.ranked, group), actor)
        excluded = visible(filter_frame(view.excluded, group), actor)
    parents_with_children(shown.reset_index(drop=True), key="manual_color.preview")
    return shown.reset_index(drop=True), excluded.reset_index(drop=True)
