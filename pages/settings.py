"""Settings (admins): users, column profiles, self-registration and the SMTP server for email."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import MANAGE_USERS, Actor
from core.column_profiles import delete_column_profile, load_column_profiles, save_column_profile
from core.notify import SECURITY, SmtpConfig, load_smtp_config, save_smtp_config
from core.schema import INPUT_COLUMNS, OUTPUT_COLUMNS
from core.sessions_auth import get_self_registration, set_self_registration
from core.user_records import list_users
from core.users import approve_user
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.users_admin import flash, show_flashes, users_tab, when
from storage import Store

ALL_COLUMNS = list(dict.fromkeys([*INPUT_COLUMNS, *OUTPUT_COLUMNS]))
NEW_PROFILE = "(new profile)"
PROFILE_FOR = "settings.profile_for_state"  # which profile the profile form holds


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
    if st.session_state.get(PROFILE_FOR) != choice:
        st.session_state.update({"settings.profile_name": choice if existing else "",
                                 "settings.profile_columns": profiles.get(choice, []),
                                 PROFILE_FOR: choice})
    columns = list(dict.fromkeys([*ALL_COLUMNS, *profiles.get(choice, [])]))
    with st.form("settings.profile_form"):
        st.text_input("Name", key="settings.profile_name", disabled=existing)
        st.multiselect("Visible columns", columns, key="settings.profile_columns")
        saved = st.form_submit_button("Save profile", type="primary", key="settings.profile_save")
    if saved:
        name = choice if existing else st.session_state["settings.profile_name"]
        with error_boundary(f"Saving column profile {name!r}"):
            save_column_profile(store, actor, name, st.session_state["settings.profile_columns"])
            st.session_state.pop(PROFILE_FOR, None)
            flash(f"Saved column profile {name.strip()}.")
            st.rerun()
    if existing and st.button(f"Delete profile {choice}", key="settings.profile_delete"):
        with error_boundary(f"Deleting column profile {choice!r}"):
            delete_column_profile(store, actor, choice)
            st.session_state.pop(PROFILE_FOR, None)
            flash(f"Deleted column profile {choice}.")
            st.rerun()


def _self_registration_changed(store: Store, actor: Actor) -> None:
    enabled = st.session_state["settings.self_registration"]
    with error_boundary("Changing self-registration"):
        set_self_registration(store, actor, enabled)
        flash(f"Self-registration is now {'on' if enabled else 'off'}.")


def signup_tab(store: Store, actor: Actor) -> None:
    # Always show the stored value: a stale session never writes it back, and a refusal reverts.
    st.session_state["settings.self_registration"] = get_self_registration(store)
    st.toggle("Let people request an account from the login page", key="settings.self_registration",
              on_change=_self_registration_changed, args=(store, actor))
    st.caption("New accounts start as viewers and cannot log in until an admin approves them.")
    pending = [u for u in list_users(store) if u.pending_approval]
    st.subheader("Waiting for approval")
    if not pending:
        st.write("Nobody is waiting.")
    for user in pending:
        left, right = st.columns([4, 1])
        left.write(f"**{user.username}** · {user.name} · {user.email or 'no email'} · "
                   f"asked {when(user.created_at)}")
        if right.button("Approve", key=f"settings.approve_{user.username}"):
            with error_boundary(f"Approving {user.username}"):
                approve_user(store, actor, user.username)
                flash(f"Approved {user.username}: they can log in as a viewer now.")
                st.rerun()


def smtp_tab(store: Store, actor: Actor) -> None:
    config = load_smtp_config(store) or SmtpConfig(host="")
    st.caption("Used for forgot-password emails (and, later, notifications).")
    with st.form("settings.smtp_form"):
        host = st.text_input("SMTP host", value=config.host, key="settings.smtp_host")
        port = st.number_input("Port", min_value=1, max_value=65535, value=int(config.port),
                               step=1, key="settings.smtp_port")
        security = st.selectbox("Security", SECURITY, index=SECURITY.index(config.security),
                                key="settings.smtp_security")
        username = st.text_input("Username (blank: no login)", value=config.username,
                                 key="settings.smtp_username")
        sender = st.text_input("Sender address", value=config.sender, key="settings.smtp_sender")
        saved = st.form_submit_button("Save email settings", type="primary",
                                      key="settings.smtp_save")
    has_password = bool(settings()["smtp.password"])
    st.info("The SMTP password is never entered here: set MARKETPULSE_SMTP_PASSWORD in the "
            "environment (or smtp.password in .streamlit/secrets.toml). "
            + ("A password is configured (hidden)." if has_password
               else "No password is configured."))
    if saved:
        with error_boundary("Saving the email settings"):
            save_smtp_config(store, actor, SmtpConfig(
                host=host.strip(), port=int(port), security=security, username=username.strip(),
                sender=sender.strip(), timeout_s=config.timeout_s))
            flash(f"Saved the email settings ({host.strip()}:{int(port)}).")
            st.rerun()


st.title("Settings")
st_store, actor = store(), current_actor()
if not actor.can(MANAGE_USERS):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Settings.")
    st.stop()
show_flashes()
users, column_profiles, signup, email = st.tabs(
    ["Users", "Column profiles", "Sign-up", "Email (SMTP)"])
with users, error_boundary("Loading users"):
    users_tab(st_store, actor)
with column_profiles, error_boundary("Loading column profiles"):
    profiles_tab(st_store, actor)
with signup, error_boundary("Loading sign-up"):
    signup_tab(st_store, actor)
with email, error_boundary("Loading the email settings"):
    smtp_tab(st_store, actor)
