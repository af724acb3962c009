"""Run emails against a real SMTP server on loopback (aiosmtpd): recipients, rendered templates,
attachments, retries into the send log, switches, and the template validator."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime
from io import BytesIO

import pandas as pd
import pytest

from core.access import SYSTEM, Actor
from core.alerts.email import (
    Delivery,
    DeliveryFailed,
    EmailSettings,
    SmtpConfig,
    load_email_settings,
    load_send_log,
    notify_run,
    run_switch,
    save_email_settings,
    save_smtp_config,
    send_test_email,
)
from core.alerts.templates import (
    EMAIL_KEY,
    LOG_COLUMNS,
    render_template,
    run_variables,
    template_problems,
)
from core.audit import load_changes
from core.config import load_settings
from core.errors import InvalidInput, PermissionDenied
from core.rules.exclusion import Condition, Group, Rule, save_rule
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.schema import INPUT_COLUMNS, SOURCE
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
SUBJECT = "Colors {{date}}: run {{run_id}} {{status}} ({{job}})"
BODY = ("Published {{published}} rows ({{parents}} parents), excluded {{excluded}}, quarantined "
        "{{quarantined}}.\nFiles: {{files}}. Took {{duration}}.\n{{error}}")


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s after a delivered email")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _configure(store, port: int, **email) -> EmailSettings:
    save_smtp_config(store, SYSTEM, SmtpConfig(host="127.0.0.1", port=port, security="none",
                                               sender="marketpulse@desk.test", timeout_s=5),
                     expected_version=None)
    defaults = {"to": ["desk@fund.test"], "cc": ["risk@fund.test"], "bcc": ["audit@fund.test"],
                "subject": SUBJECT, "body": BODY, "attach_excluded": True}
    return save_email_settings(store, SYSTEM, EmailSettings(**{**defaults, **email}),
                               expected_version=None)


@pytest.fixture
def published(memory_store):
    """A run of 6 colors of which the rule excludes the 2 from GS: 4 published, 2 excluded."""
    save_rule(memory_store, SYSTEM, Rule(
        name="No GS", conditions=Group("or", [Condition(SOURCE, "equal_to", "gs")])))
    colors = make_colors(6, SOURCE=["JPM", "GS", "JPM", "GS", "BOA", "MS"])
    result = pipeline.process_files(memory_store, SYSTEM,
                                    [("colors.xlsx", write_xlsx(colors[list(INPUT_COLUMNS)]))],
                                    settings=SETTINGS, kind=pipeline.AUTOMATED)
    result.record = dataclasses.replace(result.record, job="desk 09:30", duration_s=3.25)
    return result


def _text(message) -> str:
    """The plain-text body as written (SMTP carries CRLF line ends)."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _attachments(message) -> dict[str, pd.DataFrame]:
    return {part.get_filename(): pd.read_excel(BytesIO(part.get_content()), engine="calamine")
            for part in message.iter_attachments()}


def test_a_run_email_reaches_to_cc_and_bcc_with_rendered_templates_and_attachments(
        memory_store, smtp_server, published):
    port, inbox = smtp_server
    _configure(memory_store, port)
    delivery = notify_run(memory_store, SETTINGS, published.record, workbook=published.workbook,
                          excluded=published.excluded, now=NOW, sleep=_no_sleep)

    assert delivery == Delivery("sent", 1)
    [(envelope, message)] = inbox.messages
    assert envelope == ["desk@fund.test", "risk@fund.test", "audit@fund.test"]
    assert (message["From"], message["To"], message["Cc"]) == (
        "marketpulse@desk.test", "desk@fund.test", "risk@fund.test")
    assert message["Bcc"] is None
    assert "audit@fund.test" not in message.as_string()
    assert message["Subject"] == "Colors 2026-03-13: run 1 success (desk 09:30)"
    assert _text(message) == (
        "Published 4 rows (4 parents), excluded 2, quarantined 0.\n"
        "Files: colors.xlsx. Took 3.2 s.\n")
    sheets = _attachments(message)
    assert list(sheets) == ["marketpulse-run-00000001.xlsx",
                            "marketpulse-run-00000001-excluded.xlsx"]
    assert len(sheets["marketpulse-run-00000001.xlsx"]) == 4
    assert sheets["marketpulse-run-00000001-excluded.xlsx"][SOURCE].tolist() == ["GS", "GS"]

    log = load_send_log(memory_store)
    assert list(log.columns) == LOG_COLUMNS
    assert log.drop(columns="AT").to_dict("records") == [{
        "CHANNEL": "email", "EVENT": "run", "RUN_ID": 1, "ATTEMPT": 1, "STATUS": "ok",
        "TO": "desk@fund.test", "CC": "risk@fund.test", "BCC": "audit@fund.test",
        "SUBJECT": "Colors 2026-03-13: run 1 success (desk 09:30)", "ERROR": ""}]


def test_without_frames_the_stored_workbook_and_excluded_rows_are_attached(
        memory_store, smtp_server, published):
    port, inbox = smtp_server
    _configure(memory_store, port)
    delivery = notify_run(memory_store, SETTINGS, published.record, workbook=None, excluded=None,
                          now=NOW, sleep=_no_sleep)
    assert delivery.status == "sent"
    sheets = _attachments(inbox.messages[0][1])
    assert {name: len(frame) for name, frame in sheets.items()} == {
        "marketpulse-run-00000001.xlsx": 4, "marketpulse-run-00000001-excluded.xlsx": 2}


def test_an_attachment_over_the_limit_is_left_out_with_a_note(memory_store, smtp_server,
                                                              published):
    port, inbox = smtp_server
    _configure(memory_store, port, attach_excluded=False, max_attachment_mb=0.001)
    notify_run(memory_store, SETTINGS, published.record, workbook=published.workbook,
               excluded=None, now=NOW, sleep=_no_sleep)
    message = inbox.messages[0][1]
    assert list(message.iter_attachments()) == []
    size = len(published.workbook) / 1024 / 1024
    assert _text(message).endswith(
        f"marketpulse-run-00000001.xlsx ({size:.1f} MB) is over the 0.001 MB attachment limit: "
        "download it from MarketPulse.\n")


def test_a_run_email_sent_before_the_workbook_is_built_says_so(memory_store, smtp_server):
    port, inbox = smtp_server
    _configure(memory_store, port, attach_excluded=False)
    colors = make_colors(4)
    prepared = pipeline.prepare_files(
        memory_store, [("colors.xlsx", write_xlsx(colors[list(INPUT_COLUMNS)]))], SETTINGS)
    result = pipeline.publish_run(memory_store, SYSTEM, prepared, settings=SETTINGS,
                                  kind=pipeline.AUTOMATED, build_workbook=False)
    notify_run(memory_store, SETTINGS, result.record, workbook=None, excluded=None, now=NOW,
               sleep=_no_sleep)
    message = inbox.messages[0][1]
    assert list(message.iter_attachments()) == []
    assert _text(message).endswith(
        "The output workbook is still being prepared: download it from the run's details in "
        "MarketPulse.\n")


def test_a_server_that_is_down_gets_three_attempts_and_the_run_goes_on(memory_store, published):
    _configure(memory_store, _free_port())
    slept: list[float] = []
    delivery = notify_run(memory_store, SETTINGS, published.record, workbook=published.workbook,
                          excluded=published.excluded, now=NOW, sleep=slept.append)

    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.error.startswith("could not send email through 127.0.0.1:")
    assert slept == [2.0, 4.0]
    log = load_send_log(memory_store)
    assert log["ATTEMPT"].tolist() == [3, 2, 1]
    assert log["STATUS"].tolist() == ["failed"] * 3
    assert log["AT"].tolist() == [pd.Timestamp("2026-03-13 09:30:06", tz="UTC"),
                                  pd.Timestamp("2026-03-13 09:30:02", tz="UTC"),
                                  pd.Timestamp("2026-03-13 09:30:00", tz="UTC")]
    assert set(log["ERROR"]) == {delivery.error}


def test_a_broken_send_log_does_not_stop_the_email(memory_store, smtp_server, published,
                                                   monkeypatch):
    port, inbox = smtp_server
    _configure(memory_store, port)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(memory_store, "append", broken)
    delivery = notify_run(memory_store, SETTINGS, published.record, workbook=published.workbook,
                          excluded=published.excluded, now=NOW, sleep=_no_sleep)
    assert delivery == Delivery("sent", 1)
    assert len(inbox.messages) == 1


def test_notify_run_never_raises(memory_store, published, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("store unavailable")

    monkeypatch.setattr(memory_store, "get", broken)
    assert notify_run(memory_store, SETTINGS, published.record, workbook=None, excluded=None,
                      now=NOW) == Delivery("failed", error="store unavailable")


@pytest.mark.parametrize(("kind", "status", "switch"), [
    ("AUTOMATED", "success", "on_success"),
    ("OVERRIDE", "success", "on_success"),
    ("AUTOMATED", "failed", "on_failure"),
    ("AUTOMATED", "missed", "on_failure"),
    ("AUTOMATED", "skipped", None),
    ("AUTOMATED", "cancelled", None),
    ("MANUAL", "success", "after_manual_save"),
    ("MANUAL", "failed", None),
])
def test_which_switch_announces_a_run(kind, status, switch):
    record = runs.RunRecord(run_id=1, kind=kind, trigger="t", actor="a", status=status)
    config = EmailSettings(after_manual_save=True)
    assert run_switch(config, record) == switch
    assert run_switch(EmailSettings(on_success=False, on_failure=False), record) is None


def test_a_switched_off_run_sends_nothing(memory_store, smtp_server, published):
    port, inbox = smtp_server
    _configure(memory_store, port, on_success=False)
    delivery = notify_run(memory_store, SETTINGS, published.record, workbook=None, excluded=None,
                          now=NOW, sleep=_no_sleep)
    assert delivery == Delivery("skipped", reason="no email for a success AUTOMATED run")
    assert inbox.messages == []
    assert load_send_log(memory_store).empty


def test_without_smtp_settings_nothing_is_sent(memory_store, published):
    save_email_settings(memory_store, SYSTEM, EmailSettings(to=["desk@fund.test"]),
                        expected_version=None)
    assert notify_run(memory_store, SETTINGS, published.record, workbook=None, excluded=None,
                      now=NOW) == Delivery(
        "skipped", reason="SMTP server or recipients are not configured")


def test_a_failed_run_email_carries_the_error(memory_store, smtp_server):
    port, inbox = smtp_server
    _configure(memory_store, port, body="Run {{run_id}} {{status}}: {{error}}")
    record = runs.RunRecord(run_id=9, kind="AUTOMATED", trigger="scheduled", actor="system",
                            status="failed", job="desk", error="inbox /x does not exist")
    assert notify_run(memory_store, SETTINGS, record, workbook=None, excluded=None,
                      now=NOW).status == "sent"
    message = inbox.messages[0][1]
    assert message["Subject"] == "Colors 2026-03-13: run 9 failed (desk)"
    assert _text(message) == (
        "Run 9 failed: inbox /x does not exist\n")
    assert list(message.iter_attachments()) == []


# -- templates -------------------------------------------------------------------------------------
def test_unknown_variables_stay_as_written_and_are_listed():
    template = "Run {{run_id}} on {{ date }}: {{publshed}} rows {{ status"
    assert render_template(template, {"run_id": "7", "date": "2026-03-13"}) == (
        "Run 7 on 2026-03-13: {{publshed}} rows {{ status")
    assert template_problems(template) == [
        "unknown variable {{publshed}} (use one of date, run_id, status, job, kind, published, "
        "excluded, quarantined, parents, duration, files, error, actor, link)",
        "a '{{' or '}}' that is not part of a {{variable}}",
    ]
    assert template_problems(SUBJECT) == []
    assert template_problems(BODY) == []
    assert template_problems(EmailSettings().subject + EmailSettings().body) == []


def test_values_are_inserted_once_and_never_evaluated():
    record = runs.RunRecord(run_id=3, kind="AUTOMATED", trigger="t", actor="a", status="failed",
                            error="{{published}} {0.__class__}")
    values = run_variables(record, now=NOW)
    assert render_template("{{error}}", values) == "{{published}} {0.__class__}"


def test_a_multiline_value_cannot_break_the_subject_header(memory_store, smtp_server):
    port, inbox = smtp_server
    _configure(memory_store, port, subject="Run {{run_id}}: {{error}}")
    record = runs.RunRecord(run_id=4, kind="AUTOMATED", trigger="t", actor="a", status="failed",
                            error="bad\r\nBcc: victim@evil.test")
    notify_run(memory_store, SETTINGS, record, workbook=None, excluded=None, now=NOW)
    [(envelope, message)] = inbox.messages
    assert message["Subject"] == "Run 4: bad Bcc: victim@evil.test"
    assert envelope == ["desk@fund.test", "risk@fund.test", "audit@fund.test"]


# -- settings --------------------------------------------------------------------------------------
def test_saving_email_settings_is_validated_audited_and_kept_apart_from_smtp(memory_store):
    saved = save_email_settings(memory_store, SYSTEM, EmailSettings(
        to=["desk@fund.test", " desk@fund.test"], bcc=["audit@fund.test"], attach_output=False),
        expected_version=None, now=NOW)
    assert saved.to == ["desk@fund.test"]
    assert load_email_settings(memory_store) == saved
    assert memory_store.list("config/") == [EMAIL_KEY]
    change = load_changes(memory_store, area="notifications").iloc[0]
    assert (change["ACTION"], change["ACTOR"], change["ENTITY"]) == ("email_changed", "system",
                                                                      "email")


@pytest.mark.parametrize(("config", "message"), [
    (EmailSettings(to=["desk"]), "to: 'desk' is not an email address"),
    (EmailSettings(cc=["a@b.test,c@d.test"]), "cc: 'a@b.test,c@d.test' is not an email address"),
    (EmailSettings(subject="Run {{runid}}"), "subject: unknown variable {{runid}}"),
    (EmailSettings(body="{{status}"), "body: a '{{' or '}}' that is not part of a {{variable}}"),
    (EmailSettings(max_attachment_mb=-1), "max_attachment_mb: enter 0"),
])
def test_bad_email_settings_are_refused(memory_store, config, message):
    with pytest.raises(InvalidInput) as refused:
        save_email_settings(memory_store, SYSTEM, config, expected_version=None)
    assert str(refused.value).startswith(message)


def test_only_admins_edit_email_settings_or_send_a_test(memory_store):
    analyst = Actor("ana", "analyst")
    with pytest.raises(PermissionDenied):
        save_email_settings(memory_store, analyst, EmailSettings(), expected_version=None)
    with pytest.raises(PermissionDenied):
        send_test_email(memory_store, SETTINGS, analyst, "ana@fund.test")


def test_a_test_email_shows_the_templates_with_made_up_numbers(memory_store, smtp_server):
    port, inbox = smtp_server
    _configure(memory_store, port)
    send_test_email(memory_store, SETTINGS, SYSTEM, "me@fund.test; other@fund.test", now=NOW)
    [(envelope, message)] = inbox.messages
    assert envelope == ["me@fund.test", "other@fund.test"]
    assert message["Subject"] == "[test] Colors 2026-03-13: run 123 success (example job)"
    assert _text(message) == (
        "A test email from MarketPulse, sent by system. A run email reads like this with the "
        "current template (the numbers are made up):\n\n"
        "Published 100 rows (40 parents), excluded 7, quarantined 2.\n"
        "Files: colors.xlsx. Took 12.3 s.\n")
    assert load_send_log(memory_store)[["EVENT", "STATUS", "TO"]].to_dict("records") == [
        {"EVENT": "test", "STATUS": "ok", "TO": "me@fund.test, other@fund.test"}]


def test_a_failed_test_email_raises_once_and_is_logged(memory_store):
    _configure(memory_store, _free_port())
    with pytest.raises(DeliveryFailed, match=r"could not send email through 127\.0\.0\.1"):
        send_test_email(memory_store, SETTINGS, SYSTEM, "me@fund.test", now=NOW)
    assert load_send_log(memory_store)["STATUS"].tolist() == ["failed"]


def test_a_test_email_needs_smtp_settings(memory_store):
    with pytest.raises(InvalidInput, match="save the SMTP server settings first"):
        send_test_email(memory_store, SETTINGS, SYSTEM, "me@fund.test")
