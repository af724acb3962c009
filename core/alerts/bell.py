"""In-app notifications (the sidebar bell): one document "notifications/<username>" per user with
their newest KEEP notifications, written with compare-and-set so concurrent writers lose none.
Events: run finished, run failed, buffer files processed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core import catalog
from core.access import ADMIN
from core.alerts.templates import format_duration
from core.errors import Conflict, InvalidInput, NotFound
from core.identity.user_records import get_user, list_users, normalise_username
from core.runs.records import FAILED, MISSED, SUCCESS, RunRecord
from storage import ObjectNotFound, Store, WriteConflict

PREFIX = catalog.NOTIFICATIONS.key
KEEP = 200  # per user; older notifications drop off
WRITE_ATTEMPTS = 20
RUN_FINISHED, RUN_FAILED, BUFFER_PROCESSED = "run_finished", "run_failed", "buffer_processed"
ADMINS, ALL = "admins", "all"
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

Audience = Sequence[str] | Literal["admins", "all"]


@dataclass(frozen=True)
class Notification:
    id: str
    kind: str
    title: str
    body: str
    at: str  # ISO time
    read: bool = False
    run_id: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _key(username: str) -> str:
    return PREFIX + normalise_username(username)


def _load(store: Store, username: str) -> tuple[list[dict[str, Any]], str | None]:
    try:
        value, version = store.get(_key(username))
    except ObjectNotFound:
        return [], None
    return list(value.get("items", [])), version


def _update(store: Store, username: str,
            change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]) -> bool:
    """Apply change to the user's list and save it, again on a concurrent write; a change that
    returns None writes nothing. Returns whether something was written."""
    for _ in range(WRITE_ATTEMPTS):
        items, version = _load(store, username)
        changed = change(items)
        if changed is None:
            return False
        try:
            store.put(_key(username), {"items": changed[-KEEP:]}, version)
            return True
        except WriteConflict:
            continue
    raise Conflict(f"the notifications of {username} kept changing; try again")


def _enabled(user: Any) -> bool:
    return not user.disabled and not user.pending_approval


def recipients(store: Store, audience: Audience) -> list[str]:
    """Usernames of an audience: "admins", "all" (enabled accounts) or a list of existing users."""
    if isinstance(audience, str):
        if audience not in (ADMINS, ALL):
            raise InvalidInput("usernames", "give a list of usernames, 'admins' or 'all'")
        return [u.username for u in list_users(store)
                if _enabled(u) and (audience == ALL or u.role == ADMIN)]
    found = []
    for name in audience:
        try:
            found.append(get_user(store, name).username)
        except NotFound:
            continue
    return list(dict.fromkeys(found))


def notify_users(store: Store, usernames: Audience, kind: str, title: str, body: str,
                 now: datetime, *, run_id: int | None = None,
                 notification_id: str | None = None) -> list[str]:
    """Add a notification for each recipient and return who got it. With notification_id, a user
    who already has that id is skipped, so announcing the same event twice shows it once."""
    if not _KIND.match(kind):
        raise InvalidInput("kind", "use lower-case letters, digits and _")
    if not title.strip():
        raise InvalidInput("title", "a notification needs a title")
    entry = {"id": notification_id or f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
             "kind": kind, "title": title.strip()[:200], "body": body[:2000],
             "at": now.isoformat(), "read": False, "run_id": run_id}

    def add(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if any(item["id"] == entry["id"] for item in items):
            return None
        return [*items, entry]

    return [username for username in recipients(store, usernames)
            if _update(store, username, add)]


def unread_count(store: Store, username: str) -> int:
    """How many notifications the user has not read (the number on the bell)."""
    return sum(not item.get("read") for item in _load(store, username)[0])


def list_notifications(store: Store, username: str, limit: int = 50, *,
                       unread_only: bool = False) -> list[Notification]:
    """The user's notifications, newest first."""
    items = [Notification.from_dict(i) for i in reversed(_load(store, username)[0])]
    if unread_only:
        items = [n for n in items if not n.read]
    return items[:limit]


def mark_read(store: Store, username: str, ids: Sequence[str] | Literal["all"]) -> int:
    """Mark some (or "all") of the user's notifications read; returns how many changed."""
    wanted = None if ids == "all" else set(ids)
    changed: list[int] = []

    def read(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        changed.clear()
        out = []
        for item in items:
            if not item.get("read") and (wanted is None or item["id"] in wanted):
                item = {**item, "read": True}
                changed.append(1)
            out.append(item)
        return out if changed else None

    _update(store, username, read)
    return len(changed)


def notify_run_finished(store: Store, record: RunRecord, now: datetime) -> list[str]:
    """Tell the admins and whoever ran it how a run ended; returns who was told."""
    counts = record.counts or {}
    what = record.job or record.kind.lower()
    if record.status == SUCCESS:
        kind = RUN_FINISHED
        title = f"Run {record.run_id} ({what}) published {counts.get('published', 0)} colors"
        body = (f"{counts.get('parents', 0)} parents, {counts.get('excluded', 0)} excluded, "
                f"{counts.get('quarantined', 0)} quarantined in "
                f"{format_duration(record.duration_s)}.")
    else:
        kind = RUN_FAILED if record.status in (FAILED, MISSED) else RUN_FINISHED
        title = f"Run {record.run_id} ({what}) {record.status}"
        body = record.error or f"The run ended as {record.status}."
    audience = [*recipients(store, ADMINS), *recipients(store, [record.actor])]
    return notify_users(store, audience, kind, title, body, now, run_id=record.run_id,
                        notification_id=f"run-{record.run_id:08d}-{record.status}")


def notify_buffer_processed(store: Store, username: str, files: Sequence[str], run_id: int,
                            now: datetime, *, note: str = "", batch: str = "") -> list[str]:
    """Tell the uploader that their buffered files went into a run (note: what the run did with
    them, e.g. skipped as already published). batch tells apart two announcements of one run
    (its processed and its skipped files); the same batch announced twice shows once."""
    names = ", ".join(files) + (f" ({note})" if note else "")
    return notify_users(store, [username], BUFFER_PROCESSED,
                        f"{len(files)} buffered file(s) processed in run {run_id}", names, now,
                        run_id=run_id,
                        notification_id=f"buffer-{run_id:08d}" + (f"-{batch}" if batch else ""))
