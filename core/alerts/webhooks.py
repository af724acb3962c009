"""Slack and Teams incoming webhooks announcing runs. The URLs live in "config/webhooks" (shown
masked: anyone holding one can post) unless MARKETPULSE_SLACK_WEBHOOK / MARKETPULSE_TEAMS_WEBHOOK
override them; JSON is POSTed with urllib, retried, logged in the send log, and never raises out of
notify_webhooks."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from core import catalog
from core.access import EDIT_NOTIFICATIONS, Actor, require
from core.alerts import templates
from core.alerts.email import DeliveryFailed
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput
from core.runs.records import FAILED, MISSED, SUCCESS, RunRecord
from core.settings_docs import changed_meanwhile, read_settings, write_settings
from storage import Store

log = logging.getLogger(__name__)

WEBHOOKS_KEY = catalog.WEBHOOKS_CONFIG.key
SLACK, TEAMS = "slack", "teams"
SERVICES = (SLACK, TEAMS)
SETTING_KEYS = {SLACK: "slack.webhook", TEAMS: "teams.webhook"}  # env MARKETPULSE_SLACK_WEBHOOK…
TEAMS_FORMATS = ("messagecard", "text")
ATTEMPTS = 3
BACKOFF_S = 2.0
TIMEOUT_S = 10.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
COLOURS = {SUCCESS: "2EB886", FAILED: "D13438", MISSED: "D13438"}


class WebhookRefused(DeliveryFailed):
    """The service answered with a refusal that a retry will not change (bad URL, 4xx)."""


@dataclass
class WebhookSettings:
    """Where run messages go and when. An empty URL switches that service off."""

    slack_url: str = ""
    teams_url: str = ""
    teams_format: str = "messagecard"  # or "text" ({"text": …}, e.g. for a Workflows webhook)
    on_success: bool = True
    on_failure: bool = True
    after_manual_save: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def masked(self) -> dict[str, Any]:
        """The settings as a page or the change log may show them."""
        return {**self.to_dict(), "slack_url": mask_url(self.slack_url),
                "teams_url": mask_url(self.teams_url)}


@dataclass(frozen=True)
class WebhookDelivery:
    service: str
    status: str  # sent | failed
    attempts: int = 0
    error: str = ""


def mask_url(url: str) -> str:
    """https://hooks.slack.com/…WXYZ: enough to recognise a webhook, not enough to use it."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}"


def check_webhook_url(url: str, field_name: str) -> str:
    """An https URL (http only to this machine, for tests); "" switches the service off."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return url
    raise InvalidInput(field_name, "paste the https:// address the service gave for the webhook")


def load_webhook_settings(store: Store) -> WebhookSettings:
    """The stored webhook settings (defaults: no URLs, so nothing is posted)."""
    return get_webhook_settings(store)[0]


def get_webhook_settings(store: Store) -> tuple[WebhookSettings, str | None]:
    """(settings, version) for an editor: the version goes back to save_webhook_settings."""
    value, version = read_settings(store, WEBHOOKS_KEY)
    known = WebhookSettings.__dataclass_fields__
    return WebhookSettings(**{k: v for k, v in (value or {}).items() if k in known}), version


def save_webhook_settings(store: Store, actor: Actor, config: WebhookSettings, *,
                          expected_version: str | None,
                          now: datetime | None = None) -> WebhookSettings:
    """Validate and store the webhook settings (admins) over the version the editor loaded (None:
    nothing stored; stale: ChangedMeanwhile). A URL equal to the masked stored one keeps the
    stored URL, so a page can send back what it showed. The change log gets masks."""
    require(actor, EDIT_NOTIFICATIONS)
    before, version = get_webhook_settings(store)
    if version != expected_version:  # the masks kept below must be the editor's, not newer ones
        raise changed_meanwhile(store, "the webhooks", "notifications", "webhooks")
    urls = {}
    for name in ("slack_url", "teams_url"):
        given, stored = getattr(config, name), getattr(before, name)
        urls[name] = stored if stored and given == mask_url(stored) else \
            check_webhook_url(given, name)
    if config.teams_format not in TEAMS_FORMATS:
        raise InvalidInput("teams_format", f"choose one of {', '.join(TEAMS_FORMATS)}")
    checked = WebhookSettings(**{**config.to_dict(), **urls})
    write_settings(store, WEBHOOKS_KEY, checked.to_dict(), expected_version,
                   what="the webhooks", area="notifications", entity="webhooks")
    record_change(store, actor, "notifications", "webhooks_changed", "webhooks",
                  before=before.masked(), after=checked.masked(), now=now)
    return checked


_URL_FIELDS = (("slack_url", "Slack"), ("teams_url", "Teams"))


def unrestorable_urls(before: Mapping[str, Any], current: WebhookSettings) -> str:
    """Why the settings `before` (masked, as the change log keeps them) cannot be put back over
    `current`; "" when they can: each URL goes back to none or, when its mask is the same, stays
    the URL stored now. Any other URL is not kept anywhere."""
    lost = [f"the {service} URL {before.get(name)}" for name, service in _URL_FIELDS
            if before.get(name) and before.get(name) != mask_url(getattr(current, name))]
    if not lost:
        return ""
    return (f"{' and '.join(lost)} cannot be restored: the change log keeps webhook URLs masked; "
            "paste it again under Settings → Email & notifications")


def restore_webhook_settings(store: Store, actor: Actor, before: Mapping[str, Any],
                             after: Mapping[str, Any]) -> None:
    """Put the webhook settings back to `before` (masked) in place of `after`, with the
    document's version (no change log: the revert logs itself). Conflict when they are no longer
    `after` or a URL of `before` is not known (unrestorable_urls)."""
    require(actor, EDIT_NOTIFICATIONS)
    current, version = get_webhook_settings(store)
    if current.masked() != dict(after):
        raise Conflict("the webhooks changed while they were being reverted; reload and try "
                       "again")
    problem = unrestorable_urls(before, current)
    if problem:
        raise Conflict(problem)
    known = WebhookSettings.__dataclass_fields__
    restored = WebhookSettings(**{
        **{k: v for k, v in before.items() if k in known},
        **{name: getattr(current, name) if before.get(name) else "" for name, _ in _URL_FIELDS}})
    write_settings(store, WEBHOOKS_KEY, restored.to_dict(), version, what="the webhooks",
                   area="notifications", entity="webhooks")


def webhook_urls(store: Store, settings: Settings) -> dict[str, str]:
    """The URL of each service: the setting (environment or secrets) over the stored one."""
    config = load_webhook_settings(store)
    stored = {SLACK: config.slack_url, TEAMS: config.teams_url}
    urls = {}
    for service in SERVICES:
        key = SETTING_KEYS[service]
        urls[service] = str(settings[key] or stored[service])
    return urls


# -- messages --------------------------------------------------------------------------------------
def _title(record: RunRecord) -> str:
    return f"MarketPulse run {record.run_id} ({record.job or record.kind.lower()}): {record.status}"


def _facts(record: RunRecord) -> list[tuple[str, str]]:
    counts = record.counts or {}
    facts = [("Published", str(counts.get("published", 0))),
             ("Parents", str(counts.get("parents", 0))),
             ("Excluded", str(counts.get("excluded", 0))),
             ("Quarantined", str(counts.get("quarantined", 0))),
             ("Duration", templates.format_duration(record.duration_s))]
    if record.error:
        facts.append(("Error", record.error))
    return facts


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(record: RunRecord, *, link: str = "") -> dict[str, Any]:
    """{"text": …} in Slack's mrkdwn, user text escaped."""
    facts = ", ".join(f"{name.lower()} {_slack_escape(value)}" for name, value in _facts(record))
    text = f"*{_slack_escape(_title(record))}*\n{facts}"
    if link:
        text += f"\n<{link}|Open MarketPulse>"
    return {"text": text}


def teams_payload(record: RunRecord, *, link: str = "", style: str = "messagecard"
                  ) -> dict[str, Any]:
    """A MessageCard (title, colour, facts, a button to the app) or plain {"text": …}."""
    facts = _facts(record)
    if style == "text":
        lines = [_title(record), *(f"{name}: {value}" for name, value in facts)]
        return {"text": "\n\n".join([*lines, *([link] if link else [])])}
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": _title(record),
        "themeColor": COLOURS.get(record.status, "808080"),
        "title": _title(record),
        "sections": [{"facts": [{"name": name, "value": value} for name, value in facts]}],
    }
    if link:
        card["potentialAction"] = [{"@type": "OpenUri", "name": "Open MarketPulse",
                                    "targets": [{"os": "default", "uri": link}]}]
    return card


# -- delivery --------------------------------------------------------------------------------------
def post_json(url: str, payload: dict[str, Any], *, timeout_s: float = TIMEOUT_S) -> None:
    """POST payload as JSON; raises WebhookRefused on a 4xx other than 429, else DeliveryFailed."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "MarketPulse"})
    # Loopback never goes through a proxy; other hosts use the environment's proxy settings.
    handlers = [urllib.request.ProxyHandler({})] if urlsplit(url).hostname in LOOPBACK else []
    where = mask_url(url)
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        answer = f"{where} answered {exc.code} {exc.reason}"
        if exc.code == 429 or exc.code >= 500:
            raise DeliveryFailed(answer) from exc
        raise WebhookRefused(answer) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"could not reach {where}: {reason}") from exc


def _post(store: Store, service: str, url: str, payload: dict[str, Any], *, event: str,
          run_id: int | None, now: datetime, sleep: Callable[[float], None], timeout_s: float,
          attempts: int = ATTEMPTS) -> WebhookDelivery:
    waited = 0.0
    for attempt in range(1, attempts + 1):
        try:
            post_json(url, payload, timeout_s=timeout_s)
            error, retry = "", False
        except DeliveryFailed as exc:
            error, retry = str(exc), not isinstance(exc, WebhookRefused)
        try:
            templates.record_attempt(
                store, at=now + timedelta(seconds=waited), channel=service, event=event,
                run_id=run_id, attempt=attempt, to=[mask_url(url)],
                status=templates.NOT_SENT if error else templates.OK, subject="", error=error)
        except Exception:  # the log is a convenience
            log.exception("could not write the send log")
        if not error:
            return WebhookDelivery(service, "sent", attempt)
        if not retry or attempt == attempts:
            break
        delay = BACKOFF_S * 2 ** (attempt - 1)
        sleep(delay)
        waited += delay
    log.error("%s webhook failed after %d attempt(s): %s", service, attempt, error)
    return WebhookDelivery(service, "failed", attempt, error)


def _link(settings: Settings) -> str:
    try:
        return str(settings["app.base_url"])
    except KeyError:
        return ""


def notify_webhooks(store: Store, settings: Settings, record: RunRecord, *, now: datetime,
                    sleep: Callable[[float], None] = time.sleep,
                    timeout_s: float = TIMEOUT_S) -> list[WebhookDelivery]:
    """Post the run to every configured service its switches allow; never raises."""
    try:
        config = load_webhook_settings(store)
        if templates.run_switch(config, record) is None:
            return []
        urls = webhook_urls(store, settings)
        link = _link(settings)
        payloads = {SLACK: slack_payload(record, link=link),
                    TEAMS: teams_payload(record, link=link, style=config.teams_format)}
    except Exception as exc:  # notification must not fail the run
        log.exception("run %s: could not prepare the webhook messages", record.run_id)
        return [WebhookDelivery("webhooks", "failed", 0, str(exc) or type(exc).__name__)]
    return [_post(store, service, urls[service], payloads[service], event="run",
                  run_id=record.run_id, now=now, sleep=sleep, timeout_s=timeout_s)
            for service in SERVICES if urls[service]]


def send_test_webhook(store: Store, settings: Settings, actor: Actor, service: str, *,
                      now: datetime | None = None) -> WebhookDelivery:
    """Post a made-up successful run to one service once (admins); raises DeliveryFailed."""
    require(actor, EDIT_NOTIFICATIONS)
    if service not in SERVICES:
        raise InvalidInput("service", f"choose one of {', '.join(SERVICES)}")
    url = webhook_urls(store, settings)[service]
    if not url:
        raise InvalidInput(f"{service}_url", f"save the {service.title()} webhook address first")
    sample = RunRecord(run_id=123, kind="AUTOMATED", trigger="test", actor=actor.username,
                       status=SUCCESS, duration_s=12.3, job="test message",
                       counts={"published": 100, "excluded": 7, "quarantined": 2, "parents": 40})
    config = load_webhook_settings(store)
    payload = slack_payload(sample, link=_link(settings)) if service == SLACK else \
        teams_payload(sample, link=_link(settings), style=config.teams_format)
    delivery = _post(store, service, url, payload, event="test", run_id=None,
                     now=now_or(now), sleep=time.sleep, timeout_s=TIMEOUT_S,
                     attempts=1)
    if delivery.status != "sent":
        raise DeliveryFailed(delivery.error)
    return delivery
