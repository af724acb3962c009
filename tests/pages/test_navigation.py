"""app.py: the pages each role may open, the first-run admin form, and the real login form."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.identity.user_records import count_users, get_user
from tests.pages.conftest import APP, PASSWORD, add_user

ROOT = Path(APP).parent
# page file → (title, url path) as app.py registers them; the Dashboard is the default page ("")
ALL_PAGES = {
    "pages/dashboard.py": ("Dashboard", ""),
    "pages/search.py": ("Search", "search"),
    "pages/security.py": ("Security", "security"),
    "pages/manual_color.py": ("Manual Color", "manual_color"),
    "pages/automation.py": ("Automation", "automation"),
    "pages/rules.py": ("Rules", "rules"),
    "pages/settings.py": ("Settings", "settings"),
    "pages/audit.py": ("Audit", "audit"),
    "pages/backups.py": ("Backups", "backups"),
    "pages/account.py": ("Account", "account"),
}
WRONG = "Username or password is incorrect"
READERS = ["pages/dashboard.py", "pages/search.py", "pages/security.py"]  # every role


def _registered(at: AppTest) -> dict[str, tuple[str, str]]:
    """Page file → (title, url path) of the pages st.navigation registered in the last run.

    AppTest has no public accessor for them; this reads the registry switch_page() resolves
    against (streamlit is pinned in requirements.txt)."""
    return {Path(info["script_path"]).relative_to(ROOT).as_posix():
            (info["page_name"], info["url_pathname"])
            for info in at._registered_pages.values()}


def _switchable(at: AppTest) -> list[str]:
    """The page files switch_page accepts; the others raise "Could not find a navigation page"."""
    ok = []
    for page in ALL_PAGES:
        try:
            at.switch_page(page)
        except ValueError as exc:
            if "Could not find a navigation page" not in str(exc):
                raise
        else:
            ok.append(page)
    return ok


@pytest.mark.parametrize(("role", "pages"), [
    ("viewer", [*READERS, "pages/account.py"]),
    ("analyst", [*READERS, "pages/manual_color.py", "pages/account.py"]),
    ("admin", [*READERS, "pages/manual_color.py", "pages/automation.py",
               "pages/rules.py", "pages/settings.py", "pages/audit.py", "pages/backups.py",
               "pages/account.py"]),
])
def test_each_role_reaches_exactly_its_pages(app_as, role, pages):
    at = app_as(role, role)
    assert not at.exception
    assert [t.value for t in at.title] == ["Dashboard"]  # the default page
    assert _registered(at) == {page: ALL_PAGES[page] for page in pages}
    assert _switchable(at) == pages
    # Each one renders for the role (the role and entitlements come from the session).
    down = "The scheduler is not running"  # Automation's banner: no scheduler runs in tests
    for page in pages:
        at.switch_page(page).run()
        assert not at.exception, page
        assert [t.value for t in at.title] == [ALL_PAGES[page][0]], page
        assert [e.value for e in at.error if not e.value.startswith(down)] == [], page


# -- first run ------------------------------------------------------------------------------------
def _fresh_app() -> AppTest:
    """app.py as a browser that has not logged in sees it."""
    return AppTest.from_file(APP, default_timeout=30).run()


def _first_admin_form(at: AppTest) -> list[str]:
    return [w.label for w in at.text_input] + [b.label for b in at.button]


def test_an_empty_store_shows_only_the_first_admin_form(app_store):
    at = _fresh_app()
    assert not at.exception
    assert [t.value for t in at.title] == ["Welcome to MarketPulse"]
    assert _first_admin_form(at) == ["Username", "Full name", "Email",
                                     "Password (at least 12 characters)", "Password again",
                                     "Create the first admin"]
    assert [b.key for b in at.sidebar.button] == []  # nobody to log out
    assert count_users(app_store) == 0


@pytest.mark.parametrize("users", [False, True], ids=["no users", "logged out"])
def test_no_page_can_be_opened_before_login(app_store, users):
    """Before login only a hidden, empty navigation exists: no file in pages/ is registered (else
    Streamlit would serve them by URL in its pages/-directory mode)."""
    if users:
        add_user(app_store, "ana", "analyst")
    at = _fresh_app()
    assert not at.exception
    assert _switchable(at) == []


def test_before_login_every_address_holds_an_empty_stand_in(app_store):
    """A shared link (/security?cusip=…) keeps its address through the login screen: Streamlit
    names a page by its address, so the run after login opens the page the link named."""
    add_user(app_store, "ana", "analyst")
    at = _fresh_app()
    stand_ins = {info["url_pathname"]: info["page_name"]
                 for info in at._registered_pages.values()}
    addresses = {"", *(Path(page).stem for page in ALL_PAGES)}  # the root, and /dashboard too
    assert stand_ins == {url: "MarketPulse" for url in addresses}
    assert [t.value for t in at.title] == ["MarketPulse"]  # the login screen, nothing else


def _fill_first_admin(at: AppTest, password: str, again: str) -> AppTest:
    at.text_input(key="auth.first.username").input("Boss")
    at.text_input(key="auth.first.name").input("Big Boss")
    at.text_input(key="auth.first.email").input("boss@desk.test")
    at.text_input(key="auth.first.password").input(password)
    at.text_input(key="auth.first.password2").input(again)
    next(b for b in at.button if b.label == "Create the first admin").click().run()
    assert not at.exception
    return at


def test_the_first_admin_is_created_through_the_form_then_login_is_shown(app_store):
    at = _fill_first_admin(_fresh_app(), PASSWORD, PASSWORD)
    assert [e.value for e in at.error] == []
    boss = get_user(app_store, "boss")
    assert (boss.username, boss.name, boss.email, boss.role) == (
        "boss", "Big Boss", "boss@desk.test", "admin")
    assert [t.value for t in at.title] == ["MarketPulse"]
    assert [s.value for s in at.subheader] == ["Log in"]
    assert [w.key for w in at.text_input] == ["auth.username", "auth.password"]

    _login(at, "boss", PASSWORD)  # and the new admin can log in at once
    assert [t.value for t in at.title] == ["Dashboard"]


def test_first_admin_passwords_must_match(app_store):
    at = _fill_first_admin(_fresh_app(), PASSWORD, PASSWORD + "!")
    assert [e.value for e in at.error] == ["The two passwords differ."]
    assert count_users(app_store) == 0
    assert [t.value for t in at.title] == ["Welcome to MarketPulse"]


# -- the login form -------------------------------------------------------------------------------
def _login(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="auth.username").input(username)
    at.text_input(key="auth.password").input(password)
    next(b for b in at.button if b.label == "Login").click().run()
    assert not at.exception
    if at.session_state["authentication_status"]:
        # The login run renders the cookie component and no page; the component's answer reruns
        # the script (in AppTest components never answer: the test reruns in their place).
        assert [c.value for c in at.caption] == ["Signing you in…"]
        assert [t.value for t in at.title] == []
        at.run()
        assert not at.exception
    return at


def _login_screen(store) -> AppTest:
    add_user(store, "ana", "analyst")
    at = _fresh_app()
    assert not at.exception
    assert [t.value for t in at.title] == ["MarketPulse"]
    return at


def test_the_right_password_opens_the_dashboard(app_store):
    at = _login(_login_screen(app_store), "ana", PASSWORD)
    assert [e.value for e in at.error] == []
    assert [t.value for t in at.title] == ["Dashboard"]
    assert at.session_state["username"] == "ana"
    assert at.session_state["authentication_status"] is True
    pages = [*READERS, "pages/manual_color.py", "pages/account.py"]
    assert _registered(at) == {page: ALL_PAGES[page] for page in pages}
    assert _switchable(at) == pages
    # Each one renders for the role (the role and entitlements come from the session).
    down = "The scheduler is not running"  # Automation's banner: no scheduler runs in tests
    for page in pages:
        at.switch_page(page).run()
        assert not at.exception, page
        assert [t.value for t in at.title] == [ALL_PAGES[page][0]], page
        assert [e.value for e in at.error if not e.value.startswith(down)] == [], page


def test_a_wrong_password_shows_an_error(app_store):
    at = _login(_login_screen(app_store), "ana", "not the password")
    assert [e.value for e in at.error] == [WRONG]
    assert [t.value for t in at.title] == ["MarketPulse"]
    assert not at.session_state["authentication_status"]


def test_an_unknown_user_reads_like_a_wrong_password(app_store):
    at = _login(_login_screen(app_store), "nobody", PASSWORD)
    assert [e.value for e in at.error] == [WRONG]


def test_five_wrong_passwords_lock_the_account(app_store):
    at = _login_screen(app_store)
    errors = [[e.value for e in _login(at, "ana", f"wrong password {i}").error] for i in range(5)]
    locked_until = get_user(app_store, "ana").locked_until
    locked = ("Too many failed logins: this account is locked until "
              f"{locked_until:%Y-%m-%d %H:%M} UTC")
    assert errors == [[WRONG]] * 4 + [[locked]]  # the fifth failure locks

    _login(at, "ana", PASSWORD)  # the sixth, with the right password, is refused too
    assert [e.value for e in at.error] == [locked]
    assert [t.value for t in at.title] == ["MarketPulse"]
    assert get_user(app_store, "ana").locked_until == locked_until
