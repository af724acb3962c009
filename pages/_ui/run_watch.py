"""Runs followed live on the Automation page and the Dashboard, without a browser reload: the
progress of this session's "Run now" (stage, files, rows) until it ends and then its result, the
run in progress, and a rerun of the whole page when a run starts, ends or is queued, so the run
history, jobs, KPIs and charts refresh themselves. A fragment polls the store: every second while
a run is queued or running, slowly otherwise."""

from __future__ import annotations

import streamlit as st

from core.automation.jobs import pending_triggers
from core.automation.progress import FINISHED, GONE, RunProgress, current_run, run_progress
from core.runs.records import FAILED, SUCCESS, load_runs
from pages._ui import automation_views as views
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary
from storage import Store

ACTIVE_EVERY = 1.0  # seconds between polls while a run is queued or running
GONE_POLLS = 3  # a request found nowhere may be between the queue and its run: look again


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}_state"


def followed(prefix: str) -> str | None:
    """The request Run now queued from this page (automation_views.render_run_buttons)."""
    return st.session_state.get(views.watch_key(prefix))


def runs_token(store: Store) -> tuple:
    """What changes when the page's run tables should: the newest run and its status, whether a
    run is in progress, and the queued requests (not the stage: the fragment shows that)."""
    newest = load_runs(store, limit=1)
    return ((newest[0].run_id, newest[0].status) if newest else None,
            current_run(store) is not None, tuple(t.id for t in pending_triggers(store)))


def watch_runs(store: Store, prefix: str, *, idle_every: float, show: bool = True,
               idle_text: str = "") -> None:
    """Draw the live part here and keep it polling (show=False: only refresh the page when runs
    change, for users who may not see whole runs; idle_text: said while nothing runs)."""
    token = runs_token(store)
    st.session_state[_key(prefix, "seen")] = token
    request = followed(prefix)
    if request != st.session_state.get(_key(prefix, "gone_for")):  # a new request: count anew
        st.session_state[_key(prefix, "gone_for")] = request
        st.session_state[_key(prefix, "gone")] = 0
    mine = run_progress(store, views.clock(), request) if request else None
    watching = mine is not None and (mine.active or (
        mine.state == GONE and st.session_state[_key(prefix, "gone")] < GONE_POLLS))
    active = token[1] or bool(token[2]) or watching
    st.fragment(_live, run_every=ACTIVE_EVERY if active else idle_every)(
        store, prefix, show, idle_text)


def _live(store: Store, prefix: str, show: bool, idle_text: str) -> None:
    with error_boundary("Following the runs"):  # also when the fragment reruns alone
        _follow(store, prefix, show, idle_text)


def _follow(store: Store, prefix: str, show: bool, idle_text: str) -> None:
    state = st.session_state
    if runs_token(store) != state.get(_key(prefix, "seen")):
        st.rerun()  # the whole page: tables refresh and the poll interval follows
    if not show:
        return
    now = views.clock()
    request = followed(prefix)
    mine = run_progress(store, now, request) if request else None
    if mine is not None and mine.state == GONE:
        state[_key(prefix, "gone")] = state.get(_key(prefix, "gone"), 0) + 1
        if state[_key(prefix, "gone")] <= GONE_POLLS:
            mine = None  # not yet: it may be starting
    if mine is not None:
        _render(mine, prefix)
    running = run_progress(store, now)
    if running is not None and (mine is None or mine.state == FINISHED
                                or running.since != mine.since):
        _render(running, prefix)
    elif mine is None and running is None and idle_text:
        st.caption(idle_text)


def _render(progress: RunProgress, prefix: str) -> None:
    text = escape_markdown(progress.sentence())
    if progress.active:
        st.progress(progress.fraction, text=text)
        if progress.stages:
            st.caption("Stages so far: " + stage_words(progress.stages))
        return
    record = progress.record
    status = record.status if record is not None else ""
    {SUCCESS: st.success, FAILED: st.error}.get(status, st.info)(text)
    if progress.stages:
        st.caption("Stages: " + stage_words(progress.stages))
    if st.button("Dismiss", key=f"{prefix}.watch_dismiss"):
        st.session_state.pop(views.watch_key(prefix), None)
        st.rerun()


def stage_words(stages: list[tuple[str, float]]) -> str:
    """'read 0.52 s · validate 0.10 s · …' (the CLI prints the same timings)."""
    return " · ".join(f"{name} {seconds:.2f} s" for name, seconds in stages)
