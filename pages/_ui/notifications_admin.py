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
from pages._ui.form_values import FormValues
from pages._ui.services import error_boundary
from storage import Store

K = "settings.notify_"  # widget key prefix
FLASH = f"{K}flash_state"
# Each form's values (with the version they were loaded at), the widgets' defaults.
SMTP, EMAIL, HOOKS = FormValues(f"{K}smtp"), FormValues(f"{K}email"), FormValues(f"{K}hooks")
SWITCHES = {"on_success": "Email after automated runs that succeed",
            "on_failure": "Email after automated runs that fail or are missed",
            "after_manual_save": "Email after manual saves",
            "attach_output": "Attach the output workbook",
            "attach_excluded": "Attach the excluded rows"}
HOOK_SWITCHES = {"on_success": "Post runs that succeed", "on_failure": "Post runs that fail",
                 "after_manual_save": "Post manual saves"}


def _load_once(form: FormValues, values: dict[str, Any], shown: str) -> None:
    """Fill the form from the store once, again after a save (which forgets it), and after a
    visit to another page (Streamlit forgets the widgets it did not draw, `shown` among them)."""
    if not form.loaded() or form.key(shown) not in st.session_state:
        form.load(values)


def _saved(form: FormValues, text: str) -> None:
    form.forget()
    st.session_state.pop(f"{form.state_key}_stale", None)
    st.session_state.setdefault(FLASH, []).append(text)
    st.rerun()


@contextmanager
def _refused_if_stale(form: FormValues) -> Iterator[None]:
    """Remember that a save was refused because another admin saved first (the form shows the
    refusal and offers to reload)."""
    try:
        yield
    except ChangedMeanwhile:
        st.session_state[f"{form.state_key}_stale"] = True
        raise


def _offer_reload(form: FormValues, what: str) -> None:
    """After a refused save: load the stored values (and their version) into the form again."""
    stale = f"{form.state_key}_stale"
    if st.session_state.get(stale) and st.button(f"Reload {what}", key=f"{stale}_reload"):
        st.session_state.pop(stale, None)
        form.forget()
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
                              forget=[form.state_key for form in (SMTP, EMAIL, HOOKS)])
    st.subheader("Send log")
    with error_boundary("Loading the send log"):
        log = load_send_log(store, limit=100)
        if log.empty:
            st.caption("Nothing sent yet.")
        else:
            st.dataframe(log, hide_index=True, width="stretch", key=f"{K}send_log")


def _smtp(store: Store, settings: Settings, actor: Actor) -> None:
    stored, version = get_smtp_config(store)
    config = stored or SmtpConfig(host="", sender="")
    _load_once(SMTP, {"version": version, "host": config.host, "port": int(config.port),
                      "security": config.security, "username": config.username,
                      "sender": config.sender}, "host")
    f = SMTP
    with st.form(f"{K}smtp_form"):
        host = st.text_input("SMTP host", value=f["host"], key=f.key("host"))
        port = st.number_input("Port", min_value=1, max_value=65535, step=1, value=f["port"],
                               key=f.key("port"))
        security = st.selectbox("Security", SECURITY, index=SECURITY.index(f["security"]),
                                key=f.key("security"),
                                format_func={"starttls": "STARTTLS", "ssl": "SSL/TLS",
                                             "none": "none (local test servers)"}.get)
        username = st.text_input("Username (blank: no login)", value=f["username"],
                                 key=f.key("username"))
        sender = st.text_input("Sender address", value=f["sender"], key=f.key("sender"))
        save = st.form_submit_button("Save the SMTP server", key=f"{K}smtp_save")
    f.keep(host=host, port=port, security=security, username=username, sender=sender)
    if settings["smtp.password"]:
        st.caption("MARKETPULSE_SMTP_PASSWORD is set (or smtp.password in secrets): it is used "
                   "to log in and never shown.")
    else:
        st.caption("MARKETPULSE_SMTP_PASSWORD is not set: the password only comes from the "
                   "environment (or smtp.password in .streamlit/secrets.toml), never this page.")
    if save:
        with error_boundary("Saving the SMTP server"), _refused_if_stale(f):
            save_smtp_config(store, actor, SmtpConfig(
                host=host.strip(), port=int(port), security=security,
                username=username.strip(), sender=sender.strip(), timeout_s=config.timeout_s),
                expected_version=f["version"])
            _saved(f, f"Saved the SMTP server {host.strip()}.")
    _offer_reload(f, "the SMTP server")


def _run_emails(store: Store, actor: Actor) -> None:
    config, version = get_email_settings(store)
    _load_once(EMAIL, {
        "version": version,
        **{name: ", ".join(getattr(config, name)) for name in ("to", "cc", "bcc")},
        "subject": config.subject, "body": config.body,
        "max_mb": float(config.max_attachment_mb),
        **{name: getattr(config, name) for name in SWITCHES}}, "to")
    f, shown = EMAIL, {}
    to, cc, bcc = st.columns(3)
    shown["to"] = to.text_input("To", value=f["to"], key=f.key("to"),
                                help="Addresses separated by commas")
    shown["cc"] = cc.text_input("Cc", value=f["cc"], key=f.key("cc"))
    shown["bcc"] = bcc.text_input("Bcc", value=f["bcc"], key=f.key("bcc"))
    shown["subject"] = st.text_input("Subject", value=f["subject"], key=f.key("subject"))
    shown["body"] = st.text_area("Body", value=f["body"], key=f.key("body"), height=220)
    st.caption("Variables: " + " · ".join(f"`{{{{{name}}}}}` {meaning}"
                                          for name, meaning in VARIABLES.items()))
    problems = [f"{field.title()}: {problem}" for field in ("subject", "body")
                for problem in template_problems(shown[field])]
    for problem in problems:
        st.warning(problem)
    left, right = st.columns(2)
    for i, (name, label) in enumerate(SWITCHES.items()):
        shown[name] = (left if i < 3 else right).checkbox(label, value=f[name], key=f.key(name))
    shown["max_mb"] = right.number_input("Largest attachment (MB; 0 = no limit)",
                                         min_value=0.0, step=1.0, value=f["max_mb"],
                                         key=f.key("max_mb"))
    f.keep(**shown)
    if st.button("Save run emails", type="primary", key=f"{K}email_save"):
        with error_boundary("Saving the run email settings"), _refused_if_stale(f):
            save_email_settings(store, actor, EmailSettings(
                **{name: parse_addresses(shown[name], name) for name in ("to", "cc", "bcc")},
                subject=shown["subject"], body=shown["body"],
                max_attachment_mb=float(shown["max_mb"]),
                **{name: bool(shown[name]) for name in SWITCHES}),
                expected_version=f["version"])
            _saved(f, "Saved the run email settings.")
    _offer_reload(f, "the run email settings")


def _test_email(store: Store, settings: Settings, actor: Actor) -> None:
    address, button = st.columns([3, 1], vertical_alignment="bottom")
    to = address.text_input("Send a test email (the saved templates) to", key=f"{K}test_to")
    if button.button("Send test email", key=f"{K}test_send"):
        with error_boundary("Sending the test email"):
            send_test_email(store, settings, actor, to)
            st.success(f"Sent a test email to {to.strip()}.")


def _webhooks(store: Store, settings: Settings, actor: Actor) -> None:
    config, version = get_webhook_settings(store)
    masked = config.masked()  # a full address lets anyone post: never shown
    _load_once(HOOKS, {"version": version, "slack_url": masked["slack_url"],
                       "teams_url": masked["teams_url"], "teams_format": config.teams_format,
                       **{name: getattr(config, name) for name in HOOK_SWITCHES}}, "slack_url")
    f, shown = HOOKS, {}
    with st.form(f"{K}hooks_form"):
        keep = "Shown masked: leave it to keep the address, paste a new one, or clear it to stop."
        shown["slack_url"] = st.text_input("Slack incoming webhook", value=f["slack_url"],
                                           key=f.key("slack_url"), help=keep)
        shown["teams_url"] = st.text_input("Teams incoming webhook", value=f["teams_url"],
                                           key=f.key("teams_url"), help=keep)
        shown["teams_format"] = st.selectbox(
            "Teams message", TEAMS_FORMATS, index=list(TEAMS_FORMATS).index(f["teams_format"]),
            key=f.key("teams_format"))
        for name, label in HOOK_SWITCHES.items():
            shown[name] = st.checkbox(label, value=f[name], key=f.key(name))
        save = st.form_submit_button("Save webhooks", key=f"{K}hooks_save")
    f.keep(**shown)
    for service in SERVICES:
        if settings[SETTING_KEYS[service]]:
            st.caption(f"MARKETPULSE_{service.upper()}_WEBHOOK is set: it is used instead of the "
                       f"{service.title()} address stored here.")
    if save:
        with error_boundary("Saving the webhooks"), _refused_if_stale(f):
            save_webhook_settings(store, actor, WebhookSettings(
                slack_url=shown["slack_url"], teams_url=shown["teams_url"],
                teams_format=shown["teams_format"],
                **{name: bool(shown[name]) for name in HOOK_SWITCHES}),
                expected_version=f["version"])
            _saved(f, "Saved the webhooks.")
    _offer_reload(f, "the webhooks")
    for column, service in zip(st.columns(len(SERVICES)), SERVICES, strict=True):
        if column.button(f"Send a test to {service.title()}", key=f"{K}test_{service}"):
            with error_boundary(f"Sending a test to {service.title()}"):
                send_test_webhook(store, settings, actor, service)
                st.success(f"Posted a test message to {service.title()}.")
