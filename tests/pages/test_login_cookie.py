"""The re-login cookie and the key that signs it (issue 10 item 7): the key is generated into the
secrets file, never into the store; a cookie outliving the session lifetime is refused; the user
is read again on every run, so disabling, demoting or a new password act on an open session."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pyarrow.parquet as pq
import pytest
from streamlit.runtime import context
from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.cli.demo import load_demo
from core.config import load_settings
from core.identity.login_key import LEGACY_KEY_DOC
from core.identity.users import create_user, reset_password, set_disabled, update_user
from tests.pages.conftest import APP, PASSWORD, add_user, open_app

KEY = "k" * 40  # what the app_store fixture configures
ENDED = ("Your session has ended (idle too long, password changed, or account disabled). "
         "Please log in again.")


@pytest.fixture
def browser_cookies(monkeypatch):
    """The cookies the browser sends (AppTest cannot seed st.context.cookies: the real request
    carries them), as a dict the test fills."""
    cookies: dict[str, str] = {}
    monkeypatch.setattr(context.ContextProxy, "cookies",
                        property(lambda self: context.StreamlitCookies(cookies)))
    return cookies


def _cookie(username: str, expires: datetime, key: str = KEY) -> str:
    """A re-login cookie as streamlit-authenticator signs it (HS256 JWT of username, exp_date)."""
    return jwt.encode({"username": username, "exp_date": expires.timestamp()}, key,
                      algorithm="HS256")


def _titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def test_a_cookie_signed_with_the_key_logs_back_in(app_store, browser_cookies):
    add_user(app_store, "ana", "analyst")
    # issued now, with the 8-hour lifetime of auth.session_hours (issued before the account's
    # sessions_valid_after, it would be refused as a session a password change ended)
    browser_cookies["marketpulse_auth"] = _cookie("ana", datetime.now(UTC) + timedelta(hours=8))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert [c.value for c in at.caption] == ["Signing you in…"]  # the run with the component
    assert _titles(at) == []
    at.run()  # what the cookie component's answer does in a browser
    assert _titles(at) == ["Dashboard"]
    assert at.session_state["username"] == "ana"


def test_a_cookie_expiring_in_ten_years_is_refused(app_store, browser_cookies):
    add_user(app_store, "ana", "analyst")
    browser_cookies["marketpulse_auth"] = _cookie("ana", datetime.now(UTC) + timedelta(days=3650))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert _titles(at) == ["MarketPulse"]
    assert [s.value for s in at.subheader] == ["Log in"]
    assert not at.session_state["authentication_status"]


def _files_holding(root: Path, secret: str) -> list[str]:
    """Every file under root (documents, blobs, Parquet tables) whose bytes or cells hold secret."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        in_cells = path.suffix == ".parquet" and secret in str(pq.read_table(path).to_pylist())
        if in_cells or secret.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_the_app_generates_its_key_into_the_secrets_file_and_no_store_object_holds_it(
        app_store, tmp_path, monkeypatch):
    monkeypatch.delenv("MARKETPULSE_AUTH_COOKIE_KEY")
    secrets = tmp_path / "secrets.toml"  # MARKETPULSE_SECRETS_FILE (tests/conftest.py)
    old_key = "f" * 64
    app_store.put(LEGACY_KEY_DOC, {"key": old_key}, None)  # as an older version kept it
    add_user(app_store, "ana", "analyst")
    load_demo(app_store, load_settings({}, {}), days=2, rows_per_day=40)

    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="auth.username").input("ana")
    at.text_input(key="auth.password").input(PASSWORD)
    next(b for b in at.button if b.label == "Login").click().run()
    assert not at.exception
    at.run()  # the cookie component's answer (AppTest's components never answer)
    assert _titles(at) == ["Dashboard"]

    key = tomllib.loads(secrets.read_text())["auth"]["cookie_key"]
    assert len(key) == 64
    assert secrets.stat().st_mode & 0o777 == 0o600
    root = Path(app_store.url.removeprefix("file://"))
    assert app_store.list("config/") == []
    assert _files_holding(root, key) == []
    assert _files_holding(root, old_key) == []
    assert len([p for p in root.rglob("*.parquet")]) > 0  # the tables were searched too


def test_disabling_an_account_ends_its_open_session_on_the_next_run(app_as, app_store):
    at = app_as("ana", "analyst")
    assert _titles(at) == ["Dashboard"]
    set_disabled(app_store, SYSTEM, "ana", True)
    at.switch_page("pages/search.py").run()  # the user's next click
    assert _titles(at) == ["MarketPulse"]
    assert [i.value for i in at.info] == [ENDED]
    assert not at.session_state["authentication_status"]


def test_a_new_password_set_elsewhere_ends_the_open_session_on_the_next_run(app_as, app_store):
    at = app_as("ana", "analyst")
    reset_password(app_store, SYSTEM, "ana")
    at.switch_page("pages/search.py").run()
    assert _titles(at) == ["MarketPulse"]
    assert [i.value for i in at.info] == [ENDED]


def test_a_demoted_analyst_loses_manual_color_on_the_next_run(app_store):
    """The page checks the role itself and shows no session and no upload buffer."""
    at = open_app(app_store, "ana", "analyst", page="pages/manual_color.py")
    assert _titles(at) == ["Manual Color"]
    update_user(app_store, SYSTEM, "ana", role="viewer")
    at.run()  # AppTest reruns the page file itself, as Streamlit serves pages/ by URL
    assert _titles(at) == ["Manual Color"]
    assert [e.value for e in at.error] == ["Only analysts and admins can open Manual Color."]
    assert (len(at.tabs), len(at.file_uploader), len(at.button)) == (0, 0, 0)


def test_the_first_login_password_change_keeps_the_user_in_after_a_reload(app_store,
                                                                           browser_cookies):
    """The change ends every session that logged in before it, except this one: its re-login
    cookie stays valid, so F5 (a new session from the cookie) stays logged in."""
    create_user(app_store, SYSTEM, "tom", name="Tom", email="tom@desk.test", role="viewer",
                password="a temporary password 1", temporary=True)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="auth.username").input("tom")
    at.text_input(key="auth.password").input("a temporary password 1")
    at.button[0].click().run()
    at.run()  # the cookie component's rerun
    assert _titles(at) == ["Change your password"]
    expires = datetime.fromtimestamp(at.session_state["auth.cookie_expires"], UTC)
    at.text_input(key="auth.change.old").input("a temporary password 1")
    at.text_input(key="auth.change.new").input("a desk trader's own passphrase")
    at.text_input(key="auth.change.new2").input("a desk trader's own passphrase")
    next(b for b in at.button if b.label == "Change password").click().run()
    assert not at.exception
    assert _titles(at) == ["Dashboard"]

    browser_cookies["marketpulse_auth"] = _cookie("tom", expires)  # what the browser holds
    reloaded = AppTest.from_file(APP, default_timeout=30).run()
    reloaded.run()  # the cookie component's rerun
    assert not reloaded.exception
    assert _titles(reloaded) == ["Dashboard"]
    assert reloaded.session_state["username"] == "tom"

    # A cookie from another login before the change (another browser) has ended.
    browser_cookies["marketpulse_auth"] = _cookie("tom", expires - timedelta(seconds=5))
    other = AppTest.from_file(APP, default_timeout=30).run()
    other.run()
    assert [s.value for s in other.subheader] == ["Log in"]
