"""Column profiles: named sets of visible columns assigned to users (document
"config/column_profiles", {name: [columns]}); an Actor's columns come from its user's profile."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from core import catalog
from core.access import MANAGE_USERS, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.errors import Conflict, InvalidInput, NotFound
from core.settings_docs import changed_meanwhile
from storage import ANY_VERSION, ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)

KEY = catalog.COLUMN_PROFILES.key
AREA = "users"
_ATTEMPTS = 20


def load_column_profiles(store: Store) -> dict[str, list[str]]:
    """Every profile by name ({} when none was saved)."""
    try:
        data, _ = store.get(KEY)
    except ObjectNotFound:
        return {}
    return {str(name): list(columns) for name, columns in data.items()}


def resolve_columns(
    profile: str | None, profiles: Mapping[str, Sequence[str]]
) -> tuple[str, ...] | None:
    """The columns a profile shows: None (all) without a profile; () for a profile that no longer
    exists, so a broken assignment hides columns instead of showing everything."""
    if profile is None:
        return None
    if profile not in profiles:
        log.warning("column profile %r is assigned but does not exist; showing no columns", profile)
        return ()
    return tuple(profiles[profile])


def _write(store: Store, actor: Actor, name: str, columns: list[str] | None,
           now: datetime | None, expected: Sequence[str] | str | None = ANY_VERSION) -> None:
    """Set (or with None remove) one profile, retrying when another writer changed another
    profile first; `expected` (the profile as the editor loaded it, None: new) must still hold."""
    for _ in range(_ATTEMPTS):
        try:
            data, version = store.get(KEY)
        except ObjectNotFound:
            data, version = {}, None
        before = data.get(name)
        if expected is None and before is not None:
            raise Conflict(f"a column profile named {name!r} already exists (created meanwhile?): "
                           "pick it under 'Profile to edit' to change it")
        if expected not in (None, ANY_VERSION) and before != list(expected):
            raise changed_meanwhile(store, f"column profile {name!r}", AREA,
                                    profile_entity(name))
        if columns is None and before is None:
            raise NotFound(f"there is no column profile named {name!r}")
        if columns is None:
            data.pop(name)
        else:
            data[name] = columns
        try:
            store.put(KEY, data, version)
        except WriteConflict:
            continue
        action = "column_profile_deleted" if columns is None else "column_profile_saved"
        record_change(store, actor, AREA, action, profile_entity(name), before=before,
                      after=columns, now=now_or(now))
        return
    raise Conflict("the column profiles kept changing while saving; try again")


def save_column_profile(store: Store, actor: Actor, name: str, columns: Sequence[str], *,
                        expected: Sequence[str] | str | None = ANY_VERSION,
                        now: datetime | None = None) -> list[str]:
    """Create or replace a profile; returns its columns (stripped, duplicates dropped, in order).
    expected: the profile's columns as the editor loaded them (changed since: ChangedMeanwhile),
    None for a new profile (the name must be free); ANY_VERSION (scripts): no check."""
    require(actor, MANAGE_USERS)
    name = str(name).strip()
    if not name or len(name) > 64:
        raise InvalidInput("name", "a column profile needs a name of 1–64 characters")
    if isinstance(columns, str):
        raise InvalidInput("columns", "give a list of columns, not one string")
    cleaned = list(dict.fromkeys(str(c).strip() for c in columns))
    if not cleaned or not all(cleaned):
        raise InvalidInput("columns", "a column profile needs at least one column, none empty")
    _write(store, actor, name, cleaned, now, expected)
    return cleaned


def profile_entity(name: str) -> str:
    """The change log's ENTITY for a profile."""
    return f"column_profiles/{name}"


def restore_column_profile(store: Store, actor: Actor, name: str, before: Sequence[str] | None,
                           after: Sequence[str] | None) -> None:
    """Put back the profile's columns `before` (None: remove it) in place of `after`, with the
    document's version (no change log: the revert logs itself). Conflict when the profile is no
    longer `after`, or when removing one a user is assigned to."""
    require(actor, MANAGE_USERS)
    from core.identity.user_records import list_users  # user_records needs this module

    try:
        data, version = store.get(KEY)
    except ObjectNotFound:
        data, version = {}, None
    changed = Conflict(f"column profile {name!r} changed while it was being reverted; reload "
                       "and try again")
    if data.get(name) != (None if after is None else list(after)):
        raise changed
    if before is None:
        users = [u.username for u in list_users(store) if u.column_profile == name]
        if users:
            raise Conflict(f"column profile {name!r} is assigned to {', '.join(users)}; "
                           "assign them another profile first")
        data.pop(name, None)
    else:
        data[name] = list(before)
    try:
        store.put(KEY, data, version)
    except WriteConflict:
        raise changed from None


def delete_column_profile(store: Store, actor: Actor, name: str, *,
                          now: datetime | None = None) -> None:
    """Remove a profile no user is assigned to (Conflict names who still uses it)."""
    require(actor, MANAGE_USERS)
    from core.identity.user_records import (
        list_users,  # user_records needs resolve_columns from here
    )

    users = [u.username for u in list_users(store) if u.column_profile == name]
    if users:
        raise Conflict(f"column profile {name!r} is assigned to {', '.join(users)}; "
                       "assign them another profile first")
    _write(store, actor, name, None, now)
