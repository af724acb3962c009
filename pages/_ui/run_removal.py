"""Remove a published run (reason, then a confirmation) or undo a removal, in a run's detail
(admins; core.runs.removal checks the permission and the record's version and logs both)."""

from __future__ import annotations

import streamlit as st

from core.access import REMOVE_RUNS, Actor
from core.runs import removal
from core.runs.records import REMOVED, SUCCESS, RunRecord
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store

CONFIRM = "run_removal.confirm_state"  # (key, run id) waiting for "Yes, remove"
DONE = "run_removal.done_state"  # the message of the last removal or undo, shown once


def render_removal(store: Store, actor: Actor, record: RunRecord, key: str) -> None:
    """For a published run: a reason and Remove…, then Yes/Keep; for a removed one: who removed
    it, when and why, and Undo."""
    done = st.session_state.pop(DONE, None)
    if done:
        st.success(escape_markdown(done))
    if not actor.can(REMOVE_RUNS) or record.status not in (SUCCESS, REMOVED):
        return
    run_id = record.run_id
    if record.status == REMOVED:
        gone = record.removal
        st.warning(escape_markdown(
            f"Removed by {gone.get('by', '?')} at {str(gone.get('at', ''))[:16].replace('T', ' ')}"
            f" UTC: {gone.get('reason', '')}. Its colors are out of search, the dashboard and "
            "exports; its rows are kept."))
        if st.button(f"Undo: publish run {run_id} again", key=f"{key}.restore_run"):
            with error_boundary(f"Restoring run {run_id}"):
                removal.restore_run(store, actor, run_id)
                st.session_state[DONE] = f"Run {run_id} is published again."
                st.rerun()
        return
    with st.expander(f"Remove run {run_id}…"):
        reason = st.text_input("Why is it removed? (kept in the change log)",
                               key=f"{key}.remove_reason")
        if st.session_state.get(CONFIRM) == (key, run_id):
            st.warning(f"Remove run {run_id}? Its {record.counts.get('published', 0):,} colors "
                       "leave search, the dashboard and exports until you undo it.")
            yes, no = st.columns(2)
            if yes.button(f"Yes, remove run {run_id}", key=f"{key}.remove_confirm",
                          type="primary"):
                st.session_state.pop(CONFIRM, None)
                with error_boundary(f"Removing run {run_id}"):
                    removal.remove_run(store, actor, run_id, reason)
                    st.session_state[DONE] = f"Run {run_id} removed. Undo brings it back."
                    st.rerun()
            if no.button("Keep it", key=f"{key}.remove_cancel"):
                st.session_state.pop(CONFIRM, None)
                st.rerun()
        elif st.button(f"Remove run {run_id}", key=f"{key}.remove_run",
                       disabled=not reason.strip()):
            st.session_state[CONFIRM] = (key, run_id)
            st.rerun()
