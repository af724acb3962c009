"""Manual Color's rows as a spreadsheet (st.data_editor): cells are edited in place, blocks pasted
from Excel, rows added at the bottom and deleted at the left edge, Pinned ticked; "Apply" sends the
batch to core.manual.edits.apply_edits, which checks it whole, re-ranks and makes it one undo
step. A refused batch stays in the table with every bad cell listed."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from core.access import Actor
from core.config import Settings
from core.manual import edits as session_edits
from core.manual.edits import PINNED, Edits, InvalidEdits
from core.manual.sessions import Session
from core.schema import (
    BIAS,
    BIAS_RANK,
    COLOR_ID,
    CONFIDENCE,
    CUSIP,
    DATE_TYPE,
    DIFF_STATUS,
    EXCLUDED_BY,
    INTEGER,
    IS_PARENT,
    NUMBER,
    PERCENT_DIFF,
    PRICE_DIFF,
    PX,
    RANK,
)
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from pages._ui.tables import PRICE_FORMAT, PRICES
from storage import Store

ROLE, PIN = "Role", "Pinned"
NONCE = "manual_color.editor_nonce_state"  # bumped by "Discard changes": the table starts over
WARNINGS = "manual_color.edit_warnings_state"  # (session revision, warnings of the last batch)
PROBLEMS = "manual_color.edit_problems_state"  # (editor key, cells the last Apply refused)
TABLE = "manual_color.editor_table_state"  # (editor key, table shown, session version it shows)
DERIVED = {RANK: "Derived from BIAS", PERCENT_DIFF: "Derived from PX and COV_PRICE",
           PRICE_DIFF: "Derived from PX and COV_PRICE",
           DIFF_STATUS: "Derived from PERCENT_DIFF and the sector's threshold"}


def editor_key(session: Session, table: pd.DataFrame) -> str:
    """A new key for every session change, every discard and every other set of rows shown
    (filters), so the editor's changes, kept by row position, always meet their own rows."""
    rows = hashlib.blake2b("\n".join(table[COLOR_ID].astype(str)).encode(), digest_size=6)
    return (f"manual_color.editor.{session.revision}.{st.session_state.get(NONCE, 0)}."
            f"{rows.hexdigest()}")


def _roles(rows: pd.DataFrame, pinned: set[str]) -> pd.Series:
    """parent, pinned parent, child, or "excluded: <rule>" per row."""
    parent = rows[IS_PARENT].fillna(False).astype(bool) if IS_PARENT in rows else (
        pd.Series(False, index=rows.index))
    pin = rows[COLOR_ID].isin(list(pinned)).fillna(False).astype(bool)
    role = pd.Series("child", index=rows.index, dtype="string")
    role = role.mask(parent, "parent").mask(parent & pin, "pinned parent")
    if EXCLUDED_BY in rows:
        rule = rows[EXCLUDED_BY].astype("string")
        role = role.mask(rule.notna(), "excluded: " + rule)
    return role


def table_for(kept: pd.DataFrame, excluded: pd.DataFrame, session: Session,
              columns: dict[str, str]) -> pd.DataFrame:
    """The rows as the editor shows them: ranked kept rows (parents first in each CUSIP), then
    the excluded ones; COLOR_ID, Role and Pinned first, then the editable columns the user sees."""
    rows = pd.concat([f for f in (kept, excluded) if len(f)], ignore_index=True) if (
        len(kept) or len(excluded)) else kept.iloc[:0]
    pinned = set(session.pinned)
    shown = [c for c in columns if c in rows.columns]
    table = rows[[COLOR_ID, *shown]].copy()
    table.insert(1, ROLE, _roles(rows, pinned).to_numpy())
    table.insert(2, PIN, rows[COLOR_ID].isin(list(pinned)).to_numpy(dtype=bool))
    return table.reset_index(drop=True)


def column_config(table: pd.DataFrame, columns: dict[str, str]) -> dict[str, Any]:
    """Typed columns: numbers, dates, BIAS as a choice; derived ones read-only."""
    cc = st.column_config
    biases = list(dict.fromkeys([*BIAS_RANK, *table[BIAS].dropna().astype(str)])) if (
        BIAS in table) else list(BIAS_RANK)
    config: dict[str, Any] = {
        COLOR_ID: cc.TextColumn(COLOR_ID, disabled=True, pinned=True,
                                help="The row's id in this session (new rows get one on Apply)"),
        ROLE: cc.TextColumn(ROLE, disabled=True, pinned=True),
        PIN: cc.CheckboxColumn(PIN, help="Tick to make this row its CUSIP's parent whatever "
                                          "the ranking says; untick to let the ranking choose"),
        BIAS: cc.SelectboxColumn(BIAS, options=biases, help="The kind of color; sets RANK"),
    }
    for column, kind in columns.items():
        if column in config or column not in table.columns:
            continue
        if kind in (NUMBER, INTEGER):
            config[column] = cc.NumberColumn(
                column, format=PRICE_FORMAT if column in PRICES else None,
                step=1 if kind == INTEGER else None,
                min_value=0 if column == CONFIDENCE else None,
                max_value=10 if column == CONFIDENCE else None,
                disabled=column in DERIVED, help=DERIVED.get(column))
        elif kind == DATE_TYPE:
            config[column] = cc.DateColumn(column, format="YYYY-MM-DD")
        else:
            config[column] = cc.TextColumn(column, disabled=column in DERIVED,
                                           help=DERIVED.get(column),
                                           pinned=True if column == CUSIP else None)
    if PX in table.columns:
        config[PX] = cc.NumberColumn(PX, format=PRICE_FORMAT, help=(
            "PX = BID if BID > 0, else ASK: edit BID or ASK to move it. PX is typed only on a "
            "row with neither a bid nor an offer."))
    return config


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        not isinstance(value, str | bool) and pd.isna(value))


def pending_edits(state: dict[str, Any] | None, table: pd.DataFrame,
                  columns: dict[str, str]) -> Edits:
    """The editor's unapplied changes (its widget state) as a batch for core."""
    if not state:
        return Edits()
    ids = table[COLOR_ID].tolist()
    pinned = dict(zip(ids, table[PIN].tolist(), strict=True))
    changed: dict[str, dict[str, Any]] = {}
    pins: dict[str, bool] = {}
    for at, values in (state.get("edited_rows") or {}).items():
        color_id = ids[int(at)]
        for column, value in values.items():
            if column == PIN:
                if bool(value) != pinned[color_id]:
                    pins[color_id] = bool(value)
            elif column in columns:
                changed.setdefault(color_id, {})[column] = value
    added = []
    for values in state.get("added_rows") or []:
        row = {c: v for c, v in values.items() if c in columns and not _blank(v)}
        if row:
            added.append({**row, **({PINNED: True} if values.get(PIN) else {})})
    deleted = [ids[int(at)] for at in state.get("deleted_rows") or []]
    return Edits(changed=changed, added=added, deleted=deleted, pins=pins)


def _show_problems(key: str) -> None:
    refused = st.session_state.get(PROBLEMS)
    if not refused or refused[0] != key:
        return
    problems = refused[1]
    st.error(f"{len(problems)} cell(s) cannot be applied, so nothing changed. Fix them in the "
             "table and apply again.")
    st.dataframe(pd.DataFrame({"Row": [p.row for p in problems],
                               "Column": [p.column or "" for p in problems],
                               "Problem": [p.reason for p in problems]}),
                 hide_index=True, width="stretch", key="manual_color.edit_problems")


def render(store: Store, actor: Actor, settings: Settings, kept: pd.DataFrame,
           excluded: pd.DataFrame, session: Session, done: Any) -> Edits:
    """The editor and its Apply / Discard buttons; returns the changes not applied yet (Save
    waits for them). `done(message)` toasts and reruns after a batch was applied. Changes are
    made against one table (its rows by position, the session version it shows): while they are
    pending, that table stays, and Apply sends its version, so a session changed meanwhile
    (another window, an undo) refuses them instead of applying them to other rows."""
    columns = {c: k for c, k in session_edits.editable_columns(store, kept).items()
               if actor.columns is None or c in actor.columns}
    table = table_for(kept, excluded, session, columns)
    fresh = editor_key(session, table)
    held = st.session_state.get(TABLE)
    if held and held[0] != fresh and not pending_edits(
            st.session_state.get(held[0]), held[1], columns).empty:
        key, table, version = held
        st.warning("The rows changed after you started editing (a filter, another window or an "
                   "undo): the table keeps the rows you edited. Apply them, or discard them to "
                   "see the current rows; changes to a session changed meanwhile are refused.")
    else:
        key, version = fresh, session.version
        st.session_state[TABLE] = (key, table, version)
    st.caption("Edit cells in place or paste a block copied from Excel (click a cell, Ctrl+V); "
               "add rows at the bottom, delete rows by selecting them at the left edge. "
               "Then apply: the batch is checked whole, re-ranked, and one Undo takes it back.")
    st.data_editor(table, key=key, num_rows="dynamic", hide_index=True, width="stretch",
                   height=360, column_config=column_config(table, columns))
    pending = pending_edits(st.session_state.get(key), table, columns)
    warned = st.session_state.get(WARNINGS)
    if warned and warned[0] == session.revision:
        for warning in warned[1]:
            st.warning(escape_markdown(f"Applied with a warning: {warning}"))
    _show_problems(key)
    if pending.empty:
        return pending
    st.caption(f"Not applied yet: {pending.describe()}.")
    apply, discard = st.columns(2)
    if apply.button("Apply the changes", key="manual_color.apply_edits", type="primary"):
        with error_boundary("Applying the changes"):
            try:
                outcome = session_edits.apply_edits(store, actor, pending, settings=settings,
                                                    version=version)
            except InvalidEdits as exc:
                st.session_state[PROBLEMS] = (key, exc.problems)
                st.rerun()
            st.session_state[WARNINGS] = (outcome.session.revision,
                                          [w.message for w in outcome.warnings])
            st.session_state.pop(PROBLEMS, None)
            st.session_state.pop(TABLE, None)  # applied: the next table is the new session's
            done(f"Applied {pending.describe()}")
    if discard.button("Discard the changes", key="manual_color.discard_edits"):
        st.session_state[NONCE] = st.session_state.get(NONCE, 0) + 1
        st.session_state.pop(PROBLEMS, None)
        st.session_state.pop(TABLE, None)
        st.rerun()
    return pending
