"""Notifications keep their promises (issue 14 item 7): a manual save sends the run email and the
webhook posts when their "after manual saves" switches are on (real SMTP and HTTP servers on
loopback), uploaders hear in the bell when a run processed their buffered files, and the email
settings say when switches are on that cannot send."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import pandas as pd
import pytest

from core.access import SYSTEM, Actor
from core.alerts import email
from core.alerts.bell import BUFFER_PROCESSED, list_notifications
from core.alerts.email import EmailSettings, SmtpConfig, email_setup_gap, load_send_log
from core.alerts.templates import format_duration
from core.alerts.webhooks import WebhookSettings, save_webhook_settings
from core.automation.jobs import Job, save_job
from core.automation.scheduler import run_once
from core.config import load_settings
from core.identity import passwords
from core.identity.users import create_first_admin, create_user
from core.intake import buffer
from core.manual import actions as session_actions
from core.manual import sessions
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.schema import INPUT_COLUMNS
from tests.factories import SAMPLE, make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
ANA, BOB = Actor("ana", "analyst"), Actor("bob", "analyst")


@pytest.fixture
def desk(memory_store, monkeypatch):
    """Admin root, analysts ana and bob."""
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    create_first_admin(memory_store, "root", "Root", "root@desk.test", "correct horse battery")
    for name in ("ana", "bob"):
        create_user(memory_store, SYSTEM, name, name=name.title(), email=f"{name}@desk.test",
                    role="analyst", password="correct horse battery")
    return memory_store


def _email(store, port: int, **switches) -> None:
    email.save_smtp_config(store, SYSTEM, SmtpConfig(
        host="127.0.0.1", port=port, security="none", sender="marketpulse@desk.test",
        timeout_s=5), expected_version=None)
    email.save_email_settings(store, SYSTEM, EmailSettings(
        to=["desk@fund.test"], subject="Run {{run_id}} {{status}}",
        body="{{published}} published, {{excluded}} excluded.", **switches),
        expected_version=None)


def _save(store, actor=ANA, key="save-1"):
    sessions.open_session(store, actor, SETTINGS, NOW)
    sessions.add_files(store, actor, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS, now=NOW)
    return session_actions.save(store, actor, SETTINGS, idempotency_key=key, now=NOW)


def test_a_manual_save_emails_the_run_with_its_workbook_when_the_switch_is_on(desk, smtp_server):
    port, inbox = smtp_server
    _email(desk, port, after_manual_save=True)
    result = _save(desk)
    [(envelope, message)] = inbox.messages
    assert (envelope, message["Subject"]) == (["desk@fund.test"], "Run 1 success")
    assert message.get_body(("plain",)).get_content().strip() == "50 published, 0 excluded."
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "marketpulse-run-00000001.xlsx"
    assert attachment.get_content() == result.workbook
    assert pd.read_excel(BytesIO(attachment.get_content()), engine="calamine").shape[0] == 50
    assert load_send_log(desk)[["EVENT", "RUN_ID", "STATUS"]].to_dict("records") == [
        {"EVENT": "run", "RUN_ID": 1, "STATUS": "ok"}]


def test_a_manual_save_sends_no_email_while_its_switch_is_off(desk, smtp_server):
    port, inbox = smtp_server
    _email(desk, port, on_success=True, on_failure=True, after_manual_save=False)
    _save(desk)
    assert inbox.messages == []
    assert load_send_log(desk).empty


def test_a_mail_server_that_is_down_never_fails_the_save(desk, monkeypatch):
    monkeypatch.setattr(email, "BACKOFF_S", 0.0)  # the retries, without their waits
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    _email(desk, closed, after_manual_save=True)
    result = _save(desk)
    assert result.record.status == runs.SUCCESS
    assert load_send_log(desk)[["ATTEMPT", "STATUS"]].to_dict("records") == [
        {"ATTEMPT": a, "STATUS": "failed"} for a in (3, 2, 1)]


class _Hook:
    """A webhook receiver on 127.0.0.1 keeping each posted JSON body."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(json.loads(self.rfile.read(int(
                    self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet tests
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/slack"


@pytest.fixture
def hook():
    server = _Hook()
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.mark.parametrize("switch", [True, False])
def test_a_manual_save_posts_to_slack_only_when_its_switch_is_on(desk, hook, switch):
    save_webhook_settings(desk, SYSTEM, WebhookSettings(slack_url=hook.url,
                                                        after_manual_save=switch),
                          expected_version=None)
    result = _save(desk)
    duration = format_duration(result.record.duration_s)
    assert hook.bodies == ([{"text": "*MarketPulse run 1 (manual): success*\npublished 50, "
                                     "parents 10, excluded 0, quarantined 0, duration "
                                     f"{duration}\n<{SETTINGS['app.base_url']}|Open "
                                     "MarketPulse>"}] if switch else [])


# -- the uploader's bell --------------------------------------------------------------------------
def _file(seed: int) -> bytes:
    frame = make_colors(3, DATE=["2026-03-13"] * 3)
    frame["MESSAGE_ID"] = [str(17734072432755000 + seed * 10 + i) for i in range(3)]
    return write_xlsx(frame[list(INPUT_COLUMNS)])


def _bell(store, username: str) -> list[tuple[str, str, str, int | None]]:
    return [(n.kind, n.title, n.body, n.run_id) for n in list_notifications(store, username)]


def test_the_uploader_hears_when_a_job_run_processes_their_files(desk):
    buffer.add_files(desk, ANA, [("a.xlsx", _file(1)), ("b.xlsx", _file(2))], SETTINGS, now=NOW)
    save_job(desk, SYSTEM, Job(id="", name="Every 10 minutes", schedule="*/10 * * * *",
                               timezone="UTC", sources=[{"kind": "buffer"}]), now=NOW)
    [record] = run_once(desk, SETTINGS, NOW + timedelta(minutes=10, seconds=5), owner="s")
    assert record.status == runs.SUCCESS
    assert _bell(desk, "ana") == [
        (BUFFER_PROCESSED, f"2 buffered file(s) processed in run {record.run_id}",
         "a.xlsx, b.xlsx", record.run_id)]
    assert _bell(desk, "bob") == []


def test_a_file_skipped_as_published_is_announced_apart_with_why(desk):
    save_job(desk, SYSTEM, Job(id="", name="Every 10 minutes", schedule="*/10 * * * *",
                               timezone="UTC", sources=[{"kind": "buffer"}]), now=NOW)
    data = _file(1)  # the same bytes twice (a workbook written later may differ in its stamps)
    buffer.add_files(desk, ANA, [("a.xlsx", data)], SETTINGS, now=NOW)
    [first] = run_once(desk, SETTINGS, NOW + timedelta(minutes=10, seconds=5), owner="s")
    buffer.add_files(desk, ANA, [("again.xlsx", data), ("b.xlsx", _file(2))], SETTINGS,
                     now=NOW)
    [second] = run_once(desk, SETTINGS, NOW + timedelta(minutes=20, seconds=5), owner="s")
    title = f"1 buffered file(s) processed in run {second.run_id}"
    assert sorted(_bell(desk, "ana")[:2]) == sorted([
        (BUFFER_PROCESSED, title, "b.xlsx", second.run_id),
        (BUFFER_PROCESSED, title, "again.xlsx (skipped: identical to a.xlsx, already published "
                                  f"in run {first.run_id})", second.run_id)])


def test_the_uploader_hears_when_a_session_saves_their_file_and_the_saver_does_not(desk):
    [entry] = buffer.add_files(desk, ANA, [("a.xlsx", _file(1))], SETTINGS, now=NOW)
    sessions.open_session(desk, BOB, SETTINGS, NOW)
    sessions.add_from_buffer(desk, BOB, [entry.id], SETTINGS, now=NOW)
    result = session_actions.save(desk, BOB, SETTINGS, idempotency_key="k", now=NOW)
    run_id = result.record.run_id
    assert _bell(desk, "ana") == [
        (BUFFER_PROCESSED, f"1 buffered file(s) processed in run {run_id}", "a.xlsx", run_id)]
    assert _bell(desk, "bob") == []


# -- switches that cannot send --------------------------------------------------------------------
def test_switches_on_without_a_server_or_recipients_are_named(desk):
    assert email_setup_gap(desk) == ""  # never saved: the defaults promise nothing
    email.save_email_settings(desk, SYSTEM, EmailSettings(
        to=["desk@fund.test"], on_success=False, on_failure=True, after_manual_save=True),
        expected_version=None)
    assert email_setup_gap(desk) == (
        "Run emails are switched on (after automated runs that fail or are missed; after manual "
        "saves) but no SMTP server is set: no email is sent. Set them under Email & "
        "notifications.")
    email.save_smtp_config(desk, SYSTEM, SmtpConfig(host="smtp.desk.test",
                                                    sender="mp@desk.test"),
                           expected_version=None)
    assert email_setup_gap(desk) == ""
    _, version = email.get_email_settings(desk)
    email.save_email_settings(desk, SYSTEM, EmailSettings(after_manual_save=True, on_success=False,
                                                          on_failure=False),
                              expected_version=version)
    assert email_setup_gap(desk) == (
        "Run emails are switched on (after manual saves) but there are no recipients: no email "
        "is sent. Set them under Email & notifications.")
    _, version = email.get_email_settings(desk)
    email.save_email_settings(desk, SYSTEM, EmailSettings(on_success=False, on_failure=False),
                              expected_version=version)
    assert email_setup_gap(desk) == ""
