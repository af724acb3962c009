"""The login gate: first-admin set-up, login with lockout, cookie re-login, idle expiry, forced
password change, forgot password, self-registration and logout. Core decides; this only renders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st
import streamlit_authenticator as stauth

from core.alerts import email as notify
from core.clock import utc_now
from core.config import Settings
from core.errors import MarketPulseError, NotFound
from core.identity.login import (
    authenticate,
    change_own_password,
    cookie_expiry_trusted,
    get_self_registration,
    issue_reset_token,
    login_cookie_revoked,
    record_logout,
    redeem_reset_token,
    register_user,
    session_is_valid,
)
from core.identity.login_key import cookie_key
from core.identity.user_records import User, count_users, get_user
from core.identity.users import create_first_admin, credentials_for_authenticator
from pages._ui.markdown import escape_markdown
from pages._ui.navigation import stand_ins
from pages._ui.services import COOKIE_EXPIRES, LAST_SEEN, LOGIN_AT, error_boundary
from storage import Store

COOKIE_NAME = "marketpulse_auth"
NOTICE = "auth.notice"


def _authenticator(store: Store, settings: Settings) -> stauth.Authenticate:
    return stauth.Authenticate(
        credentials_for_authenticator(store), COOKIE_NAME, cookie_key(settings),
        settings["auth.session_hours"] / 24, auto_hash=False, login_sleep_time=0,
    )


def _sign_in(auth: stauth.Authenticate, user: User) -> None:
    """Mark the session logged in (the library's keys) and set the re-login cookie."""
    st.session_state.update({
        "authentication_status": True, "username": user.username, "name": user.name,
        "email": user.email, "roles": [user.role], "logout": False,
        LOGIN_AT: utc_now(), LAST_SEEN: utc_now(),
    })
    # No st.rerun() here: the cookie component must reach the browser first (STACK.md §3).
    auth.cookie_controller.set_cookie()
    st.session_state[COOKIE_EXPIRES] = auth.cookie_controller.cookie_model.exp_date


def _sign_out(store: Store, auth: stauth.Authenticate, notice: str = "") -> None:
    username = st.session_state.get("username")
    auth.logout(location="unrendered")
    if username:
        record_logout(store, username, cookie_expires=st.session_state.get(COOKIE_EXPIRES))
    for key in (LOGIN_AT, LAST_SEEN, COOKIE_EXPIRES):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[NOTICE] = notice


def _cookie_expires(auth: stauth.Authenticate) -> Any:
    """The cookie's exp_date as signed (maybe not a number: cookie_expiry_trusted decides)."""
    token = auth.cookie_controller.cookie_model.token or {}
    return token.get("exp_date") if isinstance(token, dict) else None


def _cookie_login_time(expires: float, settings: Settings) -> datetime:
    """When the cookie was issued: its expiry minus its lifetime (a cookie holds no login time)."""
    lifetime = timedelta(hours=settings["auth.session_hours"])
    issued = datetime.fromtimestamp(float(expires), UTC) - lifetime
    return min(issued, utc_now())


def _signed_out() -> None:
    """The only page while nobody is logged in: the login screens render above it."""


def _stop_before_the_pages() -> None:
    """End this run with a hidden navigation of empty stand-ins at the pages' addresses (a shared
    link keeps its page and parameters through the login). Without any st.navigation call
    Streamlit would fall back to listing every file in pages/ and serving it by URL."""
    st.navigation(stand_ins(_signed_out), position="hidden").run()
    st.stop()


class _LazyAuthenticator:
    """The run's authenticator, made on first use; `rendered` says whether this run made it (and
    so rendered its cookie component)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store, self._settings = store, settings
        self._made: stauth.Authenticate | None = None

    def __call__(self) -> stauth.Authenticate:
        if self._made is None:
            self._made = _authenticator(self._store, self._settings)
        return self._made

    @property
    def rendered(self) -> bool:
        return self._made is not None


def _signing_in() -> None:
    """End a run that rendered the cookie component before the pages. The component's answer
    reruns the script once it has read or written the cookie; a rerun asked for that way carries
    the page the browser showed when it asked, so a click on a page link landing in between was
    undone (the link's page showed for a moment, then the previous page came back). The pages
    therefore appear only in the rerun the component asks for, when nothing can be clicked yet."""
    st.caption("Signing you in…")
    st.button("Continue", key="auth.continue", help="If the app does not open by itself")
    _stop_before_the_pages()


def require_login(store: Store, settings: Settings) -> User:
    """Return the logged-in user, or render the login screens and stop the script."""
    if count_users(store) == 0:
        _first_admin(store)
        _stop_before_the_pages()
    if st.query_params.get("reset"):
        _redeem_reset(store)
        _stop_before_the_pages()
    # The authenticator renders a cookie component, and each of its renders costs the browser a
    # rerun (a click landing during one was lost): it is made only when a cookie is read, set or
    # deleted, never on the runs of a logged-in user.
    authenticator = _LazyAuthenticator(store, settings)
    if not st.session_state.get("authentication_status"):
        auth = authenticator()
        auth.login(location="unrendered")  # re-login from a valid cookie, if any
        if st.session_state.get("authentication_status"):
            expires = _cookie_expires(auth)
            if not cookie_expiry_trusted(expires, settings=settings, now=utc_now()):
                auth.logout(location="unrendered")  # outlives any session this server grants
            elif login_cookie_revoked(store, st.session_state["username"], expires):
                auth.logout(location="unrendered")  # a logged-out cookie the browser kept
            else:
                st.session_state[LOGIN_AT] = _cookie_login_time(expires, settings)
                st.session_state[LAST_SEEN] = utc_now()
                st.session_state[COOKIE_EXPIRES] = expires
    if not st.session_state.get("authentication_status") and not _login_screen(
        store, settings, authenticator()
    ):
        _stop_before_the_pages()
    try:
        user = get_user(store, st.session_state["username"])
    except NotFound:
        _sign_out(store, authenticator(), "Your account no longer exists.")
        st.rerun()
    now = utc_now()
    login_at = st.session_state.get(LOGIN_AT) or now
    last_seen = st.session_state.get(LAST_SEEN) or now
    if not session_is_valid(user, login_at, last_seen, settings=settings, now=now,
                            cookie_expires=st.session_state.get(COOKIE_EXPIRES)):
        _sign_out(store, authenticator(), "Your session has ended (idle too long, password "
                                          "changed, or account disabled). Please log in again.")
        # Same run: the cookie deletion must reach the browser.
        _login_screen(store, settings, authenticator())
        _stop_before_the_pages()
    st.session_state[LAST_SEEN] = now
    if authenticator.rendered:
        _signing_in()  # before any form too: its rerun would drop what is typed or clicked
    if user.must_change_password:
        _forced_password_change(store, user)
        _stop_before_the_pages()
    with st.sidebar:
        st.markdown(f"**{escape_markdown(user.name or user.username)}**  \n{user.username} · "
                    f"{user.role}")
        if st.button("Log out", key="logout_btn"):
            _sign_out(store, authenticator(), "You have logged out.")
            # No rerun: the cookie deletion must reach the browser in this run.
            _login_screen(store, settings, authenticator())
            _stop_before_the_pages()
    return user


def _first_admin(store: Store) -> None:
    st.title("Welcome to MarketPulse")
    st.info("No users exist yet. Create the first admin; there are no default passwords.")
    with st.form("auth.first_admin"):
        username = st.text_input("Username", key="auth.first.username")
        name = st.text_input("Full name", key="auth.first.name")
        email = st.text_input("Email", key="auth.first.email")
        password = st.text_input("Password (at least 12 characters)", type="password",
                                 key="auth.first.password")
        again = st.text_input("Password again", type="password", key="auth.first.password2")
        submitted = st.form_submit_button("Create the first admin", type="primary")
    if submitted:
        if password != again:
            st.error("The two passwords differ.")
            return
        with error_boundary("Creating the admin"):
            create_first_admin(store, username, name, email, password)
            st.success(f"Admin {username.strip().lower()} created. Log in below.")
            st.rerun()


def _login_screen(store: Store, settings: Settings, auth: stauth.Authenticate) -> bool:
    """The login form (plus forgot-password and sign-up); True once the user has logged in."""
    title = st.empty()
    title.title("MarketPulse")
    notice = st.session_state.pop(NOTICE, "")
    if notice:
        st.info(notice)
    box = st.empty()
    with box.container(), st.form("auth.login"):
        st.subheader("Log in")
        username = st.text_input("Username", key="auth.username", autocomplete="username")
        password = st.text_input("Password", type="password", key="auth.password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Login", type="primary")
    if submitted:
        result = authenticate(store, username, password, settings=settings)
        if result.ok and result.user is not None:
            title.empty()
            box.empty()
            _sign_in(auth, result.user)
            return True
        st.error(result.message)
    _forgot_password(store, settings)
    if get_self_registration(store):
        _self_registration(store)
    return False


def _forgot_password(store: Store, settings: Settings) -> None:
    with st.expander("Forgot your password?"):
        smtp = notify.load_smtp_config(store)
        if smtp is None:
            st.write("Email is not configured here: ask an admin to reset your password.")
            return
        who = st.text_input("Username or email", key="auth.forgot.who")
        if st.button("Email me a reset link", key="auth.forgot.send"):
            issued = issue_reset_token(store, who)
            if issued is not None:
                user, token = issued
                link = f"{settings['app.base_url'].rstrip('/')}/?reset={token}"
                try:
                    notify.send_email(
                        smtp, settings, [user.email], "MarketPulse password reset",
                        f"Hello {user.name or user.username},\n\nOpen this link within 30 minutes"
                        f" to choose a new password:\n{link}\n\nIf you did not ask, ignore this.")
                except MarketPulseError as exc:
                    st.error(str(exc))
                    return
            st.success("If that account exists and has an email address, a link is on its way.")


def _redeem_reset(store: Store) -> None:
    st.title("Choose a new password")
    with st.form("auth.reset"):
        new = st.text_input("New password", type="password", key="auth.reset.new")
        again = st.text_input("New password again", type="password", key="auth.reset.new2")
        submitted = st.form_submit_button("Set password", type="primary")
    if submitted:
        if new != again:
            st.error("The two passwords differ.")
            return
        with error_boundary("Resetting the password"):
            user = redeem_reset_token(store, st.query_params["reset"], new)
            st.query_params.clear()
            st.session_state[NOTICE] = f"Password changed for {user.username}. Log in below."
            st.rerun()


def _self_registration(store: Store) -> None:
    with st.expander("Request an account"), st.form("auth.register"):
        username = st.text_input("Username", key="auth.register.username")
        name = st.text_input("Full name", key="auth.register.name")
        email = st.text_input("Email", key="auth.register.email")
        password = st.text_input("Password", type="password", key="auth.register.password")
        if st.form_submit_button("Request account"):
            with error_boundary("Registering"):
                register_user(store, username, name, email, password)
                st.success("Thanks. An admin will approve your account; you start as a viewer.")


def _forced_password_change(store: Store, user: User) -> None:
    st.title("Change your password")
    st.info("Your password was set by an admin. Choose your own before you continue.")
    with st.form("auth.forced_change"):
        old = st.text_input("Temporary password", type="password", key="auth.change.old")
        new = st.text_input("New password (at least 12 characters)", type="password",
                            key="auth.change.new")
        again = st.text_input("New password again", type="password", key="auth.change.new2")
        submitted = st.form_submit_button("Change password", type="primary")
    if submitted:
        if new != again:
            st.error("The two passwords differ.")
            return
        with error_boundary("Changing the password"):
            # This session stays, its re-login cookie too (F5 keeps the user in); the others
            # end. (No new cookie: writing one needs a component whose answer reruns the page.)
            change_own_password(store, user.actor(), old, new,
                                keep_cookie=st.session_state.get(COOKIE_EXPIRES))
            st.session_state[LOGIN_AT] = utc_now()
            st.rerun()
