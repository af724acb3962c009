"""Manual color sessions (DOMAIN.md §5): one persisted working copy per user, loaded from files and
the buffer, previewed exactly as it would publish, saved as one MANUAL run exactly once.

Document `sessions/<username>` (versioned: a stale browser tab gets Conflict); the working rows,
quarantined rows and report are Parquet blobs under `sessions/<username>/`. Edits: session_actions.
"""

from __future__ import annotations

import copy
import io
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd

from core import catalog
from core.access import MANUAL_SESSION, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.ingest.validation import Problem, ValidationReport
from core.intake import buffer
from core.rules.exclusion import Group, Rule, filter_frame, load_rules
from core.runs import duplicates
from core.runs.pipeline import Prepared, prepare_files, rank_batch
from core.runs.ranking import rank_colors
from core.schema import (
    COLOR_ID,
    COLUMN_TYPE,
    INPUT_COLUMNS,
    IS_PARENT,
    PANDAS_DTYPES,
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_SHEET,
)
from storage import ObjectNotFound, Store, WriteConflict

AREA = "sessions"
PREFIX = catalog.MANUAL_SESSIONS.key
FRAMES_PREFIX = catalog.SESSION_FRAMES.key
OPEN, SAVING, SAVED, DISCARDED = "open", "saving", "saved", "discarded"
CLOSED = (SAVED, DISCARDED)
UNDO_LIMIT = 20  # steps kept on the undo stack; older ones (and their rows blobs) are dropped
STALE = "the session changed in another window; reload"
_ROW_COLUMNS = (*INPUT_COLUMNS, COLOR_ID, SOURCE_FILE, SOURCE_SHEET, SOURCE_ROW)


@dataclass
class Session:
    """A user's working copy. rows/quarantined/report name blobs ("" = none yet); undo and redo
    hold snapshots {"rows", "pinned", "rules", "label"}; `version` is the document's version."""

    username: str
    token: str  # prefix of the session's COLOR_IDs ("<token>-<n>"), unique across sessions
    opened_at: str
    updated_at: str = ""
    status: str = OPEN
    revision: int = 0
    rows_key: str = ""
    quarantined_key: str = ""
    report_key: str = ""
    report_counts: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    buffer_ids: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    undo: list[dict[str, Any]] = field(default_factory=list)
    redo: list[dict[str, Any]] = field(default_factory=list)
    next_row: int = 1
    saving_key: str = ""
    saving_at: str = ""
    saved_run_id: int | None = None
    saves: dict[str, int] = field(default_factory=dict)  # idempotency key → run id
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: str = "") -> Session:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known | {"version": version})

    def snapshot(self, label: str) -> dict[str, Any]:
        return {"rows": self.rows_key, "pinned": list(self.pinned), "rules": list(self.rule_ids),
                "label": label}

    def blobs(self) -> set[str]:
        steps = {s["rows"] for s in (*self.undo, *self.redo)}
        return {self.rows_key, self.quarantined_key, self.report_key, *steps} - {""}


@dataclass
class SessionView:
    """What the preview shows: ranked kept rows, excluded rows (EXCLUDED_BY), counts, per-rule
    exclusions, the rules applied, the quarantined rows and the validation report."""

    ranked: pd.DataFrame
    excluded: pd.DataFrame
    counts: dict[str, int]
    quarantined: pd.DataFrame
    report: ValidationReport
    per_rule: dict[str, int]
    rules: list[str]
    session: Session
    # Rows a visible run already published: save skips them (an admin may publish them again).
    already: duplicates.AlreadyPublished = field(default_factory=duplicates.AlreadyPublished)


def _at(now: datetime | None) -> datetime:
    return now_or(now)


def session_key(username: str) -> str:
    """The document key of a user's session."""
    return PREFIX + username


def frames_prefix(username: str) -> str:
    """Where a user's session keeps its frames as blobs."""
    return f"{FRAMES_PREFIX}{username}/"


def read_session(store: Store, username: str) -> Session | None:
    """The stored session of a user (any status), or None."""
    try:
        value, version = store.get(session_key(username))
    except ObjectNotFound:
        return None
    return Session.from_dict(value, version)


def empty_rows() -> pd.DataFrame:
    """The working rows of a session with nothing loaded: canonical columns, no rows."""
    return pd.DataFrame({c: pd.Series(dtype=PANDAS_DTYPES[COLUMN_TYPE[c]]) for c in _ROW_COLUMNS})


def load_frame(store: Store, key: str) -> pd.DataFrame:
    """A frame kept as a Parquet blob; the empty working rows for ""."""
    if not key:
        return empty_rows()
    return pd.read_parquet(io.BytesIO(store.get_blob(key)))


def put_frame(store: Store, session: Session, kind: str, frame: pd.DataFrame) -> str:
    """Write a frame as a new blob and return its key. Unique names: two windows writing at once
    never overwrite each other's blob (the loser's is deleted when its commit fails)."""
    name = f"{kind}-{session.revision + 1:04d}-{uuid.uuid4().hex[:8]}.parquet"
    key = frames_prefix(session.username) + name
    data = io.BytesIO()
    frame.to_parquet(data, index=False)
    store.put_blob(key, data.getvalue())
    return key


def current(store: Store, actor: Actor, version: str | None) -> Session:
    """The actor's open session for a change; Conflict when `version` (what the window showed)
    is stale or a save is in progress, NotFound when there is no open session."""
    require(actor, MANUAL_SESSION)
    session = read_session(store, actor.username)
    if session is None or session.status in CLOSED:
        raise NotFound(f"{actor.username} has no open manual session; open one first")
    if session.status == SAVING:
        raise Conflict("the session is being saved; reload to see the saved run")
    if version is not None and version != session.version:
        raise Conflict(STALE)
    return session


def commit(store: Store, actor: Actor, before: Session | None, after: Session, *, action: str,
           now: datetime | None = None, written: Collection[str] = (), detail: str = "",
           change: dict[str, Any] | None = None) -> Session:
    """Write `after` over `before` (compare-and-set), drop the blobs no longer referenced, audit.
    A concurrent change wins: our new blobs are deleted and Conflict asks for a reload."""
    at = _at(now).isoformat()
    after = replace(after, revision=(before.revision if before else 0) + 1, updated_at=at)
    try:
        version = store.put(session_key(after.username), after.to_dict(),
                            expected_version=before.version if before else None)
    except WriteConflict:
        for key in written:
            store.delete_blob(key)
        raise Conflict(STALE) from None
    for key in (before.blobs() if before else set()) - after.blobs():
        store.delete_blob(key)
    record_change(store, actor, AREA, action, session_key(after.username), after=change,
                  detail=detail, now=now)
    return replace(after, version=version)


def changed(session: Session, label: str) -> Session:
    """A copy to change, with the current state pushed on the undo stack (capped) and redo
    cleared: the step `label` can then be undone."""
    after = copy.deepcopy(session)
    after.undo = [*session.undo, session.snapshot(label)][-UNDO_LIMIT:]
    after.redo = []
    return after


def load_quarantined(store: Store, session: Session) -> pd.DataFrame:
    """The session's quarantined rows (with QUARANTINE_REASON); an empty frame when none."""
    return load_frame(store, session.quarantined_key) if session.quarantined_key else (
        pd.DataFrame())


def load_report(store: Store, session: Session) -> ValidationReport:
    """The validation report of everything loaded into the session."""
    counts = session.report_counts
    problems: list[Problem] = []
    if session.report_key:
        frame = load_frame(store, session.report_key).astype(object)
        frame = frame.where(frame.notna(), None)
        problems = [Problem(f, s, None if r is None else int(r), c, code, m, bool(b))
                    for f, s, r, c, code, m, b in frame.itertuples(index=False)]
    return ValidationReport(problems, counts.get("rows_total", 0),
                            counts.get("rows_quarantined", 0), counts.get("rows_warned", 0))


def open_session(store: Store, actor: Actor, settings: Settings,
                 now: datetime | None = None) -> Session:
    """The actor's open session, or a new empty one with the active rules selected. (settings is
    taken for the fetch-from-source loader to come; nothing is fetched yet.)"""
    require(actor, MANUAL_SESSION)
    existing = read_session(store, actor.username)
    if existing is not None and existing.status not in CLOSED:
        return existing
    at = _at(now).isoformat()
    session = Session(actor.username, uuid.uuid4().hex[:10], at,
                      rule_ids=[r.id for r in load_rules(store) if r.active],
                      saves=existing.saves if existing else {})
    return commit(store, actor, existing, session, action="session_opened", now=now)


def load_session(store: Store, actor: Actor) -> Session | None:
    """The actor's open session (also while it is being saved); None when there is none."""
    require(actor, MANUAL_SESSION)
    session = read_session(store, actor.username)
    return None if session is None or session.status in CLOSED else session


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _load_into(store: Store, actor: Actor, session: Session, prepared: Prepared,
               buffer_ids: Sequence[str], now: datetime | None) -> Session:
    """Add validated rows (new COLOR_IDs), quarantined rows and the report. Loading is a
    checkpoint: the undo and redo stacks are cleared (undo never drops a loaded file)."""
    rows = load_frame(store, session.rows_key)
    new = prepared.valid.copy()
    new[COLOR_ID] = pd.array([f"{session.token}-{session.next_row + i}" for i in range(len(new))],
                             dtype="string")
    merged = _concat([rows, new]) if len(new) else rows
    after = copy.deepcopy(session)
    after.undo, after.redo = [], []
    after.next_row += len(new)
    after.files += prepared.files
    after.buffer_ids += list(buffer_ids)
    report = load_report(store, session).merge(prepared.report)
    after.report_counts = {"rows_total": report.rows_total,
                           "rows_quarantined": report.rows_quarantined,
                           "rows_warned": report.rows_warned or 0}
    written = []
    try:
        after.rows_key = put_frame(store, session, "rows", merged)
        written.append(after.rows_key)
        if len(prepared.quarantined):
            quarantined = _concat([load_quarantined(store, session), prepared.quarantined])
            after.quarantined_key = put_frame(store, session, "quarantined", quarantined)
            written.append(after.quarantined_key)
        after.report_key = put_frame(store, session, "report", report.to_frame())
        written.append(after.report_key)
    except Exception:
        for key in written:
            store.delete_blob(key)
        raise
    names = [str(f.get("name")) for f in prepared.files]
    return commit(store, actor, session, after, action="files_added", now=now, written=written,
                  detail=prepared.report.summary(),
                  change={"files": names, "rows": len(new), "buffer_ids": list(buffer_ids)})


def add_files(store: Store, actor: Actor, files: Sequence[tuple[str, bytes]], settings: Settings,
              *, version: str | None = None, now: datetime | None = None) -> Session:
    """Read and validate files into the session. A whole-file problem raises FileProblem and
    changes nothing."""
    session = current(store, actor, version)
    prepared = prepare_files(store, files, settings, skip_published=False, whole=False)
    return _load_into(store, actor, session, prepared, (), now)


def add_from_buffer(store: Store, actor: Actor, entry_ids: Collection[str] | None,
                    settings: Settings, *, version: str | None = None,
                    now: datetime | None = None) -> Session:
    """Claim buffer files for this session (no run or other session can take them until it is
    saved or discarded) and load them. entry_ids None = every pending file (none pending: the
    session is returned unchanged); named files that cannot all be claimed raise Conflict and
    nothing is claimed."""
    session = current(store, actor, version)
    owner = buffer.session_owner(actor.username)
    claimed = buffer.claim_pending(store, owner, entry_ids, actor=actor, now=now)
    ids = [entry_id for entry_id, _, _ in claimed]
    try:
        if entry_ids is not None and set(ids) != set(entry_ids):
            missing = [buffer.get_entry(store, i) for i in entry_ids if i not in ids]
            taken = ", ".join(f"{e.id} ({e.name}: {e.status}"
                              f"{' by ' + e.claimed_by if e.claimed_by else ''})" for e in missing)
            raise Conflict(f"buffer file(s) not available: {taken}; reload the buffer")
        if not claimed:
            return session
        prepared = prepare_files(store, [(name, data) for _, name, data in claimed], settings,
                                 skip_published=False, whole=False)
        for meta, entry_id in zip(prepared.files, ids, strict=True):
            meta["buffer_id"] = entry_id
        return _load_into(store, actor, session, prepared, ids, now)
    except Exception:
        buffer.release(store, ids, owner=owner, actor=actor, now=now)
        raise


def fetch_from_source(store: Store, actor: Actor, sources: Sequence[Mapping[str, Any]],
                      settings: Settings, *, job_id: str = "", version: str | None = None,
                      now: datetime | None = None) -> Session:
    """Read SQL sources (a job's configured tables, core.intake.sources) into the session: the
    rows newer than job_id's watermarks, which stay where they are (the job's next run skips
    what the session publishes as already published). Inbox and buffer sources are refused:
    inbox files belong to the automated runs (reading them here would publish them twice) and
    buffer files load with add_from_buffer."""
    session = current(store, actor, version)
    from core.intake import sources as source_kinds  # lazy: SQL drivers load only when fetching

    if not sources or any(s.get("kind") != source_kinds.SQL for s in sources):
        raise InvalidInput("sources", "a session fetches SQL sources only; load buffer files "
                           "from the buffer and upload inbox files")
    collected = source_kinds.collect_inputs(store, [dict(s) for s in sources], settings,
                                            job_name=f"session-{actor.username}", now=_at(now),
                                            job_id=job_id)
    if collected.empty:
        return session
    prepared = prepare_files(store, collected.files, settings, skip_published=False,
                             whole=False)
    return _load_into(store, actor, session, prepared, (), now)


def selected_rules(store: Store, session: Session) -> list[Rule]:
    """The session's selected rules, as active rules (a user may select an inactive one); rules
    deleted since they were selected are left out."""
    wanted = set(session.rule_ids)
    return [replace(r, active=True) for r in load_rules(store) if r.id in wanted]


def preview(store: Store, actor: Actor, settings: Settings, *,
            filters: Group | None = None) -> SessionView:
    """Rank the working rows with the selected rules and pinned parents, exactly as save would
    publish them; `filters` narrows the rows shown (not the ranking)."""
    require(actor, MANUAL_SESSION)
    session = load_session(store, actor)
    if session is None:
        raise NotFound(f"{actor.username} has no open manual session; open one first")
    rows = load_frame(store, session.rows_key)
    rules = selected_rules(store, session)
    ranked, outcome = rank_batch(rows, rules, settings, pinned=session.pinned)
    if IS_PARENT not in ranked.columns:  # nothing kept: still the ranked columns
        ranked = rank_colors(rows.iloc[:0], date_column=settings["ranking.date_column"])
    excluded = outcome.excluded
    quarantined = load_quarantined(store, session)
    parents = int(ranked[IS_PARENT].sum())
    counts = {"rows": len(rows), "kept": len(ranked), "parents": parents,
              "children": len(ranked) - parents, "excluded": len(excluded),
              "quarantined": len(quarantined)}
    if filters is not None:
        ranked, excluded = filter_frame(ranked, filters), filter_frame(excluded, filters)
    counts["shown"] = len(ranked)
    already = duplicates.find_published(store, rows, duplicates.color_keys(rows))
    return SessionView(ranked.reset_index(drop=True), excluded.reset_index(drop=True), counts,
                       quarantined, load_report(store, session), outcome.counts,
                       [r.name for r in rules], session, already)
