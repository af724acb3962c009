"""Saved searches (own, optionally shared with everyone) and each user's last 20 searches, kept as
documents "searches/saved/<user>" and "searches/history/<user>"; saving and deleting are audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core import catalog
from core.access import OWN_SEARCHES, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.errors import Conflict, InvalidInput, NotFound
from core.reads.search import SearchQuery
from storage import ObjectNotFound, Store, WriteConflict

SAVED_PREFIX = catalog.SAVED_SEARCHES.key
HISTORY_PREFIX = catalog.SEARCH_HISTORY.key
HISTORY_LIMIT = 20
AREA = "searches"
MAX_NAME = 80
_ATTEMPTS = 20


@dataclass(frozen=True)
class SavedSearch:
    name: str
    owner: str
    query: SearchQuery
    shared: bool = False
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "owner": self.owner, "query": self.query.to_dict(),
                "shared": self.shared, "created_at": self.created_at,
                "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SavedSearch:
        return cls(str(data["name"]), str(data["owner"]), SearchQuery.from_dict(data["query"]),
                   bool(data.get("shared")), str(data.get("created_at", "")),
                   str(data.get("updated_at", "")))


def _stamp(now: datetime | None) -> str:
    return now_or(now).isoformat()


def _modify(store: Store, key: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
            ) -> None:
    """Read-modify-write of a document's list under optimistic concurrency."""
    for _ in range(_ATTEMPTS):
        try:
            value, version = store.get(key)
        except ObjectNotFound:
            value, version = {"items": []}, None
        try:
            store.put(key, {"items": change(list(value["items"]))}, expected_version=version)
            return
        except WriteConflict:
            continue
    raise Conflict(f"{key} kept changing; try again")


def _items(store: Store, key: str) -> list[dict[str, Any]]:
    try:
        return list(store.get(key)[0]["items"])
    except ObjectNotFound:
        return []


def _check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput("name", f"a saved search needs a name of 1–{MAX_NAME} characters")
    return name


def save_search(store: Store, actor: Actor, name: str, query: SearchQuery, *,
                shared: bool = False, now: datetime | None = None) -> SavedSearch:
    """Save (or replace, same name in any case) one of the actor's searches; shared ones are
    listed for everyone. The page is not saved: a saved search opens on page 1."""
    require(actor, OWN_SEARCHES)
    name, at = _check_name(name), _stamp(now)
    fresh = SavedSearch(name, actor.username, query.with_page(1), shared, at, at)
    saved, before = fresh, None

    def change(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal before, saved
        saved, before, kept = fresh, None, []
        for item in items:
            if item["name"].casefold() == name.casefold():
                before = item
                saved = replace(saved, created_at=item.get("created_at", at))
            else:
                kept.append(item)
        return sorted([*kept, saved.to_dict()], key=lambda i: i["name"].casefold())

    _modify(store, SAVED_PREFIX + actor.username, change)
    record_change(store, actor, AREA, "search_saved", f"{actor.username}/{name}", before=before,
                  after=saved.to_dict(), now=now)
    return saved


def delete_saved_search(store: Store, actor: Actor, name: str, *,
                        now: datetime | None = None) -> None:
    """Delete one of the actor's saved searches; NotFound if they have none of that name."""
    require(actor, OWN_SEARCHES)
    removed: list[dict[str, Any]] = []

    def change(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        removed[:] = [i for i in items if i["name"].casefold() == name.strip().casefold()]
        return [i for i in items if i not in removed]

    _modify(store, SAVED_PREFIX + actor.username, change)
    if not removed:
        raise NotFound(f"you have no saved search named {name!r}")
    record_change(store, actor, AREA, "search_deleted", f"{actor.username}/{removed[0]['name']}",
                  before=removed[0], now=now)


def list_saved_searches(store: Store, actor: Actor) -> list[SavedSearch]:
    """The actor's own saved searches, then everyone else's shared ones, each by name."""
    require(actor, OWN_SEARCHES)
    own = [SavedSearch.from_dict(i) for i in _items(store, SAVED_PREFIX + actor.username)]
    others = [SavedSearch.from_dict(i) for key in store.list(SAVED_PREFIX)
              if key != SAVED_PREFIX + actor.username for i in _items(store, key) if i["shared"]]
    return own + sorted(others, key=lambda s: (s.name.casefold(), s.owner))


def record_search_history(store: Store, actor: Actor, query: SearchQuery, *,
                          now: datetime | None = None) -> None:
    """Put a search at the top of the actor's history (page 1; a repeat moves up, not in twice);
    only the last HISTORY_LIMIT are kept. Not audited: the access log records searches."""
    require(actor, OWN_SEARCHES)
    query = query.with_page(1)
    entry = {"at": _stamp(now), "query": query.to_dict()}

    def change(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rest = [i for i in items if SearchQuery.from_dict(i["query"]).key() != query.key()]
        return [entry, *rest][:HISTORY_LIMIT]

    _modify(store, HISTORY_PREFIX + actor.username, change)


def load_search_history(store: Store, actor: Actor) -> list[tuple[str, SearchQuery]]:
    """(when, query) of the actor's last searches, newest first."""
    require(actor, OWN_SEARCHES)
    return [(i["at"], SearchQuery.from_dict(i["query"]))
            for i in _items(store, HISTORY_PREFIX + actor.username)]
