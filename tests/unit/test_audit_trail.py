"""Reading the audit trail: filters, readable diffs, admins only, and the compliance report of a
period as xlsx and PDF, read back."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest
from pypdf import PdfReader

from core.access import SYSTEM, Actor
from core.audit import record_change
from core.compliance import audit_trail
from core.compliance.access_log import record_access
from core.compliance.audit_trail import TrailFilter, compliance_report, describe_diff
from core.compliance.report import report_pdf, report_xlsx
from core.config import load_settings
from core.errors import PermissionDenied
from core.rules.exclusion import Condition, Group, Rule, delete_rule, save_rule
from core.runs.pipeline import process_files

ZOE = Actor("zoe", "admin")
ANA = Actor("ana", "analyst")
VIC = Actor("vic", "viewer")
DAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CSV = ("MESSAGE_ID,TICKER,SECTOR,CUSIP,DATE,PX,SOURCE,BIAS\n"
       "17734072432755618,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-13,99.5,JPM,BID\n")


def _a_day(store) -> None:
    """Sign-ins, a rule created, changed and deleted, a search, an export and a run; one change
    the day before (outside the period)."""
    record_change(store, "zoe", "rules", "create", "old", after={"x": 1},
                  now=DAY - timedelta(days=1))
    record_change(store, "zoe", "auth", "login_ok", "zoe", now=DAY)
    record_change(store, "anonymous", "auth", "login_failed", "mallory",
                  detail="bad password", now=DAY + timedelta(minutes=1))
    rule = save_rule(store, ZOE, Rule("No DZ", Group("and", [Condition("SOURCE", "equal to",
                                                                         "DZ BANK")])),
                     now=DAY + timedelta(minutes=2))
    record_access(store, "ana", "search", '{"cusip": "97988RBL5"}', rows=1,
                  now=DAY + timedelta(minutes=4))
    record_access(store, "ana", "export", "search", rows=1, detail="xlsx",
                  now=DAY + timedelta(minutes=5))
    process_files(store, SYSTEM, [("a.csv", CSV.encode())], settings=load_settings({}, {}),
                  now=DAY + timedelta(minutes=6))
    delete_rule(store, ZOE, rule.id, now=DAY + timedelta(minutes=7))


def test_a_diff_reads_as_field_old_to_new():
    assert describe_diff('{"a": 1, "b": "x", "c": [1]}', '{"a": 2, "b": "x", "d": true}') == (
        "a: 1 → 2\nc: [1] → (removed)\nd: (added) true")
    assert describe_diff(None, '{"name": "CLO"}') == 'created: {"name": "CLO"}'
    assert describe_diff('{"name": "CLO"}', None) == 'removed: {"name": "CLO"}'
    assert describe_diff('"on"', '"off"') == "on → off"
    assert describe_diff('{"a": 1}', '{"a": 1}') == "no difference"
    assert describe_diff(None, None) == ""
    assert describe_diff(None, '"' + "x" * 200 + '"') == "created: " + "x" * 79 + "…"


def test_changes_filter_by_period_user_area_and_action(memory_store):
    _a_day(memory_store)
    day = audit_trail.day_bounds(date(2026, 11, 30), date(2026, 11, 30))
    found = audit_trail.changes(memory_store, ZOE, day)
    assert found[["ACTOR", "AREA", "ACTION"]].values.tolist() == [
        ["zoe", "rules", "delete"], ["system", "runs", "run_published"],
        ["zoe", "rules", "create"], ["anonymous", "auth", "login_failed"],
        ["zoe", "auth", "login_ok"]]
    assert found["SEQ"].tolist() == [8, 7, 4, 3, 2]
    only = audit_trail.changes(memory_store, ZOE, replace(day, username="zoe", area="rules"))
    assert only["ACTION"].tolist() == ["delete", "create"]
    assert only["CHANGED"].iloc[0].startswith("removed: ")
    assert audit_trail.changes(memory_store, ZOE, TrailFilter(action="create"))[
        "ENTITY"].tolist()[-1] == "old"


def test_accesses_filter_and_carry_their_place_in_the_chain(memory_store):
    _a_day(memory_store)
    found = audit_trail.accesses(memory_store, ZOE, TrailFilter(username="ana"))
    assert found[["ACTION", "WHAT", "ROWS", "DETAIL", "SEQ"]].values.tolist() == [
        ["export", "search", 1, "xlsx", 6], ["search", '{"cusip": "97988RBL5"}', 1, "", 5]]


@pytest.mark.parametrize("actor", [ANA, VIC])
def test_only_admins_read_the_trail(memory_store, actor):
    _a_day(memory_store)
    for read in (audit_trail.changes, audit_trail.accesses, audit_trail.run_activity):
        with pytest.raises(PermissionDenied):
            read(memory_store, actor)
    with pytest.raises(PermissionDenied):
        compliance_report(memory_store, actor, date(2026, 11, 30), date(2026, 11, 30))


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="ends"):
        audit_trail.day_bounds(date(2026, 11, 30), date(2026, 11, 1))


def test_the_compliance_report_of_a_day(memory_store):
    _a_day(memory_store)
    report = compliance_report(memory_store, ZOE, date(2026, 11, 30), date(2026, 11, 30),
                               now=DAY + timedelta(hours=1))
    assert report.changes[["AREA", "ACTION"]].values.tolist() == [
        ["rules", "delete"], ["runs", "run_published"], ["rules", "create"]]
    assert report.auth["ACTION"].tolist() == ["login_failed", "login_ok"]
    assert report.access["ACTION"].tolist() == ["export", "search"]
    assert report.runs[["RUN", "BY", "STATUS", "FILES", "PUBLISHED"]].values.tolist() == [
        [1, "system", "success", "a.csv", 1]]
    assert report.activity.to_dict("records") == [
        {"USER": "ana", "LOGINS": 0, "FAILED LOGINS": 0, "CHANGES": 0, "SEARCHES": 1,
         "SECURITY VIEWS": 0, "EXPORTS": 1, "RUNS": 0},
        {"USER": "anonymous", "LOGINS": 0, "FAILED LOGINS": 1, "CHANGES": 0, "SEARCHES": 0,
         "SECURITY VIEWS": 0, "EXPORTS": 0, "RUNS": 0},
        {"USER": "system", "LOGINS": 0, "FAILED LOGINS": 0, "CHANGES": 1, "SEARCHES": 0,
         "SECURITY VIEWS": 0, "EXPORTS": 0, "RUNS": 1},
        {"USER": "zoe", "LOGINS": 1, "FAILED LOGINS": 0, "CHANGES": 2, "SEARCHES": 0,
         "SECURITY VIEWS": 0, "EXPORTS": 0, "RUNS": 0}]
    assert (report.chain.ok, report.chain.entries) == (True, 8)

    book = openpyxl.load_workbook(io.BytesIO(report_xlsx(report)))
    assert book.sheetnames == ["Summary", "User activity", "Changes", "Sign-ins", "Access",
                               "Runs"]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Period (UTC)"] == "2026-11-30 to 2026-11-30"
    assert (summary["Changes"], summary["Runs"]) == ("3", "1")
    assert summary["Audit chain"].startswith("Audit chain intact: 8 entries")
    changes = list(book["Changes"].iter_rows(values_only=True))
    assert changes[0][:5] == ("AT", "ACTOR", "AREA", "ACTION", "ENTITY")
    assert [r[3] for r in changes[1:]] == ["delete", "run_published", "create"]

    pages = PdfReader(io.BytesIO(report_pdf(report))).pages
    text = "\n".join(page.extract_text() for page in pages)
    assert "MarketPulse compliance report: 2026-11-30 to 2026-11-30 (UTC)" in text
    for title in ("Summary (9)", "User activity (4)", "Changes (3)", "Sign-ins (2)", "Access (2)",
                  "Runs (1)"):
        assert title in text
    assert "Audit chain intact: 8 entries" in text
    assert "login_failed" in text
    assert "mallory" in text


def test_a_broken_chain_shows_in_the_report(memory_store):
    _a_day(memory_store)
    value, version = memory_store.get("audit/chain_head")
    memory_store.put("audit/chain_head", {**value, "hash": "0" * 64}, version)
    report = compliance_report(memory_store, ZOE, date(2026, 11, 30), date(2026, 11, 30))
    book = openpyxl.load_workbook(io.BytesIO(report_xlsx(report)))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Audit chain"].startswith("Audit chain BROKEN at entry 8: the chain head")
