"""Manual Color: a persisted session per user (load files, the buffer or the configured source;
validate, preview ranked, edit, undo, save one MANUAL run exactly once), and the upload buffer."""

from __future__ import annotations

import uuid

import streamlit as st

from core.access import MANUAL_SESSION, REPUBLISH
from core.automation.jobs import load_jobs
from core.intake import buffer
from core.intake.sources import SQL
from core.manual import actions as session_actions
from core.manual import sessions
from core.manual.edits import Edits
from core.runs.duplicates import AlreadyPublished, run_notes
from core.runs.exports import write_csv
from core.runs.pipeline import RunResult, workbook_for
from core.runs.workbooks import FAILED, workbook_note
from pages._ui import buffer_view, row_editor, session_view
from pages._ui.markdown import escape_markdown
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.session_view import act, done, visible
from pages._ui.widgets import validation_report

RESULT = "manual_color.result_state"  # the RunResult of the last save, with its download
SEEN = "manual_color.version_state"  # the session version the user's screen shows
SAVE_KEY = "manual_color.save_key_state"  # (version, idempotency key) of Save
CONFIRM_DISCARD = "manual_color.confirm_discard_state"
CONFIRM_SAVE = "manual_color.confirm_save_state"
NONCE = "manual_color.uploader_state"  # bumped after loading, so the uploader starts empty again
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

st.title("Manual Color")
st_store, st_settings, actor = store(), settings(), current_actor()
if not actor.can(MANUAL_SESSION):  # app.py registers this page for analysts and admins only
    st.error("Only analysts and admins can open Manual Color.")
    st.stop()
session_view.start_run()


def saved_result(result: RunResult) -> None:
    rec = result.record
    st.success(f"Published run {rec.run_id}: {rec.counts['published']} colors "
               f"({rec.counts['parents']} parents), {rec.counts['excluded']} excluded, "
               f"{rec.counts['quarantined']} quarantined.")
    for note in run_notes(rec):  # colors already published: skipped, or published again
        st.info(escape_markdown(note))
    note = workbook_note(rec)
    if note:  # pending (built after publishing) or failed: the colors are published anyway
        (st.warning if rec.workbook == FAILED else st.info)(escape_markdown(note))
        return
    st.download_button("Download the output workbook", workbook_for(result, actor),
                       file_name=f"colors-run-{rec.run_id}.xlsx", key="manual_color.download",
                       mime=XLSX)


def no_session() -> None:
    result = st.session_state.get(RESULT)
    if result is not None:
        saved_result(result)
    st.info("You have no open manual session. Start one, then load files from your computer, "
            "the upload buffer or the configured source. It is kept until you save or discard "
            "it, also across reloads.")
    if st.button("Start a session", key="manual_color.start", type="primary"):
        act("Starting a session",
            lambda: sessions.open_session(st_store, actor, st_settings),
            lambda _: "Session started", reset={RESULT: None})


def sources(session: sessions.Session, version: str) -> None:
    """Upload files, claim pending buffer files, or fetch a job's SQL source into the session."""
    st.subheader("Load colors")
    nonce = st.session_state.get(NONCE, 0)
    files = st.file_uploader(
        "Color files (.xlsx, .xls, .csv, .parquet)", type=["xlsx", "xls", "csv", "parquet"],
        accept_multiple_files=True, key="manual_color.files" + (f".{nonce}" if nonce else ""))
    if st.button("Load the files", key="manual_color.load_files", disabled=not files):
        payload = [(f.name, f.getvalue()) for f in files or []]
        act("Loading the files",
            lambda: sessions.add_files(st_store, actor, payload, st_settings, version=version),
            lambda s: f"Loaded {len(payload)} file(s); the session has {s.next_row - 1} rows",
            reset={NONCE: nonce + 1})
    pending = {e.id: e for e in buffer.list_entries(st_store, buffer.PENDING)}
    if pending:
        picked = st.multiselect(
            "Pending files in the upload buffer",
            session_view.options_for("manual_color.buffer_pick", list(pending)),
            key="manual_color.buffer_pick",
            format_func=lambda i: f"{i} · {pending[i].name} ({pending[i].rows} rows, "
                                  f"{pending[i].uploaded_by})")
        if st.button(f"Load {len(picked)} buffer file(s)", key="manual_color.load_buffer",
                     disabled=not picked):
            act("Loading from the buffer",
                lambda: sessions.add_from_buffer(st_store, actor, picked, st_settings,
                                                 version=version),
                lambda _: f"Claimed and loaded {len(picked)} buffer file(s)",
                reset={"manual_color.buffer_pick": []})
    else:
        st.caption("No files are waiting in the upload buffer.")
    jobs = {j.name: j for j in load_jobs(st_store) if any(s.get("kind") == SQL for s in j.sources)}
    if jobs:
        left, right = st.columns([3, 1])
        name = left.selectbox("Configured source (a job's SQL table: rows after its watermark)",
                              list(jobs),
                              key="manual_color.source")
        if right.button("Fetch", key="manual_color.fetch"):
            sql = [s for s in jobs[name].sources if s.get("kind") == SQL]
            act("Fetching from the source",
                lambda: sessions.fetch_from_source(st_store, actor, sql, st_settings,
                                                   job_id=jobs[name].id, version=version),
                lambda _: f"Fetched the source of {escape_markdown(name)}")


def validation(view: sessions.SessionView) -> None:
    st.subheader("Validation")
    files = ", ".join(escape_markdown(f.get("name")) for f in view.session.files)
    st.caption(f"Loaded: {files}")
    validation_report(view.report, key="manual_color.report")
    quarantined = visible(view.quarantined, actor)
    if len(quarantined):
        st.download_button(f"Download the {len(quarantined)} quarantined rows (CSV)",
                           write_csv(quarantined), file_name="quarantined.csv", mime="text/csv",
                           key="manual_color.quarantined")


def _save_question(summary: session_actions.SaveSummary) -> str:
    """What Save will do, as the confirmation asks it (DOMAIN.md §1.5: duplicates skipped)."""
    rules = ", ".join(f"{escape_markdown(name)} {count}" for name, count in
                      summary.per_rule.items())
    already = (f"{summary.already} already published, "
               + ("published again" if summary.republish else "skipped")
               + (f" (first in {escape_markdown(summary.already_where)})"
                  if summary.already else ""))
    return "\n".join([
        "**Publish this session as one MANUAL run?**",
        f"- {summary.published} colors, {summary.parents} parents (from {summary.rows} rows)",
        f"- {summary.excluded} excluded by rules" + (f": {rules}" if rules else ""),
        f"- {already}",
        f"- {summary.quarantined} quarantined rows left out",
        f"- {summary.warnings} validation warnings (see Validation)"])


def confirm_save(version: str, key: str, republish: bool, pending: Edits) -> None:
    """The summary of what Save publishes, and Yes / Not yet."""
    with error_boundary("Counting what Save publishes"):
        summary = session_actions.save_summary(st_store, actor, st_settings, republish=republish)
        st.warning(_save_question(summary))
    yes, no = st.columns(2)
    if yes.button("Yes, publish", key="manual_color.save_confirm", type="primary",
                  disabled=not pending.empty):
        with error_boundary("Saving"), st.spinner("Publishing…"):
            result = session_actions.save(st_store, actor, st_settings, idempotency_key=key,
                                          version=version, republish=republish)
            st.session_state[RESULT] = result
            done(f"Published run {result.record.run_id}", reset={CONFIRM_SAVE: False})
    if no.button("Not yet", key="manual_color.save_cancel"):
        st.session_state[CONFIRM_SAVE] = False
        st.rerun()


def history_and_save(session: sessions.Session, version: str, rows: int,
                     already: AlreadyPublished, pending: Edits) -> None:
    """Undo, redo, save (confirmed, exactly once per session version) and discard (confirmed).
    Rows already published are shown before saving; save skips them unless an admin ticks
    republish. Changes not applied yet in the table hold Save back."""
    st.subheader("Save")
    republish = False
    if already.count:
        st.warning(f"{already.count} of these colors were already published in "
                   f"{escape_markdown(already.where())}. Saving skips them.")
        if actor.can(REPUBLISH):
            republish = st.checkbox("Publish them again (recorded in the run)",
                                    key="manual_color.republish")
    if SAVE_KEY not in st.session_state or st.session_state[SAVE_KEY][0] != version:
        st.session_state[SAVE_KEY] = (version, uuid.uuid4().hex)
    key = st.session_state[SAVE_KEY][1]
    a, b, c, d = st.columns(4)
    undo_help = f"Undo: {session.undo[-1]['label']}" if session.undo else "Nothing to undo"
    redo_help = f"Redo: {session.redo[-1]['label']}" if session.redo else "Nothing to redo"
    if a.button("Undo", key="manual_color.undo", disabled=not session.undo, help=undo_help):
        act("Undoing", lambda: session_actions.undo(st_store, actor, version=version),
            lambda _: undo_help)
    if b.button("Redo", key="manual_color.redo", disabled=not session.redo, help=redo_help):
        act("Redoing", lambda: session_actions.redo(st_store, actor, version=version),
            lambda _: redo_help)
    if c.button("Save and publish…", key="manual_color.save", type="primary",
                disabled=not rows or not pending.empty,
                help="Apply or discard the changes in the table first" if not pending.empty
                else "Shows what will be published and asks first"):
        st.session_state[CONFIRM_SAVE], st.session_state[CONFIRM_DISCARD] = True, False
    if d.button("Discard…", key="manual_color.discard"):
        st.session_state[CONFIRM_DISCARD], st.session_state[CONFIRM_SAVE] = True, False
    if st.session_state.get(CONFIRM_SAVE) and rows:
        confirm_save(version, key, republish, pending)
    if st.session_state.get(CONFIRM_DISCARD):
        held = len(session.buffer_ids)
        st.warning(f"Discard this session? Its {rows} rows and every change are dropped"
                   + (f"; its {held} buffer file(s) go back to the queue." if held else "."))
        yes, no = st.columns(2)
        if yes.button("Yes, discard", key="manual_color.discard_confirm", type="primary"):
            act("Discarding", lambda: session_actions.discard(st_store, actor, version=version),
                lambda _: "Session discarded", reset={CONFIRM_DISCARD: False})
        if no.button("Keep the session", key="manual_color.discard_cancel"):
            st.session_state[CONFIRM_DISCARD] = False
            st.rerun()


def session_tab() -> None:
    with error_boundary("Loading your session"):
        session = sessions.load_session(st_store, actor)
        if session is None:
            no_session()
            return
        # Actions carry the version the user saw (the previous run's), so a change made in
        # another window since then is refused as a Conflict instead of applied blindly.
        version = st.session_state.get(SEEN) or session.version
        st.session_state[SEEN] = session.version
        if session.status == sessions.SAVING:
            st.warning("This session is being saved; reload in a moment to see the run.")
        st.caption(f"Session opened {session.opened_at[:16].replace('T', ' ')} UTC · "
                   f"{len(session.files)} file(s) loaded · {len(session.pinned)} pinned")
        sources(session, version)
        view = sessions.preview(st_store, actor, st_settings)
        if session.files:
            validation(view)
        session_view.rules_section(st_store, actor, view, version)
        kept, excluded = session_view.preview_section(st_store, actor, view)
        st.subheader("Rows")
        pending = row_editor.render(st_store, actor, st_settings, kept, excluded, session, done)
        history_and_save(session, version, view.counts["rows"], view.already, pending)


session_tab_, buffer_tab = st.tabs(["Session", "Upload buffer"])
with session_tab_:
    session_tab()
with buffer_tab:
    buffer_view.render(st_store, actor, st_settings)
