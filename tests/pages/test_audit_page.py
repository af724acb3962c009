"""Audit page (admins): both logs side by side under one set of filters, the chain's verification,
and the compliance report downloaded as xlsx and PDF (made and logged on the click)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from pypdf import PdfReader

from core import audit_chain
from core.access import SYSTEM, Actor
from core.audit import record_change
from core.compliance import audit_trail
from core.compliance.access_log import load_access_log, record_access
from core.compliance.report_schedule import load_report_schedule, make_report
from core.errors import PermissionDenied
from tests.pages.test_search_page import recording_media

PAGE = "pages/audit.py"
ZOE = Actor("admin", "admin")


@pytest.fixture
def served(monkeypatch):
    return recording_media(monkeypatch)


def _activity(store) -> None:
    now = datetime.now(UTC)
    record_change(store, "admin", "rules", "update", "r1", before={"priority": 100, "x": "a"},
                  after={"priority": 5, "x": "a"}, now=now - timedelta(minutes=3))
    record_change(store, "anonymous", "auth", "login_failed", "mallory", detail="bad password",
                  now=now - timedelta(minutes=2))
    record_access(store, "ana", "search", '{"cusip": "97988RBL5"}', rows=2,
                  now=now - timedelta(minutes=1))
    record_change(store, "admin", "rules", "update", "r0", after={"priority": 1},
                  now=now - timedelta(days=30))  # before the default week


def _page(app_as):
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert [t.value for t in at.title] == ["Audit"]
    return at


def _logs(at):
    changes = next(d.value for d in at.dataframe if "CHANGED" in d.value.columns)
    accesses = next(d.value for d in at.dataframe if "WHAT" in d.value.columns)
    return changes, accesses


def test_both_logs_show_the_last_week_side_by_side(app_as, app_store):
    _activity(app_store)
    at = _page(app_as)
    changes, accesses = _logs(at)
    # Newest first: the admin's account (made by the test's log-in, which sets the session state
    # rather than signing in), the failed login, the rule change as a readable diff.
    assert changes[["ACTOR", "AREA", "ACTION", "ENTITY"]].values.tolist() == [
        ["system", "users", "user_created", "users/admin"],
        ["anonymous", "auth", "login_failed", "mallory"],
        ["admin", "rules", "update", "r1"]]
    assert changes["CHANGED"].tolist()[1:] == ["", "priority: 100 → 5"]
    assert accesses[["ACTOR", "ACTION", "WHAT", "ROWS"]].values.tolist() == [
        ["ana", "search", '{"cusip": "97988RBL5"}', 2]]
    assert [m.value for m in at.markdown][:2] == ["**Changes** (3)",
                                                 "**Searches, views and exports** (1)"]


def test_filters_narrow_both_logs(app_as, app_store):
    _activity(app_store)
    at = _page(app_as)
    at.text_input(key="audit.area").input("auth").run()
    changes, accesses = _logs(at)
    assert changes["ACTION"].tolist() == ["login_failed"]
    at.text_input(key="audit.area").input("").run()
    at.selectbox(key="audit.user").select("admin").run()
    changes, accesses = _logs(at)
    assert changes["ENTITY"].tolist() == ["r1"]
    assert accesses.empty
    start = datetime.now(UTC).date() - timedelta(days=40)
    at.date_input(key="audit.period").set_value((start, datetime.now(UTC).date())).run()
    assert _logs(at)[0]["ENTITY"].tolist() == ["r1", "r0"]


def test_verify_says_the_chain_holds_and_names_a_broken_entry(app_as, app_store):
    _activity(app_store)
    at = _page(app_as)
    at.button(key="audit.verify").click().run()
    assert [s.value for s in at.success] == [audit_chain.verify(app_store).summary()]
    assert at.success[0].value.startswith("Audit chain intact: 5 entries")
    value, version = app_store.get(audit_chain.HEAD_KEY)
    app_store.put(audit_chain.HEAD_KEY, {**value, "hash": "e" * 64}, version)
    at.button(key="audit.verify").click().run()
    assert [e.value for e in at.error] == [
        "Audit chain BROKEN at entry 5: the chain head does not match the last entry (the head "
        "or the log's end was rewritten) (5 entries, 1 in access_log, 4 in audit)."]


def test_the_compliance_report_downloads_as_xlsx_and_pdf_and_is_logged(app_as, app_store,
                                                                        served):
    _activity(app_store)
    at = _page(app_as)
    xlsx, pdf = at.get("download_button")
    data, name = served(xlsx)
    today = datetime.now(UTC).date()
    week = f"{today - timedelta(days=6):%Y%m%d}-{today:%Y%m%d}"
    assert name == f"marketpulse-compliance-{week}.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert [r[3] for r in book["Changes"].iter_rows(min_row=2, values_only=True)] == [
        "user_created", "update"]
    assert [r[3] for r in book["Sign-ins"].iter_rows(min_row=2, values_only=True)] == [
        "login_failed"]
    data, name = served(pdf)
    assert name == f"marketpulse-compliance-{week}.pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Audit chain intact: 6 entries" in text  # the xlsx download is entry 6
    exports = load_access_log(app_store, action="export")
    assert exports[["ACTOR", "DETAIL"]].values.tolist() == [["admin", "pdf"], ["admin", "xlsx"]]
    assert exports["WHAT"].iloc[0].startswith("compliance report ")


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_audit_is_for_admins_only(app_as, app_store, role):
    at = app_as(role, role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
    with pytest.raises(PermissionDenied):
        audit_trail.changes(app_store, Actor(role, role))


def test_the_report_schedule_is_saved_and_stored_reports_download(app_as, app_store, served):
    at = _page(app_as)
    assert "No scheduled reports yet." in [c.value for c in at.caption]
    at.checkbox(key="audit.sched.active").check()
    at.text_input(key="audit.sched.cron").input("0 7 * * 1")
    at.number_input(key="audit.sched.days").set_value(3)
    at.button(key="FormSubmitter:audit.schedule_form-Save the schedule").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    saved, _ = load_report_schedule(app_store)
    assert (saved.active, saved.schedule, saved.days, saved.updated_by) == (
        True, "0 7 * * 1", 3, "admin")
    made = make_report(app_store, SYSTEM, datetime(2026, 11, 30, 7, tzinfo=UTC), days=3)
    at.run()
    labels = [m.value for m in at.markdown]
    assert "2026-11-27 to 2026-11-29 (made 20261130T070000)" in labels
    stored = {b.proto.label: b for b in at.get("download_button") if b.key.startswith(
        "audit.stored.")}
    data, name = served(stored[".pdf"])
    assert (data[:4], name) == (b"%PDF", made.keys["pdf"].rsplit("/", 1)[1])
