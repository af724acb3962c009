"""The last changes of one area (rules, columns, jobs, ...) from the change log, each with Revert
when core allows it and core's explanation when it does not (DOMAIN.md §6)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Actor
from core.compliance.revert import recent_changes, revert_change
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store


def _when(at: object) -> str:
    return pd.Timestamp(at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def render_change_history(store: Store, actor: Actor, area: str, key: str, *,
                          limit: int = 4) -> None:
    """The area's last `limit` changes, newest first. Revert buttons are keyed
    "<key>.revert_<event id>"; a refused revert shows core's reason (Conflict) in place."""
    done = st.session_state.pop(f"{key}.done_state", None)
    if done:
        st.success(done)
    changes = recent_changes(store, area, limit)
    if not changes:
        st.caption("No changes yet.")
        return
    for change in changes:
        text, button = st.columns([6, 1], vertical_alignment="center")
        text.markdown(f"**{_when(change.at)}** · {escape_markdown(change.actor)} · "
                      f"{escape_markdown(change.summary)}")
        if not change.revertible:
            text.caption(f"Cannot be reverted: {escape_markdown(change.reason)}")
            continue
        if button.button("Revert", key=f"{key}.revert_{change.event_id}"):
            with error_boundary("Revert refused"):
                revert_change(store, actor, change.event_id)
                st.session_state[f"{key}.done_state"] = f"Reverted: {change.summary}"
                st.rerun()
