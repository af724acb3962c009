"""What a user does to an open manual session (DOMAIN.md §5): delete rows, pin parents, select
rules, undo and redo, save exactly once (and announce it), discard. Cell edits and added rows:
core.manual.edits. Each change is one versioned
write of the session (core.manual.sessions) with an audit entry; the next preview re-ranks.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core.access import MANUAL_SESSION, REPUBLISH, Actor, require
from core.alerts import email, webhooks
from core.alerts.watchlists import alert_after_publish
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.ingest.validation import Problem, ValidationReport
from core.intake import buffer
from core.manual.edits import position, replace_rows
from core.manual.sessions import (
    DISCARDED,
    OPEN,
    SAVED,
    SAVING,
    STALE,
    Session,
    changed,
    commit,
    current,
    frames_prefix,
    load_frame,
    load_quarantined,
    load_report,
    read_session,
    selected_rules,
)
from core.rules.exclusion import load_rules
from core.runs import duplicates
from core.runs import records as runs
from core.runs.pipeline import MANUAL, Prepared, RunResult, publish_run, rank_batch
from core.schema import (
    COLOR_ID,
    CUSIP,
    IS_PARENT,
    POSITION,
)
from storage import Store
from storage.run_tables import run_tables

SAVE_TRIGGER = "manual_save"
SAVES_KEPT = 20  # idempotency keys remembered from one session to the next
SAVE_TIMEOUT = timedelta(minutes=10)  # a save still "saving" after this died mid-way


def delete_rows(store: Store, actor: Actor, color_ids: Collection[str], *,
                version: str | None = None, now: datetime | None = None) -> Session:
    """Remove rows (they are unpinned too); NotFound names an id that is not in the session."""
    session = current(store, actor, version)
    if not color_ids:
        raise InvalidInput("rows", "select the rows to delete")
    rows = load_frame(store, session.rows_key)
    for color_id in color_ids:
        position(rows, color_id)
    gone = set(color_ids)
    kept = rows[~rows[COLOR_ID].isin(list(gone)).to_numpy(dtype=bool, na_value=False)]
    return replace_rows(store, actor, session, kept, f"delete {len(gone)} row(s)", "rows_deleted",
                         now, {"color_ids": sorted(gone)},
                         pinned=[p for p in session.pinned if p not in gone])


def _change(store: Store, actor: Actor, session: Session, label: str, action: str,
            now: datetime | None, change: dict[str, Any], **state: Any) -> Session:
    """A change of the pins or the rule selection (the rows blob is shared, not copied)."""
    return commit(store, actor, session, replace(changed(session, label), **state), action=action,
                  now=now, detail=label, change=change)


def pin_parent(store: Store, actor: Actor, color_id: str, *, version: str | None = None,
               now: datetime | None = None) -> Session:
    """Make a row its CUSIP's parent whatever the ranking says (replacing an earlier pin there)."""
    session = current(store, actor, version)
    rows = load_frame(store, session.rows_key)
    cusips = rows[CUSIP].astype("string").str.strip().str.upper()
    group = set(rows[COLOR_ID][cusips == cusips.iloc[position(rows, color_id)]])
    pinned = [p for p in session.pinned if p not in group] + [color_id]
    return _change(store, actor, session, f"pin {color_id}", "row_pinned", now,
                   {"color_id": color_id}, pinned=pinned)


def unpin(store: Store, actor: Actor, color_id: str, *, version: str | None = None,
          now: datetime | None = None) -> Session:
    """Let the ranking choose the parent again."""
    session = current(store, actor, version)
    if color_id not in session.pinned:
        raise InvalidInput(f"row {color_id}", "is not pinned")
    return _change(store, actor, session, f"unpin {color_id}", "row_unpinned", now,
                   {"color_id": color_id}, pinned=[p for p in session.pinned if p != color_id])


def select_rules(store: Store, actor: Actor, rule_ids: Collection[str], *,
                 version: str | None = None, now: datetime | None = None) -> Session:
    """The exclusion rules applied to the session (inactive ones too, when chosen)."""
    session = current(store, actor, version)
    known = {r.id: r.name for r in load_rules(store)}
    unknown = [i for i in rule_ids if i not in known]
    if unknown:
        raise NotFound(f"no rule with id {', '.join(unknown)}")
    chosen = list(dict.fromkeys(rule_ids))
    return _change(store, actor, session, "select rules", "rules_selected", now,
                   {"rules": [known[i] for i in chosen]}, rule_ids=chosen)


def _step(store: Store, actor: Actor, version: str | None, now: datetime | None,
          undoing: bool) -> Session:
    session = current(store, actor, version)
    source = session.undo if undoing else session.redo
    if not source:
        raise InvalidInput("undo" if undoing else "redo", "there is nothing to "
                           f"{'undo' if undoing else 'redo'}")
    step = source[-1]
    after = copy.deepcopy(session)
    back = session.snapshot(step["label"])
    if undoing:
        after.undo, after.redo = session.undo[:-1], [*session.redo, back]
    else:
        after.undo, after.redo = [*session.undo, back], session.redo[:-1]
    after.rows_key, after.pinned, after.rule_ids = step["rows"], step["pinned"], step["rules"]
    return commit(store, actor, session, after, action="undone" if undoing else "redone",
                  now=now, detail=step["label"])


def undo(store: Store, actor: Actor, *, version: str | None = None,
         now: datetime | None = None) -> Session:
    """Go back one change (up to 20; loading files is a checkpoint undo does not cross)."""
    return _step(store, actor, version, now, undoing=True)


def redo(store: Store, actor: Actor, *, version: str | None = None,
         now: datetime | None = None) -> Session:
    """Re-apply the change undone last (a new change clears what could be redone)."""
    return _step(store, actor, version, now, undoing=False)


@dataclass(frozen=True)
class SaveSummary:
    """What Save would publish now, for the confirmation (DOMAIN.md §1.5, §2): the session's rows,
    the colors and parents published, the rows rules exclude (per rule), the colors skipped as
    already published (or published again), the quarantined rows and the report's warnings."""

    rows: int
    published: int
    parents: int
    excluded: int
    per_rule: dict[str, int]
    already: int
    already_where: str
    republish: bool
    quarantined: int
    warnings: int


def save_summary(store: Store, actor: Actor, settings: Settings, *,
                 republish: bool = False) -> SaveSummary:
    """Rank the session as save would (without the colors already published, unless they are
    published again) and count what the run would hold; nothing is written."""
    session = current(store, actor, None)
    rows = load_frame(store, session.rows_key)
    found = duplicates.find_published(store, rows, duplicates.color_keys(rows))
    batch = rows if republish or not found.count else rows[~found.skipped].reset_index(drop=True)
    ranked, outcome = rank_batch(batch, selected_rules(store, session), settings,
                                 pinned=session.pinned)
    report = load_report(store, session)
    parents = int(ranked[IS_PARENT].sum()) if IS_PARENT in ranked.columns else 0
    return SaveSummary(len(rows), len(ranked), parents, len(outcome.excluded),
                       {k: int(v) for k, v in outcome.counts.items() if v},
                       found.count, found.where(), republish,
                       len(load_quarantined(store, session)), len(report.warnings))


def _saved_result(store: Store, run_id: int) -> RunResult:
    """The RunResult of an already published run (a repeated save returns it)."""
    record = runs.get_run(store, run_id)
    frames = {t: run_tables(store).read(t, [run_id]) for t in runs.RUN_TABLES}
    published = frames[runs.COLORS_TABLE]
    if POSITION in published.columns:
        published = published.sort_values(POSITION, kind="stable").reset_index(drop=True)
    report = ValidationReport([Problem(**p) for p in record.problems],
                              record.counts.get("read", 0), record.counts.get("quarantined", 0))
    workbook = store.get_blob(record.output) if record.output else b""
    return RunResult(record, published, frames[runs.EXCLUDED_TABLE],
                     frames[runs.QUARANTINED_TABLE], report, workbook)


def _published_during_save(store: Store, session: Session) -> int | None:
    """The run of a save that died after publishing, if it got that far."""
    for record in runs.load_runs(store, limit=200):
        if (record.actor == session.username and record.kind == MANUAL
                and record.trigger == SAVE_TRIGGER and record.status == runs.SUCCESS
                and record.started_at >= session.saving_at):
            return record.run_id
    return None


def save(store: Store, actor: Actor, settings: Settings, *, idempotency_key: str,
         version: str | None = None, now: datetime | None = None,
         republish: bool = False) -> RunResult:
    """Publish the session as ONE MANUAL run (selected rules, pinned parents), mark its buffer
    files processed and close it. Exactly once: a key seen before, or any save of a session
    already saved, returns that run without publishing again. Rows already published are
    skipped unless an admin republishes them (the run records it)."""
    require(actor, MANUAL_SESSION)
    if republish:
        require(actor, REPUBLISH)
    if not idempotency_key:
        raise InvalidInput("idempotency_key", "a save needs a key (one per click of Save)")
    session = read_session(store, actor.username)
    if session is None or (session.status == DISCARDED and idempotency_key not in session.saves):
        raise NotFound(f"{actor.username} has no manual session to save")
    if idempotency_key in session.saves:
        return _saved_result(store, session.saves[idempotency_key])
    if session.status == SAVED and session.saved_run_id is not None:
        return _saved_result(store, session.saved_run_id)
    at = now_or(now)
    if session.status == SAVING:
        if at - datetime.fromisoformat(session.saving_at) < SAVE_TIMEOUT:
            raise Conflict("the session is being saved; reload in a moment to see the run")
        run_id = _published_during_save(store, session)
        if run_id is not None:
            return _finish(store, actor, session, run_id, session.saving_key, now)
    elif version is not None and version != session.version:
        raise Conflict(STALE)
    rows = load_frame(store, session.rows_key)
    if not len(rows):
        raise InvalidInput("session", "there are no rows to save; add a file or a row first")
    saving = commit(store, actor, session, replace(
        session, status=SAVING, saving_at=at.isoformat(), saving_key=idempotency_key),
        action="save_started", now=now)
    owner = buffer.session_owner(actor.username)
    try:
        held = [buffer.get_entry(store, i) for i in saving.buffer_ids]
        lost = [e.id for e in held if e.status != buffer.CLAIMED or e.claimed_by != owner]
        if lost:
            raise Conflict(f"buffer file(s) {', '.join(lost)} are no longer held by this "
                           "session; discard it and load them again")
        prepared = Prepared(rows, load_quarantined(store, saving), load_report(store, saving),
                            list(saving.files))
        result = publish_run(store, actor, prepared, kind=MANUAL, trigger=SAVE_TRIGGER,
                             settings=settings, rules=selected_rules(store, saving),
                             pinned=saving.pinned, now=at, republish=republish)
    except Exception:
        commit(store, actor, saving, replace(saving, status=OPEN, saving_at="", saving_key=""),
               action="save_failed", now=now)
        raise
    _finish(store, actor, saving, result.record.run_id, idempotency_key, now)
    _announce(store, settings, result, now_or(now))
    return result


def _announce(store: Store, settings: Settings, result: RunResult, at: datetime) -> None:
    """Tell who asked to be told about manual saves: the run email and the Slack/Teams posts
    (when their "after manual saves" switches are on) and watchlist alerts. None of them raises:
    a failed message is in the send log, never a failed save."""
    email.notify_run(store, settings, result.record, workbook=result.workbook or None,
                     excluded=result.excluded, now=at)
    webhooks.notify_webhooks(store, settings, result.record, now=at)
    alert_after_publish(store, result.record, at, settings=settings)


def _finish(store: Store, actor: Actor, saving: Session, run_id: int, key: str,
            now: datetime | None) -> RunResult:
    """Mark the buffer files processed and close the session (its blobs are dropped)."""
    buffer.mark_processed(store, saving.buffer_ids, run_id,
                          owner=buffer.session_owner(actor.username), actor=actor, now=now)
    saves = dict(list({**saving.saves, key: run_id}.items())[-SAVES_KEPT:])
    closed = replace(saving, status=SAVED, saved_run_id=run_id, saves=saves, rows_key="",
                     quarantined_key="", report_key="", undo=[], redo=[])
    commit(store, actor, saving, closed, action="session_saved", now=now,
           change={"run_id": run_id, "buffer_ids": saving.buffer_ids})
    return _saved_result(store, run_id)


def discard(store: Store, actor: Actor, *, version: str | None = None,
            now: datetime | None = None) -> None:
    """Drop the open session: it is closed first (a stale window gets Conflict), then its buffer
    files go back to pending and its blobs are deleted. Saved idempotency keys are kept."""
    session = current(store, actor, version)
    closed = replace(session, status=DISCARDED, rows_key="", quarantined_key="", report_key="",
                     undo=[], redo=[])
    commit(store, actor, session, closed, action="session_discarded", now=now,
           change={"files": [f.get("name") for f in session.files],
                   "buffer_ids": session.buffer_ids})
    buffer.release(store, session.buffer_ids, owner=buffer.session_owner(actor.username),
                   actor=actor, now=now)
    for key in store.list_blobs(frames_prefix(actor.username)):
        store.delete_blob(key)
