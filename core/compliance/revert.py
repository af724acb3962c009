"""The unified "last changes with Revert" (DOMAIN.md §6): an area's recent changes from the change
log, whether each can be reverted (and why not), and reverting one only when the entity has not
changed since. Each area plugs in a Handler; rules, the column configuration and jobs are built in.

Adding an area: implement Handler and call `register_area("settings", SettingsHandler(),
actions={"update"})` at the end of this module; the other areas' handlers (users, presets,
notifications, sign-up, buffer) are core.compliance.revert_areas, registered here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from core.access import EDIT_COLUMNS, EDIT_JOBS, EDIT_RULES, REMOVE_RUNS, REVERT, Actor, require
from core.audit import get_change, load_changes, record_change
from core.automation import jobs
from core.claims import claim_key, release
from core.clock import now_or
from core.compliance import revert_areas
from core.errors import Conflict, InvalidInput, NotFound
from core.identity import login, users
from core.ingest import columns
from core.intake import buffer
from core.rules import exclusion as rules
from core.rules import presets
from core.runs import records as runs_records
from core.runs import removal
from core.schema import CONFIG_KEY
from storage import ObjectNotFound, Store, WriteConflict

REVERT_ACTION = "revert"
# An entity as the log snapshots it (a dict; a list for a column profile); None = it does not exist
State = revert_areas.State


class Handler(Protocol):
    """How one area reads and restores the entities its changes name."""

    def current_state(self, store: Store, entity: str) -> State:
        """The entity (the change log's ENTITY) now, in the form the area logs as before/after;
        None when it does not exist."""

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        """Put `before` back exactly (None: remove the entity) in place of `after`: the revert is
        logged with `before` as its after, so stamp nothing else on it. Check the actor's
        permission for the area's normal edit, and, with the store's versions, that `after` is
        still what is stored (Conflict if not: a write between the check and the restore). Do
        not write to the change log: revert_change logs the revert itself."""


@dataclass(frozen=True)
class _Area:
    handler: Handler
    actions: frozenset[str] | None  # the actions that can be reverted; None = all but reverts
    label: Callable[[str], str]  # entity → words for messages ("rule 'No DZ'")
    summary: Callable[[Change], str] | None  # the list's one-line text; None: the generic one
    compare: Callable[[State], Any]  # the part of a state the conflict check compares
    refuse: Callable[[Store, Change], str] | None  # why a change cannot be reverted ("": it can)


_AREAS: dict[str, _Area] = {}


def register_area(area: str, handler: Handler, *, actions: Collection[str] | None = None,
                  label: Callable[[str], str] | None = None,
                  summary: Callable[[Change], str] | None = None,
                  compare: Callable[[State], Any] | None = None,
                  refuse: Callable[[Store, Change], str] | None = None) -> None:
    """Make the changes of `area` revertible through `handler` (a later call replaces it).
    actions: which actions can be reverted (default: every one but a revert); label: how
    messages name an entity (default "<area without s> '<entity>'"); summary: the one-line text
    of a change in the list (default "<action> <label>", with the changed fields of an update);
    compare: the part of a state that must be unchanged for a revert (default: all of it, so
    bookkeeping such as a user's last login does not block one); refuse: an area's own reason
    a change whose entity is unchanged still cannot be reverted ("" when it can)."""
    _AREAS[area] = _Area(handler, None if actions is None else frozenset(actions),
                         label or _default_label(area), summary, compare or _whole, refuse)


def _whole(state: State) -> Any:
    return state


def _default_label(area: str) -> Callable[[str], str]:
    noun = area[:-1] if area.endswith("s") else area
    return lambda entity: entity if entity.lower().startswith(noun) else f"{noun} {entity!r}"


@dataclass(frozen=True)
class Change:
    """One logged change as the "last changes" list shows it."""

    event_id: str
    at: datetime
    actor: str
    area: str
    action: str
    entity: str
    summary: str
    revertible: bool
    reason: str  # why not, when not revertible
    before: State
    after: State
    detail: str = ""


def _json(text: Any) -> Any:
    """A BEFORE/AFTER cell as its value (None for an empty cell)."""
    return json.loads(text) if isinstance(text, str) else None


_canonical = revert_areas.canonical


def _when(at: datetime) -> str:
    return pd.Timestamp(at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def _raw(row: Mapping[str, Any]) -> Change:
    detail = row.get("DETAIL")
    return Change(str(row["EVENT_ID"]), pd.Timestamp(row["AT"]).to_pydatetime(), str(row["ACTOR"]),
                  str(row["AREA"]), str(row["ACTION"]), str(row["ENTITY"]), "", False, "",
                  _json(row.get("BEFORE")), _json(row.get("AFTER")),
                  "" if detail is None or pd.isna(detail) else str(detail))


def _label(change: Change) -> str:
    area = _AREAS.get(change.area)
    return (area.label if area else _default_label(change.area))(change.entity)


_VERBS = {"create": "created", "delete": "deleted", "update": "updated",
          "activate": "activated", "deactivate": "deactivated",
          "set_priority": "changed the priority of"}
_BOOKKEEPING = {"updated_at", "updated_by"}


def _summary(change: Change, by_id: Mapping[str, Change]) -> str:
    if change.action == REVERT_ACTION:
        target = by_id.get(change.detail)
        if target is None:
            return f"reverted change {change.detail}"
        return f"reverted {target.actor}'s change of {_when(target.at)}: {_summary(target, {})}"
    area = _AREAS.get(change.area)
    if area and area.summary:
        return area.summary(change)
    text = f"{_VERBS.get(change.action, change.action.replace('_', ' '))} {_label(change)}"
    if change.action == "update" and isinstance(change.before, dict) and isinstance(change.after,
                                                                                     dict):
        keys = sorted(k for k in change.before.keys() | change.after.keys()
                      if k not in _BOOKKEEPING and change.before.get(k) != change.after.get(k))
        text += f" ({', '.join(keys)})" if keys else ""
    return text


def _identity(change: Change) -> str:
    """What ties changes of one entity together: a snapshot's id (rules keep it across renames),
    else the entity."""
    for state in (change.after, change.before):
        if isinstance(state, dict) and state.get("id"):
            return f"id:{state['id']}"
    return f"entity:{change.entity}"


def _blocker(store: Store, change: Change, history: list[Change]) -> tuple[str, bool]:
    """("", _) when the change can be reverted, else (reason, whether the reason is the entity's
    state rather than the kind of change). history: the area's changes, newest first."""
    area = _AREAS.get(change.area)
    if area is None:
        return f"{change.area} changes cannot be reverted", False
    if change.action == REVERT_ACTION:
        return "a revert cannot itself be reverted; make the change again instead", False
    if area.actions is not None and change.action not in area.actions:
        return f"'{change.action.replace('_', ' ')}' changes cannot be reverted", False
    ids = [c.event_id for c in history]
    later = history[:ids.index(change.event_id)] if change.event_id in ids else []
    for other in later:
        if other.action == REVERT_ACTION and other.detail == change.event_id:
            return f"already reverted by {other.actor} at {_when(other.at)}", True
    current = area.handler.current_state(store, change.entity)
    if _canonical(area.compare(current)) == _canonical(area.compare(change.after)):
        return (area.refuse(store, change) if area.refuse else ""), True
    touching = [c for c in later if _identity(c) == _identity(change)
                or c.entity.casefold() == change.entity.casefold()]
    if not touching:
        return (f"{_label(change)} has changed since this change, outside the change log; it "
                "cannot be reverted", True)
    newest = touching[0]
    advice = ("revert that change first" if not _blocker(store, newest, history)[0]
              else "it can no longer be reverted")
    return (f"{_label(change)} was changed by {newest.actor} at {_when(newest.at)} after this "
            f"change; {advice}", True)


def _history(store: Store, area: str) -> list[Change]:
    records = load_changes(store, area=area).to_dict("records")
    return [_raw({str(k): v for k, v in row.items()}) for row in records]


def _finish(store: Store, change: Change, history: list[Change]) -> Change:
    reason, _ = _blocker(store, change, history)
    by_id = {c.event_id: c for c in history}
    return replace(change, summary=_summary(change, by_id), revertible=not reason, reason=reason)


def recent_changes(store: Store, area: str, limit: int = 4, *, entity_prefix: str = "",
                   actions: Collection[str] | None = None) -> list[Change]:
    """The area's last `limit` changes, newest first, each saying whether Revert applies; only
    those of entities starting with entity_prefix and, when given, of these actions (a tab
    showing column profiles, the buffer's uploads and removals among its runs' claims)."""
    history = _history(store, area)
    shown = [c for c in history if c.entity.startswith(entity_prefix)
             and (actions is None or c.action in actions)]
    return [_finish(store, change, history) for change in shown[:limit]]


def revert_change(store: Store, actor: Actor, event_id: str, *, now: datetime | None = None
                  ) -> str:
    """Restore the state before change `event_id` and log it (action "revert", detail = the
    reverted event id, before/after swapped); returns the revert's event id.

    NotFound for an unknown event; InvalidInput when its kind cannot be reverted; Conflict when it
    was already reverted or its entity changed since (the message names who changed it, when)."""
    require(actor, REVERT)
    target = _raw(get_change(store, event_id))
    history = _history(store, target.area)
    reason, state = _blocker(store, target, history)
    if reason and state:
        raise Conflict(f"cannot revert this change to {_label(target)}: {reason}")
    if reason:
        raise InvalidInput("revert", reason)
    _AREAS[target.area].handler.restore(store, actor, target.entity, target.before, target.after)
    return record_change(store, actor, target.area, REVERT_ACTION, target.entity,
                         before=target.after, after=target.before, detail=event_id,
                         now=now_or(now))


# -- built-in areas --------------------------------------------------------------------------------
class RulesHandler:
    """Rules by name (the log's ENTITY); restored under their own id, so a deleted rule comes back
    as itself."""

    def current_state(self, store: Store, entity: str) -> State:
        found = [r for r in rules.load_rules(store) if r.name.casefold() == entity.casefold()]
        return found[0].to_dict() if found else None

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        require(actor, EDIT_RULES)
        rule_id = str((before or after or {}).get("id", ""))
        key = rules.PREFIX + rule_id
        try:
            value, version = store.get(key)
            stored: State = rules.Rule.from_dict({**value, "id": rule_id}).to_dict()
        except ObjectNotFound:
            stored, version = None, None
        if _canonical(stored) != _canonical(after):
            raise Conflict("the rule changed while it was being reverted; reload and try again")
        try:
            if before is None:
                if after is None:  # neither side recorded: nothing names the rule to remove
                    raise InvalidInput("revert", "that change recorded no rule to restore")
                store.delete(key, str(version))
                release(store, claim_key(rules.AREA, after["name"]), rule_id)
                return
            restored = rules.Rule.from_dict(before)
            for other in rules.load_rules(store):
                if other.id != rule_id and other.name.casefold() == restored.name.casefold():
                    raise Conflict(f"another rule is now named {other.name!r}; rename or delete "
                                   "it first")
            rules.named_write(store, replace(restored, id=rule_id), (after or {}).get("name"),
                              lambda: store.put(key, restored.to_dict(), version))
        except (WriteConflict, ObjectNotFound) as exc:
            raise Conflict("the rule changed while it was being reverted; reload and try "
                           "again") from exc


class ColumnsHandler:
    """The column configuration as one entity ({"columns": [spec dicts]})."""

    def current_state(self, store: Store, entity: str) -> State:
        return {"columns": [s.to_dict() for s in columns.load_column_config(store)]}

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        require(actor, EDIT_COLUMNS)
        current, version = columns.get_column_config(store)
        if _canonical({"columns": [s.to_dict() for s in current]}) != _canonical(after):
            raise Conflict("the column configuration changed while it was being reverted; "
                           "reload and try again")
        try:
            store.put(CONFIG_KEY, list((before or {}).get("columns") or []), version)
        except WriteConflict as exc:
            raise Conflict("the column configuration changed while it was being reverted; "
                           "reload and try again") from exc


class JobsHandler:
    """Automation jobs by name (the log's ENTITY); restored under their own id, so a deleted job
    comes back as itself. Restores as core.automation.jobs.revert_job_change does, without its
    stamps."""

    def current_state(self, store: Store, entity: str) -> State:
        found = [j for j in jobs.load_jobs(store) if j.name.casefold() == entity.casefold()]
        return found[0].to_dict() if found else None

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        require(actor, EDIT_JOBS)
        job_id = str((after or before or {}).get("id", ""))
        try:
            current, version = jobs.get_job(store, job_id)
            stored: State = current.to_dict()
        except NotFound:
            stored, version = None, None
        if _canonical(stored) != _canonical(after):
            raise Conflict("the job changed while it was being reverted; reload and try again")
        try:
            if before is None:
                if after is None:  # neither side recorded: nothing names the job to remove
                    raise InvalidInput("revert", "that change recorded no job to restore")
                store.delete(jobs.PREFIX + job_id, str(version))
                release(store, claim_key(jobs.AREA, after["name"]), job_id)
                return
            restored = jobs.Job.from_dict(before)
            for other in jobs.load_jobs(store):
                if other.id != job_id and other.name.casefold() == restored.name.casefold():
                    raise Conflict(f"another job is now named {other.name!r}; rename or delete "
                                   "it first")
            jobs.validate_job(restored)
            jobs.named_write(store, replace(restored, id=job_id), (after or {}).get("name"),
                             lambda: store.put(jobs.PREFIX + job_id, restored.to_dict(), version))
        except (WriteConflict, ObjectNotFound) as exc:
            raise Conflict("the job changed while it was being reverted; reload and try "
                           "again") from exc


class RunsHandler:
    """A run's removal and its undo (core.runs.removal): the entity is "run <id>", the state its
    id, status and removal."""

    def current_state(self, store: Store, entity: str) -> State:
        try:
            return removal.state(runs_records.get_run(store, int(entity.split()[-1])))
        except (NotFound, ValueError):
            return None

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        require(actor, REMOVE_RUNS)
        if before is None or after is None:
            raise InvalidInput("revert", "that change recorded no run state to restore")
        removal.set_state(store, int(after["run"]), after, before)


register_area(rules.AREA, RulesHandler())
register_area(jobs.AREA, JobsHandler())
register_area(removal.AREA, RunsHandler(), actions={removal.REMOVED_ACTION,
                                                   removal.RESTORED_ACTION},
              label=lambda entity: entity)
register_area(columns.AREA, ColumnsHandler(), label=lambda entity: "the column configuration",
              summary=lambda change: change.detail or "changed the column configuration")

_areas = revert_areas
register_area(users.AREA, _areas.UsersHandler(), actions=_areas.USER_ACTIONS,
              label=_areas.users_label, summary=_areas.users_summary,
              compare=_areas.users_compare, refuse=_areas.users_refuse)
register_area(presets.AREA, _areas.PresetsHandler(), actions={"create", "update", "delete"},
              label=_areas.presets_label, summary=_areas.presets_summary)
register_area("notifications", _areas.NotificationsHandler(),
              actions={"smtp_changed", "email_changed", "webhooks_changed"},
              label=lambda entity: _areas.NOTIFICATION_NAMES.get(entity, entity),
              summary=_areas.notifications_summary, refuse=_areas.notifications_refuse)
register_area(login.AUTH_AREA, _areas.SignUpHandler(), actions={"self_registration_changed"},
              label=_areas.signup_label, summary=_areas.signup_summary)
register_area(buffer.AREA, _areas.BufferHandler(), actions=_areas.BUFFER_ACTIONS,
              label=lambda entity: entity, summary=_areas.buffer_summary,
              compare=buffer.revert_view, refuse=_areas.buffer_refuse)
