"""The Users tab of Settings (admins): the users table, create, edit, the account actions and the
recent user changes. Core decides and audits; this only renders and passes the acting admin."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import streamlit as st

from core.access import ROLES, VIEWER, Actor
from core.clock import utc_now
from core.identity.column_profiles import load_column_profiles
from core.identity.user_records import PREFIX as USER_ENTITY  # a user's changes name its key
from core.identity.user_records import User, list_users
from core.identity.users import (
    approve_user,
    create_user,
    delete_user,
    reset_password,
    set_disabled,
    unlock,
    update_user,
)
from core.schema import SECTORS_EXAMPLE
from pages._ui.change_history import render_change_history
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store

FLASH = "settings.flash_state"  # messages to show after the rerun that follows an action
EDIT = FormValues("settings.edit")  # the edit form's values and whose they are ("user")
EDIT_FOR = EDIT.state_key  # dropped: the edit form is filled from the store again
NO_PROFILE = "(all columns)"
CLEAR_NEW = "settings.clear_new_state"  # empty the create form before it renders
NEW_BLANK = {"settings.new_username": "", "settings.new_name": "", "settings.new_email": "",
             "settings.new_role": VIEWER, "settings.new_sectors": [],
             "settings.new_other_sectors": "", "settings.new_profile": NO_PROFILE}


# -- messages that survive st.rerun ---------------------------------------------------------
def flash(text: str, *, password: str | None = None) -> None:
    """Queue a success message (with a one-time password) for the next run, then rerun."""
    st.session_state.setdefault(FLASH, []).append((text, password))


def show_flashes() -> None:
    """Show and forget the queued messages: a temporary password appears exactly once."""
    for text, password in st.session_state.pop(FLASH, []):
        st.success(escape_markdown(text))  # messages name users
        if password is not None:
            st.code(password, language=None)
            st.caption("Shown only now: pass it on securely. It must be changed at first login.")


# -- display values -------------------------------------------------------------------------
def when(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def status(user: User, now: datetime) -> str:
    if user.pending_approval:
        return "pending approval"
    if user.disabled:
        return "disabled"
    if user.is_locked(now):
        return f"locked until {when(user.locked_until)}"
    return "active"


def users_table(users: Sequence[User], now: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Username": u.username, "Name": u.name, "Email": u.email, "Role": u.role,
          "Sectors": "all" if u.sectors is None else ", ".join(u.sectors),
          "Column profile": u.column_profile or "all", "Status": status(u, now),
          "Last login": when(u.last_login_at)} for u in users],
        columns=["Username", "Name", "Email", "Role", "Sectors", "Column profile", "Status",
                 "Last login"],
    )


def known_sectors(users: Sequence[User]) -> list[str]:
    """The example sectors plus every sector already given to a user."""
    used = [s for u in users for s in (u.sectors or [])]
    return list(dict.fromkeys([*SECTORS_EXAMPLE, *used]))


def chosen_sectors(picked: Sequence[str], typed: str) -> list[str] | None:
    """The multiselect plus the comma-separated extras; nothing chosen means every sector."""
    sectors = list(dict.fromkeys([*picked, *(s.strip() for s in typed.split(",") if s.strip())]))
    return sectors or None


def _sector_inputs(prefix: str, options: list[str]) -> None:
    st.multiselect("Allowed sectors (none = all)", options, key=f"settings.{prefix}_sectors")
    st.text_input("Other sectors, comma-separated", key=f"settings.{prefix}_other_sectors")


def _profile_input(prefix: str, profiles: list[str]) -> None:
    st.selectbox("Column profile", [NO_PROFILE, *profiles], key=f"settings.{prefix}_profile")


def _profile_value(prefix: str) -> str | None:
    value = st.session_state[f"settings.{prefix}_profile"]
    return None if value == NO_PROFILE else value


# -- the tab --------------------------------------------------------------------------------
def users_tab(store: Store, actor: Actor) -> None:
    now = utc_now()
    users = list_users(store)
    profiles = list(load_column_profiles(store))
    sectors = known_sectors(users)
    st.dataframe(users_table(users, now), hide_index=True, width="stretch",
                 key="settings.users_table")
    _create_form(store, actor, sectors, profiles)
    st.subheader("Edit a user")
    names = [u.username for u in users]
    if st.session_state.get("settings.user") not in names:
        st.session_state.pop("settings.user", None)
    picked = st.selectbox("User", names, index=None, placeholder="Choose a user",
                          key="settings.user")
    user = next((u for u in users if u.username == picked), None)
    if user is not None:
        _edit_user(store, actor, user, sectors, profiles, now)
    st.subheader("Last user changes")
    render_change_history(store, actor, "users", "settings.users_history",
                          entity_prefix=USER_ENTITY, forget=(EDIT_FOR,))


def _create_form(store: Store, actor: Actor, sectors: list[str], profiles: list[str]) -> None:
    if st.session_state.pop(CLEAR_NEW, False):
        # Set, not deleted: a deleted widget value comes back from the browser, which still
        # shows what was typed; a value set here is sent to the browser and replaces it.
        st.session_state.update(NEW_BLANK)
    with st.expander("Create a user"), st.form("settings.create_form"):
        st.text_input("Username", key="settings.new_username")
        st.text_input("Full name", key="settings.new_name")
        st.text_input("Email", key="settings.new_email")
        st.selectbox("Role", ROLES, index=ROLES.index(VIEWER), key="settings.new_role")
        _sector_inputs("new", sectors)
        _profile_input("new", profiles)
        submitted = st.form_submit_button("Create user", type="primary", key="settings.create")
    if submitted:
        state = st.session_state
        with error_boundary("Creating the user"):
            user, temp = create_user(
                store, actor, state["settings.new_username"], name=state["settings.new_name"],
                email=state["settings.new_email"], role=state["settings.new_role"],
                sectors=chosen_sectors(state["settings.new_sectors"],
                                       state["settings.new_other_sectors"]),
                column_profile=_profile_value("new"))
            state[CLEAR_NEW] = True  # an empty form for the next user
            flash(f"Created {user.username} ({user.role}). Temporary password:", password=temp)
            st.rerun()


def _load_edit_values(user: User, sectors: list[str]) -> None:
    """Fill the edit form from the store when another user is chosen (or after an action)."""
    if EDIT.get("user") == user.username:
        return
    EDIT.load({"user": user.username, "name": user.name, "email": user.email, "role": user.role,
               "sectors": [s for s in user.sectors or [] if s in sectors], "other_sectors": "",
               "profile": user.column_profile or NO_PROFILE})
    st.session_state["settings.delete_confirm"] = False  # the checkbox's own default


def _done(text: str, *, password: str | None = None) -> None:
    st.session_state.pop(EDIT_FOR, None)  # reload the form from the store
    flash(text, password=password)
    st.rerun()


def _edit_user(store: Store, actor: Actor, user: User, sectors: list[str], profiles: list[str],
               now: datetime) -> None:
    name = user.username
    _load_edit_values(user, sectors)
    if user.column_profile and user.column_profile not in profiles:
        profiles = [*profiles, user.column_profile]
    st.caption(f"Status: {status(user, now)} · last login {when(user.last_login_at)} · "
               f"created {when(user.created_at)} by {user.created_by or '?'}")
    # The form's widgets start from EDIT (their defaults), never from values set on their keys.
    profile_options = [NO_PROFILE, *profiles]
    with st.form("settings.edit_form"):
        full_name = st.text_input("Full name", value=EDIT["name"], key=EDIT.key("name"))
        email = st.text_input("Email", value=EDIT["email"], key=EDIT.key("email"))
        role = st.selectbox("Role", ROLES, index=ROLES.index(EDIT["role"]), key=EDIT.key("role"))
        picked = st.multiselect("Allowed sectors (none = all)", sectors,
                                default=[s for s in EDIT["sectors"] if s in sectors],
                                key=EDIT.key("sectors"))
        other = st.text_input("Other sectors, comma-separated", value=EDIT["other_sectors"],
                              key=EDIT.key("other_sectors"))
        profile = st.selectbox("Column profile", profile_options,
                               index=profile_options.index(EDIT["profile"])
                               if EDIT["profile"] in profile_options else 0,
                               key=EDIT.key("profile"))
        submitted = st.form_submit_button("Save changes", type="primary", key="settings.save_user")
    EDIT.keep(name=full_name, email=email, role=role, sectors=picked, other_sectors=other,
              profile=profile)
    if submitted:
        with error_boundary(f"Saving {name}"):
            update_user(store, actor, name, name=full_name, email=email, role=role,
                        sectors=chosen_sectors(picked, other),
                        column_profile=None if profile == NO_PROFILE else profile)
            _done(f"Saved {name}.")

    cols = st.columns(4)
    if cols[0].button("Enable" if user.disabled else "Disable", key="settings.toggle_disabled"):
        with error_boundary(f"{'Enabling' if user.disabled else 'Disabling'} {name}"):
            set_disabled(store, actor, name, not user.disabled)
            _done(f"{'Enabled' if user.disabled else 'Disabled'} {name}.")
    if cols[1].button("Reset password", key="settings.reset_password"):
        with error_boundary(f"Resetting the password of {name}"):
            temp = reset_password(store, actor, name)
            _done(f"Reset the password of {name}. New temporary password:", password=temp)
    if user.is_locked(now) and cols[2].button("Unlock", key="settings.unlock"):
        with error_boundary(f"Unlocking {name}"):
            unlock(store, actor, name)
            _done(f"Unlocked {name}.")
    if user.pending_approval and cols[3].button("Approve", key="settings.approve"):
        with error_boundary(f"Approving {name}"):
            approve_user(store, actor, name)
            _done(f"Approved {name}.")

    confirmed = st.checkbox(f"Yes, delete {name}", key="settings.delete_confirm")
    if st.button(f"Delete {name}", key="settings.delete"):
        if not confirmed:
            st.warning(f"Tick “Yes, delete {name}” first: deleting cannot be undone.")
            return
        with error_boundary(f"Deleting {name}"):
            delete_user(store, actor, name)
            _done(f"Deleted {name}.")
