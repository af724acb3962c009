"""The upload buffer (DOMAIN.md §5): files validated and queued for the next run, claimed with
compare-and-set so no run or session processes one twice, and kept as history with their status.

Entry `buffer/<id>` (document) + bytes `buffer/<id>/<name>` (blob). Statuses: pending → claimed →
processed; claimed → pending (release) or failed; pending → cancelled; a refused upload is `failed`.
A cancelled file keeps its bytes, so reverting its removal (core.compliance.revert) queues it again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core import catalog
from core.access import SYSTEM, UPLOAD_BUFFER, Actor, require
from core.alerts import bell
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, FileProblem, InvalidInput, NotFound
from core.ingest.validation import Problem, ValidationReport
from core.runs import pipeline
from storage import ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)

AREA = "buffer"
PREFIX = catalog.BUFFER.key
FILES_PREFIX = catalog.BUFFER_FILES.key  # blobs: <prefix><entry id>/<file name>
SEQUENCE_KEY = catalog.BUFFER_SEQUENCE.key
# core.manual.sessions keeps a user's session there (see _session_holds)
SESSIONS_PREFIX = catalog.MANUAL_SESSIONS.key
SESSION_OWNER = "session:"  # claimed_by of a manual session: "session:<username>"
PENDING, CLAIMED, PROCESSED, FAILED, CANCELLED = (
    "pending", "claimed", "processed", "failed", "cancelled")
STATUSES = (PENDING, CLAIMED, PROCESSED, FAILED, CANCELLED)
PROBLEMS_KEPT = 500  # report entries kept on the entry (the run record keeps as many)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=@+-]")


@dataclass
class BufferEntry:
    """One uploaded file and what became of it. `events` is its status history."""

    id: str
    name: str
    uploaded_by: str
    uploaded_at: str
    status: str = PENDING
    blob: str = ""
    rows: int = 0
    quarantined: int = 0
    quality_score: float | None = None
    summary: str = ""
    problems: list[dict[str, Any]] = field(default_factory=list)
    claimed_by: str = ""
    claimed_at: str = ""
    processed_at: str = ""
    run_id: int | None = None
    error: str = ""
    events: list[dict[str, str]] = field(default_factory=list)
    # The full row-level report, on entries add_files returns (not stored: see `problems`).
    report: ValidationReport | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("report")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BufferEntry:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__
                      and k != "report"})


def session_owner(username: str) -> str:
    """The claimed_by value of a user's manual session."""
    return SESSION_OWNER + username


def entry_key(entry_id: str) -> str:
    return PREFIX + entry_id


def entity(entry_id: str) -> str:
    """The change log's ENTITY of an entry."""
    return f"buffer {entry_id}"


def logged_state(entry: BufferEntry) -> dict[str, Any]:
    """What the change log keeps of an entry's state, before and after each transition."""
    return {"name": entry.name, "status": entry.status, "claimed_by": entry.claimed_by}


def revert_view(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of a logged state that must be unchanged for a revert: status and claimer."""
    return None if state is None else {k: state.get(k) for k in ("status", "claimed_by")}


def _at(now: datetime | None) -> str:
    return now_or(now).isoformat()


def _who(actor: Actor | str) -> str:
    return actor if isinstance(actor, str) else actor.username


def _next_id(store: Store) -> str:
    """The next entry id from the sequence (compare-and-set loop, safe across processes)."""
    while True:
        try:
            value, version = store.get(SEQUENCE_KEY)
        except ObjectNotFound:
            value, version = {"next": 1}, None
        number = int(value["next"])
        try:
            store.put(SEQUENCE_KEY, {"next": number + 1}, expected_version=version)
            return f"{number:06d}"
        except WriteConflict:
            continue


def _blob_name(name: str) -> str:
    """The file name as one safe key segment (the entry keeps the original name)."""
    safe = _UNSAFE.sub("_", name).lstrip(".")[-200:]
    return safe or "file"


def _check(store: Store, name: str, data: bytes, settings: Settings) -> pipeline.Prepared:
    """Read and validate one file; a file with no usable row is refused like an unreadable one."""
    prepared = pipeline.prepare_files(store, [(name, data)], settings, skip_published=False)
    if prepared.report.rows_total and not len(prepared.valid):
        first = "; ".join(p.message for p in prepared.report.blocking[:3])
        raise FileProblem(name, f"none of its {prepared.report.rows_total} rows is usable "
                          f"(e.g. {first}); fix the file and upload it again")
    return prepared


def add_files(
    store: Store, actor: Actor, files: Sequence[tuple[str, bytes]], settings: Settings,
    now: datetime | None = None,
) -> list[BufferEntry]:
    """Validate every file, then queue them all as pending entries (with their reports).

    All or nothing per call: when any file is unusable (unreadable, required columns missing, no
    usable row) nothing is queued, each unusable file is recorded in the history as `failed`, and
    FileProblem names the first one (and counts the others)."""
    require(actor, UPLOAD_BUFFER)
    at = _at(now)
    checked: list[tuple[str, bytes, pipeline.Prepared]] = []
    refused: list[FileProblem] = []
    for name, data in files:
        try:
            checked.append((name, data, _check(store, name, data, settings)))
        except FileProblem as exc:
            refused.append(exc)
    if refused:
        for problem in refused:
            entry = BufferEntry(_next_id(store), problem.file, actor.username, at, status=FAILED,
                                error=str(problem), events=[_event(FAILED, at, actor)])
            store.put(entry_key(entry.id), entry.to_dict(), expected_version=None)
            record_change(store, actor, AREA, "file_refused", entity(entry.id),
                          after={"name": problem.file, "error": str(problem)}, now=now)
        others = f" ({len(refused) - 1} other file(s) refused too)" if len(refused) > 1 else ""
        raise FileProblem(refused[0].file, f"{refused[0].detail}{others}. Nothing was queued: "
                          "fix or leave out the refused file and upload again",
                          sheet=refused[0].sheet) from refused[0]
    entries = []
    for name, data, prepared in checked:
        entry_id = _next_id(store)
        blob = f"{FILES_PREFIX}{entry_id}/{_blob_name(name)}"
        store.put_blob(blob, data)
        report = prepared.report
        entry = BufferEntry(
            entry_id, name, actor.username, at, blob=blob, rows=report.rows_total,
            quarantined=report.rows_quarantined, quality_score=report.quality_score,
            summary=report.summary(), problems=[vars(p) for p in report.problems[:PROBLEMS_KEPT]],
            events=[_event(PENDING, at, actor)])
        store.put(entry_key(entry_id), entry.to_dict(), expected_version=None)
        record_change(store, actor, AREA, "file_queued", entity(entry_id),
                      after={**logged_state(entry), "rows": entry.rows,
                             "quarantined": entry.quarantined}, detail=entry.summary, now=now)
        entry.report = report
        entries.append(entry)
    return entries


def _event(status: str, at: str, actor: Actor | str, note: str = "") -> dict[str, str]:
    event = {"status": status, "at": at, "by": _who(actor)}
    return event | {"note": note} if note else event


def stored_report(entry: BufferEntry) -> ValidationReport:
    """The entry's report as kept in the store (its first PROBLEMS_KEPT problems)."""
    return ValidationReport([Problem(**p) for p in entry.problems], entry.rows, entry.quarantined)


def _read(store: Store, entry_id: str) -> tuple[BufferEntry, str]:
    try:
        value, version = store.get(entry_key(entry_id))
    except ObjectNotFound:
        raise NotFound(f"buffer file {entry_id} does not exist") from None
    return BufferEntry.from_dict(value), version


def get_entry(store: Store, entry_id: str) -> BufferEntry:
    """One entry; NotFound when it does not exist."""
    return _read(store, entry_id)[0]


def list_entries(store: Store, status: str | Collection[str] | None = None) -> list[BufferEntry]:
    """Entries in upload order; only those with the given status(es) when given."""
    wanted = {status} if isinstance(status, str) else None if status is None else set(status)
    entries = []
    for key in store.list(PREFIX):
        try:
            entry = BufferEntry.from_dict(store.get(key)[0])
        except ObjectNotFound:  # removed between list and get
            continue
        if wanted is None or entry.status in wanted:
            entries.append(entry)
    return entries


def count_entries(store: Store) -> dict[str, int]:
    """History counts: entries per status (every status present), rows queued and processed."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = processed_rows = 0
    for entry in list_entries(store):
        counts[entry.status] = counts.get(entry.status, 0) + 1
        rows += entry.rows
        processed_rows += entry.rows if entry.status == PROCESSED else 0
    return counts | {"total": sum(counts.values()), "rows": rows, "rows_processed": processed_rows}


def _transition(store: Store, entry_id: str, actor: Actor | str, action: str, to: str, *,
                allowed: Collection[str], owner: str | None = None, now: datetime | None = None,
                note: str = "", **changes: Any) -> BufferEntry | None:
    """Move one entry to status `to` by compare-and-set; None when it is not in an allowed status
    (or, with owner, not claimed by that owner). A concurrent writer means re-read and re-check."""
    at = _at(now)
    while True:
        entry, version = _read(store, entry_id)
        if entry.status not in allowed or (owner is not None and entry.claimed_by != owner):
            return None
        before = logged_state(entry)
        updated = BufferEntry.from_dict(entry.to_dict() | changes | {"status": to})
        updated.events = [*entry.events, _event(to, at, actor, note)]
        try:
            store.put(entry_key(entry_id), updated.to_dict(), expected_version=version)
        except WriteConflict:
            continue
        record_change(store, actor, AREA, action, entity(entry_id), before=before,
                      after=logged_state(updated), detail=note, now=now)
        return updated


def remove(store: Store, actor: Actor, entry_id: str, now: datetime | None = None) -> BufferEntry:
    """Cancel one pending file (its bytes and history are kept, so the removal can be reverted).
    Conflict when it is no longer pending (claimed by a run or a session, or already
    processed)."""
    require(actor, UPLOAD_BUFFER)
    entry = _transition(store, entry_id, actor, "file_removed", CANCELLED, allowed=(PENDING,),
                        now=now)
    if entry is None:
        current = get_entry(store, entry_id)
        by = f" by {current.claimed_by}" if current.status == CLAIMED else ""
        raise Conflict(f"buffer file {entry_id} ({current.name}) is {current.status}{by}; "
                       "only pending files can be removed")
    return entry


def clear(store: Store, actor: Actor, now: datetime | None = None) -> list[BufferEntry]:
    """Cancel every pending file; files claimed meanwhile are left to their claimer."""
    require(actor, UPLOAD_BUFFER)
    cancelled = []
    for pending in list_entries(store, PENDING):
        entry = _transition(store, pending.id, actor, "file_removed", CANCELLED,
                            allowed=(PENDING,), now=now, note="clear")
        if entry is not None:
            cancelled.append(entry)
    return cancelled


def has_bytes(store: Store, entry_id: str) -> bool:
    """Whether the entry's uploaded bytes are still stored (removals before revert existed
    deleted them)."""
    try:
        blob = get_entry(store, entry_id).blob
    except NotFound:
        return False
    return bool(blob) and blob in store.list_blobs(blob)


def restore_entry(store: Store, actor: Actor, entry_id: str, before: dict[str, Any] | None,
                  after: dict[str, Any]) -> BufferEntry:
    """Revert an upload or a removal (no change log: the revert logs itself): a file queued
    (before None) is cancelled, a cancelled one is pending again; only while its status is still
    `after`, with the entry's version (Conflict otherwise, e.g. a run claimed it since)."""
    require(actor, UPLOAD_BUFFER)
    at = _at(None)
    to = CANCELLED if before is None else str(before["status"])
    if to not in (PENDING, CANCELLED):
        raise InvalidInput("revert", f"a buffer file cannot be put back to {to}")
    entry, version = _read(store, entry_id)
    if revert_view(logged_state(entry)) != revert_view(after):
        raise Conflict(f"buffer file {entry_id} ({entry.name}) is {entry.status} now; reload and "
                       "try again")
    if to == PENDING and not has_bytes(store, entry_id):
        raise Conflict(f"the bytes of buffer file {entry_id} ({entry.name}) were deleted when it "
                       "was removed; upload it again")
    updated = BufferEntry.from_dict(entry.to_dict() | {"status": to})
    updated.events = [*entry.events, _event(to, at, actor, "revert")]
    try:
        store.put(entry_key(entry_id), updated.to_dict(), expected_version=version)
    except WriteConflict:
        raise Conflict(f"buffer file {entry_id} ({entry.name}) changed while it was being "
                       "reverted; reload and try again") from None
    return updated


def claim_pending(
    store: Store, owner: str, ids: Collection[str] | None = None, *,
    actor: Actor | str | None = None, now: datetime | None = None,
) -> list[tuple[str, str, bytes]]:
    """Claim the pending files (all, or those of `ids` still pending) for `owner` and return
    (id, name, bytes) of each claimed. Compare-and-set per entry: of two claimers, exactly one
    gets each file. A file whose bytes are gone is marked failed instead."""
    who = owner if actor is None else actor
    at = _at(now)
    wanted = [e.id for e in list_entries(store, PENDING)] if ids is None else list(ids)
    claimed = []
    for entry_id in wanted:
        try:
            entry = _transition(store, entry_id, who, "file_claimed", CLAIMED, allowed=(PENDING,),
                                now=now, claimed_by=owner, claimed_at=at)
        except NotFound:
            continue
        if entry is None:
            continue
        try:
            claimed.append((entry.id, entry.name, store.get_blob(entry.blob)))
        except ObjectNotFound:
            _transition(store, entry_id, who, "file_failed", FAILED, allowed=(CLAIMED,),
                        owner=owner, now=now, error="the uploaded bytes are missing")
    return claimed


def _each(store: Store, ids: Collection[str], actor: Actor | str, action: str, to: str, *,
          allowed: Collection[str], owner: str | None, now: datetime | None,
          **changes: Any) -> list[str]:
    done = []
    for entry_id in ids:
        if _transition(store, entry_id, actor, action, to, allowed=allowed, owner=owner, now=now,
                       **changes) is not None:
            done.append(entry_id)
    return done


def mark_processed(
    store: Store, ids: Collection[str], run_id: int, *, owner: str | None = None,
    actor: Actor | str = SYSTEM, now: datetime | None = None, note: str = "",
) -> list[str]:
    """Claimed → processed by run `run_id` (only claims of `owner` when given); returns the ids
    marked. Entries in any other state are left alone. note (in the entry's events): what the
    run did with the file."""
    processed = [entry for entry in (
        _transition(store, entry_id, actor, "file_processed", PROCESSED, allowed=(CLAIMED,),
                    owner=owner, now=now, note=note, run_id=run_id, processed_at=_at(now))
        for entry_id in ids) if entry is not None]
    _tell_uploaders(store, processed, run_id, actor, now, note)
    return [entry.id for entry in processed]


def _tell_uploaders(store: Store, entries: Sequence[BufferEntry], run_id: int,
                    actor: Actor | str, now: datetime | None, note: str) -> None:
    """The bell tells each uploader (but the user who processed the files) that their files went
    into the run. A notification that cannot be written never stops the run."""
    uploaders: dict[str, list[BufferEntry]] = {}
    for entry in entries:
        if entry.uploaded_by != _who(actor):
            uploaders.setdefault(entry.uploaded_by, []).append(entry)
    for username, files in uploaders.items():
        try:
            bell.notify_buffer_processed(store, username, [f.name for f in files], run_id,
                                         now_or(now), note=note, batch=files[0].id)
        except Exception:
            log.exception("could not tell %s that run %s processed their files", username,
                          run_id)


def mark_failed(
    store: Store, ids: Collection[str], error: str, *, owner: str | None = None,
    actor: Actor | str = SYSTEM, now: datetime | None = None,
) -> list[str]:
    """Claimed → failed with the reason (a file that cannot be processed any more)."""
    return _each(store, ids, actor, "file_failed", FAILED, allowed=(CLAIMED,), owner=owner,
                 now=now, error=error)


def release(
    store: Store, ids: Collection[str], *, owner: str | None = None,
    actor: Actor | str = SYSTEM, now: datetime | None = None,
) -> list[str]:
    """Claimed → pending again (a failed run, a discarded session); returns the ids released."""
    return _each(store, ids, actor, "file_released", PENDING, allowed=(CLAIMED,), owner=owner,
                 now=now, claimed_by="", claimed_at="")


def _session_holds(store: Store, entry: BufferEntry) -> bool:
    """A manual session's claim lives as long as its open session lists the file."""
    if not entry.claimed_by.startswith(SESSION_OWNER):
        return False
    try:
        value, _ = store.get(SESSIONS_PREFIX + entry.claimed_by[len(SESSION_OWNER):])
    except ObjectNotFound:
        return False
    return value.get("status") in ("open", "saving") and entry.id in value.get("buffer_ids", [])


def release_stale(
    store: Store, older_than: datetime, *, actor: Actor | str = SYSTEM,
    now: datetime | None = None,
) -> list[str]:
    """Release claims made before `older_than` whose owner is gone (a run that died). Claims of a
    manual session that still lists the file are kept, however old: the analyst may come back."""
    stale = [e for e in list_entries(store, CLAIMED)
             if e.claimed_at and datetime.fromisoformat(e.claimed_at) < older_than
             and not _session_holds(store, e)]
    return [entry_id for e in stale for entry_id in release(
        store, [e.id], owner=e.claimed_by, actor=actor, now=now)]
