"""Automation (admins): scheduler health, its recent log lines and the live run (a Run now followed
until it ends), jobs with their triggers, the job editor, run history, and the last job changes
with Revert. The scheduler sidecar does the runs."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from core.access import EDIT_JOBS, Actor
from core.automation.jobs import (
    AREA,
    REVERTIBLE,
    Job,
    cancel_trigger,
    delete_job,
    describe_schedule,
    duplicate_job,
    load_jobs,
    next_runs,
    pending_triggers,
    revert_job_change,
    toggle_job,
)
from core.automation.log_tail import load_log_tail
from core.automation.scheduler import run_in_app, scheduler_health
from core.config import Settings
from core.runs.records import load_runs
from pages._ui import automation_views as views
from pages._ui import cached, run_watch
from pages._ui.markdown import escape_markdown
from pages._ui.run_history import render_run_history
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.tables import WRAPPED
from storage import Store

DOWN = ("The scheduler is not running — start it with `python -m core.scheduler` "
        "(make run starts it)")
CONFIRM = "automation.delete_confirm_state"  # the job a Delete click asks to confirm
IDLE_EVERY = 10.0  # seconds between looks for a run starting while none is queued or running
LOG_LINES = 50  # of the scheduler's log tail shown
# Job names and schedules in words are shown whole: wide columns, rows tall enough to wrap.
JOB_COLUMNS = {"Name": st.column_config.TextColumn("Name", width="medium"),
               "Schedule": st.column_config.TextColumn("Schedule", width="large"),
               "Next run": st.column_config.TextColumn("Next run", width="medium")}


def countdown(at: datetime, now: datetime) -> str:
    seconds = int((at - now).total_seconds())
    if seconds < 60:
        return "in under a minute"
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"in {days} d {hours} h"
    return f"in {hours} h {minutes:02d} min" if hours else f"in {minutes} min"


def jobs_table(jobs: list[Job], st_store: Store, current: dict | None,
               now: datetime) -> pd.DataFrame:
    """One row per job: schedule in words, next run and countdown, status, active."""
    last: dict = {}
    for record in load_runs(st_store, limit=200):  # newest first
        last.setdefault(record.job, record)
    queued = {t.job_id for t in pending_triggers(st_store)}
    rows = []
    for job in jobs:
        upcoming = next_runs(job, now, 1) if job.active else []
        record = last.get(job.name)
        status = ("running" if current and current.get("job_id") == job.id
                  else "queued" if job.id in queued else record.status if record else "never run")
        rows.append({
            "Name": job.name, "Schedule": describe_schedule(job.schedule, job.timezone),
            "Timezone": job.timezone,
            "Next run": f"{upcoming[0]:%a %d %b %Y %H:%M %Z}" if upcoming else "off",
            "Countdown": countdown(upcoming[0], now) if upcoming else "",
            "Status": status, "Active": job.active,
            "Last run (UTC)": record.started_at[:16].replace("T", " ") if record else ""})
    return pd.DataFrame(rows, columns=["Name", "Schedule", "Timezone", "Next run", "Countdown",
                                       "Status", "Active", "Last run (UTC)"])


def health_banner(st_store: Store, cfg: Settings, actor: Actor) -> None:
    health = scheduler_health(st_store, views.clock())
    age = health["heartbeat_age_s"]
    if health["alive"]:
        holder = (health["lease_holder"] or {}).get("owner", "nobody")
        st.success(f"The scheduler is running: heartbeat {age:.0f} s ago, lease held by {holder}.")
    else:
        st.error(DOWN)
        st.caption(("No heartbeat was ever written." if age is None else
                    f"Last heartbeat {age:.0f} s ago.") + " Queued runs wait until it starts; "
                   "or run a job here (this page waits until the run ends).")
        jobs = {j.id: j.name for j in load_jobs(st_store)}
        if jobs:
            left, mid, right = st.columns([2, 1, 1])
            job_id = left.selectbox("Job", list(jobs), format_func=jobs.get,
                                    key="automation.in_app_job")
            override = mid.checkbox("Without rules", key="automation.in_app_override")
            if right.button("Run in this app process", key="automation.run_in_app"):
                with error_boundary(f"Running {jobs[job_id]}"), st.spinner("Running…"):
                    record = run_in_app(st_store, cfg, actor, job_id, views.clock(),
                                        override=override)
                    text = ("Nothing to process." if record is None else
                            f"Run {record.run_id} of {jobs[job_id]}: {record.status}."
                            + (f" {record.error}" if record.error else ""))
                    ok = record is not None and record.status == "success"
                    views.flash("automation", text, "success" if ok else "warning")
                    st.rerun()
    done = (health["heartbeat"] or {}).get("compaction") or {}
    if done.get("runs"):
        what = "new runs added to" if done.get("mode") == "delta" else "rewritten as"
        st.caption(f"Search copy: {what} the compacted copy {done['at'][:16].replace('T', ' ')} "
                   f"UTC ({done['runs']:,} runs, {done['rows']:,} rows in "
                   f"{done['seconds']:.1f} s).")
    for error in health["last_errors"][::-1][:5]:
        st.caption(f"⚠️ {error['at'][:19].replace('T', ' ')} · {escape_markdown(error['job'])}: "
                   f"{escape_markdown(error['error'])}")


def scheduler_log(st_store: Store) -> None:
    """The scheduler's last log lines (core.automation.log_tail), newest last."""
    lines = load_log_tail(st_store)[-LOG_LINES:]
    with st.expander(f"Scheduler log (last {len(lines)} lines, UTC)"):
        if not lines:
            st.caption("The scheduler has not logged anything yet.")
            return
        st.code("\n".join(f"{line['at'][:19].replace('T', ' ')} {line['level']:<7} "
                          f"{line['message']}" for line in lines), language=None)


def _toggled(st_store: Store, actor: Actor, job_id: str) -> None:
    with error_boundary("Switching the job"):
        toggle_job(st_store, actor, job_id, st.session_state["automation.active"],
                   now=views.clock())
        views.reload_editor()


@st.fragment(run_every="30s")
def jobs_overview(st_store: Store) -> None:
    """The jobs table, its countdowns and statuses refreshed every 30 s."""
    with error_boundary("Loading the jobs"):
        current = scheduler_health(st_store, views.clock())["current"]
        st.dataframe(jobs_table(load_jobs(st_store), st_store, current, views.clock()),
                     hide_index=True, width="stretch", key="automation.jobs",
                     row_height=WRAPPED, column_config=JOB_COLUMNS)


def jobs_tab(st_store: Store, actor: Actor) -> None:
    jobs_overview(st_store)
    jobs = load_jobs(st_store)
    if not jobs:
        st.info("No jobs yet: create one under Edit job.")
        return
    names = {j.id: j for j in jobs}
    job_id = st.selectbox("Job", list(names), format_func=lambda i: names[i].name,
                          key="automation.job")
    job = names[job_id]
    st.session_state["automation.active"] = job.active  # always the stored value
    st.toggle("Active", key="automation.active", on_change=_toggled, args=(st_store, actor, job_id))
    edit, copy, delete = st.columns(3)
    if edit.button("Edit", key="automation.edit_job", width="stretch"):
        st.session_state[views.EDIT_NEXT] = job_id
        views.flash("automation", f"{job.name} is open under Edit job.")
        st.rerun()
    if copy.button("Duplicate", key="automation.duplicate", width="stretch"):
        with error_boundary(f"Duplicating {job.name}"):
            dup = duplicate_job(st_store, actor, job_id, now=views.clock())
            views.flash("automation", f"Created {dup.name} (inactive).")
            st.rerun()
    if delete.button("Delete…", key="automation.delete", width="stretch"):
        st.session_state[CONFIRM] = job_id
    if st.session_state.get(CONFIRM) == job_id:
        st.warning(f"Delete {escape_markdown(job.name)}? Revert under Recent job changes brings "
                   "it back.")
        yes, no = st.columns(2)
        if yes.button(f"Delete {escape_markdown(job.name)}", type="primary",
                      key="automation.delete_confirm"):
            with error_boundary(f"Deleting {job.name}"):
                st.session_state.pop(CONFIRM)
                delete_job(st_store, actor, job_id, now=views.clock())
                views.flash("automation", f"Deleted {job.name}.")
                st.rerun()
        if no.button("Keep it", key="automation.delete_cancel"):
            st.session_state.pop(CONFIRM)
            st.rerun()
    st.markdown("**Run it**")
    views.render_run_buttons(st_store, actor, "automation", job_id=job_id)
    queued = pending_triggers(st_store)
    if queued:
        st.markdown("**Queued runs**")
    for trigger in queued:
        left, right = st.columns([4, 1])
        left.write(f"{escape_markdown(trigger.job)}{' without rules' if trigger.override else ''}"
                   f" · requested by {escape_markdown(trigger.requested_by)} at "
                   f"{trigger.requested_at[:19].replace('T', ' ')}")
        if right.button("Cancel", key=f"automation.cancel_{trigger.id}"):
            with error_boundary(f"Cancelling the run of {trigger.job}"):
                cancel_trigger(st_store, actor, trigger.id, now=views.clock())
                views.flash("automation", f"Cancelled the queued run of {trigger.job}.")
                st.rerun()


def changes_tab(st_store: Store, actor: Actor) -> None:
    changes = cached.recent_changes(st_store, area=AREA, limit=REVERTIBLE)
    if changes.empty:
        st.caption("No job changes yet.")
    for row in changes.itertuples(index=False):
        left, right = st.columns([4, 1])
        left.write(f"{pd.Timestamp(row.AT):%Y-%m-%d %H:%M} UTC · {escape_markdown(row.ACTOR)} · "
                   f"{row.ACTION} · {escape_markdown(row.ENTITY)}")
        if right.button("Revert", key=f"automation.revert_{row.EVENT_ID}"):
            with error_boundary(f"Reverting the {row.ACTION} of {row.ENTITY}"):
                restored = revert_job_change(st_store, actor, row.EVENT_ID, now=views.clock())
                views.flash("automation", f"Reverted: {row.ENTITY} "
                            + ("removed." if restored is None else "restored."))
                views.reload_editor()
                st.rerun()


st.title("Automation")
st_store, cfg, actor = store(), settings(), current_actor()
if not actor.can(EDIT_JOBS):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Automation.")
    st.stop()
views.show_flashes("automation")
with error_boundary("Reading the scheduler's health"):
    health_banner(st_store, cfg, actor)
with error_boundary("Reading the live status"):
    run_watch.watch_runs(st_store, "automation", idle_every=IDLE_EVERY,
                         idle_text="No run in progress.")
with error_boundary("Reading the scheduler's log"):
    scheduler_log(st_store)
st.page_link("pages/manual_color.py", label="Upload buffer", icon="📥")
jobs, editor, history, changes = st.tabs(["Jobs", "Edit job", "Run history", "Recent job changes"])
with jobs, error_boundary("Loading the jobs"):
    jobs_tab(st_store, actor)
with editor, error_boundary("Loading the job editor"):
    views.render_job_editor(st_store, actor, str(cfg["scheduler.timezone"]))
with history, error_boundary("Loading the run history"):
    render_run_history(st_store, actor, settings=cfg)
with changes, error_boundary("Loading the job changes"):
    changes_tab(st_store, actor)
