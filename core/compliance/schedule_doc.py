"""The settings document of a scheduled compliance task (scheduled backups, the scheduled
compliance report): a dataclass kept under one key, read with its version, saved over the version
the editor loaded, and each save logged with its before and after."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from core.access import Actor
from core.audit import record_change
from core.clock import now_or
from core.errors import ChangedMeanwhile
from storage import ObjectNotFound, Store, WriteConflict


class ScheduleFields:
    """to_dict/from_dict of a schedule dataclass (fields a newer version dropped are ignored)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


class _Schedule(Protocol):
    updated_by: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


S = TypeVar("S", bound=ScheduleFields)
T = TypeVar("T", bound=_Schedule)


def load_schedule(store: Store, key: str, kind: type[S]) -> tuple[S, str | None]:
    """The schedule and its version (the defaults, switched off, and None when never saved)."""
    try:
        value, version = store.get(key)
    except ObjectNotFound:
        return kind(), None
    return kind.from_dict(value), version


def save_schedule(store: Store, actor: Actor, key: str, schedule: T, before: T, *,
                  expected_version: str | None, now: datetime | None, area: str, item: str,
                  title: str, named: str) -> str:
    """Store a validated schedule over `expected_version`, stamped with who and when, and log
    it in `area` as `item`/`title` (its before is `before`, the stored one); ChangedMeanwhile
    names `named` and who saved since."""
    at = now_or(now)
    after = replace(schedule, updated_by=actor.username,  # type: ignore[type-var]
                    updated_at=at.isoformat())
    try:
        version = store.put(key, after.to_dict(), expected_version)
    except WriteConflict as exc:
        raise ChangedMeanwhile(named, before.updated_by, before.updated_at) from exc
    record_change(store, actor, area, item, title,
                  before=None if expected_version is None else before.to_dict(),
                  after=after.to_dict(), detail=after.describe(), now=at)
    return version
