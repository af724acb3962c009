"""Dashboard: the desk's day at a glance. Filters (date range, sector, processing type) drive every
element: KPIs, charts, the latest parents, the runs list and the Excel export. Everything comes
from core.reads.dashboard.dashboard_data (cached), under the user's sectors. Admins can queue a
run."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from core.access import TRIGGER_RUN, Actor
from core.automation.jobs import load_jobs, next_runs
from core.compliance.access_log import log_export
from core.reads.dashboard import DashboardData, DashboardFilters, dashboard_workbook
from core.runs import records as runs
from core.schema import CUSIP, PROCESSING_TYPES, SECTOR
from pages._ui import cached, charts, run_watch
from pages._ui.automation_views import clock, render_run_buttons
from pages._ui.markdown import escape_markdown
from pages._ui.search_views import COLUMN_CONFIG, SECURITY_PAGE
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.widgets import SUMMARY_COLUMNS
from storage import Store

NO_RUNS = ("No runs yet. Publish colors from the Manual Color page, or run "
           "`python -m core process FILE`.")
LATEST = 50  # parents in the latest parents table
SHOWN_RUNS = 200  # newest runs in the runs table
RUN_LABELS = {"RUN_ID": "Run", "KIND": "Kind", "STATUS": "Status", "TRIGGER": "Trigger",
              "REQUESTED_BY": "Requested by", "STARTED_AT": "Started (UTC)",
              "DURATION_S": "Seconds",
              "READ": "Read", "PUBLISHED": "Published", "PARENTS": "Parents",
              "EXCLUDED": "Excluded", "QUARANTINED": "Quarantined", "ERROR": "Error"}
IDLE_EVERY = 30.0  # seconds between looks for a new run while none is queued or running
EXPORTED = "dashboard.export_state"  # (filters, bytes) of the last prepared export


def countdown(at: datetime, now: datetime) -> str:
    seconds = int((at - now).total_seconds())
    if seconds < 60:
        return "in under a minute"
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"in {days} d {hours} h"
    return f"in {hours} h {minutes:02d} min" if hours else f"in {minutes} min"


def next_run(st_store: Store, now: datetime) -> tuple[datetime, str] | None:
    """The earliest next run over the active jobs, and the job's name."""
    upcoming = [(at, job.name) for job in load_jobs(st_store) if job.active
                for at in next_runs(job, now, 1)]
    return min(upcoming) if upcoming else None


def when(stamp: str | None) -> str:
    """A run time, short enough for a metric: day, month and UTC time."""
    if not stamp:
        return "—"
    at = pd.Timestamp(stamp)
    return f"{(at.tz_convert('UTC') if at.tzinfo else at):%d %b %H:%M}"


def render_kpis(data: DashboardData, upcoming: tuple[datetime, str] | None,
                now: datetime) -> None:
    k = data.kpis
    row = st.columns(4)
    row[0].metric("Today's colors", f"{k['today_colors']:,}")
    row[1].metric("This month", f"{k['month_colors']:,}")
    row[2].metric("Today's parents", f"{k['today_parents']:,}")
    row[3].metric("Excluded today", f"{k['today_excluded']:,}")
    row = st.columns(4)
    row[0].metric("Quarantined today", f"{k['today_quarantined']:,}")
    last = f"Run {k['last_run_id']}: {k['last_run_status']}" if k["last_run_id"] else "—"
    row[1].metric("Last run", last)
    row[2].metric("Last run at (UTC)", when(k["last_run_at"]), help=k["last_run_at"] or None)
    row[3].metric("Next run", countdown(upcoming[0], now) if upcoming else "—",
                  help=f"{upcoming[1]} at {upcoming[0]:%a %d %b %Y %H:%M %Z}" if upcoming
                  else "No active job")
    st.caption(f"Today is {now:%a %d %b %Y} ({now.tzinfo}); KPIs count colors by processing "
               "time and follow the sector and processing-type filters.")


def render_charts(data: DashboardData) -> None:
    left, right = st.columns(2)
    with left:
        charts.show(charts.colors_by_month_bias(data.colors_by_month_bias),
                    "dashboard.chart_month_bias", "No colors for these filters.")
        charts.show(charts.volume_by_day(data.volume_by_source, "SOURCE"),
                    "dashboard.chart_source", "No colors for these filters.")
        charts.show(charts.run_performance(data.runs, "ROWS_PER_S" in data.runs),
                    "dashboard.chart_runs", "No finished runs for these filters.")
    with right:
        charts.show(charts.volume_by_day(data.volume_by_sector, SECTOR),
                    "dashboard.chart_sector", "No colors for these filters.")
        charts.show(charts.diff_distribution(data.diff_distribution), "dashboard.chart_diff",
                    "No colors with a COV_PRICE for these filters.")
        charts.show(charts.quality(data.runs), "dashboard.chart_quality",
                    "No scored runs for these filters.")


def render_latest(data: DashboardData) -> None:
    parents = data.latest_parents
    st.subheader("Latest parents")
    if parents.empty:
        st.info("No parents for these filters.")
        return
    shown = [c for c in SUMMARY_COLUMNS if c in parents.columns]
    event = st.dataframe(parents[shown], key="dashboard.parents", hide_index=True,
                         width="stretch", on_select="rerun", selection_mode="single-row",
                         column_config=COLUMN_CONFIG)
    rows = [r for r in (event.selection.rows if event is not None else []) if r < len(parents)]
    if rows and CUSIP in parents.columns:
        cusip = str(parents.iloc[rows[0]][CUSIP])
        if st.button(f"Open security {escape_markdown(cusip)}", key="dashboard.open"):
            st.switch_page(SECURITY_PAGE, query_params={"cusip": cusip})


def render_runs(actor: Actor, data: DashboardData) -> None:
    st.subheader("Runs")
    newest = data.runs.sort_values("RUN_ID", ascending=False).head(SHOWN_RUNS)
    table = newest[[c for c in RUN_LABELS if c in newest.columns]].rename(columns=RUN_LABELS)
    table["Started (UTC)"] = table["Started (UTC)"].str[:19].str.replace("T", " ")
    if "Read" not in table.columns:  # core left out the whole-run counts
        st.caption("Published and Parents count your sectors' colors; run totals are shown to "
                   "users who see every sector.")
    if actor.can(TRIGGER_RUN):
        st.caption("The Automation page has the full run history, with filters and downloads.")
    st.dataframe(table.reset_index(drop=True), hide_index=True, width="stretch")


def render_export(st_store: Store, actor: Actor, data: DashboardData,
                  filters: DashboardFilters) -> None:
    what = "dashboard " + json.dumps(asdict(filters), sort_keys=True, default=str)
    if st.button("Export the dashboard to Excel", key="dashboard.export"):
        with error_boundary("Exporting the dashboard"):
            book = dashboard_workbook(data)
            rows = sum(len(f) for f in (data.colors_by_month_bias, data.volume_by_sector,
                                        data.volume_by_source, data.price_trend,
                                        data.diff_distribution, data.runs, data.latest_parents))
            log_export(st_store, actor, what, "xlsx", rows)
            st.session_state[EXPORTED] = (what, book)
    ready = st.session_state.get(EXPORTED)
    if ready and ready[0] == what:
        st.download_button("Download the dashboard (.xlsx)", ready[1],
                           file_name=f"marketpulse-dashboard-{clock():%Y%m%d-%H%M}.xlsx",
                           key="dashboard.download", on_click="ignore")


st.title("Dashboard")
st_store = store()
actor = current_actor()

if actor.can(TRIGGER_RUN):
    with st.expander("Run a job now"), error_boundary("Loading the run buttons"):
        render_run_buttons(st_store, actor, "dashboard")
with error_boundary("Following the runs"):  # admins see a run's progress; everyone's page refreshes
    run_watch.watch_runs(st_store, "dashboard", idle_every=IDLE_EVERY,
                         show=actor.can(TRIGGER_RUN))

with error_boundary("Loading the dashboard"):
    if not runs.load_runs(st_store, limit=1):
        st.info(NO_RUNS)
        st.stop()
    now = clock().astimezone(ZoneInfo(settings()["scheduler.timezone"]))
    everything = cached.dashboard(st_store, actor, DashboardFilters(latest_limit=LATEST), now)
    a, b, c, d = st.columns(4)
    date_from = a.date_input("DATE from", value=None, key="dashboard.date_from")
    date_to = b.date_input("DATE to", value=None, key="dashboard.date_to")
    sectors = c.multiselect("Sector", sorted(everything.volume_by_sector[SECTOR].unique()),
                            key="dashboard.sectors")
    types = d.multiselect("Processing type", PROCESSING_TYPES, key="dashboard.types")
    # The price-trend picker sits by its chart; its value is in the session before it is drawn.
    picked = tuple(st.session_state.get("dashboard.cusips") or ())
    filters = DashboardFilters(date_from, date_to, tuple(sectors), tuple(types), picked, LATEST)
    data = cached.dashboard(st_store, actor, filters, now)

    upcoming = next_run(st_store, now)
    data = replace(data, kpis={**data.kpis,
                               "next_run_at": upcoming[0].isoformat() if upcoming else None})
    render_kpis(data, upcoming, now)
    render_charts(data)
    st.subheader("Price trends")
    choices = sorted(set(everything.latest_parents.get(CUSIP, pd.Series(dtype=str))) | set(picked))
    st.multiselect("CUSIPs", choices, key="dashboard.cusips", accept_new_options=True,
                   placeholder="Choose or type CUSIPs")
    charts.show(charts.price_trend(data.price_trend), "dashboard.chart_trend",
                "Choose CUSIPs to compare their parent prices.")
    render_latest(data)
    render_export(st_store, actor, data, filters)
    render_runs(actor, data)
