"""Forgot password: a single-use link sent by our own mail code to a loopback SMTP server."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from core.access import SYSTEM
from core.alerts.email import SmtpConfig, save_smtp_config
from core.config import load_settings
from core.identity.login import authenticate
from tests.pages.conftest import APP, add_user

NEW_PASSWORD = "a brand new passphrase"


def _login_screen() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    return at


def test_without_smtp_the_page_says_to_ask_an_admin(app_store):
    add_user(app_store, "admin", "admin")
    at = _login_screen()
    assert "ask an admin to reset your password" in at.expander[0].markdown[0].value


def test_reset_link_by_email_sets_a_new_password_once(app_store, smtp_server):
    port, inbox = smtp_server
    add_user(app_store, "admin", "admin")
    add_user(app_store, "ann", "analyst")
    save_smtp_config(app_store, SYSTEM, SmtpConfig(host="127.0.0.1", port=port, security="none",
                                                   sender="marketpulse@desk.test"),
                     expected_version=None)
    at = _login_screen()
    at.text_input(key="auth.forgot.who").input("ann")
    at.button(key="auth.forgot.send").click().run()
    assert at.success[0].value.startswith("If that account exists")
    [(recipients, message)] = inbox.messages
    assert recipients == ["ann@desk.test"]
    assert message["Subject"] == "MarketPulse password reset"
    assert message["From"] == "marketpulse@desk.test"
    token = re.search(r"\?reset=(\S+)", message.get_content()).group(1)

    for attempt in range(2):
        at = AppTest.from_file(APP, default_timeout=30)
        at.query_params["reset"] = token
        at.run()
        at.text_input(key="auth.reset.new").input(NEW_PASSWORD)
        at.text_input(key="auth.reset.new2").input(NEW_PASSWORD)
        at.button[0].click().run()
        if attempt == 0:
            assert not at.error
        else:
            assert "this reset link has expired or was already used" in at.error[0].value
    settings = load_settings({}, {})
    assert authenticate(app_store, "ann", NEW_PASSWORD, settings=settings).ok


def test_unknown_user_gets_the_same_answer_and_no_mail(app_store, smtp_server):
    port, inbox = smtp_server
    add_user(app_store, "admin", "admin")
    save_smtp_config(app_store, SYSTEM, SmtpConfig(host="127.0.0.1", port=port, security="none",
                                                   sender="marketpulse@desk.test"),
                     expected_version=None)
    at = _login_screen()
    at.text_input(key="auth.forgot.who").input("nobody")
    at.button(key="auth.forgot.send").click().run()
    assert at.success[0].value.startswith("If that account exists")
    assert inbox.messages == []
