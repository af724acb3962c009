"""What a user does to an open manual session (DOMAIN.md §5): delete, edit and add rows, pin
parents, select rules, undo and redo, save exactly once, discard. Each change is one versioned
write of the session (core.manual.sessions) with an audit entry; the next preview re-ranks.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from core.access import MANUAL_SESSION, REPUBLISH, Actor, require
from core.alerts.watchlists import alert_after_publish
from core.clock import now_or, utc_now
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.ingest.coercion import coerce_column, describe_value
from core.ingest.color_file import derive_fields
from core.ingest.columns import load_column_config
from core.ingest.validation import Problem, ValidationReport, validate_colors
from core.intake import buffer
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
    load_frame,
    load_quarantined,
    load_report,
    put_frame,
    read_session,
    selected_rules,
    session_key,
)
from core.rules.exclusion import load_rules
from core.runs import records as runs
from core.runs.pipeline import MANUAL, Prepared, RunResult, publish_run
from core.schema import (
    BIAS,
    COLOR_ID,
    COLUMN_TYPE,
    COV_PRICE,
    CUSIP,
    DIFF_STATUS,
    INPUT_COLUMNS,
    PERCENT_DIFF,
    POSITION,
    PRICE_DIFF,
    PX,
    RANK,
    SOURCE_FILE,
    SOURCE_ROW,
)
from storage import Store

SAVE_TRIGGER = "manual_save"
SAVES_KEPT = 20  # idempotency keys remembered from one session to the next
SAVE_TIMEOUT = timedelta(minutes=10)  # a save still "saving" after this died mid-way
MANUAL_ROW_FILE = "manual entry"  # SOURCE_FILE of rows added by hand (SOURCE_ROW 0)
# Editing one of these blanks the derived fields that depend on it, so derive_fields recomputes.
REDERIVED = {PX: (PERCENT_DIFF, PRICE_DIFF, DIFF_STATUS),
             COV_PRICE: (PERCENT_DIFF, PRICE_DIFF, DIFF_STATUS), BIAS: (RANK,)}


def _position(rows: pd.DataFrame, color_id: str) -> int:
    hits = (rows[COLOR_ID] == color_id).to_numpy(dtype=bool, na_value=False).nonzero()[0]
    if not len(hits):
        raise NotFound(f"row {color_id} is not in the session")
    return int(hits[0])


def _column_types(store: Store, rows: pd.DataFrame) -> dict[str, str]:
    """Editable columns → type: the input columns and the custom columns the rows carry."""
    custom = {c.name: c.type for c in load_column_config(store) if c.custom and c.name in rows}
    return {c: COLUMN_TYPE[c] for c in INPUT_COLUMNS} | custom


def _coerce(column: str, kind: str, value: Any, where: str) -> Any:
    values, bad = coerce_column(pd.Series([value], dtype=object), column, kind)
    for cells in bad:
        if cells.blocking:
            raise InvalidInput(f"{where}, column {column}",
                               f"{describe_value(value)} {cells.reason}")
    return values.iloc[0]


def _checked(row: pd.DataFrame, settings: Settings, where: str) -> pd.DataFrame:
    """Derive the blank derived fields of one row, then refuse it if validation blocks it."""
    row = derive_fields(row, settings)
    problems = validate_colors(row, settings).report.blocking
    if problems:
        raise InvalidInput(where, "; ".join(p.message for p in problems))
    return row


def _replace_rows(store: Store, actor: Actor, session: Session, rows: pd.DataFrame, label: str,
                  action: str, now: datetime | None, change: dict[str, Any],
                  **state: Any) -> Session:
    after = replace(changed(session, label), **state)
    after.rows_key = put_frame(store, session, "rows", rows.reset_index(drop=True))
    return commit(store, actor, session, after, action=action, now=now, written=[after.rows_key],
                  detail=label, change=change)


def delete_rows(store: Store, actor: Actor, color_ids: Collection[str], *,
                version: str | None = None, now: datetime | None = None) -> Session:
    """Remove rows (they are unpinned too); NotFound names an id that is not in the session."""
    session = current(store, actor, version)
    if not color_ids:
        raise InvalidInput("rows", "select the rows to delete")
    rows = load_frame(store, session.rows_key)
    for color_id in color_ids:
        _position(rows, color_id)
    gone = set(color_ids)
    kept = rows[~rows[COLOR_ID].isin(list(gone)).to_numpy(dtype=bool, na_value=False)]
    return _replace_rows(store, actor, session, kept, f"delete {len(gone)} row(s)", "rows_deleted",
                         now, {"color_ids": sorted(gone)},
                         pinned=[p for p in session.pinned if p not in gone])


def edit_cell(store: Store, actor: Actor, color_id: str, column: str, value: Any, *,
              settings: Settings, version: str | None = None,
              now: datetime | None = None) -> Session:
    """Set one cell, coerced to the column's type. Changing PX or COV_PRICE recomputes
    PERCENT_DIFF, PRICE_DIFF and DIFF_STATUS; changing BIAS recomputes RANK. A value that cannot
    be read, or leaves the row invalid, raises InvalidInput naming the row, column and value."""
    session = current(store, actor, version)
    rows = load_frame(store, session.rows_key)
    types = _column_types(store, rows)
    if column not in types:
        raise InvalidInput(f"column {column}", "is not an editable column")
    at = _position(rows, color_id)
    where = f"row {color_id}"
    row = rows.iloc[[at]].copy()
    before = row[column].iloc[0]
    row[column] = pd.Series([_coerce(column, types[column], value, where)], index=row.index,
                            dtype=row[column].dtype)
    for derived in REDERIVED.get(column, ()):
        row[derived] = pd.Series([pd.NA], index=row.index, dtype=row[derived].dtype)
    row = _checked(row, settings, f"{where}, column {column} = {describe_value(value)}")
    edited = pd.concat([rows.iloc[:at], row[rows.columns], rows.iloc[at + 1:]], ignore_index=True)
    return _replace_rows(store, actor, session, edited, f"edit {column} of {color_id}",
                         "cell_edited", now, {"color_id": color_id, "column": column,
                                              "before": describe_value(before),
                                              "after": describe_value(row[column].iloc[0])})


def add_row(store: Store, actor: Actor, values: Mapping[str, Any], *, settings: Settings,
            version: str | None = None, now: datetime | None = None) -> Session:
    """Add one color typed by the user (canonical column names); blank derived fields are derived.
    It gets a new COLOR_ID; an unreadable value or an invalid row raises InvalidInput."""
    session = current(store, actor, version)
    rows = load_frame(store, session.rows_key)
    types = _column_types(store, rows)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise InvalidInput("new row", f"unknown column(s) {', '.join(unknown)}")
    color_id = f"{session.token}-{session.next_row}"
    row = pd.DataFrame({c: pd.Series(pd.NA, index=[0], dtype=rows[c].dtype) for c in rows.columns})
    for column, value in values.items():
        row[column] = pd.Series([_coerce(column, types[column], value, "new row")],
                                dtype=rows[column].dtype if column in rows else None)
    row[COLOR_ID] = pd.array([color_id], dtype="string")
    row[SOURCE_FILE] = pd.array([MANUAL_ROW_FILE], dtype="string")
    row[SOURCE_ROW] = pd.array([0], dtype="Int64")
    row = _checked(row, settings, "new row")
    added = pd.concat([rows, row[rows.columns]], ignore_index=True)
    return _replace_rows(store, actor, session, added, f"add row {color_id}", "row_added", now,
                         {"color_id": color_id, "values": {k: describe_value(v)
                                                           for k, v in values.items()}},
                         next_row=session.next_row + 1)


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
    group = set(rows[COLOR_ID][cusips == cusips.iloc[_position(rows, color_id)]])
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


def _saved_result(store: Store, run_id: int) -> RunResult:
    """The RunResult of an already published run (a repeated save returns it)."""
    record = runs.get_run(store, run_id)
    partition = runs.run_partition(run_id)
    frames = {t: store.scan(t, partitions=[partition]) if partition in store.partitions(t)
              else pd.DataFrame() for t in runs.RUN_TABLES}
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
    alert_after_publish(store, result.record, utc_now(), settings=settings)
    return result


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
    for key in store.list_blobs(f"{session_key(actor.username)}/"):
        store.delete_blob(key)
