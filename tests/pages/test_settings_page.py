"""Settings page (admins): users, column profiles, sign-up and SMTP, driven by keyed widgets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.audit import load_changes
from core.compliance.revert import recent_changes
from core.config import load_settings
from core.identity.column_profiles import load_column_profiles, save_column_profile
from core.identity.login import (
    DISABLED,
    authenticate,
    get_self_registration,
    register_user,
    set_self_registration,
)
from core.identity.user_records import get_user
from core.identity.users import update_user
from tests.pages.conftest import PASSWORD, add_user, mounts_at

PAGE = "pages/settings.py"
SETTINGS = load_settings({}, {})


def _settings(app_as):
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    return at


def _table(at, column):
    """The table with that column (plain st.dataframe elements carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _table_row(at, username):
    table = _table(at, "Username")
    return table[table["Username"] == username].iloc[0].to_dict()


def _select_user(at, username):
    at.selectbox(key="settings.user").select(username).run()
    assert not at.exception
    return at


def _edit_field(at, name: str):
    """The edit form's widget (name, email, role, sectors, other_sectors, profile): drawn afresh,
    under a new key generation, each time a user's values are put in the form."""
    key = f"settings.edit.{at.session_state['settings.edit_generation_state']}.{name}"
    kind = {"role": at.selectbox, "profile": at.selectbox, "sectors": at.multiselect}
    return kind.get(name, at.text_input)(key=key)


def _profile_field(at, name: str):
    """The column profile form's widget (name or columns): drawn afresh, under a new key
    generation, each time a profile is put in the form."""
    key = f"settings.profile_edit.{at.session_state['settings.profile_edit_generation_state']}"
    return (at.multiselect if name == "columns" else at.text_input)(key=f"{key}.{name}")


def test_admin_sees_the_settings_tabs(app_as):
    at = _settings(app_as)
    assert [t.label for t in at.tabs] == [
        "Users", "Column profiles", "Columns", "Sign-up", "Email & notifications"]
    assert _table_row(at, "admin") == {
        "Username": "admin", "Name": "Admin", "Email": "admin@desk.test", "Role": "admin",
        "Sectors": "all", "Column profile": "all", "Status": "active", "Last login": "never"}


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_settings_is_not_registered_for_non_admins(app_as, role):
    at = app_as(role, role)
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_admin_creates_an_analyst_whose_temporary_password_works(app_as, app_store):
    at = _settings(app_as)
    at.text_input(key="settings.new_username").input("Ana")
    at.text_input(key="settings.new_name").input("Ana Lyst")
    at.text_input(key="settings.new_email").input("ana@desk.test")
    at.selectbox(key="settings.new_role").select("analyst")
    at.multiselect(key="settings.new_sectors").select("MM-CLO")
    at.text_input(key="settings.new_other_sectors").input("Euro_CLO, ")
    at.button(key="settings.create").click().run()

    assert not at.exception
    assert [e.value for e in at.error] == []
    assert at.success[0].value == "Created ana (analyst). Temporary password:"
    temp = at.code[0].value
    assert authenticate(app_store, "ana", temp, settings=SETTINGS).ok
    user = get_user(app_store, "ana")
    assert (user.role, user.sectors, user.must_change_password) == (
        "analyst", ["MM-CLO", "Euro_CLO"], True)
    assert _table_row(at, "ana")["Sectors"] == "MM-CLO, Euro_CLO"
    assert at.text_input(key="settings.new_username").value == ""  # an empty form again

    at.run()  # the temporary password is shown once only
    assert [c.value for c in at.code] == []


def test_the_create_form_is_emptied_in_the_browser_after_a_user_is_created(app_as):
    at = _settings(app_as)
    at.text_input(key="settings.new_username").input("bob")
    at.text_input(key="settings.new_name").input("Bob Loblaw")
    at.selectbox(key="settings.new_role").select("analyst")
    at.multiselect(key="settings.new_sectors").select("MM-CLO")
    at = at.button(key="settings.create").click().run()
    assert at.success[0].value == "Created bob (analyst). Temporary password:"
    keys = ("settings.new_username", "settings.new_name", "settings.new_email",
            "settings.new_other_sectors")
    shown = [at.text_input(key=k) for k in keys]
    assert [(w.value, w.proto.set_value) for w in shown] == [("", True)] * 4  # sent to the page
    role = at.selectbox(key="settings.new_role")
    sectors = at.multiselect(key="settings.new_sectors")
    assert (role.value, role.proto.set_value, sectors.value, sectors.proto.set_value) == (
        "viewer", True, [], True)

    at.text_input(key="settings.new_username").input("admin")  # refused: what was typed stays
    at = at.button(key="settings.create").click().run()
    assert [e.value for e in at.error] == ["Creating the user: a user named 'admin' already exists"]
    assert at.text_input(key="settings.new_username").value == "admin"


def test_creating_a_duplicate_user_shows_the_core_error(app_as):
    at = _settings(app_as)
    at.text_input(key="settings.new_username").input("admin")
    at.button(key="settings.create").click().run()
    assert [e.value for e in at.error] == ["Creating the user: a user named 'admin' already exists"]


def test_admin_changes_a_users_role(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    at = _select_user(_settings(app_as), "ana")
    assert _edit_field(at, "name").value == "Ana"
    _edit_field(at, "role").select("viewer")
    at.button(key="settings.save_user").click().run()

    assert not at.exception
    assert at.success[0].value == "Saved ana."
    assert get_user(app_store, "ana").role == "viewer"
    assert _table_row(at, "ana")["Role"] == "viewer"
    assert load_changes(app_store, area="users")["ACTION"].iloc[0] == "role_changed"


def test_a_browser_that_missed_the_run_that_filled_the_edit_form_mounts_it_at_the_users_values(
        app_as, app_store):
    """Under load the run that puts a user in the edit form can be superseded before the browser
    gets it, and the browser mounts the form from the next run. Each field must come with the
    user's value in that run too (it came at the widget's own default: no name, the first role,
    no sectors, which means every sector, and no profile; a save sent those back)."""
    admin = add_user(app_store, "admin", "admin").actor()
    save_column_profile(app_store, admin, "Traders", ["CUSIP"])
    add_user(app_store, "vic", "analyst", sectors=["MM-CLO"])
    update_user(app_store, admin, "vic", column_profile="Traders")
    at = _select_user(_settings(app_as), "vic")
    at = at.run()  # the run after the one that filled the form
    fields = ("name", "email", "role", "sectors", "other_sectors", "profile")
    assert [mounts_at(_edit_field(at, f)) for f in fields] == [
        "Vic", "vic@desk.test", "analyst", ["MM-CLO"], "", "Traders"]
    _edit_field(at, "email").input("vic@other.test")
    at = at.button(key="settings.save_user").click().run()
    assert [s.value for s in at.success] == ["Saved vic."]
    vic = get_user(app_store, "vic")
    assert (vic.name, vic.email, vic.role, vic.sectors, vic.column_profile) == (
        "Vic", "vic@other.test", "analyst", ["MM-CLO"], "Traders")
    at = at.run()  # the form holds the saved values again, in a new generation
    assert [mounts_at(_edit_field(at, f)) for f in fields] == [
        "Vic", "vic@other.test", "analyst", ["MM-CLO"], "", "Traders"]


def test_disabling_a_user_refuses_their_login(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    at = _select_user(_settings(app_as), "ana")
    at.button(key="settings.toggle_disabled").click().run()

    assert at.success[0].value == "Disabled ana."
    assert _table_row(at, "ana")["Status"] == "disabled"
    assert authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).reason == DISABLED
    assert at.button(key="settings.toggle_disabled").label == "Enable"


def test_resetting_a_password_shows_a_new_temporary_one(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    at = _select_user(_settings(app_as), "ana")
    at.button(key="settings.reset_password").click().run()

    assert at.success[0].value == "Reset the password of ana. New temporary password:"
    temp = at.code[0].value
    assert authenticate(app_store, "ana", temp, settings=SETTINGS).ok
    assert not authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).ok
    assert get_user(app_store, "ana").must_change_password


def test_unlocking_a_locked_user(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    for _ in range(5):
        authenticate(app_store, "ana", "wrong password!", settings=SETTINGS)
    at = _select_user(_settings(app_as), "ana")
    assert _table_row(at, "ana")["Status"].startswith("locked until ")
    at.button(key="settings.unlock").click().run()

    assert at.success[0].value == "Unlocked ana."
    assert _table_row(at, "ana")["Status"] == "active"
    assert authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).ok


def test_delete_needs_the_confirmation(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    at = _select_user(_settings(app_as), "ana")
    at.button(key="settings.delete").click().run()
    assert [w.value for w in at.warning] == [
        "Tick “Yes, delete ana” first: deleting cannot be undone."]
    assert get_user(app_store, "ana").username == "ana"

    at.checkbox(key="settings.delete_confirm").check()
    at.button(key="settings.delete").click().run()
    assert not at.exception
    assert at.success[0].value == "Deleted ana."
    assert _table(at, "Username")["Username"].tolist() == ["admin", "root"]
    assert at.selectbox(key="settings.user").value is None


def test_deleting_yourself_shows_the_core_refusal(app_as, app_store):
    at = _select_user(_settings(app_as), "admin")
    at.checkbox(key="settings.delete_confirm").check()
    at.button(key="settings.delete").click().run()
    assert [e.value for e in at.error] == [
        "Deleting admin: you cannot delete your own account; ask another admin"]
    assert get_user(app_store, "admin").role == "admin"


def test_last_user_changes_show_who_what_the_diff_and_revert(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    at = _select_user(_settings(app_as), "ana")
    at.button(key="settings.toggle_disabled").click().run()
    [change] = recent_changes(app_store, "users", 1, entity_prefix="users/")
    assert change.summary == "disabled user ana"
    assert [m.value for m in at.markdown if m.value.endswith("disabled user ana")] == [
        f"**{change.at:%Y-%m-%d %H:%M} UTC** · admin · disabled user ana"]
    assert "disabled: false → true" in at.text[0].value.splitlines()
    at.button(key=f"settings.users_history.revert_{change.event_id}").click().run()
    assert not at.exception
    assert get_user(app_store, "ana").disabled is False
    assert [s.value for s in at.success] == ["Reverted: disabled user ana"]
    assert at.button(key="settings.toggle_disabled").label == "Disable"


def test_sign_up_and_profile_tabs_list_only_their_own_changes(app_as, app_store):
    admin = add_user(app_store, "admin", "admin")
    set_self_registration(app_store, admin.actor(), True, expected_version=None)
    save_column_profile(app_store, admin.actor(), "Traders", ["CUSIP"])
    at = _settings(app_as)
    switched = recent_changes(app_store, "auth", 1, entity_prefix="config/")[0]
    at.button(key=f"settings.signup_history.revert_{switched.event_id}").click().run()
    assert not at.exception
    assert get_self_registration(app_store) is False
    assert at.toggle(key="settings.self_registration").value is False
    [profile] = recent_changes(app_store, "users", entity_prefix="column_profiles/")
    assert f"settings.profiles_history.revert_{profile.event_id}" in [b.key for b in at.button]
    assert f"settings.users_history.revert_{profile.event_id}" not in [b.key for b in at.button]


def test_column_profile_created_and_assigned_one_cannot_be_deleted(app_as, app_store):
    at = _settings(app_as)
    _profile_field(at, "name").input("Traders")
    _profile_field(at, "columns").select("CUSIP").select("PX")
    at.button(key="settings.profile_save").click().run()
    assert at.success[0].value == "Saved column profile Traders."
    assert load_column_profiles(app_store) == {"Traders": ["CUSIP", "PX"]}

    add_user(app_store, "ana", "analyst")
    update_user(app_store, get_user(app_store, "admin").actor(), "ana", column_profile="Traders")
    at.selectbox(key="settings.profile").select("Traders").run()
    at.button(key="settings.profile_delete").click().run()
    assert [e.value for e in at.error] == [
        "Deleting column profile 'Traders': column profile 'Traders' is assigned to ana; "
        "assign them another profile first"]
    assert "Traders" in load_column_profiles(app_store)


def test_column_profile_edit_and_delete(app_as, app_store):
    add_user(app_store, "admin", "admin")
    save_column_profile(app_store, get_user(app_store, "admin").actor(), "Lean", ["CUSIP"])
    at = _settings(app_as)
    at.selectbox(key="settings.profile").select("Lean").run()
    assert _profile_field(at, "columns").value == ["CUSIP"]
    _profile_field(at, "columns").select("SECTOR")
    at.button(key="settings.profile_save").click().run()
    assert load_column_profiles(app_store) == {"Lean": ["CUSIP", "SECTOR"]}

    at.selectbox(key="settings.profile").select("Lean").run()
    at.button(key="settings.profile_delete").click().run()
    assert at.success[0].value == "Deleted column profile Lean."
    assert load_column_profiles(app_store) == {}


def test_a_browser_that_missed_the_run_that_filled_the_profile_form_mounts_its_columns(
        app_as, app_store):
    """Under load the run that puts a profile in the form can be superseded before the browser
    gets it, and the browser mounts the form from the next run. The columns must come with the
    profile's in that run too (they came empty, and adding one saved the profile with it
    alone)."""
    admin = add_user(app_store, "admin", "admin").actor()
    save_column_profile(app_store, admin, "Lean", ["CUSIP", "PX"])
    at = _settings(app_as)
    at.selectbox(key="settings.profile").select("Lean").run()
    at = at.run()  # the run after the one that filled the form
    assert [mounts_at(_profile_field(at, f)) for f in ("name", "columns")] == [
        "Lean", ["CUSIP", "PX"]]
    _profile_field(at, "columns").select("SECTOR")
    at.button(key="settings.profile_save").click().run()
    assert load_column_profiles(app_store) == {"Lean": ["CUSIP", "PX", "SECTOR"]}


def test_self_registration_toggle_and_approval(app_as, app_store):
    at = _settings(app_as)
    assert at.toggle(key="settings.self_registration").value is False
    at.toggle(key="settings.self_registration").set_value(True).run()
    assert get_self_registration(app_store) is True
    assert at.success[0].value == "Self-registration is now on."

    register_user(app_store, "newbie", "New Bie", "newbie@desk.test", "a long enough pw!")
    at.run()
    assert _table_row(at, "newbie")["Status"] == "pending approval"
    at.button(key="settings.approve_newbie").click().run()
    assert at.success[0].value == "Approved newbie: they can log in as a viewer now."
    assert not get_user(app_store, "newbie").pending_approval


def test_sign_up_toggle_follows_the_store(app_as, app_store):
    at = _settings(app_as)
    set_self_registration(app_store, get_user(app_store, "admin").actor(), True,
                          expected_version=None)
    at.run()
    assert at.toggle(key="settings.self_registration").value is True


def test_user_table_shows_a_recent_login(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    authenticate(app_store, "ana", PASSWORD, settings=SETTINGS,
                 now=datetime(2025, 3, 4, 9, 30, tzinfo=UTC))
    at = _settings(app_as)
    assert _table_row(at, "ana")["Last login"] == "2025-03-04 09:30 UTC"
