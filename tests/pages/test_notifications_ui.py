"""Notification settings (render_notification_settings, for the Settings page) and the sidebar bell
(render_bell, for app.py), each run in AppTest through a small entry function."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from streamlit.testing.v1 import AppTest

from core.access import Actor
from core.alerts.bell import notify_users, unread_count
from core.alerts.email import SmtpConfig, load_smtp_config, save_smtp_config
from core.alerts.templates import (
    VARIABLES,
    EmailSettings,
    load_email_settings,
    load_send_log,
    save_email_settings,
)
from core.alerts.webhooks import WebhookSettings, load_webhook_settings, save_webhook_settings
from core.compliance.revert import recent_changes
from tests.pages.conftest import add_user, mounts_at

K = "settings.notify_"
NOW = datetime(2026, 3, 13, 4, 0, tzinfo=UTC)
KNOWN = ", ".join(VARIABLES)


def _key(at: AppTest, form: str, field: str) -> str:
    """The key of a notification form's widget (form: smtp, email or hooks): drawn afresh, under
    a new key generation, each time the form is filled from the store."""
    return f"{K}{form}.{at.session_state[f'{K}{form}_generation_state']}.{field}"


def _settings_ui() -> None:
    from core.access import Actor
    from pages._ui.notifications_admin import render_notification_settings
    from pages._ui.services import settings, store

    render_notification_settings(store(), settings(), Actor("admin", "admin"))


def _bell_ui() -> None:
    from core.identity.user_records import get_user
    from pages._ui.bell import render_bell
    from pages._ui.services import store

    render_bell(store(), get_user(store(), "admin"))


def _open(script) -> AppTest:
    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def _popover_label(at: AppTest) -> str:
    """The label of the one popover in the sidebar (it sits inside the bell's fragment)."""
    def walk(node):
        if getattr(node, "type", None) == "popover":
            yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    (popover,) = walk(at.sidebar)
    return popover.proto.popover.label


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _save_smtp(at: AppTest, port: int) -> AppTest:
    at.text_input(key=_key(at, "smtp", "host")).input("127.0.0.1")
    at.number_input(key=_key(at, "smtp", "port")).set_value(port)
    at.selectbox(key=_key(at, "smtp", "security")).select("none")
    at.text_input(key=_key(at, "smtp", "sender")).input("marketpulse@desk.test")
    at.button(key=f"{K}smtp_save").click().run()
    assert _errors(at) == []
    return at


def test_a_reverted_smtp_change_shows_in_the_form_again(app_store):
    at = _save_smtp(_save_smtp(_open(_settings_ui), 2525), 2526)
    changed, created = recent_changes(app_store, "notifications")
    assert (changed.summary, created.summary) == (
        "changed the SMTP server (port)", "set up the SMTP server")
    at.button(key=f"{K}history.revert_{changed.event_id}").click().run()
    assert _errors(at) == []
    assert load_smtp_config(app_store).port == 2525
    assert at.number_input(key=_key(at, "smtp", "port")).value == 2525
    assert "port: 2525 → 2526" in [t.value for t in at.text]


# -- run emails ----------------------------------------------------------------------------------
def test_admin_saves_recipients_templates_and_switches(app_store):
    at = _open(_settings_ui)
    at.text_input(key=_key(at, "email", "to")).input("desk@bank.test; risk@bank.test")
    at.text_input(key=_key(at, "email", "bcc")).input("audit@bank.test")
    at.text_input(key=_key(at, "email", "subject")).input(
        "Colors {{date}}: run {{run_id}} {{status}}")
    at.text_area(key=_key(at, "email", "body")).input(
        "{{published}} published, {{excluded}} excluded.")
    at.checkbox(key=_key(at, "email", "on_success")).uncheck()
    at.checkbox(key=_key(at, "email", "attach_excluded")).check()
    at.button(key=f"{K}email_save").click().run()

    assert _errors(at) == []
    assert at.success[0].value == "Saved the run email settings."
    assert load_email_settings(app_store) == EmailSettings(
        to=["desk@bank.test", "risk@bank.test"], cc=[], bcc=["audit@bank.test"],
        subject="Colors {{date}}: run {{run_id}} {{status}}",
        body="{{published}} published, {{excluded}} excluded.", on_success=False,
        on_failure=True, after_manual_save=False, attach_output=True, attach_excluded=True,
        max_attachment_mb=10.0)
    assert at.text_input(key=_key(at, "email", "to")).value == "desk@bank.test, risk@bank.test"


def test_an_unknown_template_variable_shows_the_problem_and_is_not_saved(app_store):
    at = _open(_settings_ui)
    at.text_area(key=_key(at, "email", "body")).input("Run {{run_id}} {{bogus}}").run()
    problem = f"unknown variable {{{{bogus}}}} (use one of {KNOWN})"
    assert [w.value for w in at.warning] == [f"Body: {problem}"]
    at.button(key=f"{K}email_save").click().run()
    assert _errors(at) == [f"Saving the run email settings: body: {problem}"]
    assert load_email_settings(app_store) == EmailSettings()


def test_a_bad_address_names_the_field(app_store):
    at = _open(_settings_ui)
    at.text_input(key=_key(at, "email", "cc")).input("not-an-address")
    at.button(key=f"{K}email_save").click().run()
    assert _errors(at) == [
        "Saving the run email settings: cc: 'not-an-address' is not an email address"]


# -- SMTP and the test email ---------------------------------------------------------------------
def test_the_test_email_reaches_the_smtp_server_with_the_subject(app_store, smtp_server):
    port, inbox = smtp_server
    at = _save_smtp(_open(_settings_ui), port)
    assert at.success[0].value == "Saved the SMTP server 127.0.0.1."
    assert load_smtp_config(app_store) == SmtpConfig(
        host="127.0.0.1", port=port, security="none", username="",
        sender="marketpulse@desk.test")

    at.text_input(key=f"{K}test_to").input("ops@desk.test")
    at.button(key=f"{K}test_send").click().run()
    assert _errors(at) == []
    assert at.success[0].value == "Sent a test email to ops@desk.test."
    ((recipients, message),) = inbox.messages
    assert recipients == ["ops@desk.test"]
    assert message["Subject"] == "[test] MarketPulse example job run 123: success (100 published)"
    assert message["From"] == "marketpulse@desk.test"
    log = load_send_log(app_store)
    assert log[["CHANNEL", "EVENT", "STATUS", "TO"]].values.tolist() == [
        ["email", "test", "ok", "ops@desk.test"]]
    at.run()
    shown = next(d.value for d in at.dataframe if "SUBJECT" in d.value.columns)
    assert shown["SUBJECT"].tolist() == [message["Subject"]]


def test_a_test_email_without_a_server_explains(app_store):
    at = _open(_settings_ui)
    at.text_input(key=f"{K}test_to").input("ops@desk.test")
    at.button(key=f"{K}test_send").click().run()
    assert _errors(at) == ["Sending the test email: smtp: save the SMTP server settings first"]


@pytest.mark.parametrize(("password", "says"), [
    ("s3cret", "MARKETPULSE_SMTP_PASSWORD is set (or smtp.password in secrets): it is used to "
               "log in and never shown."),
    ("", "MARKETPULSE_SMTP_PASSWORD is not set: the password only comes from the environment "
         "(or smtp.password in .streamlit/secrets.toml), never this page.")])
def test_the_page_says_whether_the_smtp_password_is_set(app_store, monkeypatch, password, says):
    if password:
        monkeypatch.setenv("MARKETPULSE_SMTP_PASSWORD", password)
    at = _open(_settings_ui)
    assert [c.value for c in at.caption if "MARKETPULSE_SMTP_PASSWORD" in c.value] == [says]
    assert [t.value for t in at.text_input if t.value == "s3cret"] == []


def test_a_save_over_another_admins_change_is_refused_and_reload_shows_theirs(app_store):
    at = _open(_settings_ui)  # this admin loaded the form while nothing was stored
    save_smtp_config(app_store, Actor("eve", "admin"), SmtpConfig(
        host="smtp.eve.test", sender="eve@desk.test"), expected_version=None)
    at.text_input(key=_key(at, "smtp", "host")).input("smtp.mine.test")
    at.text_input(key=_key(at, "smtp", "sender")).input("me@desk.test")
    at.button(key=f"{K}smtp_save").click().run()
    [error] = _errors(at)
    assert error.startswith("Saving the SMTP server: the SMTP server changed meanwhile (by eve "
                            "at 20")
    assert error.endswith(" UTC): reload and apply your change again")
    assert load_smtp_config(app_store).host == "smtp.eve.test"  # eve's change is not lost
    at.button(key=f"{K}smtp_state_stale_reload").click().run()
    assert at.text_input(key=_key(at, "smtp", "host")).value == "smtp.eve.test"
    at.text_input(key=_key(at, "smtp", "host")).input("smtp.mine.test")
    at.button(key=f"{K}smtp_save").click().run()
    assert _errors(at) == []
    assert (load_smtp_config(app_store).host, load_smtp_config(app_store).sender) == (
        "smtp.mine.test", "eve@desk.test")


def _mounts(at: AppTest, form: str) -> dict[str, object]:
    """What a browser mounting the form from this run shows, by field."""
    prefix = _key(at, form, "")
    return {w.key.removeprefix(prefix): mounts_at(w)
            for kind in (at.text_input, at.text_area, at.number_input, at.selectbox, at.checkbox)
            for w in kind if w.key and w.key.startswith(prefix)}


def test_a_browser_that_missed_the_run_that_filled_the_forms_mounts_them_at_the_stored_values(
        app_store):
    """Under load the run that fills the forms from the store can be superseded before the
    browser gets it, and the browser mounts them from the next run. Each field must come with
    the stored value in that run too (it came at the widget's own default: no host, port 1, no
    recipients, switches off, webhook addresses empty, and a save sent those back: the webhooks
    were cleared)."""
    admin, url = Actor("admin", "admin"), "https://hooks.slack.test/services/T0/B0/abcd"
    save_smtp_config(app_store, admin, SmtpConfig(
        host="smtp.desk.test", port=2525, security="ssl", username="colors",
        sender="colors@desk.test"), expected_version=None)
    save_email_settings(app_store, admin, EmailSettings(
        to=["desk@bank.test"], subject="Run {{run_id}}", body="{{status}}", on_failure=False,
        attach_excluded=True, max_attachment_mb=5.0), expected_version=None)
    save_webhook_settings(app_store, admin, WebhookSettings(
        slack_url=url, teams_format="text", on_success=False, after_manual_save=True),
        expected_version=None)
    at = _open(_settings_ui).run()  # the run after the one that filled the forms
    assert _mounts(at, "smtp") == {"host": "smtp.desk.test", "port": 2525, "security": "SSL/TLS",
                                   "username": "colors", "sender": "colors@desk.test"}
    assert _mounts(at, "email") == {
        "to": "desk@bank.test", "cc": "", "bcc": "", "subject": "Run {{run_id}}",
        "body": "{{status}}", "on_success": True, "on_failure": False,
        "after_manual_save": False, "attach_output": True, "attach_excluded": True,
        "max_mb": 5.0}
    assert _mounts(at, "hooks") == {
        "slack_url": "https://hooks.slack.test/…abcd", "teams_url": "", "teams_format": "text",
        "on_success": False, "on_failure": True, "after_manual_save": True}
    at.checkbox(key=_key(at, "hooks", "on_failure")).uncheck()
    at.button(key=f"{K}hooks_save").click().run()
    assert _errors(at) == []
    assert load_webhook_settings(app_store) == WebhookSettings(
        slack_url=url, teams_format="text", on_success=False, on_failure=False,
        after_manual_save=True)


# -- webhooks ------------------------------------------------------------------------------------
@pytest.fixture
def hook_server():
    """A local HTTP server that records JSON POSTs; yields (url, bodies)."""
    bodies: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook/abcd", bodies
    server.shutdown()


def test_webhook_urls_are_stored_whole_shown_masked_and_tested(app_store, hook_server):
    url, bodies = hook_server
    at = _open(_settings_ui)
    at.text_input(key=_key(at, "hooks", "slack_url")).input(url)
    at.button(key=f"{K}hooks_save").click().run()
    assert _errors(at) == []
    assert load_webhook_settings(app_store).slack_url == url
    assert at.text_input(key=_key(at, "hooks", "slack_url")).value == "http://127.0.0.1/…abcd"

    at.checkbox(key=_key(at, "hooks", "on_success")).uncheck()
    at.button(key=f"{K}hooks_save").click().run()  # the masked address keeps the stored one
    stored = load_webhook_settings(app_store)
    assert (stored.slack_url, stored.on_success) == (url, False)

    at.button(key=f"{K}test_slack").click().run()
    assert _errors(at) == []
    assert at.success[0].value == "Posted a test message to Slack."
    assert bodies[0]["text"].startswith("*MarketPulse run 123 (test message): success*")
    at.button(key=f"{K}test_teams").click().run()
    assert _errors(at) == [
        "Sending a test to Teams: teams_url: save the Teams webhook address first"]


# -- the bell ------------------------------------------------------------------------------------
def test_the_bell_shows_the_unread_count_and_mark_all_read_clears_it(app_store):
    add_user(app_store, "admin", "admin")
    notify_users(app_store, ["admin"], "run_finished", "Run 3 (Morning) published 40 colors",
                 "12 parents, 2 excluded", NOW)
    notify_users(app_store, ["admin"], "run_failed", "Run 4 (Evening) failed", "inbox missing",
                 NOW.replace(hour=5))
    at = _open(_bell_ui)
    assert _popover_label(at) == "🔔 2"
    assert [m.value for m in at.sidebar.markdown] == [
        "🔵 **Run 4 (Evening) failed**", "🔵 **Run 3 (Morning) published 40 colors**"]
    assert [c.value for c in at.sidebar.caption] == [
        "inbox missing · 2026-03-13 05:00 UTC", "12 parents, 2 excluded · 2026-03-13 04:00 UTC"]

    at.sidebar.button(key="bell.mark_all_read").click().run()
    assert not at.exception
    assert unread_count(app_store, "admin") == 0
    assert _popover_label(at) == "🔔 0"
    assert [m.value for m in at.sidebar.markdown] == [
        "**Run 4 (Evening) failed**", "**Run 3 (Morning) published 40 colors**"]
    assert at.sidebar.button(key="bell.mark_all_read").disabled


def test_settings_warn_when_email_switches_are_on_without_a_server(app_as, app_store):
    at = app_as("root", "admin", page="pages/settings.py")
    assert [w.value for w in at.warning] == []
    save_email_settings(app_store, Actor("root", "admin"), EmailSettings(
        to=["desk@bank.test"], after_manual_save=True), expected_version=None)
    at.run()
    assert [w.value for w in at.warning] == [
        "Run emails are switched on (after automated runs that succeed; after automated runs "
        "that fail or are missed; after manual saves) but no SMTP server is set: no email is "
        "sent. Set them under Email & notifications."]
    save_smtp_config(app_store, Actor("root", "admin"), SmtpConfig(
        host="smtp.bank.test", sender="mp@bank.test"), expected_version=None)
    at.run()
    assert [w.value for w in at.warning] == []
