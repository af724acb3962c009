"""Issue 13's Done-when, walked as one admin on the demo store: back up from the Backups page,
break things (delete a rule on Rules, remove a published run with a reason on Automation, change
the SMTP server on Settings), see each change on the Audit page, revert them one by one (Revert
in the last changes, the run's Undo), restore the backup into a fresh empty store (checked item by
item by checksum as the round-trip tests do), and download the day's compliance report."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import openpyxl
import streamlit as st

from core import audit_chain
from core.access import SYSTEM, Actor
from core.alerts.email import SmtpConfig, load_smtp_config
from core.claims import claim_key
from core.cli.demo import DEMO_RULE, load_demo
from core.compliance import backups
from core.compliance.restore import restore_backup
from core.compliance.revert import recent_changes
from core.compliance.store_inventory import compare, take_inventory
from core.config import load_settings
from core.rules.exclusion import load_rules
from core.runs import records as runs
from storage import open_store
from tests.pages.conftest import open_app
from tests.pages.test_search_page import recording_media

ADMIN = Actor("admin", "admin")
K = "settings.notify_"  # the notification settings' widget keys
DOWN = "The scheduler is not running"  # no scheduler in page tests
RUNS = 3


def _key(at, form: str, field: str) -> str:
    """The key of a notification form's widget (form: smtp, email or hooks): drawn afresh, under
    a new key generation, each time the form is filled from the store."""
    return f"{K}{form}.{at.session_state[f'{K}{form}_generation_state']}.{field}"


def ok(at):
    assert not at.exception, at.exception
    assert [e.value for e in at.error if not e.value.startswith(DOWN)] == []
    return at


def click(at, key: str):
    return ok(at.button(key=key).click().run())


def go(at, page: str):
    return ok(at.switch_page(f"pages/{page}.py").run())


def save_smtp(at, host: str, port: int):
    at.text_input(key=_key(at, "smtp", "host")).input(host)
    at.number_input(key=_key(at, "smtp", "port")).set_value(port)
    at.text_input(key=_key(at, "smtp", "sender")).input("colors@desk.test")
    return click(at, f"{K}smtp_save")


def rows_of(book, sheet: str, *columns: str) -> list[tuple]:
    values = list(book[sheet].iter_rows(values_only=True))
    header = list(values[0])
    return [tuple(row[header.index(c)] or "" for c in columns) for row in values[1:]]


def report(at, served, day: tuple[date, date]):
    """The compliance report of the days, downloaded as .xlsx from the Audit page."""
    at = ok(at.date_input(key="audit.period").set_value(day).run())
    xlsx = next(b for b in at.get("download_button") if b.key == "audit.report_xlsx")
    data, name = served(xlsx)
    assert name == f"marketpulse-compliance-{day[0]:%Y%m%d}-{day[1]:%Y%m%d}.xlsx"
    return openpyxl.load_workbook(io.BytesIO(data))


def test_an_admin_backs_up_breaks_sees_reverts_restores_and_reports_the_day(
        app_store, tmp_path, monkeypatch):
    served = recording_media(monkeypatch)
    first_day = datetime.now(UTC).date()
    assert load_demo(app_store, load_settings({}, {}), days=RUNS, rows_per_day=60) == RUNS
    at = open_app(app_store, "admin", "admin")
    at = save_smtp(go(at, "settings"), "smtp.desk.test", 25)  # the desk's SMTP server

    # Back up from the Backups page.
    at = go(at, "backups")
    original = take_inventory(app_store)
    at.text_input(key="backups.why").input("before the clean-up")
    at = click(at, "backups.create")
    (made,) = backups.list_backups(app_store, ADMIN)
    assert (made.kind, made.created_by, made.why, made.runs) == (
        "manual", "admin", "before the clean-up", RUNS)

    # Break things: delete the demo rule, remove the newest run, change the SMTP server.
    at = go(at, "rules")
    (rule,) = load_rules(app_store)
    assert rule.name == DEMO_RULE["name"]
    at = ok(at.selectbox(key="rules.selected").set_value(rule.id).run())
    at = click(click(at, "rules.delete"), "rules.delete_confirm")
    assert load_rules(app_store) == []

    at = go(at, "automation")
    assert at.selectbox(key="automation.run").value == RUNS
    at = ok(at.text_input(key="automation.remove_reason").input("sent twice by the dealer").run())
    at = click(click(at, "automation.remove_run"), "automation.remove_confirm")
    assert runs.visible_run_ids(app_store) == list(range(1, RUNS))

    at = save_smtp(go(at, "settings"), "smtp.other.test", 2525)
    assert load_smtp_config(app_store).host == "smtp.other.test"

    # The Audit page shows each change, newest first, with its before and after.
    at = go(at, "audit")
    changes = next(d.value for d in at.dataframe if "CHANGED" in d.value.columns)
    (smtp_change, *_), (deletion, *_) = (recent_changes(app_store, area)
                                         for area in ("notifications", "rules"))
    assert changes[["ACTOR", "AREA", "ACTION", "ENTITY", "DETAIL"]].head(4).values.tolist() == [
        ["admin", "notifications", "smtp_changed", "smtp", ""],
        ["admin", "runs", "run_removed", f"run {RUNS}", "sent twice by the dealer"],
        ["admin", "rules", "delete", rule.name, ""],
        ["admin", "backups", "backup", made.id, "before the clean-up"]]
    smtp_diff, run_diff, rule_diff, _ = changes["CHANGED"].head(4)
    assert smtp_diff == "host: smtp.desk.test → smtp.other.test\nport: 25 → 2525"
    removed_at = runs.get_run(app_store, RUNS).removal["at"]
    assert run_diff == (f'removal: {{}} → {{"at": "{removed_at}", "by": "admin", "reason": '
                        '"sent twice…\nstatus: success → removed')
    assert rule_diff.startswith('removed: {"active": true, "conditions": ')

    # Revert them one by one.
    at = go(at, "settings")
    at = click(at, f"{K}history.revert_{smtp_change.event_id}")
    assert f"Reverted: {smtp_change.summary}" in [m.value for m in at.success]
    assert load_smtp_config(app_store) == SmtpConfig(
        host="smtp.desk.test", port=25, sender="colors@desk.test")
    at = go(at, "rules")
    at = click(at, f"rules.history.revert_{deletion.event_id}")
    assert [m.value for m in at.success] == [f"Reverted: {deletion.summary}"]
    assert [r.to_dict() for r in load_rules(app_store)] == [rule.to_dict()]
    at = go(at, "automation")
    at = click(at, "automation.restore_run")
    assert f"Run {RUNS} is published again." in [m.value for m in at.success]
    assert runs.visible_run_ids(app_store) == list(range(1, RUNS + 1))
    # Back as backed up, but for the audit trail and the rule name's claim (taken again, at a new
    # time, when the rule came back).
    audit = f"table audit partition {first_day:%Y-%m}"
    assert [p.split(":")[0] for p in compare(original, take_inventory(app_store))] == [
        "document audit/chain_head", f"document {claim_key('rules', rule.name)}", audit]

    # Restore the backup, downloaded from the page, into a fresh empty store: every document,
    # blob, table row and run as backed up; its audit trail that of the backup plus the restore's
    # own two entries (its pre-restore backup and itself), as in the round-trip tests.
    at = go(at, "backups")
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Download (.zip)"]
    archive, _ = served(button)
    fresh = open_store(str(tmp_path / "fresh"))
    assert fresh.list("") == []
    backups.import_backup(fresh, SYSTEM, archive, f"{made.id}.zip")
    restored = restore_backup(fresh, ADMIN, made.id)
    assert restored.conflicts == []
    rows = original.items[("table", f"audit/{first_day:%Y-%m}")].size
    assert compare(original, take_inventory(fresh))[1:] == [
        f"{audit}: {rows} rows in the source, {rows + 2} in the target"]
    assert compare(original, take_inventory(fresh))[0].startswith("document audit/chain_head: ")
    assert audit_chain.verify(fresh).ok

    # The day's compliance report lists all of it: the store's (the backup, what broke, the
    # reverts, the archive's download) and the fresh store's (the restore).
    at = go(at, "audit")
    day = (first_day, datetime.now(UTC).date())
    book = report(at, served, day)
    runs_ = [("runs", "run_published", f"run {n}") for n in range(RUNS, 0, -1)]
    before_backup = [("admin", "notifications", "smtp_changed", "smtp"),
                     ("system", "users", "user_created", "users/admin"),
                     *[("system", *r) for r in runs_],
                     ("system", "rules", "create", rule.name)]
    assert rows_of(book, "Changes", "ACTOR", "AREA", "ACTION", "ENTITY") == [
        ("admin", "runs", "run_restored", f"run {RUNS}"),
        ("admin", "rules", "revert", rule.name),
        ("admin", "notifications", "revert", "smtp"),
        ("admin", "notifications", "smtp_changed", "smtp"),
        ("admin", "runs", "run_removed", f"run {RUNS}"),
        ("admin", "rules", "delete", rule.name),
        ("admin", "backups", "backup", made.id),
        *before_backup]
    assert rows_of(book, "Changes", "DETAIL")[4:7] == [
        ("sent twice by the dealer",), ("",), ("before the clean-up",)]
    assert rows_of(book, "Access", "ACTOR", "ACTION", "WHAT", "DETAIL") == [
        ("admin", "export", f"backup {made.id}", "zip")]
    assert dict(rows_of(book, "Summary", "ITEM", "VALUE"))["Audit chain"].startswith(
        "Audit chain intact: 14 entries, 1 in access_log, 13 in audit")

    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "fresh"))
    st.cache_resource.clear()
    at = ok(open_app(fresh, "admin", "admin", page="pages/audit.py"))
    book = report(at, served, day)
    assert rows_of(book, "Changes", "ACTOR", "AREA", "ACTION", "ENTITY") == [
        ("admin", "backups", "restore", made.id),
        ("admin", "backups", "backup", restored.pre_restore_id),
        *before_backup]
