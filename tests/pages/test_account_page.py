"""Account page (every role): who you are, own password change, recent logins."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core.config import load_settings
from core.identity.login import authenticate
from core.identity.passwords import CONTAINS_USERNAME, TOO_SHORT
from core.identity.user_records import get_user
from tests.pages.conftest import PASSWORD, add_user

PAGE = "pages/account.py"
SETTINGS = load_settings({}, {})
NEW_PASSWORD = "a much better passphrase"


def _change(at, current, new, again=None):
    at.text_input(key="account.current").input(current)
    at.text_input(key="account.new").input(new)
    at.text_input(key="account.new2").input(new if again is None else again)
    at.button(key="account.change").click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_role_sees_who_they_are(app_as, app_store, role):
    add_user(app_store, "root", "admin")
    add_user(app_store, "sam", role, sectors=["MM-CLO", "A_BSL"])
    at = app_as("sam", role, page=PAGE)
    assert not at.exception
    assert at.dataframe[0].value["Value"].tolist() == [
        "sam", "Sam", "sam@desk.test", role, "MM-CLO, A_BSL", "all columns"]


def test_changing_the_password_keeps_this_session(app_as, app_store):
    at = _change(app_as("ana", "analyst", page=PAGE), PASSWORD, NEW_PASSWORD)
    assert [e.value for e in at.error] == []
    assert at.success[0].value == ("Password changed. Your other sessions have ended; this one "
                                   "stays logged in.")
    assert authenticate(app_store, "ana", NEW_PASSWORD, settings=SETTINGS).ok
    assert not authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).ok

    at.run()  # still logged in: the session's login time moved past the change
    assert not at.exception
    assert at.title[0].value == "Account"
    assert at.session_state["auth.login_at"] >= get_user(app_store, "ana").sessions_valid_after


@pytest.mark.parametrize(("new", "reason"), [
    ("short one", TOO_SHORT),
    ("ana-is-my-password", CONTAINS_USERNAME),
])
def test_a_password_against_the_policy_shows_why(app_as, app_store, new, reason):
    at = _change(app_as("ana", "analyst", page=PAGE), PASSWORD, new)
    assert [e.value for e in at.error] == [f"Changing your password: password: {reason}"]
    assert authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).ok


def test_a_wrong_current_password_is_refused(app_as):
    at = _change(app_as("ana", "analyst", page=PAGE), "not my password", NEW_PASSWORD)
    assert [e.value for e in at.error] == [
        "Changing your password: old_password: the current password is not correct"]


def test_the_new_passwords_must_match(app_as, app_store):
    at = _change(app_as("ana", "analyst", page=PAGE), PASSWORD, NEW_PASSWORD, "something else")
    assert [e.value for e in at.error] == ["The two new passwords differ."]
    assert authenticate(app_store, "ana", PASSWORD, settings=SETTINGS).ok


def test_recent_logins_are_listed_newest_first(app_as, app_store):
    add_user(app_store, "ana", "analyst")
    authenticate(app_store, "ana", "wrong password!", settings=SETTINGS,
                 now=datetime(2025, 1, 2, 9, 0, tzinfo=UTC))
    authenticate(app_store, "ana", PASSWORD, settings=SETTINGS,
                 now=datetime(2025, 1, 2, 9, 1, 30, tzinfo=UTC))
    at = app_as("ana", "analyst", page=PAGE)
    assert not at.exception
    assert_frame_equal(at.dataframe[1].value, pd.DataFrame({
        "When (UTC)": ["2025-01-02 09:01:30", "2025-01-02 09:00:00"],
        "Result": ["ok", "failed"]}))


def test_no_logins_yet(app_as):
    at = app_as("ana", "analyst", page=PAGE)
    assert "No logins recorded yet." in [m.value for m in at.markdown]
