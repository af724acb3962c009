"""Notification settings (admins, on the Settings page): the SMTP server, run emails (recipients,
templates, switches), a test email, Slack/Teams webhooks and the send log. Core validates,
stores and logs; secrets (SMTP password, webhook overrides) only come from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from core.access import Actor
from core.alerts.email import (
    SECURITY,
    EmailSettings,
    SmtpConfig,
    get_email_settings,
    get_smtp_config,
    load_send_log,
    parse_addresses,
    save_email_settings,
    save_smtp_config,
    send_test_email,
    template_problems,
)
from core.alerts.templates import VARIABLES
from core.alerts.webhooks import (
    SERVICES,
    SETTING_KEYS,
    TEAMS_FORMATS,
    WebhookSettings,
    get_webhook_settings,
    save_webhook_settings,
    send_test_webhook,
)
from core.config import Settings
from core.errors import ChangedMeanwhile
from pages._ui.change_history import render_change_history
from pages._ui.services import error_boundary
from storage import Store

K = "settings.notify_"  # widget key prefix
FLASH = f"{K}flash_state"
FORMS = ("smtp", "email", "hooks")  # each form's marker: f"{K}<form>_for_state"
SWITCHES = {"on_success": "Email after automated runs that succeed",
            "on_failure": "Email after automated runs that fail or are missed",
            "after_manual_save": "Email after manual saves",
            "attach_output": "Attach the output workbook",
            "attach_excluded": "Attach the excluded rows"}
HOOK_SWITCHES = {"on_success": "Post runs that succeed", "on_failure": "Post runs that fail",
                 "after_manual_save": "Post manual saves"}


def _load_once(marker: str, values: dict[str, Any]) -> None:
    """Fill the widgets from the store once, again after a save (which drops the marker), and
    after a visit to another page (Streamlit forgets the values of widgets it did not draw)."""
    if marker not in st.session_state or any(key not in st.session_state for key in values):
        st.session_state.update({**values, marker: True})


def _saved(marker: str, text: str) -> None:
    st.session_state.pop(marker, None)
    st.session_state.pop(f"{marker}_stale", None)
    st.session_state.setdefault(FLASH, []).append(text)
    st.rerun()


@contextmanager
def _refused_if_stale(marker: str) -> Iterator[None]:
    """Remember that a save was refused because another admin saved first (the form shows the
    refusal and offers to reload)."""
    try:
        yield
    except ChangedMeanwhile:
        st.session_state[f"{marker}_stale"] = True
        raise


def _offer_reload(marker: str, what: str) -> None:
    """After a refused save: load the stored values (and their version) into the form again."""
    stale = f"{marker}_stale"
    if st.session_state.get(stale) and st.button(f"Reload {what}", key=f"{stale}_reload"):
        st.session_state.pop(stale, None)
        st.session_state.pop(marker, None)
        st.rerun()


def render_notification_settings(store: Store, settings: Settings, actor: Actor) -> None:
    """Every notification setting on one screen, each part with its own Save."""
    for text in st.session_state.pop(FLASH, []):
        st.success(text)
    st.subheader("SMTP server")
    with error_boundary("Loading the SMTP server"):
        _smtp(store, settings, actor)
    st.subheader("Run emails")
    with error_boundary("Loading the run email settings"):
        _run_emails(store, actor)
    with error_boundary("Loading the test email"):
        _test_email(store, settings, actor)
    st.subheader("Slack and Teams")
    with error_boundary("Loading the webhooks"):
        _webhooks(store, settings, actor)
    st.subheader("Last changes")
    with error_boundary("Loading the notification changes"):
        render_change_history(store, actor, "notifications", f"{K}history",
                              forget=[f"{K}{part}_for_state" for part in FORMS])
    st.subheader("Send log")
    with error_boundary("Loading the send log"):
        log = load_send_log(store, limit=100)
        if log.empty:
            st.caption("Nothing sent yet.")
        else:
            st.dataframe(log, hide_index=True, width="stretch", key=f"{K}send_log")


def _smtp(store: Store, settings: Settings, actor: Actor) -> None:
    marker = f"{K}smtp_for_state"
    stored, version = get_smtp_config(store)
    config = stored or SmtpConfig(host="", sender="")
    _load_once(marker, {f"{K}smtp_version": version, f"{K}smtp_host": config.host,
                        f"{K}smtp_port": int(config.port),
                        f"{K}smtp_security": config.security,
                        f"{K}smtp_username": config.username, f"{K}smtp_sender": config.sender})
    with st.form(f"{K}smtp_form"):
        st.text_input("SMTP host", key=f"{K}smtp_host")
        st.number_input("Port", min_value=1, max_value=65535, step=1, key=f"{K}smtp_port")
        st.selectbox("Security", SECURITY, key=f"{K}smtp_security",
                     format_func={"starttls": "STARTTLS", "ssl": "SSL/TLS",
                                  "none": "none (local test servers)"}.get)
        st.text_input("Username (blank: no login)", key=f"{K}smtp_username")
        st.text_input("Sender address", key=f"{K}smtp_sender")
        save = st.form_submit_button("Save the SMTP server", key=f"{K}smtp_save")
    if settings["smtp.password"]:
        st.caption("MARKETPULSE_SMTP_PASSWORD is set (or smtp.password in secrets): it is used "
                   "to log in and never shown.")
    else:
        st.caption("MARKETPULSE_SMTP_PASSWORD is not set: the password only comes from the "
                   "environment (or smtp.password in .streamlit/secrets.toml), never this page.")
    if save:
        s = st.session_state
        with error_boundary("Saving the SMTP server"), _refused_if_stale(marker):
            save_smtp_config(store, actor, SmtpConfig(
                host=s[f"{K}smtp_host"].strip(), port=int(s[f"{K}smtp_port"]),
                security=s[f"{K}smtp_security"], username=s[f"{K}smtp_username"].strip(),
                sender=s[f"{K}smtp_sender"].strip(), timeout_s=config.timeout_s),
                expected_version=s[f"{K}smtp_version"])
            _saved(marker, f"Saved the SMTP server {s[f'{K}smtp_host'].strip()}.")
    _offer_reload(marker, "the SMTP server")


def _run_emails(store: Store, actor: Actor) -> None:
    marker = f"{K}email_for_state"
    config, version = get_email_settings(store)
    _load_once(marker, {
        f"{K}email_version": version,
        **{f"{K}{name}": ", ".join(getattr(config, name)) for name in ("to", "cc", "bcc")},
        f"{K}subject": config.subject, f"{K}body": config.body,
        f"{K}max_mb": float(config.max_attachment_mb),
        **{f"{K}{name}": getattr(config, name) for name in SWITCHES}})
    s = st.session_state
    to, cc, bcc = st.columns(3)
    to.text_input("To", key=f"{K}to", help="Addresses separated by commas")
    cc.text_input("Cc", key=f"{K}cc")
    bcc.text_input("Bcc", key=f"{K}bcc")
    st.text_input("Subject", key=f"{K}subject")
    st.text_area("Body", key=f"{K}body", height=220)
    st.caption("Variables: " + " · ".join(f"`{{{{{name}}}}}` {meaning}"
                                          for name, meaning in VARIABLES.items()))
    problems = [f"{field.title()}: {problem}" for field in ("subject", "body")
                for problem in template_problems(s[f"{K}{field}"])]
    for problem in problems:
        st.warning(problem)
    left, right = st.columns(2)
    for i, (name, label) in enumerate(SWITCHES.items()):
        (left if i < 3 else right).checkbox(label, key=f"{K}{name}")
    right.number_input("Largest attachment (MB; 0 = no limit)", min_value=0.0, step=1.0,
                       key=f"{K}max_mb")
    if st.button("Save run emails", type="primary", key=f"{K}email_save"):
        with error_boundary("Saving the run email settings"), _refused_if_stale(marker):
            save_email_settings(store, actor, EmailSettings(
                **{name: parse_addresses(s[f"{K}{name}"], name) for name in ("to", "cc", "bcc")},
                subject=s[f"{K}subject"], body=s[f"{K}body"],
                max_attachment_mb=float(s[f"{K}max_mb"]),
                **{name: bool(s[f"{K}{name}"]) for name in SWITCHES}),
                expected_version=s[f"{K}email_version"])
            _saved(marker, "Saved the run email settings.")
    _offer_reload(marker, "the run email settings")


def _test_email(store: Store, settings: Settings, actor: Actor) -> None:
    address, button = st.columns([3, 1], vertical_alignment="bottom")
    to = address.text_input("Send a test email (the saved templates) to", key=f"{K}test_to")
    if button.button("Send test email", key=f"{K}test_send"):
        with error_boundary("Sending the test email"):
            send_test_email(store, settings, actor, to)
            st.success(f"Sent a test email to {to.strip()}.")


def _webhooks(store: Store, settings: Settings, actor: Actor) -> None:
    marker = f"{K}hooks_for_state"
    config, version = get_webhook_settings(store)
    shown = config.masked()  # a full address lets anyone post: never shown
    _load_once(marker, {f"{K}hooks_version": version, f"{K}slack_url": shown["slack_url"],
                        f"{K}teams_url": shown["teams_url"],
                        f"{K}teams_format": config.teams_format,
                        **{f"{K}hook_{name}": getattr(config, name) for name in HOOK_SWITCHES}})
    with st.form(f"{K}hooks_form"):
        keep = "Shown masked: leave it to keep the address, paste a new one, or clear it to stop."
        st.text_input("Slack incoming webhook", key=f"{K}slack_url", help=keep)
        st.text_input("Teams incoming webhook", key=f"{K}teams_url", help=keep)
        st.selectbox("Teams message", TEAMS_FORMATS, key=f"{K}teams_format")
        for name, label in HOOK_SWITCHES.items():
            st.checkbox(label, key=f"{K}hook_{name}")
        save = st.form_submit_button("Save webhooks", key=f"{K}hooks_save")
    for service in SERVICES:
        if settings[SETTING_KEYS[service]]:
            st.caption(f"MARKETPULSE_{service.upper()}_WEBHOOK is set: it is used instead of the "
                       f"{service.title()} address stored here.")
    if save:
        s = st.session_state
        with error_boundary("Saving the webhooks"), _refused_if_stale(marker):
            save_webhook_settings(store, actor, WebhookSettings(
                slack_url=s[f"{K}slack_url"], teams_url=s[f"{K}teams_url"],
                teams_format=s[f"{K}teams_format"],
                **{name: bool(s[f"{K}hook_{name}"]) for name in HOOK_SWITCHES}),
                expected_version=s[f"{K}hooks_version"])
            _saved(marker, "Saved the webhooks.")
    _offer_reload(marker, "the webhooks")
    for column, service in zip(st.columns(len(SERVICES)), SERVICES, strict=True):
        if column.button(f"Send a test to {service.title()}", key=f"{K}test_{service}"):
            with error_boundary(f"Sending a test to {service.title()}"):
                send_test_webhook(store, settings, actor, service)
                st.success(f"Posted a test message to {service.title()}.")
