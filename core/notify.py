"""Outgoing email over SMTP (settings in the store, password only from secrets/environment).

The automation issue adds templates, recipients per event, retries, the send log and webhooks on top
of `send_email`."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any

from core.access import EDIT_NOTIFICATIONS, Actor, require
from core.audit import record_change
from core.config import Settings
from core.errors import InvalidInput, MarketPulseError
from storage import ANY_VERSION, ObjectNotFound, Store

log = logging.getLogger(__name__)
SMTP_KEY = "config/smtp"
SECURITY = ("starttls", "ssl", "none")


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
    try:
        value, _ = store.get(SMTP_KEY)
    except ObjectNotFound:
        return None
    if not value or not value.get("host"):
        return None
    return SmtpConfig(**{k: v for k, v in value.items() if k in SmtpConfig.__dataclass_fields__})


def save_smtp_config(store: Store, actor: Actor, config: SmtpConfig) -> None:
    """Validate and store the SMTP settings (never a password: that comes from secrets)."""
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
    store.put(SMTP_KEY, config.to_dict(), expected_version=ANY_VERSION)
    record_change(store, actor, "notifications", "smtp_changed", "smtp",
                  before=before.to_dict() if before else None, after=config.to_dict())


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
