"""Backups (admins): back up now with a reason; the backups with when, who, why, size, duration and
item counts; download (made on the click, logged), verify, delete (the backup's id typed to
confirm: a deleted backup cannot be brought back); restore all or chosen areas (or one run)
after a preview of exactly what changes and a confirmation; an uploaded archive added to the list
to restore from; the schedule of automatic backups and their retention. Core checks the permission
on every call and logs each backup, restore and schedule change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import MANAGE_BACKUPS
from core.compliance import backups
from core.compliance.backup_schedule import (
    BackupSchedule,
    load_backup_schedule,
    save_backup_schedule,
)
from core.compliance.restore import preview_restore, restore_backup
from core.compliance.restore_plan import area_names
from pages._ui.automation_views import clock, flash, show_flashes
from pages._ui.markdown import escape_markdown
from pages._ui.services import current_actor, error_boundary, settings, store

PICK, WHY, RUN = "backups.pick", "backups.why", "backups.run"
PLAN = "backups.plan_state"  # (backup id, areas asked for, the plan shown)
VERIFIED = "backups.verify_state"  # (backup id, held, words)
DELETING = "backups.delete_state"  # the id of the backup a Delete click asks to confirm
TYPED = "backups.delete_id"  # the id typed to confirm it
NONCE = "backups.upload_nonce_state"  # renewed to empty the uploader after an import
MB = 1024 * 1024
WAIT_S = 120.0  # a restore from the page waits this long for a job run in progress

st.title("Backups")
st_store, actor = store(), current_actor()
if not actor.can(MANAGE_BACKUPS):  # app.py registers this page for admins only; core checks too
    st.error("Only admins can open Backups.")
    st.stop()
show_flashes("backups")

# -- back up now -------------------------------------------------------------------------------
why_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
why = why_col.text_input("Reason", key=WHY, placeholder="before changing the rules")
if button_col.button("Back up now", key="backups.create", type="primary", width="stretch"):
    with error_boundary("Backing up"), st.spinner("Reading every document, file and run…"):
        made = backups.create_backup(st_store, actor, why, now=clock())
        flash("backups", f"Backup {made.id} made: {made.items()}, {made.bytes / MB:,.1f} MB in "
                         f"{made.seconds:.1f} s.", "success")
        st.rerun()


def _table(summaries: list[backups.BackupSummary]) -> pd.DataFrame:
    return pd.DataFrame([{
        "WHEN (UTC)": s.created_at[:19].replace("T", " "), "BY": s.created_by, "KIND": s.kind,
        "WHY": s.why or s.origin, "SIZE (MB)": round(s.bytes / MB, 2), "SECONDS": s.seconds,
        "DOCUMENTS": s.documents, "BLOBS": s.blobs, "RUNS": s.runs, "ROWS": s.rows, "ID": s.id,
    } for s in summaries], columns=["WHEN (UTC)", "BY", "KIND", "WHY", "SIZE (MB)", "SECONDS",
                                    "DOCUMENTS", "BLOBS", "RUNS", "ROWS", "ID"])


summaries: list[backups.BackupSummary] = []
with error_boundary("Reading the backups"):
    summaries = backups.list_backups(st_store, actor)
st.dataframe(_table(summaries), hide_index=True, width="stretch", key="backups.list")
by_id = {s.id: s for s in summaries}
if not summaries:
    st.info("No backups yet: Back up now makes the first, or add an archive below.")

# -- one backup: download, verify, restore -----------------------------------------------------
if summaries:
    pick = st.selectbox("Backup", list(by_id), key=PICK, format_func=lambda i: (
        f"{by_id[i].created_at[:16].replace('T', ' ')} · {by_id[i].kind} · {by_id[i].created_by}"
        f"{' · ' + by_id[i].why if by_id[i].why else ''}"))
    chosen = by_id[pick]
    down, check, drop, _ = st.columns([1, 1, 1, 1])
    down.download_button(
        "Download (.zip)", lambda: backups.download_backup(st_store, actor, pick, now=clock()),
        file_name=f"marketpulse-backup-{pick}.zip", mime="application/zip",
        key="backups.download", on_click="ignore")
    if check.button("Verify", key="backups.verify"):
        with st.spinner("Re-reading every item and checking its checksum…"):
            try:
                st.session_state[VERIFIED] = (pick, True, backups.verify_backup(
                    st_store, actor, pick))
            except backups.BackupRefused as exc:
                st.session_state[VERIFIED] = (pick, False, str(exc))
    if drop.button("Delete…", key="backups.delete"):
        st.session_state[DELETING] = pick
        st.session_state.pop(TYPED, None)
    verified = st.session_state.get(VERIFIED)
    if verified and verified[0] == pick:
        (st.success if verified[1] else st.error)(escape_markdown(verified[2]))
    if st.session_state.get(DELETING) == pick:
        st.warning(f"Delete the backup of {chosen.created_at[:16].replace('T', ' ')} UTC "
                   f"({chosen.kind}, {chosen.bytes / MB:,.1f} MB)? Its archive leaves the store "
                   "for good: download it first to keep a copy.")
        shown_id = escape_markdown(pick)  # an uploaded archive's id is its manifest's
        typed = st.text_input(f"Type the backup's id ({shown_id}) to confirm", key=TYPED)
        yes, no = st.columns(2)
        if yes.button(f"Delete backup {shown_id}", key="backups.delete_confirm", type="primary",
                      disabled=typed.strip() != pick):
            with error_boundary(f"Deleting backup {pick}"):
                st.session_state.pop(DELETING)
                backups.delete_backup(st_store, actor, pick, now=clock())  # core logs it
                for name in (PICK, TYPED, VERIFIED, PLAN):
                    st.session_state.pop(name, None)
                flash("backups", f"Deleted backup {shown_id}.", "success")
                st.rerun()
        if no.button("Keep it", key="backups.delete_cancel"):
            st.session_state.pop(DELETING)
            st.rerun()

    st.subheader("Restore")
    st.caption("A backup of the store as it is now is taken first; jobs wait until the restore "
               "is done. Choose what to bring back:")
    boxes = st.columns(3)
    chosen_areas = [name for i, (name, what) in enumerate(area_names())
                    if boxes[i % 3].checkbox(name, value=True, help=what,
                                             key=f"backups.area.{name}")]
    run_text = st.text_input("…or only one run (its id)", key=RUN, placeholder="e.g. 12").strip()
    asked = ([f"run:{run_text}"] if run_text else []) + (
        chosen_areas if not run_text else [])
    if st.button("Preview the restore", key="backups.preview", disabled=not asked):
        with error_boundary("Preview"), st.spinner("Comparing the backup with the store…"):
            st.session_state[PLAN] = (pick, asked, preview_restore(st_store, actor, pick, asked))
    shown = st.session_state.get(PLAN)
    if shown and shown[:2] == (pick, asked):
        plan = shown[2]
        st.markdown("**What the restore changes**")
        for line in plan.summary() + plan.notes:
            st.markdown(f"- {escape_markdown(line)}")
        if plan.changes:
            st.dataframe(pd.DataFrame([{"AREA": c.area, "CHANGE": c.action, "WHAT": c.what}
                                       for c in plan.changes]),
                         hide_index=True, width="stretch", key="backups.changes")
            st.warning(f"Restore {escape_markdown(plan.selection.describe())} from the backup of "
                       f"{chosen.created_at[:16].replace('T', ' ')} UTC?")
            yes, no = st.columns(2)
            if yes.button("Yes, restore", key="backups.confirm", type="primary"):
                st.session_state.pop(PLAN)
                with error_boundary("Restoring"), st.spinner("Restoring…"):
                    report = restore_backup(
                        st_store, actor, pick, asked, now=clock(), wait_s=WAIT_S,
                        lease_s=float(settings()["scheduler.lease_seconds"]))
                    st.cache_data.clear()  # every read may have changed
                    flash("backups", report.summary(), "success")
                    for line in report.conflicts:
                        flash("backups", f"Kept: {line}", "warning")
                    st.rerun()
            if no.button("Cancel", key="backups.cancel"):
                st.session_state.pop(PLAN)
                st.rerun()

# -- an archive from elsewhere -----------------------------------------------------------------
st.subheader("Add a backup archive")
nonce = st.session_state.get(NONCE, 0)
upload = st.file_uploader("A MarketPulse backup (.zip), e.g. downloaded from another desk",
                          type=["zip"], key=f"backups.upload.{nonce}")
if st.button("Check and add it", key="backups.import", disabled=upload is None) and upload:
    with error_boundary(f"Adding {upload.name}"), st.spinner("Checking every item…"):
        added = backups.import_backup(st_store, actor, upload.getvalue(), upload.name,
                                      now=clock())
        st.session_state[NONCE] = nonce + 1
        st.session_state[PICK] = added.id
        flash("backups", f"{upload.name} checked and added as backup {added.id} "
                         f"({added.items()}); choose it above to restore it.", "success")
        st.rerun()

# -- scheduled backups -------------------------------------------------------------------------
st.subheader("Scheduled backups")
saved, version = load_backup_schedule(st_store)
st.caption(f"The scheduler backs up at each time of the schedule and keeps the newest backup of "
           f"each of the last days, weeks and months below; other scheduled backups are deleted "
           f"(manual, pre-restore and added ones are kept). Now {saved.describe()}.")
with st.form("backups.schedule_form"):
    active = st.checkbox("Back up on a schedule", value=saved.active, key="backups.sched.active")
    cron_col, zone_col = st.columns(2)
    cron = cron_col.text_input("When (cron: minute hour day month weekday)", saved.schedule,
                               key="backups.sched.cron")
    tz = zone_col.text_input("Timezone", saved.timezone, key="backups.sched.tz")
    d, w, m = st.columns(3)
    daily = d.number_input("Daily kept", 0, 1000, saved.keep_daily, key="backups.sched.daily")
    weekly = w.number_input("Weekly kept", 0, 1000, saved.keep_weekly,
                            key="backups.sched.weekly")
    monthly = m.number_input("Monthly kept", 0, 1000, saved.keep_monthly,
                             key="backups.sched.monthly")
    if st.form_submit_button("Save the schedule"):
        with error_boundary("Saving the schedule"):
            save_backup_schedule(st_store, actor, BackupSchedule(
                active, cron, tz.strip(), int(daily), int(weekly), int(monthly)),
                expected_version=version, now=clock())
            flash("backups", "Schedule saved.", "toast")
            st.rerun()
