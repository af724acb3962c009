"""Leases in the store: at most one owner holds a named lease until it expires (e.g. the scheduler).

Built only on versioned documents (compare-and-set), so it works on every backend: a lease is
the document "leases/<name>" = {owner, until, acquired_at}; taking it writes over the version read,
and a WriteConflict means someone else won. Holders renew well before `until`; the clocks of hosts
sharing a store must agree to well within the lease time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from core import catalog
from core.clock import parse_stamp
from storage import ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)
PREFIX = catalog.LEASES.key


def _read(store: Store, name: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value, version = store.get(PREFIX + name)
    except ObjectNotFound:
        return None, None
    return value, version


def _until(value: dict[str, Any]) -> datetime:
    return parse_stamp(value["until"])


def acquire_lease(store: Store, name: str, owner: str, ttl_s: float, now: datetime) -> bool:
    """Take or extend the lease for ttl_s from now: True when `owner` holds it afterwards.
    Succeeds when the lease is absent, expired or already ours; False when a live other owner
    holds it or another process won the race."""
    value, version = _read(store, name)
    ours = value is not None and value.get("owner") == owner
    if value is not None and not ours and _until(value) > now:
        return False
    acquired = value.get("acquired_at") if ours and value else now.isoformat()
    lease = {"owner": owner, "until": (now + timedelta(seconds=ttl_s)).isoformat(),
             "acquired_at": acquired}
    try:
        store.put(PREFIX + name, lease, version)
    except WriteConflict:
        return False
    if not ours:
        log.info("lease %s taken by %s", name, owner)
    return True


def renew_lease(store: Store, name: str, owner: str, ttl_s: float, now: datetime) -> bool:
    """Extend a lease we hold; False when it is no longer ours (taken over or released)."""
    value, _ = _read(store, name)
    if value is None or value.get("owner") != owner:
        return False
    return acquire_lease(store, name, owner, ttl_s, now)


def release_lease(store: Store, name: str, owner: str) -> bool:
    """Give the lease up if we hold it (others may take it at once); True when released."""
    value, version = _read(store, name)
    if value is None or value.get("owner") != owner or version is None:
        return False
    try:
        store.delete(PREFIX + name, version)
    except (WriteConflict, ObjectNotFound):
        return False
    log.info("lease %s released by %s", name, owner)
    return True


def lease_holder(store: Store, name: str, now: datetime) -> tuple[str, datetime] | None:
    """(owner, until) of a live lease, or None when nobody holds it (absent or expired)."""
    value, _ = _read(store, name)
    if value is None or _until(value) <= now:
        return None
    return str(value["owner"]), _until(value)
