"""Settings (admins): users, column profiles, the column configuration, self-registration and the
SMTP server for email."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import MANAGE_USERS, Actor
from core.alerts.email import email_setup_gap
from core.identity.column_profiles import (
    delete_column_profile,
    load_column_profiles,
    save_column_profile,
)
from core.identity.login import (
    AUTH_AREA,
    AUTH_CONFIG_KEY,
    get_self_registration_version,
    set_self_registration,
)
from core.identity.user_records import list_users
from core.identity.users import approve_user
from core.schema import INPUT_COLUMNS, OUTPUT_COLUMNS
from pages._ui.change_history import render_change_history
from pages._ui.columns_admin import render_columns_admin
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.notifications_admin import render_notification_settings
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.users_admin import flash, show_flashes, users_tab, when
from storage import Store

ALL_COLUMNS = list(dict.fromkeys([*INPUT_COLUMNS, *OUTPUT_COLUMNS]))
NEW_PROFILE = "(new profile)"
# The profile form's values: which profile it holds ("for"), its name and columns, and the
# columns as loaded ("loaded": a stale save is refused); the widgets' defaults.
PROFILE = FormValues("settings.profile_edit")
PROFILE_FOR = PROFILE.state_key  # dropped: the form is filled from the store again
SIGNUP_VERSION = "settings.self_registration_version"  # of the login settings shown


def profiles_tab(store: Store, actor: Actor) -> None:
    profiles = load_column_profiles(store)
    st.caption("A column profile is a named set of visible columns; users assigned one see only "
               "those columns in every table and export. Users without one see every column.")
    st.dataframe(pd.DataFrame({"Profile": list(profiles),
                               "Columns": [", ".join(c) for c in profiles.values()]}),
                 hide_index=True, width="stretch", key="settings.profiles_table")
    options = [NEW_PROFILE, *profiles]
    if st.session_state.get("settings.profile") not in options:
        st.session_state.pop("settings.profile", None)
    choice = st.selectbox("Profile to edit", options, key="settings.profile")
    existing = choice != NEW_PROFILE
    if PROFILE.get("for") != choice:
        PROFILE.load({"for": choice, "name": choice if existing else "",
                      "columns": profiles.get(choice, []), "loaded": profiles.get(choice)})
    columns = list(dict.fromkeys([*ALL_COLUMNS, *profiles.get(choice, [])]))
    with st.form("settings.profile_form"):
        typed = st.text_input("Name", value=PROFILE["name"], key=PROFILE.key("name"),
                              disabled=existing)
        visible = st.multiselect("Visible columns", columns,
                                 default=[c for c in PROFILE["columns"] if c in columns],
                                 key=PROFILE.key("columns"))
        saved = st.form_submit_button("Save profile", type="primary", key="settings.profile_save")
    PROFILE.keep(name=typed, columns=visible)
    if saved:
        name = choice if existing else typed
        with error_boundary(f"Saving column profile {name!r}"):
            save_column_profile(store, actor, name, visible,
                                expected=PROFILE["loaded"] if existing else None)
            st.session_state.pop(PROFILE_FOR, None)
            flash(f"Saved column profile {name.strip()}.")
            st.rerun()
    if existing and st.button(f"Delete profile {choice}", key="settings.profile_delete"):
        with error_boundary(f"Deleting column profile {choice!r}"):
            delete_column_profile(store, actor, choice)
            st.session_state.pop(PROFILE_FOR, None)
            flash(f"Deleted column profile {choice}.")
            st.rerun()
    st.subheader("Last profile changes")
    render_change_history(store, actor, "users", "settings.profiles_history",
                          entity_prefix="column_profiles/", forget=(PROFILE_FOR,))


def _self_registration_changed(store: Store, actor: Actor) -> None:
    enabled = st.session_state["settings.self_registration"]
    with error_boundary("Changing self-registration"):
        set_self_registration(store, actor, enabled,
                              expected_version=st.session_state.get(SIGNUP_VERSION))
        flash(f"Self-registration is now {'on' if enabled else 'off'}.")


def signup_tab(store: Store, actor: Actor) -> None:
    # Always show the stored value: a stale session never writes it back, and a refusal reverts.
    # The version shown goes with the change, so a flip from a stale page is refused.
    enabled, st.session_state[SIGNUP_VERSION] = get_self_registration_version(store)
    st.session_state["settings.self_registration"] = enabled
    st.toggle("Let people request an account from the login page", key="settings.self_registration",
              on_change=_self_registration_changed, args=(store, actor))
    st.caption("New accounts start as viewers and cannot log in until an admin approves them.")
    pending = [u for u in list_users(store) if u.pending_approval]
    st.subheader("Waiting for approval")
    if not pending:
        st.write("Nobody is waiting.")
    for user in pending:
        left, right = st.columns([4, 1])
        left.write(f"**{user.username}** · {escape_markdown(user.name)} · "
                   f"{escape_markdown(user.email or 'no email')} · "
                   f"asked {when(user.created_at)}")
        if right.button("Approve", key=f"settings.approve_{user.username}"):
            with error_boundary(f"Approving {user.username}"):
                approve_user(store, actor, user.username)
                flash(f"Approved {user.username}: they can log in as a viewer now.")
                st.rerun()
    st.subheader("Last sign-up changes")
    render_change_history(store, actor, AUTH_AREA, "settings.signup_history",
                          entity_prefix=AUTH_CONFIG_KEY)


st.title("Settings")
st_store, actor = store(), current_actor()
if not actor.can(MANAGE_USERS):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Settings.")
    st.stop()
show_flashes()
with error_boundary("Checking the email settings"):
    gap = email_setup_gap(st_store)
    if gap:
        st.warning(gap)
users, column_profiles, columns, signup, email = st.tabs(
    ["Users", "Column profiles", "Columns", "Sign-up", "Email & notifications"])
with users, error_boundary("Loading users"):
    users_tab(st_store, actor)
with column_profiles, error_boundary("Loading column profiles"):
    profiles_tab(st_store, actor)
with columns, error_boundary("Loading the column configuration"):
    render_columns_admin(st_store, actor, settings())
with signup, error_boundary("Loading sign-up"):
    signup_tab(st_store, actor)
with email, error_boundary("Loading the email settings"):
    render_notification_settings(st_store, settings(), actor)
