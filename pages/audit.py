"""Audit (admins): the change log and the access log side by side, filtered by user, area, action
and period; the audit chain's verification; the compliance report of the period as xlsx or PDF
(made, and logged as an export, on the click)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from core import audit_chain
from core.access import VIEW_AUDIT
from core.compliance import audit_trail
from core.compliance.report import export_report
from core.compliance.report_schedule import (
    ReportSchedule,
    list_reports,
    load_report_schedule,
    read_report,
    save_report_schedule,
)
from core.identity.user_records import list_users
from pages._ui.automation_views import clock
from pages._ui.markdown import escape_markdown
from pages._ui.services import current_actor, error_boundary, store
from pages._ui.tables import WRAPPED

PERIOD, USER, AREA, ACTION = "audit.period", "audit.user", "audit.area", "audit.action"
VERDICT = "audit.verdict_state"  # the last verification's summary and whether it held
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_DAYS = 7
WORDY = {"CHANGED": st.column_config.TextColumn("CHANGED", width="large"),
         "WHAT": st.column_config.TextColumn("WHAT", width="large"),
         "AT": st.column_config.DatetimeColumn("AT (UTC)", format="YYYY-MM-DD HH:mm:ss")}

st.title("Audit")
st_store, actor = store(), current_actor()
if not actor.can(VIEW_AUDIT):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Audit.")
    st.stop()

# -- the chain ---------------------------------------------------------------------------------
left, right = st.columns([3, 1], vertical_alignment="center")
if right.button("Verify the chain", key="audit.verify"):
    with error_boundary("Verifying the audit chain"), st.spinner("Checking every entry…"):
        verdict = audit_chain.verify(st_store)
        st.session_state[VERDICT] = (verdict.ok, verdict.summary())
if VERDICT in st.session_state:
    ok, summary = st.session_state[VERDICT]
    (left.success if ok else left.error)(escape_markdown(summary))
else:
    seq, digest = audit_chain.head(st_store)
    left.caption(f"Every change and access is a link of one hash chain: {seq:,} entries, head "
                 f"{digest[:16]}…. Verify re-checks every entry's hash and place.")

# -- filters -----------------------------------------------------------------------------------
today = clock().date()
users = ["", *sorted(u.username for u in list_users(st_store))]
a, b, c, d = st.columns([2, 1, 1, 1])
period = a.date_input("Period (UTC days)", (today - timedelta(days=DEFAULT_DAYS - 1), today),
                      max_value=today, key=PERIOD)
username = b.selectbox("User", users, key=USER, format_func=lambda u: u or "Everyone")
area = c.text_input("Area", key=AREA, placeholder="rules, users, auth, runs…").strip() or None
action = d.text_input("Action", key=ACTION, placeholder="create, login_failed…").strip() or None
if not isinstance(period, tuple) or len(period) != 2:
    st.info("Pick the period's last day too.")
    st.stop()
first, last = period
wanted = audit_trail.day_bounds(first, last)
wanted = audit_trail.TrailFilter(wanted.since, wanted.until, username or None, area, action)

# -- the two logs, side by side ----------------------------------------------------------------
with error_boundary("Reading the audit trail"):
    changes = audit_trail.changes(st_store, actor, wanted)
    accesses = audit_trail.accesses(st_store, actor, wanted)
    changes_col, access_col = st.columns(2)
    changes_col.markdown(f"**Changes** ({len(changes):,})")
    changes_col.dataframe(changes.drop(columns=["EVENT_ID"]), hide_index=True, width="stretch",
                          row_height=WRAPPED, column_config=WORDY, key="audit.changes")
    access_col.markdown(f"**Searches, views and exports** ({len(accesses):,})")
    access_col.dataframe(accesses.drop(columns=["EVENT_ID"]), hide_index=True, width="stretch",
                         row_height=WRAPPED, column_config=WORDY, key="audit.accesses")

# -- the compliance report ---------------------------------------------------------------------
st.subheader("Compliance report")
st.caption(f"{first:%Y-%m-%d} to {last:%Y-%m-%d} (UTC): every change with before and after, "
           "sign-ins, searches, views and exports, runs, each user's activity and the chain's "
           "verification. Filters above do not narrow it.")


def _report(fmt: str) -> bytes:
    return export_report(st_store, actor, first, last, fmt, now=clock())  # core logs it


name = f"marketpulse-compliance-{first:%Y%m%d}-{last:%Y%m%d}"
x, p, _ = st.columns([1, 1, 2])
x.download_button("Download (.xlsx)", lambda: _report("xlsx"), file_name=f"{name}.xlsx",
                  mime=XLSX, key="audit.report_xlsx", on_click="ignore")
p.download_button("Download (.pdf)", lambda: _report("pdf"), file_name=f"{name}.pdf",
                  mime="application/pdf", key="audit.report_pdf", on_click="ignore")
if pd.Timestamp(last) - pd.Timestamp(first) > pd.Timedelta(days=366):
    st.caption("A period over a year makes a large report: it may take a while.")

# -- the scheduled report ----------------------------------------------------------------------
st.subheader("Scheduled report")
planned, planned_version = load_report_schedule(st_store)
st.caption("The scheduler makes the report of the days before each time of the schedule and "
           f"keeps it here as .xlsx and .pdf. Now {planned.describe()}.")
with st.form("audit.schedule_form"):
    on = st.checkbox("Make the report on a schedule", value=planned.active,
                     key="audit.sched.active")
    cron_col, zone_col = st.columns(2)
    cron = cron_col.text_input("When (cron: minute hour day month weekday)", planned.schedule,
                               key="audit.sched.cron")
    tz = zone_col.text_input("Timezone", planned.timezone, key="audit.sched.tz")
    days_col, keep_col = st.columns(2)
    days = days_col.number_input("Days before each time it covers", 1, 366, planned.days,
                                 key="audit.sched.days")
    keep = keep_col.number_input("Reports kept", 1, 1000, planned.keep, key="audit.sched.keep")
    if st.form_submit_button("Save the schedule"):
        with error_boundary("Saving the report schedule"):
            save_report_schedule(st_store, actor, ReportSchedule(
                on, cron, tz.strip(), int(days), int(keep)), expected_version=planned_version,
                now=clock())
            st.toast("Report schedule saved.")
            st.rerun()
stored = list_reports(st_store, actor)
if not stored:
    st.caption("No scheduled reports yet.")
for report in stored[:12]:
    label, *buttons = st.columns([2, 1, 1])
    label.markdown(f"{report.first:%Y-%m-%d} to {report.last:%Y-%m-%d} (made {report.made_at})")
    for column, fmt in zip(buttons, ("xlsx", "pdf"), strict=True):
        key = report.keys.get(fmt)
        if key:
            column.download_button(
                f".{fmt}", lambda key=key: read_report(st_store, actor, key),
                file_name=key.rsplit("/", 1)[1], key=f"audit.stored.{key}", on_click="ignore",
                mime=XLSX if fmt == "xlsx" else "application/pdf")
