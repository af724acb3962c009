"""The last changes of one area (rules, columns, jobs, users, settings, buffer...) from the change
log: who, when, what, its before/after as a readable diff, and Revert when core allows it, core's
explanation when it does not (DOMAIN.md §6)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from core.access import Actor
from core.compliance.audit_trail import describe_diff
from core.compliance.revert import recent_changes, revert_change
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store


def _when(at: object) -> str:
    return pd.Timestamp(at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def _logged(state: Any) -> str | None:
    """A state as the change log keeps it (JSON text), which describe_diff reads."""
    return None if state is None else json.dumps(state, sort_keys=True, default=str)


def render_change_history(store: Store, actor: Actor, area: str, key: str, *,
                          limit: int = 4, entity_prefix: str = "",
                          actions: Collection[str] | None = None,
                          forget: Sequence[str] = ()) -> None:
    """The area's last `limit` changes (of entities starting with entity_prefix, of `actions`
    when given), newest first, each with a "Before → after" expander. Revert buttons are keyed
    "<key>.revert_<event id>"; a refused revert shows core's reason (Conflict) in place. forget:
    session keys dropped after a revert, so forms holding the entity load it again."""
    done = st.session_state.pop(f"{key}.done_state", None)
    if done:
        st.success(done)
    changes = recent_changes(store, area, limit, entity_prefix=entity_prefix, actions=actions)
    if not changes:
        st.caption("No changes yet.")
        return
    for change in changes:
        text, button = st.columns([6, 1], vertical_alignment="center")
        text.markdown(f"**{_when(change.at)}** · {escape_markdown(change.actor)} · "
                      f"{escape_markdown(change.summary)}")
        diff = describe_diff(_logged(change.before), _logged(change.after))
        if diff:
            text.expander("Before → after").text(diff)
        if not change.revertible:
            text.caption(f"Cannot be reverted: {escape_markdown(change.reason)}")
            continue
        if button.button("Revert", key=f"{key}.revert_{change.event_id}"):
            with error_boundary("Revert refused"):
                revert_change(store, actor, change.event_id)
                for name in forget:
                    st.session_state.pop(name, None)
                st.session_state[f"{key}.done_state"] = f"Reverted: {change.summary}"
                st.rerun()
