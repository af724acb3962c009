"""Dashboard: the desk's day at a glance. Filters (a date window, the last 30 days unless widened;
sector; processing type) drive every element: KPIs, charts, the latest parents, the runs list and
the Excel export. Days and times are the desk's (the scheduler.timezone setting), labelled. The
latest parents list each CUSIP once, paged, and a selected parent shows its children. Everything
comes from core.reads (cached), under the user's sectors. Admins can queue a run and follow it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.access import TRIGGER_RUN, Actor
from core.automation.jobs import load_jobs, next_runs
from core.reads.dashboard import DashboardData, DashboardFilters, export_dashboard
from core.runs import records as runs
from core.schema import COLOR_ID, CUSIP, PROCESSING_TYPES, RUN_ID
from pages._ui import cached, charts, run_watch
from pages._ui.automation_views import clock, render_run_buttons
from pages._ui.markdown import escape_markdown
from pages._ui.search_views import SECURITY_PAGE
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.tables import show_table
from pages._ui.widgets import SUMMARY_COLUMNS
from storage import Store

NO_RUNS = ("No runs yet. Publish colors from the Manual Color page, or run "
           "`python -m core process FILE`.")
LATEST = 50  # parents per page of the latest parents
SHOWN_RUNS = 200  # newest runs in the runs table
RUN_LABELS = {"RUN_ID": "Run", "KIND": "Kind", "STATUS": "Status", "TRIGGER": "Trigger",
              "REQUESTED_BY": "Requested by", "STARTED_AT": "Started", "DURATION_S": "Seconds",
              "READ": "Read", "PUBLISHED": "Published", "PARENTS": "Parents",
              "EXCLUDED": "Excluded", "QUARANTINED": "Quarantined", "ERROR": "Error"}
# The date window over DATE: days back from today (inclusive of today), None for every date.
WINDOWS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Last 365 days": 365,
           "All dates": None, "Custom": None}
DEFAULT_WINDOW = "Last 30 days"  # one back-dated file does not flatten the daily charts
IDLE_EVERY = 30.0  # seconds between looks for a new run while none is queued or running
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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


def local(stamp: str | None, tz: ZoneInfo) -> pd.Timestamp | None:
    """A stored stamp (UTC when it carries no zone) in the desk's timezone."""
    if not stamp:
        return None
    at = pd.Timestamp(stamp)
    return (at if at.tzinfo else at.tz_localize("UTC")).tz_convert(tz)


def when(stamp: str | None, tz: ZoneInfo) -> str:
    """A run time, short enough for a metric: day, month and time in the desk's timezone."""
    at = local(stamp, tz)
    return "—" if at is None else f"{at:%d %b %H:%M}"


def date_window(choice: str, today: date) -> tuple[date | None, date | None]:
    """The DATE bounds of a window choice ending today (the desk's today)."""
    days = WINDOWS.get(choice)
    return (None, None) if days is None else (today - timedelta(days=days - 1), today)


def window_words(first: date | None, last: date | None) -> str:
    """The DATE window in words: '13 Feb 2026 to 13 Mar 2026', open ends said as such."""
    if first is None and last is None:
        return "every date"
    return (f"{f'{first:%d %b %Y}' if first else 'the first date'} to "
            f"{f'{last:%d %b %Y}' if last else 'the last date'}")


def render_kpis(data: DashboardData, upcoming: tuple[datetime, str] | None,
                now: datetime, tz: ZoneInfo) -> None:
    k = data.kpis
    row = st.columns(5)
    row[0].metric("Today's colors", f"{k['today_colors']:,}")
    row[1].metric("This month", f"{k['month_colors']:,}")
    row[2].metric("Today's parents", f"{k['today_parents']:,}")
    row[3].metric("Excluded today", f"{k['today_excluded']:,}")
    row[4].metric("Quarantined today", f"{k['today_quarantined']:,}")
    row = st.columns(5)
    row[0].metric("Latest parents", f"{k['latest_parents']:,}",
                  help="CUSIPs whose current parent passes the filters: the list below")
    last = f"Run {k['last_run_id']}: {k['last_run_status']}" if k["last_run_id"] else "—"
    row[1].metric("Last run", last)
    at = local(k["last_run_at"], tz)
    row[2].metric(f"Last run at ({tz})", when(k["last_run_at"], tz),
                  help=None if at is None else f"{at:%a %d %b %Y %H:%M:%S %Z}")
    row[3].metric("Next run", countdown(upcoming[0], now) if upcoming else "—",
                  help=f"{upcoming[1]} at {upcoming[0].astimezone(tz):%a %d %b %Y %H:%M %Z}"
                  if upcoming else "No active job")
    st.caption(f"Today is {now:%a %d %b %Y} in {tz}, the desk's timezone: every day and time on "
               "this page is in it. KPIs count colors by processing time (today, this month) "
               "and follow every filter the charts follow: the DATE window, sectors and "
               "processing types.")


def render_charts(figures: dict[str, go.Figure | None]) -> None:
    """The six overview charts, two columns, without Plotly's toolbar (charts.show)."""
    left, right = st.columns(2)
    with left:
        _overview(figures["month_bias"], "month_bias", "No colors for these filters.")
        _overview(figures["source"], "source", "No colors for these filters.")
        _overview(figures["runs"], "runs", "No finished runs for these filters.")
    with right:
        _overview(figures["sector"], "sector", "No colors for these filters.")
        _overview(figures["diff"], "diff", "No colors with a COV_PRICE for these filters.")
        _overview(figures["quality"], "quality", "No scored runs for these filters.")


def _overview(figure: go.Figure | None, name: str, empty: str) -> None:
    charts.show(figure, f"dashboard.chart_{name}", empty, toolbar=False)


def render_latest(st_store: Store, actor: Actor, data: DashboardData,
                  filters: DashboardFilters) -> None:
    """Each CUSIP once with its current parent, paged; a selected parent shows its children."""
    st.subheader("Latest parents")
    total = int(data.kpis["latest_parents"])
    if not total:
        st.info("No parents for these filters.")
        return
    pages = max(1, -(-total // filters.latest_limit))
    page = 1
    if pages > 1:
        if st.session_state.get("dashboard.parents_page", 1) > pages:  # the filters narrowed
            st.session_state["dashboard.parents_page"] = pages
        page = int(st.number_input(f"Page (of {pages})", 1, pages, step=1,
                                   key="dashboard.parents_page"))
    parents = (data.latest_parents if page == 1 else
               cached.latest_parents(st_store, actor, filters, page).rows)
    first = (page - 1) * filters.latest_limit + 1
    st.caption(f"{total:,} CUSIPs, each with its current parent (from the newest run that priced "
               f"it); {first:,}–{first + len(parents) - 1:,} shown. Select one to see its "
               "children.")
    shown = [c for c in SUMMARY_COLUMNS if c in parents.columns]
    event = show_table(parents[shown], key="dashboard.parents", on_select="rerun",
                       selection_mode="single-row")
    rows = [r for r in (event.selection.rows if event is not None else []) if r < len(parents)]
    if not rows or CUSIP not in parents.columns:
        return
    parent = parents.iloc[rows[0]]
    cusip = str(parent[CUSIP])
    if {RUN_ID, COLOR_ID} <= set(parents.columns):
        children = cached.parent_children(st_store, actor, cusip, int(parent[RUN_ID]),
                                           str(parent[COLOR_ID]))
        st.markdown(f"**{escape_markdown(cusip)}** run {int(parent[RUN_ID])}: "
                    f"{len(children)} child color(s)")
        if len(children):
            show_table(children[[c for c in SUMMARY_COLUMNS if c in children.columns]],
                       key="dashboard.children")
    if st.button(f"Open security {escape_markdown(cusip)}", key="dashboard.open"):
        st.switch_page(SECURITY_PAGE, query_params={"cusip": cusip})


def render_runs(actor: Actor, data: DashboardData, tz: ZoneInfo) -> None:
    st.subheader("Runs")
    newest = data.runs.sort_values("RUN_ID", ascending=False).head(SHOWN_RUNS)
    labels = {**RUN_LABELS, "STARTED_AT": f"Started ({tz})"}
    table = newest[[c for c in labels if c in newest.columns]].rename(columns=labels)
    table[labels["STARTED_AT"]] = [
        "" if (at := local(stamp, tz)) is None else f"{at:%Y-%m-%d %H:%M:%S}"
        for stamp in newest["STARTED_AT"]]
    if "Read" not in table.columns:  # core left out the whole-run counts
        st.caption("Published and Parents count your sectors' colors; run totals are shown to "
                   "users who see every sector.")
    if actor.can(TRIGGER_RUN):
        st.caption("The Automation page has the full run history, with filters and downloads.")
    st.dataframe(table.reset_index(drop=True), hide_index=True, width="stretch")


def render_export(st_store: Store, actor: Actor, data: DashboardData,
                  filters: DashboardFilters) -> None:
    """The dashboard's data in one click: the workbook is made, and the export logged, when the
    button is clicked (Streamlit's deferred download)."""
    def exported() -> bytes:
        return export_dashboard(st_store, actor, filters, clock(), data)  # core logs the export

    st.download_button("Download the dashboard (.xlsx)", exported,
                       file_name=f"marketpulse-dashboard-{clock():%Y%m%d-%H%M}.xlsx",
                       mime=XLSX, key="dashboard.download", on_click="ignore")

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
    tz = ZoneInfo(settings()["scheduler.timezone"])
    now = clock().astimezone(tz)
    sector_choices, cusip_choices = cached.dashboard_choices(
        st_store, actor, DashboardFilters(latest_limit=LATEST), now)
    a, b, c = st.columns([2, 2, 2])
    window = a.selectbox("DATE window", list(WINDOWS), index=list(WINDOWS).index(DEFAULT_WINDOW),
                         key="dashboard.window", help="Widen it to see older colors")
    date_from, date_to = date_window(window, now.date())
    if window == "Custom":
        left, right = a.columns(2)
        date_from = left.date_input("DATE from", value=now.date() - timedelta(days=29),
                                    key="dashboard.date_from")
        date_to = right.date_input("DATE to", value=now.date(), key="dashboard.date_to")
    sectors = b.multiselect("Sector", sector_choices, key="dashboard.sectors")
    types = c.multiselect("Processing type", PROCESSING_TYPES, key="dashboard.types")
    st.caption(f"DATE window: {window_words(date_from, date_to)}.")
    # The price-trend picker sits by its chart; its value is in the session before it is drawn.
    picked = tuple(st.session_state.get("dashboard.cusips") or ())
    filters = DashboardFilters(date_from, date_to, tuple(sectors), tuple(types), picked, LATEST)
    data = cached.dashboard(st_store, actor, filters, now)

    upcoming = next_run(st_store, now)
    data = replace(data, kpis={**data.kpis,
                               "next_run_at": upcoming[0].isoformat() if upcoming else None})
    render_kpis(data, upcoming, now, tz)
    figures = cached.dashboard_figures(st_store, actor, filters, now, data)
    render_charts(figures)
    st.subheader("Price trends")
    st.multiselect("CUSIPs", sorted(set(cusip_choices) | set(picked)), key="dashboard.cusips",
                   accept_new_options=True, placeholder="Choose or type CUSIPs")
    charts.show(figures["trend"], "dashboard.chart_trend",
                "Choose CUSIPs to compare their parent prices.")
    render_latest(st_store, actor, data, filters)
    render_export(st_store, actor, data, filters)
    render_runs(actor, data, tz)
