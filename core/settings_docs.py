"""Settings documents (SMTP server, webhooks, run emails, sign-up) are saved over the version the
editor loaded: a save from a stale version writes nothing and raises ChangedMeanwhile naming who
changed it (from the change log, when already logged), so no admin's change is silently lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.audit import load_changes
from core.errors import ChangedMeanwhile
from storage import ObjectNotFound, Store, WriteConflict


def read_settings(store: Store, key: str) -> tuple[Any, str | None]:
    """(value, version) of a settings document; (None, None) when it was never saved."""
    try:
        return store.get(key)
    except ObjectNotFound:
        return None, None


def write_settings(store: Store, key: str, value: Any, expected_version: str | None, *,
                   what: str, area: str, entity: str) -> str:
    """Write over expected_version (None: the editor saw nothing stored); the new version, or
    ChangedMeanwhile when someone saved since (by whom and when from the change log of area and
    entity, if their change is logged yet)."""
    try:
        return store.put(key, value, expected_version)
    except WriteConflict:
        raise changed_meanwhile(store, what, area, entity) from None


def changed_meanwhile(store: Store, what: str, area: str, entity: str) -> ChangedMeanwhile:
    """The refusal of a stale save, naming the latest logged change of area/entity if any."""
    try:
        log = load_changes(store, area=area)
        latest = log[log["ENTITY"] == entity].head(1)
    except Exception:  # the log is a courtesy here: the refusal itself must not fail
        latest = None
    if latest is None or latest.empty:
        return ChangedMeanwhile(what)
    at = latest["AT"].iloc[0]
    stamp = at.astimezone(UTC).isoformat() if isinstance(at, datetime) else str(at)
    return ChangedMeanwhile(what, str(latest["ACTOR"].iloc[0]), stamp)
