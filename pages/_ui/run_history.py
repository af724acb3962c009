"""Run history on the Automation page: filters, the runs table, a calendar by day and status, and
one run's detail (validation problems, per-rule exclusions, files, downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import partial

import pandas as pd
import streamlit as st

from core.access import Actor
from core.automation.sweep import load_swept_runs
from core.config import Settings
from core.ingest.validation import Problem, ValidationReport
from core.reads.history import load_rows
from core.runs.duplicates import run_notes
from core.runs.exports import write_xlsx
from core.runs.records import (
    EXCLUDED_TABLE,
    QUARANTINED_TABLE,
    STATUSES,
    SUCCESS,
    RunRecord,
    load_runs,
)
from core.runs.workbooks import FAILED, PENDING, workbook_note, workbook_state
from pages._ui.markdown import escape_markdown
from pages._ui.run_removal import render_removal
from pages._ui.widgets import validation_report
from storage import ObjectNotFound, Store

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NO_JOB = "(no job: manual or CLI)"
COLOURS = {"success": "#b7e4c7", "failed": "#f4a5a5", "missed": "#f9c98a", "skipped": "#dddddd",
           "running": "#a9cbf5", "queued": "#d3c4f0", "cancelled": "#eeeeee", "removed": "#d7b9a8",
           "abandoned": "#e8c4c4"}
COLUMNS = ["Run", "Job", "Status", "Trigger", "Kind", "Requested by", "Started (UTC)", "Seconds",
           "Read", "Published", "Parents", "Excluded", "Quarantined", "Workbook", "Error"]
WORKBOOK = {PENDING: "being prepared", FAILED: "failed"}  # ready: "ready"; none: ""


def run_date(record: RunRecord) -> date | None:
    return datetime.fromisoformat(record.started_at).date() if record.started_at else None


def filter_runs(records: Sequence[RunRecord], statuses: Sequence[str], jobs: Sequence[str],
                dates: Sequence[date]) -> list[RunRecord]:
    """Runs of the chosen statuses and jobs (none chosen: all) started within the dates (UTC)."""
    first, last = (dates[0], dates[-1]) if dates else (None, None)
    return [r for r in records
            if (not statuses or r.status in statuses)
            and (not jobs or (r.job or NO_JOB) in jobs)
            and (first is None or ((d := run_date(r)) is not None and first <= d <= last))]


def history_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Run": r.run_id, "Job": r.job, "Status": r.status, "Trigger": r.trigger, "Kind": r.kind,
        "Requested by": r.requested_by or r.actor,
        "Started (UTC)": r.started_at[:19].replace("T", " "),
        "Seconds": round(r.duration_s, 1), "Read": r.counts.get("read", 0),
        "Published": r.counts.get("published", 0), "Parents": r.counts.get("parents", 0),
        "Excluded": r.counts.get("excluded", 0), "Quarantined": r.counts.get("quarantined", 0),
        "Workbook": WORKBOOK.get(workbook_state(r), workbook_state(r)),
        "Error": r.error} for r in records], columns=COLUMNS)


def calendar_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Runs per day (newest first, UTC) and status: the calendar of the history."""
    days = [(str(d), r.status) for r in records if (d := run_date(r)) is not None]
    if not days:
        return pd.DataFrame(columns=["Day"]).set_index("Day")
    frame = pd.DataFrame(days, columns=["Day", "Status"])
    table = pd.crosstab(frame["Day"], frame["Status"]).sort_index(ascending=False)
    table = table[[s for s in STATUSES if s in table.columns]]
    table.columns.name = None
    return table


def stages_table(record: RunRecord) -> pd.DataFrame:
    """How long each stage of the run took, in order, and its share of the stages' time."""
    total = sum(record.stages.values())
    return pd.DataFrame([{"Stage": name, "Seconds": round(seconds, 3),
                          "Share": f"{seconds / total:.0%}" if total else ""}
                         for name, seconds in record.stages.items()],
                        columns=["Stage", "Seconds", "Share"])


def _colour(table: pd.DataFrame) -> pd.io.formats.style.Styler:
    def paint(column: pd.Series) -> list[str]:
        colour = COLOURS.get(str(column.name), "")
        return [f"background-color: {colour}" if v else "" for v in column]

    return table.style.apply(paint)


def render_run_history(store: Store, actor: Actor, key: str = "automation",
                       settings: Settings | None = None) -> None:
    """Filters, the runs table, the calendar and the detail of one chosen run. With settings,
    runs whose process died are swept to abandoned first (core.runs.liveness)."""
    if settings is None:
        records = load_runs(store, limit=500)  # one store read per run: the newest 500
    else:
        records = load_swept_runs(store, actor, settings, limit=500)
    a, b, c = st.columns(3)
    statuses = a.multiselect("Status", STATUSES, key=f"{key}.history_status")
    jobs = b.multiselect("Job", sorted({r.job or NO_JOB for r in records}),
                         key=f"{key}.history_job")
    dates = c.date_input("Started between (UTC)", value=(), key=f"{key}.history_dates")
    shown = filter_runs(records, statuses, jobs, list(dates))
    st.caption(f"{len(shown)} of {len(records)} runs.")
    st.dataframe(history_table(shown), hide_index=True, width="stretch", height=300,
                 column_config={"Error": st.column_config.TextColumn("Error", width="large")},
                 key=f"{key}.history")
    with st.expander("Calendar: runs by day and status", expanded=False):
        table = calendar_table(shown)
        if table.empty:
            st.caption("No runs.")
        else:
            st.dataframe(_colour(table.head(62)), width="stretch", key=f"{key}.calendar")
    if not shown:
        return
    by_id = {r.run_id: r for r in shown}
    run_id = st.selectbox("Run details", list(by_id), key=f"{key}.run",
                          format_func=lambda i: f"Run {i} · {by_id[i].job or by_id[i].kind} · "
                                                f"{by_id[i].status} · {by_id[i].started_at[:16]}")
    render_run_detail(store, actor, by_id[run_id], key)


def render_run_detail(store: Store, actor: Actor, record: RunRecord, key: str) -> None:
    counts = record.counts or {}
    by = escape_markdown(record.actor)
    if record.requested_by and record.requested_by != record.actor:
        by += f", requested by {escape_markdown(record.requested_by)}"
    st.markdown(f"**Run {record.run_id}** ({record.kind}, {record.trigger} by {by}): "
                f"**{record.status}**, started {record.started_at[:19].replace('T', ' ')} UTC, "
                f"{record.duration_s:.1f} s.")
    if record.error:
        (st.error if record.status in ("failed", "abandoned") else st.info)(
            escape_markdown(record.error))
    for note in run_notes(record):  # colors and files already published
        st.info(escape_markdown(note))
    cols = st.columns(5)
    for col, name in zip(cols, ("read", "published", "parents", "excluded", "quarantined"),
                         strict=True):
        col.metric(name.title(), f"{counts.get(name, 0):,}")
    if record.stages:
        st.markdown("**Stages**")
        st.dataframe(stages_table(record), hide_index=True, key=f"{key}.run_stages")
    if record.files:
        st.markdown("**Files**")
        st.dataframe(pd.DataFrame(record.files), hide_index=True, key=f"{key}.run_files")
    if record.per_rule:
        st.markdown("**Rows excluded by each rule**")
        st.dataframe(pd.DataFrame({"Rule": list(record.per_rule),
                                   "Excluded rows": list(record.per_rule.values())}),
                     hide_index=True, key=f"{key}.run_rules")
    if record.problems or counts.get("read"):
        st.markdown("**Validation**")
        validation_report(ValidationReport(
            [Problem(**p) for p in record.problems], rows_total=counts.get("read", 0),
            rows_quarantined=counts.get("quarantined", 0)), key=f"{key}.run_report")
    render_removal(store, actor, record, key)
    if record.status != SUCCESS:
        return
    stem = f"marketpulse-run-{record.run_id:08d}"
    note = workbook_note(record)
    if note:
        (st.warning if workbook_state(record) == FAILED else st.info)(escape_markdown(note))
    elif record.output:
        try:
            st.download_button("Download the output workbook", store.get_blob(record.output),
                               file_name=f"{stem}.xlsx", mime=XLSX, key=f"{key}.download_output")
        except ObjectNotFound:
            st.caption("The output workbook of this run is no longer stored.")
    for table, label in ((EXCLUDED_TABLE, "excluded"), (QUARANTINED_TABLE, "quarantined")):
        count = counts.get(label, 0)
        if count and actor.sectors is not None:  # only their sectors' rows: count those
            count = len(load_rows(store, actor, table, run_ids=[record.run_id]))
        if count:
            st.download_button(f"Download the {label} rows ({count:,})",
                               partial(_rows_workbook, store, actor, table, record.run_id, label),
                               file_name=f"{stem}-{label}.xlsx", mime=XLSX,
                               key=f"{key}.download_{label}", on_click="ignore")


def _rows_workbook(store: Store, actor: Actor, table: str, run_id: int, label: str) -> bytes:
    """A run's excluded or quarantined rows the actor may see, as a workbook: made on the click
    (every rerun of the page made it before, 0.1–0.3 s)."""
    rows = load_rows(store, actor, table, run_ids=[run_id])
    return write_xlsx(rows, sheet_name=label.title())
