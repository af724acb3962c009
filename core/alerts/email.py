"""Outgoing email over SMTP: the server settings ("config/smtp"; the password only from secrets or
the environment) and run emails sent with retries into the send log. What run emails say and to
whom ("config/email"), the templates and the log live in core.alerts.templates."""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pandas as pd

from core import catalog
from core.access import EDIT_NOTIFICATIONS, Actor, require
from core.alerts import templates
from core.alerts.templates import (
    EmailSettings,
    get_email_settings,
    load_email_settings,
    load_send_log,
    parse_addresses,
    run_switch,
    save_email_settings,
    template_problems,
)
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput, MarketPulseError
from core.runs.records import EXCLUDED_TABLE, SUCCESS, RunRecord
from core.runs.workbooks import FAILED, PENDING, workbook_state
from core.settings_docs import read_settings, write_settings
from storage import ObjectNotFound, Store
from storage.run_tables import run_tables

# The page and the scheduler import run-email settings from here, beside send_email.
__all__ = [
    "SECURITY", "SMTP_KEY", "Delivery", "DeliveryFailed", "EmailSettings", "SmtpConfig",
    "deliver_email", "email_setup_gap", "get_email_settings", "get_smtp_config",
    "load_email_settings", "load_send_log", "load_smtp_config", "notify_run",
    "parse_addresses", "restore_smtp_config", "run_switch", "save_email_settings",
    "save_smtp_config", "send_email",
    "send_test_email", "template_problems",
]

log = logging.getLogger(__name__)
SMTP_KEY = catalog.SMTP_CONFIG.key
SECURITY = ("starttls", "ssl", "none")
ATTEMPTS = 3
BACKOFF_S = 2.0  # waits 2 s, then 4 s, between attempts
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DeliveryFailed(MarketPulseError):
    """The SMTP server could not be reached or refused the message."""


@dataclass
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    sender: str = ""
    timeout_s: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_smtp_config(store: Store) -> SmtpConfig | None:
    """The stored SMTP settings, or None when email is not configured."""
    return get_smtp_config(store)[0]


def get_smtp_config(store: Store) -> tuple[SmtpConfig | None, str | None]:
    """(settings or None, version) for an editor: the version goes back to save_smtp_config."""
    value, version = read_settings(store, SMTP_KEY)
    if not value or not value.get("host"):
        return None, version
    known = SmtpConfig.__dataclass_fields__
    return SmtpConfig(**{k: v for k, v in value.items() if k in known}), version


def save_smtp_config(store: Store, actor: Actor, config: SmtpConfig, *,
                     expected_version: str | None) -> str:
    """Validate and store the SMTP settings (never a password: that comes from secrets) over the
    version the editor loaded (None: nothing was stored); returns the new version.
    ChangedMeanwhile when another admin saved since."""
    require(actor, EDIT_NOTIFICATIONS)
    if not config.host.strip():
        raise InvalidInput("host", "enter the SMTP server's host name")
    if not 0 < int(config.port) < 65536:
        raise InvalidInput("port", f"{config.port} is not a port number")
    if config.security not in SECURITY:
        raise InvalidInput("security", f"choose one of {', '.join(SECURITY)}")
    if "@" not in config.sender:
        raise InvalidInput("sender", f"{config.sender!r} is not an email address")
    before = load_smtp_config(store)
    version = write_settings(store, SMTP_KEY, config.to_dict(), expected_version,
                             what="the SMTP server", area="notifications", entity="smtp")
    record_change(store, actor, "notifications", "smtp_changed", "smtp",
                  before=before.to_dict() if before else None, after=config.to_dict())
    return version


def restore_smtp_config(store: Store, actor: Actor, before: dict[str, Any] | None,
                        after: dict[str, Any] | None) -> None:
    """Put the SMTP settings back to `before` (None: not configured) in place of `after`, with
    the document's version (no change log: the revert logs itself); Conflict when they are no
    longer `after`."""
    require(actor, EDIT_NOTIFICATIONS)
    config, version = get_smtp_config(store)
    if (config and config.to_dict()) != after:
        raise Conflict("the SMTP server changed while it was being reverted; reload and try "
                       "again")
    known = SmtpConfig.__dataclass_fields__
    restored = {} if before is None else SmtpConfig(
        **{k: v for k, v in before.items() if k in known}).to_dict()
    write_settings(store, SMTP_KEY, restored, version, what="the SMTP server",
                   area="notifications", entity="smtp")


RUN_EMAIL_SWITCHES = {"on_success": "after automated runs that succeed",
                      "on_failure": "after automated runs that fail or are missed",
                      "after_manual_save": "after manual saves"}


def email_setup_gap(store: Store) -> str:
    """Why run emails an admin switched on cannot go out ("" when they can, or when the email
    settings were never saved: the defaults promise nothing). Shown on the Settings page."""
    config, version = get_email_settings(store)
    switched = [label for name, label in RUN_EMAIL_SWITCHES.items() if getattr(config, name)]
    if version is None or not switched:
        return ""
    missing = [what for what, gone in (("no SMTP server is set", load_smtp_config(store) is None),
                                       ("there are no recipients", not config.to)) if gone]
    if not missing:
        return ""
    return (f"Run emails are switched on ({'; '.join(switched)}) but {' and '.join(missing)}: "
            "no email is sent. Set them under Email & notifications.")


def send_email(
    config: SmtpConfig,
    settings: Settings,
    to: list[str],
    subject: str,
    body: str,
    *,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    attachments: list[tuple[str, bytes, str]] | None = None,
) -> None:
    """Send one message; attachments are (filename, bytes, mime type). Raises DeliveryFailed."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message.set_content(body)
    for name, data, mime in attachments or []:
        maintype, _, subtype = mime.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=name)
    recipients = [*to, *(cc or []), *(bcc or [])]
    password = settings["smtp.password"]
    try:
        if config.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout_s,
                context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        with client:
            if config.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if config.username:
                client.login(config.username, password)
            client.send_message(message, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("email to %s failed: %s", recipients, exc)
        raise DeliveryFailed(
            f"could not send email through {config.host}:{config.port}: {exc}") from exc


# -- run emails ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """What became of one email: sent, failed (after its attempts) or skipped (and why)."""

    status: str
    attempts: int = 0
    error: str = ""
    reason: str = ""


def notify_run(
    store: Store,
    settings: Settings,
    record: RunRecord,
    *,
    workbook: bytes | None,
    excluded: pd.DataFrame | None,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Email the run's outcome when a switch says so, with retries; never raises (a failed email
    never fails the run): every attempt goes to the send log and the outcome is returned.
    workbook/excluded None: the run's stored output workbook and excluded rows are attached."""
    try:
        config = load_email_settings(store)
        switch = run_switch(config, record)
        if switch is None:
            return Delivery("skipped", reason=f"no email for a {record.status} {record.kind} run")
        smtp = load_smtp_config(store)
        if smtp is None or not config.to:
            log.info("run %s: email is on but SMTP or recipients are missing", record.run_id)
            return Delivery("skipped", reason="SMTP server or recipients are not configured")
        values = templates.run_variables(record, now=now, link=_base_url(settings))
        subject = templates.one_line(templates.render_template(config.subject, values))
        body = templates.render_template(config.body, values)
        attachments, notes = _attachments(store, config, record, workbook, excluded)
        body = "\n".join([body.rstrip("\n"), *notes]) + "\n"
    except Exception as exc:  # notification must not fail the run
        log.exception("run %s: could not prepare the email", record.run_id)
        return Delivery("failed", error=str(exc) or type(exc).__name__)
    return deliver_email(store, settings, smtp, config, subject, body, attachments,
                    event="run", run_id=record.run_id, now=now, sleep=sleep)


def send_test_email(store: Store, settings: Settings, actor: Actor, to: str | Sequence[str], *,
                    now: datetime | None = None) -> None:
    """Send the current templates, filled with made-up numbers, to `to` once (admins). Raises
    DeliveryFailed so the page can show why; the attempt goes to the send log either way."""
    require(actor, EDIT_NOTIFICATIONS)
    recipients = parse_addresses(to)
    if not recipients:
        raise InvalidInput("to", "enter an address for the test email")
    smtp = load_smtp_config(store)
    if smtp is None:
        raise InvalidInput("smtp", "save the SMTP server settings first")
    now = now_or(now)
    config = load_email_settings(store)
    sample = RunRecord(run_id=123, kind="AUTOMATED", trigger="run_now", actor=actor.username,
                       status=SUCCESS, duration_s=12.3, job="example job",
                       files=[{"name": "colors.xlsx"}],
                       counts={"published": 100, "excluded": 7, "quarantined": 2, "parents": 40})
    values = templates.run_variables(sample, now=now, link=_base_url(settings))
    subject = "[test] " + templates.one_line(templates.render_template(config.subject, values))
    body = (f"A test email from MarketPulse, sent by {actor.username}. A run email reads like "
            "this with the current template (the numbers are made up):\n\n"
            + templates.render_template(config.body, values))
    test = EmailSettings(to=recipients)
    delivery = deliver_email(store, settings, smtp, test, subject, body, [], event="test",
                             run_id=None, now=now, sleep=time.sleep, attempts=1)
    if delivery.status != "sent":
        raise DeliveryFailed(delivery.error)


def _base_url(settings: Settings) -> str:
    try:
        return str(settings["app.base_url"])
    except KeyError:
        return ""


def _attachments(store: Store, config: EmailSettings, record: RunRecord, workbook: bytes | None,
                 excluded: pd.DataFrame | None) -> tuple[list[tuple[str, bytes, str]], list[str]]:
    """(attachments, notes for the body): what the switches ask for, within the size limit."""
    wanted: list[tuple[str, bytes]] = []
    notes: list[str] = []
    stem = f"marketpulse-run-{record.run_id:08d}"
    if config.attach_output and record.status == SUCCESS:
        if workbook is None and record.output:
            try:
                workbook = store.get_blob(record.output)
            except ObjectNotFound:
                notes.append("The output workbook could not be found to attach.")
        elif workbook is None and workbook_state(record) == PENDING:  # built after publishing
            notes.append("The output workbook is still being prepared: download it from the "
                         "run's details in MarketPulse.")
        elif workbook is None and workbook_state(record) == FAILED:
            notes.append(f"The output workbook could not be built ({record.workbook_error}).")
        if workbook is not None:
            wanted.append((f"{stem}.xlsx", workbook))
    if config.attach_excluded and record.status == SUCCESS and excluded is None:
        # The caller has no frame at hand: read the run's stored excluded rows.
        excluded = run_tables(store).read(EXCLUDED_TABLE, [record.run_id])
    if config.attach_excluded and excluded is not None and len(excluded):
        from core.runs.exports import write_xlsx  # lazy: xlsxwriter only when a run email needs it

        wanted.append((f"{stem}-excluded.xlsx", write_xlsx(excluded, sheet_name="Excluded")))
    limit = float(config.max_attachment_mb) * 1024 * 1024
    attachments = []
    for name, data in wanted:
        if limit and len(data) > limit:
            notes.append(f"{name} ({len(data) / 1024 / 1024:.1f} MB) is over the "
                         f"{config.max_attachment_mb:g} MB attachment limit: download it from "
                         "MarketPulse.")
        else:
            attachments.append((name, data, XLSX))
    return attachments, notes


def deliver_email(store: Store, settings: Settings, smtp: SmtpConfig, config: EmailSettings,
                  subject: str, body: str, attachments: list[tuple[str, bytes, str]], *,
                  event: str, run_id: int | None, now: datetime,
                  sleep: Callable[[float], None], attempts: int = ATTEMPTS) -> Delivery:
    """Send one message to config's to/cc/bcc with up to `attempts` tries and exponential
    backoff, logging each attempt in the send log under `event`; never raises."""
    waited = 0.0
    for attempt in range(1, attempts + 1):
        retry = True
        try:
            send_email(smtp, settings, config.to, subject, body, cc=config.cc, bcc=config.bcc,
                       attachments=attachments)
            error = ""
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a bug or a bad header: retrying will not help
            log.exception("email %r could not be built", subject)
            error, retry = str(exc) or type(exc).__name__, False
        _log_attempt(store, at=now + timedelta(seconds=waited), event=event, run_id=run_id,
                     attempt=attempt, status=templates.NOT_SENT if error else templates.OK,
                     to=config.to, cc=config.cc, bcc=config.bcc, subject=subject, error=error)
        if not error:
            return Delivery("sent", attempt)
        if not retry or attempt == attempts:
            break
        delay = BACKOFF_S * 2 ** (attempt - 1)
        sleep(delay)
        waited += delay
    log.error("email %r failed after %d attempt(s): %s", subject, attempt, error)
    return Delivery("failed", attempt, error)


def _log_attempt(store: Store, **entry: Any) -> None:
    try:
        templates.record_attempt(store, **entry)
    except Exception:  # the log is a convenience; losing a row must not stop the email
        log.exception("could not write the email send log")
