"""Automation pieces: the job editor (schedule builder, sources, the next 5 runs) and the run
triggers the Automation page and the Dashboard share. Core validates, logs and decides."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import available_timezones

import pandas as pd
import streamlit as st

from core.access import TRIGGER_RUN, Actor
from core.automation.jobs import (
    DEFAULT_TIMEZONE,
    Job,
    builder_from_cron,
    cron_from_builder,
    describe_schedule,
    get_job,
    load_jobs,
    pending_triggers,
    request_run,
    save_job,
    upcoming_runs,
)
from core.clock import utc_now
from core.errors import MarketPulseError
from pages._ui import sql_source_form
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store

KINDS = {"daily": "Daily at a time", "minutes": "Every N minutes", "hours": "Every N hours",
         "monthly": "Monthly on a day", "cron": "Custom cron"}
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 0: "Sun"}
MINUTE_STEPS = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]  # divide the hour evenly
HOUR_STEPS = [1, 2, 3, 4, 6, 8, 12]  # divide the day evenly
TIMEZONES = ["UTC", *sorted(z for z in available_timezones()
                     if "/" in z and not z.startswith("Etc/"))]
NEW = ""  # the editor's "new job" option
EDIT = "automation.edit"  # the editor's job selector
EDIT_FOR = "automation.edit_for_state"  # the job whose values the editor holds
EDIT_NEXT = "automation.edit_next_state"  # open this job in the editor on the next run
EDIT_VERSION = "automation.edit_version_state"  # the version the editor read (stale → Conflict)
# The editor's widgets, all set through the Session State API in every run before they are drawn:
# a value set so reaches the browser only with the run that set it, and one set only when a job
# is loaded reaches a browser that missed that run (superseded under load) as the widget's own
# default (inactive, no rules, no inbox), which the next edit sends back.
FORM_KEYS = ("automation.name", "automation.kind", "automation.timezone", "automation.at",
             "automation.weekdays", "automation.every_minutes", "automation.every_hours",
             "automation.minute", "automation.day", "automation.cron", "automation.job_active",
             "automation.apply_rules", "automation.email_success", "automation.email_failure",
             "automation.inbox", "automation.buffer", "automation.sql", *sql_source_form.KEYS)
SKIPPED_NOTE = "skipped (Run now and skip the next scheduled run)"


def clock() -> datetime:
    """Now; tests replace it to pin the preview, countdowns and trigger times."""
    return utc_now()


# -- messages that survive st.rerun ---------------------------------------------------------
def flash(prefix: str, text: str, level: str = "toast") -> None:
    st.session_state.setdefault(f"{prefix}.flash_state", []).append((level, text))


def show_flashes(prefix: str) -> None:
    for level, text in st.session_state.pop(f"{prefix}.flash_state", []):
        {"toast": st.toast, "success": st.success, "warning": st.warning}[level](
            escape_markdown(text))  # messages name jobs and files


def watch_key(prefix: str) -> str:
    """The session key of the "Run now" request this page follows (pages._ui.run_watch)."""
    return f"{prefix}.watch_state"


def reload_editor() -> None:
    """The open job changed here (trigger, toggle, revert): reload the editor from the store."""
    st.session_state.pop(EDIT_FOR, None)


# -- previews ----------------------------------------------------------------------------------
def preview_table(job: Job, now: datetime) -> pd.DataFrame:
    """The next 5 occurrences in the job's timezone; the skipped one says so."""
    return pd.DataFrame([{"Run at": f"{o.at:%a %d %b %Y %H:%M %Z}",
                          "Note": SKIPPED_NOTE if o.skipped else ""}
                         for o in upcoming_runs(job, now, 5)], columns=["Run at", "Note"])


# -- triggers (Automation page and Dashboard) -----------------------------------------------
def render_run_buttons(store: Store, actor: Actor, key_prefix: str,
                       job_id: str | None = None) -> None:
    """Run now / Run now and skip the next scheduled run / Run without rules, for `job_id` or a
    job chosen here (the first active one preselected). Each queues a request for the scheduler,
    which the page then follows (pages._ui.run_watch shows its progress and result)."""
    if not actor.can(TRIGGER_RUN):  # core refuses too; viewers and analysts see no buttons
        return
    show_flashes(key_prefix)
    jobs = load_jobs(store)
    if not jobs:
        st.info("No jobs yet: create one on the Automation page.")
        return
    names = {j.id: j.name for j in jobs}
    if job_id not in names:
        ids = list(names)
        first = next((j.id for j in jobs if j.active), ids[0])
        job_id = st.selectbox("Job to run", ids, index=ids.index(first), format_func=names.get,
                              key=f"{key_prefix}.run_job")
    name = names[job_id]
    run, skip, rules = st.columns(3)
    choice = None
    if run.button("Run now", key=f"{key_prefix}.run_now", width="stretch"):
        choice = (False, False, f"Queued a run of {name}.")
    if skip.button("Run now and skip the next scheduled run", key=f"{key_prefix}.run_skip_next",
                   width="stretch"):
        choice = (True, False, f"Queued a run of {name}; its next scheduled run will be skipped.")
    if rules.button("Run without rules", key=f"{key_prefix}.run_no_rules", width="stretch"):
        choice = (False, True, f"Queued a run of {name} without rules (OVERRIDE).")
    if choice is not None:
        with error_boundary(f"Queuing a run of {name}"):
            trigger = request_run(store, actor, job_id, skip_next=choice[0],
                                  override=choice[1], now=clock())
            st.session_state[watch_key(key_prefix)] = trigger.id
            flash(key_prefix, choice[2])
            reload_editor()
            st.rerun()
    for trigger in pending_triggers(store):  # queued by others (this page follows its own)
        if trigger.job_id == job_id and trigger.id != st.session_state.get(watch_key(key_prefix)):
            how = " without rules" if trigger.override else ""
            st.info(f"Queued: a run of {name}{how}, requested by {trigger.requested_by} at "
                    f"{trigger.requested_at[:19].replace('T', ' ')} UTC; it starts when the "
                    "scheduler picks it up.")


# -- the job editor -------------------------------------------------------------------------
def _load_editor(job: Job | None, version: str | None, default_tz: str) -> None:
    form = builder_from_cron(job.schedule) if job else ("daily", {"at": "09:30",
                                                                  "weekdays": [1, 2, 3, 4, 5]})
    # A custom cron, or a monthly day past 28 (the day picker stops there), edits as raw cron.
    kind, p = form if form and (form[0] != "monthly" or form[1]["day"] <= 28) else ("cron", {})
    sources = job.sources if job else [{"kind": "buffer"}]
    st.session_state.update({
        "automation.name": job.name if job else "", "automation.kind": kind,
        "automation.at": time.fromisoformat(p.get("at", "09:30")),
        "automation.weekdays": [d for d in WEEKDAYS if d in p.get("weekdays", [1, 2, 3, 4, 5])],
        "automation.every_minutes": p["every"] if kind == "minutes" else 15,
        "automation.every_hours": p["every"] if kind == "hours" else 1,
        "automation.minute": p.get("minute", 0), "automation.day": p.get("day", 1),
        "automation.cron": job.schedule if job else "30 9 * * 1-5",
        "automation.timezone": job.timezone if job else default_tz,
        "automation.job_active": job.active if job else True,
        "automation.apply_rules": job.apply_rules if job else True,
        "automation.email_success": job.email_on_success if job else False,
        "automation.email_failure": job.email_on_failure if job else True,
        "automation.inbox": "\n".join(s["path"] for s in sources if s.get("kind") == "inbox"),
        "automation.buffer": any(s.get("kind") == "buffer" for s in sources),
        **sql_source_form.editor_values(sources),
        EDIT_VERSION: version, EDIT_FOR: job.id if job else NEW})


def schedule_from_form() -> str:
    s = st.session_state
    kind = s["automation.kind"]
    at = s["automation.at"].strftime("%H:%M") if kind in ("daily", "monthly") else ""
    if kind == "daily":
        return cron_from_builder("daily", at=at, weekdays=s["automation.weekdays"])
    if kind == "minutes":
        return cron_from_builder("minutes", every=s["automation.every_minutes"])
    if kind == "hours":
        return cron_from_builder("hours", every=s["automation.every_hours"],
                                 minute=int(s["automation.minute"]))
    if kind == "monthly":
        return cron_from_builder("monthly", day=int(s["automation.day"]), at=at)
    return s["automation.cron"]


def sources_from_form(original: list[dict]) -> list[dict]:
    """The sources the editor shows, keeping settings it does not (min_age_s...)."""
    s = st.session_state
    inboxes = {x.get("path"): x for x in original if x.get("kind") == "inbox"}
    paths = [line.strip() for line in s["automation.inbox"].splitlines() if line.strip()]
    out = [{**inboxes.get(p, {}), "kind": "inbox", "path": p} for p in paths]
    if s["automation.buffer"]:
        out.append({"kind": "buffer"})
    if s["automation.sql"]:
        out.append(sql_source_form.source_from_form(
            next((x for x in original if x.get("kind") == "sql"), {})))
    return out


def render_job_editor(store: Store, actor: Actor, default_tz: str = DEFAULT_TIMEZONE) -> None:
    """Create or edit a job: name, schedule builder or raw cron, timezone, sources, switches, the
    next 5 runs, and Save (a stale editor gets core's Conflict)."""
    state = st.session_state
    jobs = {j.id: j for j in load_jobs(store)}
    if (chosen := state.pop(EDIT_NEXT, None)) is not None:
        state[EDIT], state[EDIT_FOR] = chosen, None
    if state.get(EDIT) not in (NEW, *jobs):
        state[EDIT] = NEW
    state[EDIT] = state[EDIT]  # sent with every run, as the form's values (FORM_KEYS) are
    picked = st.selectbox("Job to edit", [NEW, *jobs], key=EDIT,
                          format_func=lambda i: jobs[i].name if i else "(new job)")
    job, version = get_job(store, picked) if picked else (None, None)
    # Reload when another job is picked, or when Streamlit dropped the widgets' values (the
    # user visited another page: values of widgets not drawn in a run are forgotten).
    if state.get(EDIT_FOR) != picked or any(key not in state for key in FORM_KEYS):
        _load_editor(job, version, default_tz)
    for key in FORM_KEYS:  # sent with every run; kept for widgets this schedule does not show
        state[key] = state[key]
    st.text_input("Name", key="automation.name")
    kind = st.radio("Schedule", list(KINDS), format_func=KINDS.get, horizontal=True,
                    key="automation.kind")
    left, right = st.columns(2)
    if kind in ("daily", "monthly"):
        left.time_input("At (the job's timezone)", step=60, key="automation.at")
    if kind == "daily":
        right.multiselect("On", list(WEEKDAYS), format_func=WEEKDAYS.get, key="automation.weekdays")
    elif kind == "minutes":
        left.selectbox("Every … minutes", MINUTE_STEPS, key="automation.every_minutes")
    elif kind == "hours":
        left.selectbox("Every … hours", HOUR_STEPS, key="automation.every_hours")
        right.number_input("At minute", 0, 59, step=1, key="automation.minute")
    elif kind == "monthly":
        right.number_input("Day of the month", 1, 28, step=1, key="automation.day")
    else:
        left.text_input("Cron (minute hour day month weekday; 0 = Sunday)", key="automation.cron")
    zones = TIMEZONES if state["automation.timezone"] in TIMEZONES else [
        state["automation.timezone"], *TIMEZONES]
    right.selectbox("Timezone", zones, key="automation.timezone")
    with st.expander("Sources", expanded=True):
        st.text_area("Inbox folders (one per line; files move to processed/ or failed/)",
                     key="automation.inbox", height=68)
        st.checkbox("The upload buffer (pending files)", key="automation.buffer")
        sql_source_form.render_sql_source(
            store, actor, job.id if job else "",
            next((x for x in (job.sources if job else []) if x.get("kind") == "sql"), {}))
    a, b, c, d = st.columns(4)
    a.checkbox("Active", key="automation.job_active")
    b.checkbox("Apply rules", key="automation.apply_rules")
    c.checkbox("Email on success", key="automation.email_success")
    d.checkbox("Email on failure", key="automation.email_failure")
    draft = None
    try:
        draft = Job(name=state["automation.name"], schedule=schedule_from_form(),
                    timezone=state["automation.timezone"],
                    skip_next_at=job.skip_next_at if job else None)
        st.markdown(f"**{describe_schedule(draft.schedule, draft.timezone)}** "
                    f"(cron `{draft.schedule}`). The next 5 runs:")
        st.dataframe(preview_table(draft, clock()), hide_index=True, key="automation.preview")
    except (MarketPulseError, ValueError) as exc:  # the builder or croniter refusing the input
        st.warning(f"No preview: {exc}")
    if st.button("Save job", type="primary", key="automation.save"):
        with error_boundary("Saving the job"):
            if draft is None:
                schedule_from_form()  # raises the builder's InvalidInput for the boundary
            saved = save_job(store, actor, Job(
                name=state["automation.name"], schedule=draft.schedule, timezone=draft.timezone,
                active=state["automation.job_active"], apply_rules=state["automation.apply_rules"],
                sources=sources_from_form(job.sources if job else []),
                email_on_success=state["automation.email_success"],
                email_on_failure=state["automation.email_failure"],
                skip_next_at=draft.skip_next_at, id=job.id if job else ""),
                expected_version=state.get(EDIT_VERSION), now=clock())
            flash("automation", f"Saved job {saved.name}.")
            state[EDIT_NEXT] = saved.id
            st.rerun()
