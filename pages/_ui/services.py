"""Composition root of the UI process: settings and the store, created once per server process."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.access import Actor
from core.clock import utc_now
from core.config import (
    SECRETS_FILE_ENV,
    Settings,
    load_settings,
    read_secrets_file,
    secrets_path,
    store_options,
)
from core.errors import MarketPulseError, NotFound
from core.identity.column_profiles import load_column_profiles
from core.identity.login import session_is_valid
from core.identity.login_key import ensure_cookie_key, forget_stored_cookie_key
from core.identity.user_records import User, get_user
from core.ingest.safe_read import warm as warm_reader
from pages._ui.markdown import escape_markdown
from pages._ui.navigation import through_the_login_gate
from storage import Store, StoreError, open_store

log = logging.getLogger(__name__)


def _secrets() -> dict:
    if os.environ.get(SECRETS_FILE_ENV):  # st.secrets reads only .streamlit/secrets.toml
        return read_secrets_file()
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:
        return {}
    except Exception:  # no secrets file: Streamlit raises its own parse/location errors
        return {}


@st.cache_resource(show_spinner=False)
def _settings_and_store() -> tuple[Settings, Store]:
    # The cookie key is generated into the secrets file on first run; st.secrets was read before
    # that, so this process takes the key from ensure_cookie_key, not from st.secrets.
    settings = ensure_cookie_key(load_settings(_secrets(), os.environ), secrets_path())
    store = open_store(settings["store.url"], store_options(settings))
    forget_stored_cookie_key(store)
    warm_reader()  # the first upload does not wait for the reading child's server to start
    return settings, store


def settings() -> Settings:
    return _settings_and_store()[0]


def store() -> Store:
    return _settings_and_store()[1]


@contextmanager
def error_boundary(action: str = "") -> Iterator[None]:
    """Show expected failures as a friendly st.error; log the traceback."""
    try:
        yield
    except MarketPulseError as exc:
        st.error(escape_markdown(f"{action + ': ' if action else ''}{exc}"))  # names files, values
    except StoreError as exc:
        log.exception("store error")
        st.error(f"The store could not be used ({escape_markdown(exc)}). Try again; if it "
                 "persists, ask an admin.")



USER_KEY = "auth.user"
# the login gate's session keys
LOGIN_AT, LAST_SEEN, COOKIE_EXPIRES = "auth.login_at", "auth.last_seen", "auth.cookie_expires"


def remember_user(user: User) -> None:
    """Called by app.py after the login gate, once per run (role changes apply at once)."""
    st.session_state[USER_KEY] = user


def current_user() -> User:
    """The session's user as the store has them now. A page file can run without app.py (and
    its login gate): Streamlit serves pages/ by URL in the first run of a server process, and
    AppTest reruns a page that way; such a run goes through the gate at the page's address. The
    user is read again here; a disabled, deleted or ended session goes through the gate too."""
    remembered = st.session_state.get(USER_KEY)
    if remembered is None:
        through_the_login_gate()
    now = utc_now()
    try:
        user = get_user(store(), remembered.username)
    except NotFound:
        user = None
    login_at = st.session_state.get(LOGIN_AT) or now
    last_seen = st.session_state.get(LAST_SEEN) or now
    if user is None or not session_is_valid(
            user, login_at, last_seen, settings=settings(), now=now,
            cookie_expires=st.session_state.get(COOKIE_EXPIRES)):
        st.switch_page("app.py")  # the gate signs the session out and says why
    st.session_state[LAST_SEEN] = now
    return user


def current_actor() -> Actor:
    """The logged-in user as core sees them: role, allowed sectors and column profile."""
    return current_user().actor(load_column_profiles(store()))
