"""Account (everyone): who you are, change your own password, and your recent logins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.clock import utc_now
from core.identity.login import change_own_password
from core.identity.passwords import HISTORY_SIZE, MIN_LENGTH
from pages._ui.auth import LOGIN_AT
from pages._ui.services import current_actor, current_user, error_boundary, store

DONE = "account.done_state"  # the success message, shown after the form is cleared

st.title("Account")
user = current_user()

st.subheader("You")
st.dataframe(
    pd.DataFrame({"Field": ["Username", "Name", "Email", "Role", "Sectors", "Column profile"],
                  "Value": [user.username, user.name, user.email or "—", user.role,
                            "all" if user.sectors is None else ", ".join(user.sectors),
                            user.column_profile or "all columns"]}),
    hide_index=True, key="account.who")

st.subheader("Change your password")
st.caption(f"At least {MIN_LENGTH} characters, not containing your username, and not one of your "
           f"last {HISTORY_SIZE} passwords. Your other sessions end when you change it.")
if st.session_state.pop(DONE, False):
    st.success("Password changed. Your other sessions have ended; this one stays logged in.")
with st.form("account.password_form", clear_on_submit=True):
    current = st.text_input("Current password", type="password", key="account.current",
                            autocomplete="current-password")
    new = st.text_input("New password", type="password", key="account.new",
                        autocomplete="new-password")
    again = st.text_input("New password again", type="password", key="account.new2",
                          autocomplete="new-password")
    submitted = st.form_submit_button("Change password", type="primary", key="account.change")
if submitted:
    if new != again:
        st.error("The two new passwords differ.")
    else:
        with error_boundary("Changing your password"):
            now = utc_now()
            change_own_password(store(), current_actor(), current, new, now=now)
            st.session_state[LOGIN_AT] = now  # this session stays valid; the others end
            st.session_state[DONE] = True
            st.rerun()

st.subheader("Your recent logins")
logins = list(reversed(user.recent_logins))
if not logins:
    st.write("No logins recorded yet.")
else:
    st.dataframe(
        pd.DataFrame({"When (UTC)": [f"{e['at']:%Y-%m-%d %H:%M:%S}" for e in logins],
                      "Result": ["ok" if e["ok"] else "failed" for e in logins]}),
        hide_index=True, key="account.logins")
