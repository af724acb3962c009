"""Slack and Teams webhooks against a real HTTP server on 127.0.0.1: exact JSON bodies, retries,
refusals, environment overrides, masking, and that nothing raises out of notify_webhooks."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.access import SYSTEM, Actor
from core.alerts.email import DeliveryFailed
from core.alerts.templates import load_send_log
from core.alerts.webhooks import (
    WebhookDelivery,
    WebhookSettings,
    get_webhook_settings,
    load_webhook_settings,
    mask_url,
    notify_webhooks,
    save_webhook_settings,
    send_test_webhook,
)
from core.audit import load_changes
from core.config import load_settings
from core.errors import InvalidInput, PermissionDenied
from core.runs import records as runs

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
SUCCESS_RUN = runs.RunRecord(
    run_id=42, kind="AUTOMATED", trigger="scheduled", actor="system", status="success",
    duration_s=75.0, job="desk 09:30",
    counts={"published": 120, "parents": 30, "excluded": 5, "quarantined": 1})
FAILED_RUN = runs.RunRecord(
    run_id=43, kind="AUTOMATED", trigger="scheduled", actor="system", status="failed",
    duration_s=0.4, job="desk <09:30>", error="inbox /x & co does not exist")


class _Server:
    """Requests received (path, content type, parsed JSON) and the status codes to answer."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, object]] = []
        self.answers: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append((self.path, self.headers["Content-Type"],
                                        json.loads(body)))
                code = server.answers.pop(0) if server.answers else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"no")

            def log_message(self, *args) -> None:  # keep test output quiet
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}{path}"


@pytest.fixture
def webhook_server():
    server = _Server()
    yield server
    server.http.shutdown()
    server.http.server_close()


def _configure(store, server: _Server, **changes) -> WebhookSettings:
    urls = {"slack_url": server.url("/services/T0/B0/slacksecret"),
            "teams_url": server.url("/webhookb2/teamssecret")}
    return save_webhook_settings(store, SYSTEM, WebhookSettings(**{**urls, **changes}),
                                 expected_version=None)


SUCCESS_SLACK = {"text": "*MarketPulse run 42 (desk 09:30): success*\npublished 120, parents 30, "
                         "excluded 5, quarantined 1, duration 1 min 15 s\n"
                         "<http://localhost:8501|Open MarketPulse>"}
SUCCESS_TEAMS = {
    "@type": "MessageCard",
    "@context": "https://schema.org/extensions",
    "summary": "MarketPulse run 42 (desk 09:30): success",
    "themeColor": "2EB886",
    "title": "MarketPulse run 42 (desk 09:30): success",
    "sections": [{"facts": [
        {"name": "Published", "value": "120"}, {"name": "Parents", "value": "30"},
        {"name": "Excluded", "value": "5"}, {"name": "Quarantined", "value": "1"},
        {"name": "Duration", "value": "1 min 15 s"}]}],
    "potentialAction": [{"@type": "OpenUri", "name": "Open MarketPulse",
                         "targets": [{"os": "default", "uri": "http://localhost:8501"}]}],
}


def test_a_run_posts_exact_json_to_slack_and_teams(memory_store, webhook_server):
    _configure(memory_store, webhook_server)
    deliveries = notify_webhooks(memory_store, SETTINGS, SUCCESS_RUN, now=NOW)
    assert deliveries == [WebhookDelivery("slack", "sent", 1), WebhookDelivery("teams", "sent", 1)]
    assert webhook_server.requests == [
        ("/services/T0/B0/slacksecret", "application/json", SUCCESS_SLACK),
        ("/webhookb2/teamssecret", "application/json", SUCCESS_TEAMS),
    ]


def test_a_failed_run_escapes_user_text_for_slack_and_shows_the_error(memory_store,
                                                                       webhook_server):
    _configure(memory_store, webhook_server, teams_format="text")
    notify_webhooks(memory_store, SETTINGS, FAILED_RUN, now=NOW)
    assert [body for _, _, body in webhook_server.requests] == [
        {"text": "*MarketPulse run 43 (desk &lt;09:30&gt;): failed*\npublished 0, parents 0, "
                 "excluded 0, quarantined 0, duration 0.4 s, error inbox /x &amp; co does not "
                 "exist\n<http://localhost:8501|Open MarketPulse>"},
        {"text": "MarketPulse run 43 (desk <09:30>): failed\n\nPublished: 0\n\nParents: 0\n\n"
                 "Excluded: 0\n\nQuarantined: 0\n\nDuration: 0.4 s\n\n"
                 "Error: inbox /x & co does not exist\n\nhttp://localhost:8501"},
    ]


def test_a_failed_run_card_is_red(memory_store, webhook_server):
    _configure(memory_store, webhook_server, slack_url="")
    notify_webhooks(memory_store, SETTINGS, FAILED_RUN, now=NOW)
    [(_, _, card)] = webhook_server.requests
    assert (card["themeColor"], card["sections"][0]["facts"][-1]) == (
        "D13438", {"name": "Error", "value": "inbox /x & co does not exist"})


def test_server_errors_are_retried_with_backoff(memory_store, webhook_server):
    _configure(memory_store, webhook_server, teams_url="")
    webhook_server.answers = [500, 429]
    slept: list[float] = []
    deliveries = notify_webhooks(memory_store, SETTINGS, SUCCESS_RUN, now=NOW, sleep=slept.append)
    assert deliveries == [WebhookDelivery("slack", "sent", 3)]
    assert slept == [2.0, 4.0]
    assert len(webhook_server.requests) == 3
    log = load_send_log(memory_store)
    assert log[["CHANNEL", "ATTEMPT", "STATUS"]].values.tolist() == [
        ["slack", 3, "ok"], ["slack", 2, "failed"], ["slack", 1, "failed"]]
    assert log["TO"].tolist() == ["http://127.0.0.1/…cret"] * 3


def test_a_refusal_is_not_retried(memory_store, webhook_server):
    _configure(memory_store, webhook_server, teams_url="")
    webhook_server.answers = [404]
    deliveries = notify_webhooks(memory_store, SETTINGS, SUCCESS_RUN, now=NOW,
                                 sleep=lambda s: pytest.fail("retried a 404"))
    assert deliveries == [WebhookDelivery("slack", "failed", 1,
                                          "http://127.0.0.1/…cret answered 404 Not Found")]


def test_an_unreachable_service_never_raises(memory_store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    save_webhook_settings(memory_store, SYSTEM, WebhookSettings(
        slack_url=f"http://127.0.0.1:{port}/hook"), expected_version=None)
    slept: list[float] = []
    [delivery] = notify_webhooks(memory_store, SETTINGS, SUCCESS_RUN, now=NOW, sleep=slept.append,
                                 timeout_s=2)
    assert (delivery.status, delivery.attempts, slept) == ("failed", 3, [2.0, 4.0])
    assert delivery.error.startswith("could not reach http://127.0.0.1/…hook: ")


def test_the_environment_overrides_the_stored_url(memory_store, webhook_server):
    _configure(memory_store, webhook_server, teams_url="")
    settings = load_settings({}, {"MARKETPULSE_SLACK_WEBHOOK": webhook_server.url("/from-env"),
                                  "MARKETPULSE_TEAMS_WEBHOOK": webhook_server.url("/teams-env")})
    notify_webhooks(memory_store, settings, SUCCESS_RUN, now=NOW)
    assert [path for path, _, _ in webhook_server.requests] == ["/from-env", "/teams-env"]


def test_switched_off_runs_post_nothing(memory_store, webhook_server):
    _configure(memory_store, webhook_server, on_failure=False)
    assert notify_webhooks(memory_store, SETTINGS, FAILED_RUN, now=NOW) == []
    manual = runs.RunRecord(run_id=5, kind="MANUAL", trigger="manual_save", actor="ana",
                            status="success")
    assert notify_webhooks(memory_store, SETTINGS, manual, now=NOW) == []
    assert webhook_server.requests == []


def test_urls_are_masked_in_the_change_log_and_a_masked_url_keeps_the_stored_one(
        memory_store, webhook_server):
    saved = _configure(memory_store, webhook_server)
    shown = saved.masked()
    assert shown["slack_url"] == "http://127.0.0.1/…cret"
    again = save_webhook_settings(memory_store, SYSTEM, WebhookSettings(
        slack_url=shown["slack_url"], teams_url="", on_success=False),
        expected_version=get_webhook_settings(memory_store)[1])
    assert again.slack_url == saved.slack_url
    assert load_webhook_settings(memory_store) == again
    changes = load_changes(memory_store, area="notifications")
    assert "slacksecret" not in " ".join(changes["BEFORE"].fillna("") + changes["AFTER"])
    assert json.loads(changes["AFTER"].iloc[0])["slack_url"] == "http://127.0.0.1/…cret"


@pytest.mark.parametrize("url", ["http://hooks.slack.com/services/x", "ftp://127.0.0.1/x",
                                 "hooks.slack.com/services/x"])
def test_webhook_urls_must_be_https(memory_store, url):
    with pytest.raises(InvalidInput, match=r"^slack_url: paste the https://"):
        save_webhook_settings(memory_store, SYSTEM, WebhookSettings(slack_url=url),
                              expected_version=None)


def test_only_admins_change_webhooks(memory_store):
    with pytest.raises(PermissionDenied):
        save_webhook_settings(memory_store, Actor("vic", "viewer"), WebhookSettings(),
                              expected_version=None)


def test_mask_url_shows_host_and_last_characters():
    assert mask_url("https://hooks.slack.com/services/T000/B000/XXXXabcd") == (
        "https://hooks.slack.com/…abcd")
    assert mask_url("") == ""


def test_a_test_message_goes_to_one_service(memory_store, webhook_server):
    _configure(memory_store, webhook_server)
    assert send_test_webhook(memory_store, SETTINGS, SYSTEM, "teams", now=NOW) == (
        WebhookDelivery("teams", "sent", 1))
    [(path, _, card)] = webhook_server.requests
    assert (path, card["title"]) == ("/webhookb2/teamssecret",
                                     "MarketPulse run 123 (test message): success")
    webhook_server.answers = [500]
    with pytest.raises(DeliveryFailed, match="answered 500"):
        send_test_webhook(memory_store, SETTINGS, SYSTEM, "slack", now=NOW)
