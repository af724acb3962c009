"""The upload buffer section (Manual Color page; linked from Automation): queue validated files,
the queue, remove one, clear all, the history by status, and the upload template."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import REVERT, Actor
from core.compliance.revert_areas import BUFFER_ACTIONS
from core.config import Settings
from core.intake import buffer
from core.runs.exports import template_workbook
from pages._ui.change_history import render_change_history
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from pages._ui.widgets import validation_report
from storage import Store

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NONCE = "buffer.uploader_state"  # bumped after queueing, so the uploader starts empty again
QUEUED = "buffer.queued_state"  # (id, name, report) of the files queued last, shown until the next
CONFIRM_CLEAR = "buffer.confirm_clear_state"
FLASH = "buffer.flash_state"


def _when(value: str) -> str:
    return value[:16].replace("T", " ") if value else ""


def _table(entries: list[buffer.BufferEntry], *, history: bool = False) -> pd.DataFrame:
    rows = []
    for e in entries:
        row = {"ID": e.id, "File": e.name, "Uploaded by": e.uploaded_by,
               "Uploaded (UTC)": _when(e.uploaded_at), "Rows": e.rows,
               "Quarantined": e.quarantined,
               "Quality": None if e.quality_score is None else round(e.quality_score, 1),
               "Status": e.status, "Claimed by": e.claimed_by}
        if history:
            row |= {"Run": e.run_id, "Processed (UTC)": _when(e.processed_at), "Error": e.error}
        rows.append(row)
    return pd.DataFrame(rows)


def _flash(message: str) -> None:
    st.session_state.setdefault(FLASH, []).append(message)
    st.rerun()


def render(store: Store, actor: Actor, settings: Settings) -> None:
    """The whole buffer section."""
    for message in st.session_state.pop(FLASH, []):
        st.toast(escape_markdown(message))  # messages name files
    st.subheader("Upload buffer")
    st.caption("Files queued here are published by the next automated run, or loaded into a "
               "manual session. Each file is validated before it is queued.")
    st.download_button("Download the template workbook", template_workbook(),
                       file_name="marketpulse-upload-template.xlsx", mime=XLSX,
                       key="buffer.template")
    _upload(store, actor, settings)
    _queue(store, actor)
    _history(store)
    if actor.can(REVERT):
        st.markdown("**Last uploads and removals**")
        render_change_history(store, actor, buffer.AREA, "buffer.changes",
                              actions=BUFFER_ACTIONS)


def _upload(store: Store, actor: Actor, settings: Settings) -> None:
    nonce = st.session_state.get(NONCE, 0)
    files = st.file_uploader("Files to queue (.xlsx, .xls, .csv)", type=["xlsx", "xls", "csv"],
                             accept_multiple_files=True,
                             key="buffer.files" + (f".{nonce}" if nonce else ""))
    if st.button("Validate and queue", key="buffer.queue", type="primary", disabled=not files):
        with error_boundary("Queueing files"), st.spinner("Validating…"):
            entries = buffer.add_files(store, actor, [(f.name, f.getvalue()) for f in files or []],
                                       settings)
            st.session_state[QUEUED] = [(e.id, e.name, e.report) for e in entries]
            st.session_state[NONCE] = nonce + 1
            _flash(f"Queued {len(entries)} file(s): "
                   + ", ".join(f"{e.name} ({e.rows} rows)" for e in entries))
    for entry_id, name, report in st.session_state.get(QUEUED, []):
        with st.expander(f"Validation report of {escape_markdown(name)} (queued as {entry_id})"):
            validation_report(report, key=f"buffer.report.{entry_id}")


def _queue(store: Store, actor: Actor) -> None:
    st.markdown("**Queue**")
    queue = buffer.list_entries(store, (buffer.PENDING, buffer.CLAIMED))
    if not queue:
        st.info("No files are waiting.")
        return
    st.dataframe(_table(queue), hide_index=True, width="stretch", key="buffer.queue_table")
    pending = {e.id: e for e in queue if e.status == buffer.PENDING}
    if not pending:
        st.caption("Every queued file is claimed by a run or a session.")
        return
    if st.session_state.get("buffer.pick") not in pending:
        st.session_state.pop("buffer.pick", None)
    left, mid, right = st.columns([3, 1, 1])
    picked = left.selectbox("Pending file", list(pending), key="buffer.pick",
                            format_func=lambda i: f"{i} · {pending[i].name}")
    if mid.button("Remove", key="buffer.remove", disabled=picked is None):
        with error_boundary(f"Removing {picked}"):
            buffer.remove(store, actor, picked)
            _flash(f"Removed {pending[picked].name} from the queue")
    if right.button("Clear all pending…", key="buffer.clear"):
        st.session_state[CONFIRM_CLEAR] = True
    if picked is not None:
        with st.expander(f"Validation report of {escape_markdown(pending[picked].name)}"):
            validation_report(buffer.stored_report(pending[picked]), key="buffer.entry_report")
    if st.session_state.get(CONFIRM_CLEAR):
        st.warning(f"Remove all {len(pending)} pending files from the queue?")
        yes, no = st.columns(2)
        if yes.button("Yes, clear the queue", key="buffer.clear_confirm", type="primary"):
            with error_boundary("Clearing the queue"):
                cancelled = buffer.clear(store, actor)
                st.session_state.pop(CONFIRM_CLEAR, None)
                _flash(f"Cleared {len(cancelled)} pending file(s)")
        if no.button("Keep them", key="buffer.clear_cancel"):
            st.session_state.pop(CONFIRM_CLEAR, None)
            st.rerun()


def _history(store: Store) -> None:
    st.markdown("**History**")
    counts = buffer.count_entries(store)
    st.caption(" · ".join(f"{s}: {counts[s]}" for s in buffer.STATUSES)
               + f" · {counts['rows']:,} rows uploaded, {counts['rows_processed']:,} processed")
    wanted = st.multiselect("Status", buffer.STATUSES, key="buffer.history_status",
                            placeholder="All statuses")
    entries = buffer.list_entries(store, wanted or None)
    if not entries:
        st.caption("No files.")
        return
    st.dataframe(_table(list(reversed(entries)), history=True), hide_index=True,
                 width="stretch", key="buffer.history")
