"""Presets: saved filters in the condition model rules use (DOMAIN.md §3, inclusion instead of
exclusion), kept per owner under "presets/<owner>/<id>". Owners edit their own presets; a shared
preset is listed for everyone and an admin may edit or delete it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd

from core import catalog
from core.access import ADMIN, OWN_SEARCHES, Actor, require
from core.audit import record_change
from core.claims import claim_key, release, write_named
from core.clock import now_or
from core.errors import Conflict, InvalidInput, InvalidRule, NotFound, PermissionDenied
from core.ingest.columns import custom_column_types, load_column_config
from core.rules.conditions import Group, iter_conditions, validate_group
from core.rules.exclusion import filter_frame
from core.schema import COLUMN_TYPE
from storage import ObjectNotFound, Store, WriteConflict

AREA = "presets"
PREFIX = catalog.PRESETS.key
NAME_MAX = 100
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


@dataclass
class Preset:
    """A named filter: rows matching `conditions` are kept. Shared presets are listed for all."""

    name: str
    conditions: Group = field(default_factory=Group)
    owner: str = ""
    shared: bool = False
    description: str = ""
    id: str = ""
    created_at: datetime | None = None
    updated_by: str = ""
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "owner": self.owner, "shared": self.shared, "conditions": self.conditions.to_dict(),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        """A preset from its document; the earlier system's flat condition list loads too (its
        conditions were all joined by AND)."""
        return cls(
            name=str(data.get("name") or ""),
            conditions=Group.from_dict(data.get("conditions") or []),
            owner=str(data.get("owner") or data.get("created_by") or ""),
            shared=bool(data.get("shared", False)),
            description=str(data.get("description") or ""),
            id="" if data.get("id") is None else str(data["id"]),
            created_at=_time(data.get("created_at")),
            updated_by=str(data.get("updated_by") or ""),
            updated_at=_time(data.get("updated_at")),
        )


def preset_columns(store: Store) -> dict[str, str]:
    """Columns a preset may test (name → type): every known column, published ones included, and
    the custom columns of the column configuration."""
    return {**COLUMN_TYPE, **custom_column_types(load_column_config(store))}


def _at_key(key: str, value: Mapping[str, Any]) -> Preset:
    """The preset stored under `key` ("presets/<owner>/<id>": the key names owner and id)."""
    owner, _, preset_id = key[len(PREFIX):].partition("/")
    return replace(Preset.from_dict(value), owner=owner, id=preset_id)


def _all(store: Store) -> list[tuple[Preset, str]]:
    """(preset, version) of every stored preset."""
    found = []
    for key in store.list(PREFIX):
        try:
            value, version = store.get(key)
        except ObjectNotFound:  # deleted between list and get
            continue
        found.append((_at_key(key, value), version))
    return found


def _visible(preset: Preset, actor: Actor) -> bool:
    return preset.owner == actor.username or preset.shared


def list_presets(store: Store, actor: Actor) -> list[Preset]:
    """The actor's own presets and everyone's shared ones, by name (then owner)."""
    require(actor, OWN_SEARCHES)
    presets = [p for p, _ in _all(store) if _visible(p, actor)]
    return sorted(presets, key=lambda p: (p.name.casefold(), p.owner))


def get_preset(store: Store, actor: Actor, preset_id: str) -> tuple[Preset, str]:
    """(preset, version) of a preset the actor may see; NotFound otherwise."""
    require(actor, OWN_SEARCHES)
    if _ID.match(str(preset_id)):
        for preset, version in _all(store):
            if preset.id == preset_id and _visible(preset, actor):
                return preset, version
    raise NotFound(f"preset {preset_id!r} not found")


def may_change(actor: Actor, preset: Preset) -> bool:
    """Owners (any role) change their own presets; an admin also anyone's shared one. Pages ask
    it to offer Edit and Delete; every change checks it again here."""
    return actor.can(OWN_SEARCHES) and (
        preset.owner == actor.username or (preset.shared and actor.role == ADMIN))


def _may_change(actor: Actor, preset: Preset, action: str) -> None:
    if not may_change(actor, preset):
        raise PermissionDenied(actor.username, f"{action} another user's preset")


def _validate(preset: Preset, columns: Mapping[str, str], others: list[Preset]) -> None:
    name = preset.name
    if not name or len(name) > NAME_MAX:
        raise InvalidInput("name", f"a preset needs a name of 1–{NAME_MAX} characters")
    if next(iter_conditions(preset.conditions), None) is None:
        raise InvalidInput(f"preset {name!r}", "add at least one condition")
    try:
        validate_group(preset.conditions, columns)
    except InvalidRule as exc:
        raise InvalidInput(f"preset {name!r}", str(exc)) from None
    for other in others:
        if other.id != preset.id and other.owner == preset.owner and \
                other.name.casefold() == name.casefold():
            raise InvalidInput("name", f"{preset.owner} already has a preset named "
                               f"{other.name!r}")


def save_preset(
    store: Store,
    actor: Actor,
    preset: Preset,
    *,
    expected_version: str | None = None,
    columns: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Preset:
    """Create (empty id; the actor becomes the owner) or update a preset; returns it as stored.

    Names are unique per owner (case-insensitive); conditions must fit `columns` (default
    preset_columns(store)). expected_version: the version the editor read (stale: Conflict)."""
    require(actor, OWN_SEARCHES)
    at = now_or(now)
    preset = replace(preset, name=preset.name.strip(), description=preset.description.strip())
    stored = _all(store)
    current = next(((p, v) for p, v in stored if p.id and p.id == preset.id), None)
    if current is None and preset.id and expected_version is not None:
        raise Conflict(f"preset {preset.name!r} was deleted since it was opened")
    if current is None:
        preset = replace(preset, id=uuid.uuid4().hex[:12], owner=actor.username, created_at=at)
        action, before, version = "create", None, None
    else:
        before, version = current
        _may_change(actor, before, "edit")
        preset = replace(preset, owner=before.owner, created_at=before.created_at)
        action, version = "update", expected_version or version
    preset = replace(preset, updated_by=actor.username, updated_at=at)
    _validate(preset, preset_columns(store) if columns is None else columns,
              [p for p, _ in stored])
    key = f"{PREFIX}{preset.owner}/{preset.id}"

    def write() -> Preset:
        try:
            store.put(key, preset.to_dict(), version)
        except WriteConflict as exc:
            raise Conflict(f"preset {preset.name!r} was changed since it was opened; reload it "
                           "and try again") from exc
        record_change(store, actor, AREA, action, key, now=at, after=preset.to_dict(),
                      before=None if before is None else before.to_dict())
        return preset

    def holds(preset_id: str) -> bool:  # the claim's preset still exists under this name
        return any(p.id == preset_id and p.name.casefold() == preset.name.casefold()
                   for p, _ in _all(store))

    # The name's claim (core.claims) keeps it unique per owner across processes too.
    return write_named(store, f"{AREA}/{preset.owner}", preset.name, preset.id, write,
                       old_name=None if before is None else before.name, holds=holds,
                       taken=InvalidInput("name", f"{preset.owner} already has a preset named "
                                          f"{preset.name!r}"))


def delete_preset(store: Store, actor: Actor, preset_id: str, *,
                  now: datetime | None = None) -> None:
    """Delete a preset (its owner, or an admin when it is shared) and log it."""
    preset, version = get_preset(store, actor, preset_id)
    _may_change(actor, preset, "delete")
    key = f"{PREFIX}{preset.owner}/{preset.id}"
    try:
        store.delete(key, version)
    except (WriteConflict, ObjectNotFound) as exc:
        raise Conflict(f"preset {preset.name!r} was changed since it was opened; reload it and "
                       "try again") from exc
    release(store, claim_key(f"{AREA}/{preset.owner}", preset.name), preset.id)
    record_change(store, actor, AREA, "delete", key, before=preset.to_dict(),
                  now=now_or(now))


def preset_state(store: Store, key: str) -> dict[str, Any] | None:
    """The preset at document `key` (the change log's entity) as the log snapshots it; None when
    there is none."""
    try:
        value, _ = store.get(key)
    except ObjectNotFound:
        return None
    return _at_key(key, value).to_dict()


def restore_preset(store: Store, actor: Actor, key: str, before: Mapping[str, Any] | None,
                   after: Mapping[str, Any] | None) -> None:
    """Put the preset at `key` back to `before` (None: delete it) in place of `after`, with its
    version and name claim (no change log: the revert logs itself). Owners and, for a shared
    preset, admins may; Conflict when it changed since or its name is taken meanwhile."""
    require(actor, OWN_SEARCHES)
    if not key.startswith(PREFIX) or (before is None and after is None):
        raise InvalidInput("revert", "that change recorded no preset to restore")
    try:
        value, version = store.get(key)
        current: Preset | None = _at_key(key, value)
    except ObjectNotFound:
        current, version = None, None
    restored = None if before is None else _at_key(key, before)
    _may_change(actor, current or restored or _at_key(key, after or {}), "revert changes to")
    changed = Conflict("the preset changed while it was being reverted; reload and try again")
    if (current and current.to_dict()) != (after and _at_key(key, after).to_dict()):
        raise changed
    if restored is None:
        if current is None:  # after is None too: refused above
            raise changed
        try:
            store.delete(key, str(version))
        except (WriteConflict, ObjectNotFound) as exc:
            raise changed from exc
        release(store, claim_key(f"{AREA}/{current.owner}", current.name), current.id)
        return
    taken = Conflict(f"{restored.owner} now has another preset named {restored.name!r}; rename "
                     "or delete it first")
    if any(p.id != restored.id and p.owner == restored.owner
           and p.name.casefold() == restored.name.casefold() for p, _ in _all(store)):
        raise taken

    def write() -> None:
        try:
            store.put(key, restored.to_dict(), version)
        except WriteConflict as exc:
            raise changed from exc

    def holds(preset_id: str) -> bool:
        return any(p.id == preset_id and p.name.casefold() == restored.name.casefold()
                   for p, _ in _all(store))

    write_named(store, f"{AREA}/{restored.owner}", restored.name, restored.id, write,
                old_name=None if current is None else current.name, holds=holds, taken=taken)


def apply_preset(frame: pd.DataFrame, preset: Preset, *,
                 column_types: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The rows of `frame` the preset keeps (core.rules.exclusion.filter_frame; no conditions = all
    rows)."""
    return filter_frame(frame, preset.conditions, column_types=column_types)
