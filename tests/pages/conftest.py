"""AppTest harness: a fresh local store per test and an app opened as a logged-in user of a role."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.identity import passwords
from core.identity.user_records import count_users, get_user
from core.identity.users import create_first_admin, create_user
from storage import open_store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_hashes_and_clean_caches(monkeypatch):
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def app_store(tmp_path, monkeypatch):
    """The store the app under test uses (MARKETPULSE_STORE_URL points at it)."""
    url = str(tmp_path / "store")
    monkeypatch.setenv("MARKETPULSE_STORE_URL", url)
    monkeypatch.setenv("MARKETPULSE_AUTH_COOKIE_KEY", "k" * 40)
    return open_store(url)


def add_user(store, username: str, role: str, sectors: list[str] | None = None):
    """A ready-to-use account (no forced password change)."""
    if count_users(store) == 0 and role == "admin":
        create_first_admin(store, username, username.title(), f"{username}@desk.test", PASSWORD)
    else:
        if count_users(store) == 0:
            create_first_admin(store, "root", "Root", "root@desk.test", PASSWORD)
        create_user(store, SYSTEM, username, name=username.title(), email=f"{username}@desk.test",
                    role=role, sectors=sectors, password=PASSWORD, temporary=False)
    return get_user(store, username)


def open_app(store, username: str, role: str, *, sectors: list[str] | None = None,
             page: str | None = None) -> AppTest:
    """AppTest of app.py already logged in as `username` (created with `role` if missing)."""
    try:
        user = get_user(store, username)
    except Exception:
        user = add_user(store, username, role, sectors)
    at = AppTest.from_file(APP, default_timeout=30)
    now = datetime.now(UTC)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = user.username
    at.session_state["name"] = user.name
    at.session_state["roles"] = [user.role]
    at.session_state["logout"] = False
    at.session_state["auth.login_at"] = now
    at.session_state["auth.last_seen"] = now
    at.run()
    if page:
        at.switch_page(page).run()
    return at


@pytest.fixture
def app_as(app_store):
    def _open(username: str, role: str, **kwargs) -> AppTest:
        return open_app(app_store, username, role, **kwargs)

    return _open


def upload(at: AppTest, key: str, *files: tuple[str, bytes]) -> AppTest:
    """Put `files` (name, bytes) in the file uploader keyed `key` and run the app, as choosing them
    in the browser does; each file's MIME type follows its name. A page that empties its uploader
    by renewing the key (`key.<n>`) is matched by the key's start."""
    (uploader,) = [u for u in at.file_uploader if u.key == key or u.key.startswith(f"{key}.")]
    chosen = [(name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
              for name, data in files]
    at = uploader.set_value(chosen).run()
    assert not at.exception
    return at


def mounts_at(widget) -> Any:
    """What a browser shows for the widget when this run's element is the first of it it gets (the
    run that set its value was superseded before the browser got it): the value the run sends
    along, else the widget's default. Choices read as their labels, a date input as its days."""
    proto = widget.proto
    fields = {f.name for f in proto.DESCRIPTOR.fields}
    if "raw_values" in fields:  # multiselect
        return list(proto.raw_values) if proto.set_value else [proto.options[i]
                                                               for i in proto.default]
    if "raw_value" in fields:  # selectbox, radio
        if proto.set_value:
            return proto.raw_value
        return proto.options[proto.default] if proto.HasField("default") else None
    if proto.set_value:
        value = proto.value
    elif proto.DESCRIPTOR.fields_by_name["default"].has_presence \
            and not proto.HasField("default"):
        return None
    else:
        value = proto.default
    return value if isinstance(value, str | bool | int | float) else list(value)
