"""A broad workflow through core writes only keys the catalog knows, never a secret one, and
reaches every entry the catalog lists (so no entry is dead and the workflow stays broad)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from core import catalog
from core.access import ADMIN, ANALYST, Actor
from core.alerts import bell
from core.alerts.email import SmtpConfig, save_smtp_config
from core.alerts.templates import EmailSettings, save_email_settings
from core.alerts.watchlists import WatchItem, save_watch_email, watch
from core.alerts.webhooks import WebhookSettings, save_webhook_settings
from core.automation.jobs import Job, request_run, save_job, toggle_job
from core.automation.log_tail import LogTail
from core.automation.scheduler import run_once
from core.catalog import BLOBS, DOCUMENTS, SECRET, STATE, TABLES, entry_for
from core.cli.demo import generate_colors, load_demo
from core.compliance.access_log import log_export, log_search, log_security_view
from core.compliance.backup_schedule import BackupSchedule, save_backup_schedule
from core.compliance.backups import create_backup
from core.compliance.report_schedule import ReportSchedule, make_report, save_report_schedule
from core.compliance.restore import restore_backup
from core.compliance.revert import recent_changes, revert_change
from core.compliance.store_copy import copy_store
from core.config import load_settings
from core.identity import login
from core.identity.column_profiles import save_column_profile
from core.identity.users import create_first_admin, create_user
from core.ingest.columns import add_alias
from core.intake import buffer
from core.manual import actions as session_actions
from core.manual import sessions
from core.reads.compaction import compact_colors
from core.reads.saved_searches import record_search_history, save_search
from core.reads.search import SearchQuery
from core.rules.exclusion import Condition, Group, Rule, save_rule, toggle_rule
from core.rules.presets import Preset, save_preset
from core.runs.exports import write_csv
from core.schema import BIAS, CUSIP, INPUT_COLUMNS, PX
from storage import open_store
from tests.desk_tables import COLUMN_MAP, Desk, row

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday
BOSS = Actor("ayesha", ADMIN)
ANN = Actor("ann", ANALYST)
PASSWORD = "correct horse battery 1"


# Store methods that write: the part they write to, and where their key or table argument is.
WRITES = {"put": (DOCUMENTS, 0, "key"), "put_blob": (BLOBS, 0, "key"),
          "append": (TABLES, 0, "table"), "append_query": (TABLES, 1, "table")}


class RecordingStore:
    """A real MemoryStore that remembers the key of every document, blob and table write.
    A proxy, not a subclass: every other Store method passes through unchanged."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.written: set[tuple[str, str]] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in WRITES:
            return attr
        part, position, keyword = WRITES[name]

        def write(*args: Any, **kwargs: Any) -> Any:
            self.written.add((part, kwargs[keyword] if keyword in kwargs else args[position]))
            return attr(*args, **kwargs)

        return write

    def stored(self) -> set[tuple[str, str]]:
        """What the store holds now (catches writes through methods the proxy does not know)."""
        tables = self._inner.tables() if hasattr(self._inner, "tables") else self._inner._tables
        return ({(DOCUMENTS, k) for k in self._inner.list("")}
                | {(BLOBS, k) for k in self._inner.list_blobs("")}
                | {(TABLES, t) for t in tables})


def _csv(seed: int, n: int = 6) -> bytes:
    return write_csv(generate_colors(n, seed=seed, date="2026-03-13")[list(INPUT_COLUMNS)])


def _users(store: Any, settings: Any) -> None:
    create_first_admin(store, "ayesha", "Ayesha", "ayesha@example.com", PASSWORD, now=NOW)
    save_column_profile(store, BOSS, "Short", [CUSIP, PX], expected=None, now=NOW)
    create_user(store, BOSS, "ann", name="Ann", email="ann@example.com", role=ANALYST,
                password=PASSWORD, temporary=False, now=NOW)
    login.authenticate(store, "ann", "wrong password", settings=settings, now=NOW)
    login.authenticate(store, "ann", PASSWORD, settings=settings, now=NOW)
    issued = login.issue_reset_token(store, "ann", now=NOW)
    assert issued is not None
    login.redeem_reset_token(store, issued[1], PASSWORD + "!", now=NOW)
    login.record_logout(store, "ann", NOW, cookie_expires=(NOW + timedelta(hours=1)).timestamp())
    login.set_self_registration(store, BOSS, True, expected_version=None, now=NOW)


def _settings_and_searches(store: Any, smtp_port: int) -> None:
    add_alias(store, BOSS, PX, "Final Px", now=NOW)
    save_smtp_config(store, BOSS, SmtpConfig(host="127.0.0.1", port=smtp_port, security="none",
                                             sender="marketpulse@example.com"),
                     expected_version=None)
    save_email_settings(store, BOSS, EmailSettings(to=["desk@example.com"]), expected_version=None,
                        now=NOW)
    save_webhook_settings(store, BOSS, WebhookSettings(), expected_version=None, now=NOW)
    rule = save_rule(store, BOSS, Rule("No offers", Group(
        "and", [Condition(BIAS, "equal_to", "OFFER")])), now=NOW)
    toggle_rule(store, BOSS, rule.id, False, now=NOW)
    switched_off = next(c for c in recent_changes(store, "rules", limit=10)
                        if c.actor == BOSS.username and c.after and not c.after["active"])
    revert_change(store, BOSS, switched_off.event_id, now=NOW + timedelta(minutes=1))
    save_preset(store, ANN, Preset("Bids", Group("and", [Condition(BIAS, "equal_to", "BID")])),
                now=NOW)
    query = SearchQuery(text="037833100")
    save_search(store, ANN, "Apple", query, now=NOW)
    record_search_history(store, ANN, query, now=NOW)
    log_search(store, ANN, query, 3, now=NOW)
    log_security_view(store, ANN, "037833100", 3, now=NOW)
    log_export(store, ANN, "search", "csv", 3, now=NOW)


def _automation(store: Any, settings: Any) -> None:
    cusip = generate_colors(6, seed=21, date="2026-03-13")[CUSIP].iloc[0]
    watch(store, ANN, WatchItem(cusip), now=NOW, new_issue=True)  # its run comes next
    save_watch_email(store, ANN, True, now=NOW)
    buffer.add_files(store, ANN, [("morning.csv", _csv(21))], settings, now=NOW)
    job = save_job(store, BOSS, Job("Morning", "30 9 * * *", timezone="UTC",
                                    sources=[{"kind": "buffer"}], email_on_success=True),
                   now=NOW - timedelta(days=1))
    toggle_job(store, BOSS, job.id, False, now=NOW)
    toggle_job(store, BOSS, job.id, True, now=NOW)
    tail = LogTail()
    logging.getLogger("core").addHandler(tail)
    try:
        # the scheduler keeps the lines core logs (a warning passes the default levels)
        logging.getLogger("core.automation").warning("catalog workflow: a line for the log")
        run_once(store, settings, NOW + timedelta(minutes=30, seconds=5), owner="sched-a",
                 log_tail=tail)
        buffer.add_files(store, ANN, [("noon.csv", _csv(22))], settings, now=NOW)
        request_run(store, BOSS, job.id, now=NOW + timedelta(hours=3))
        run_once(store, settings, NOW + timedelta(hours=3, seconds=5), owner="sched-a",
                 log_tail=tail)
    finally:
        logging.getLogger("core").removeHandler(tail)


def _sql_source(store: Any, settings: Any, desk: Desk) -> None:
    """A job reading the desk's table: its published run moves the watermark."""
    desk.add(row(1, 0), row(2, 5))
    job = save_job(store, BOSS, Job("Desk SQL", "0 7 * * 1-5", sources=[{
        "kind": "sql", "secret": "desk", "table": "colors", "column_map": COLUMN_MAP,
        "watermark_column": "received_at"}]), now=NOW)
    request_run(store, BOSS, job.id, now=NOW + timedelta(hours=4))
    [record] = run_once(store, settings, NOW + timedelta(hours=4, seconds=5), owner="sched-a")
    assert record.status == "success"


def _manual_session(store: Any, settings: Any) -> None:
    sessions.open_session(store, ANN, settings, NOW)
    sessions.add_files(store, ANN, [("desk.csv", _csv(23))], settings, now=NOW)
    session_actions.save(store, ANN, settings, idempotency_key="save-1", now=NOW)
    bell.mark_read(store, "ayesha", "all")


def test_a_broad_workflow_writes_only_catalogued_keys_and_reaches_every_entry(smtp_server,
                                                                             tmp_path):
    store = RecordingStore(open_store("memory://catalog"))
    desk = Desk(f"sqlite:///{tmp_path / 'desk.db'}", None)
    settings = load_settings({"sources": {"desk": {"url": desk.url}}}, {})
    load_demo(store, settings, days=2, rows_per_day=40, now=NOW)
    _users(store, settings)
    _settings_and_searches(store, smtp_server[0])
    _automation(store, settings)
    _sql_source(store, settings, desk)
    _manual_session(store, settings)
    compact_colors(store, force=True, now=NOW)
    # moving the desk: the copy carries every state entry and writes only catalogued keys too
    copy = RecordingStore(open_store("memory://catalog-copy"))
    report = copy_store(BOSS, store._inner, copy, now=NOW)
    assert (report.problems, report.unknown) == ([], [])
    state = {e for part, key in store.stored() if (e := entry_for(key, part)).kind == STATE}
    assert {entry_for(key, part) for part, key in copy.stored()} >= state
    # backing up and restoring (which pauses the scheduler) writes only catalogued keys too
    backup = create_backup(store, BOSS, "nightly", now=NOW)
    restore_backup(store, BOSS, backup.id, ["rules"], now=NOW)
    save_backup_schedule(store, BOSS, BackupSchedule(), expected_version=None, now=NOW)
    make_report(store, BOSS, NOW, days=2)
    save_report_schedule(store, BOSS, ReportSchedule(), expected_version=None, now=NOW)

    written = store.written | store.stored() | copy.written | copy.stored()
    unknown = sorted(f"{part}: {key}" for part, key in written if entry_for(key, part) is None)
    secret = sorted(key for part, key in written if getattr(entry_for(key, part), "kind", "")
                    == SECRET)
    reached = {entry_for(key, part) for part, key in written} - {None}
    never = sorted(f"{e.part}: {e.key}" for e in catalog.ENTRIES
                   if e not in reached and e.kind != SECRET)
    assert (unknown, secret, never) == ([], [], [])

