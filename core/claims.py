"""Create-only claim documents: whoever creates "claims/<kind>/<name hash>" first (a put expecting
no document) holds a unique name, or a one-time step, across processes. A claim is honoured while
its holder still has the name, and for STALE_AFTER after it was taken (its entity may be being
written); after that a claim whose holder is gone or renamed (a crash) may be taken over."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from core import catalog
from core.clock import utc_now
from storage import ObjectNotFound, Store, WriteConflict

PREFIX = catalog.CLAIMS.key
STALE_AFTER = timedelta(minutes=2)
_ATTEMPTS = 10
T = TypeVar("T")


def claim_key(kind: str, name: str) -> str:
    """The claim of a name (case-insensitive, outer spaces ignored) among entities of a kind."""
    digest = hashlib.sha256(name.strip().casefold().encode("utf-8")).hexdigest()[:40]
    return f"{PREFIX}{kind}/{digest}"


def claim(store: Store, key: str, holder: str, *, holds: Callable[[str], bool]) -> str | None:
    """Take the claim `key` for `holder`: None when holder has it now, else who holds it.
    holds(other) says whether another holder still uses the name (its entity exists with it).
    Staleness is on this machine's clock, not a caller's business time."""
    at = utc_now()
    mine = {"holder": holder, "at": at.isoformat()}
    for _ in range(_ATTEMPTS):
        try:
            store.put(key, mine, None)
            return None
        except WriteConflict:
            pass
        try:
            value, version = store.get(key)
        except ObjectNotFound:
            continue  # released meanwhile: try to create it again
        other = str(value.get("holder"))
        if other == holder:
            return None
        taken = datetime.fromisoformat(value["at"])
        if at - taken < STALE_AFTER or holds(other):
            return other
        try:
            store.put(key, mine, version)  # take over a claim its holder no longer uses
            return None
        except WriteConflict:
            continue
    return "someone else"


def release(store: Store, key: str, holder: str) -> None:
    """Give up `holder`'s claim (no error when it is not theirs or already gone)."""
    try:
        value, version = store.get(key)
        if value.get("holder") == holder:
            store.delete(key, version)
    except (ObjectNotFound, WriteConflict):
        pass


def write_named(store: Store, kind: str, name: str, holder: str, write: Callable[[], T], *,
                old_name: str | None, holds: Callable[[str], bool], taken: Exception) -> T:
    """Run write() holding the claim on `name` among `kind` (raise `taken` when another holds
    it); a rename gives up the old name's claim after the write, a failed write the new one."""
    key = claim_key(kind, name)
    renamed = old_name is None or claim_key(kind, old_name) != key
    if claim(store, key, holder, holds=holds) is not None:
        raise taken
    try:
        written = write()
    except BaseException:
        if renamed:
            release(store, key, holder)
        raise
    if old_name is not None and renamed:
        release(store, claim_key(kind, old_name), holder)
    return written
