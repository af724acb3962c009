"""The first run of a server process: Streamlit runs it in its old pages-folder mode (app.py has
pages/ beside it) until st.navigation is first called, with another page hash in the ids of the
elements app.py draws. The app draws them under the main script's hash, so the first visitor's
login form is the one every later run draws (what is typed into it is kept)."""

from __future__ import annotations

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest, app_test

from tests.pages.conftest import APP, PASSWORD, add_user


@pytest.fixture
def navigation_mode(monkeypatch):
    """AppTest runs as a server after its first run (navigation mode). AppTest otherwise starts
    every run in the pages-folder mode, as a server's first run: it resets the class's flag to
    None, and the folder beside app.py turns it on. Here the reset lands on a subclass."""

    class AfterTheFirstRun(PagesManager):
        pass

    monkeypatch.setattr(app_test, "PagesManager", AfterTheFirstRun)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)


def _login_form(at: AppTest) -> list[str]:
    """The ids of the login form's widgets, as the browser knows them."""
    return [at.text_input(key="auth.username").id, at.text_input(key="auth.password").id,
            next(b for b in at.button if b.label == "Login").id]


def test_the_login_form_is_the_same_in_a_server_s_first_run_and_in_later_runs(app_store,
                                                                              monkeypatch):
    add_user(app_store, "ada", "admin")
    first = AppTest.from_file(APP, default_timeout=30).run()
    assert PagesManager.uses_pages_directory is False  # the app's st.navigation left the mode
    with monkeypatch.context() as later:
        navigation_mode.__wrapped__(later)
        again = AppTest.from_file(APP, default_timeout=30).run()
        assert _login_form(again) == _login_form(first)
    first.text_input(key="auth.username").input("ada")
    first.text_input(key="auth.password").input(PASSWORD)
    next(b for b in first.button if b.label == "Login").click().run()
    first.run()  # the cookie component's answer (AppTest's components never answer)
    assert not first.exception
    assert [t.value for t in first.title] == ["Dashboard"]
