"""The notification bell in the sidebar: the unread count and the latest notifications (run
finished or failed, buffer files processed), refreshed every 30 s, with "Mark all read"."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.alerts.bell import list_notifications, mark_read, unread_count
from core.identity.user_records import User
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store

LATEST = 10


def render_bell(store: Store, user: User) -> None:
    """Call once per run from app.py, after the login gate."""
    with st.sidebar:
        _bell(store, user.username)


def _mark_all_read(store: Store, username: str) -> None:
    with error_boundary("Marking notifications read"):
        mark_read(store, username, "all")


def _when(at: str) -> str:
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    return f"{stamp:%Y-%m-%d %H:%M} UTC"


@st.fragment(run_every="30s")
def _bell(store: Store, username: str) -> None:
    with error_boundary("Loading notifications"):
        count = unread_count(store, username)
        items = list_notifications(store, username, limit=LATEST)
        with st.popover(f"🔔 {count}", help=f"{count} unread notification(s)"):
            if not items:
                st.caption("No notifications yet.")
            for item in items:
                st.markdown(("🔵 " if not item.read else "") + f"**{escape_markdown(item.title)}**")
                st.caption(f"{escape_markdown(item.body)} · {_when(item.at)}" if item.body
                           else _when(item.at))
            st.button("Mark all read", key="bell.mark_all_read", disabled=count == 0,
                      on_click=_mark_all_read, args=(store, username))
