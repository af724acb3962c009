"""The unified change log: one append-only row per change (who, when, area, action, entity, before,
after), written by every mutation in core, each a link of the audit chain (core.audit_chain)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import pandas as pd

from core import audit_chain, catalog
from core.access import Actor
from core.clock import now_or
from core.errors import NotFound
from storage import Store

TABLE = catalog.AUDIT.key
COLUMNS = ["EVENT_ID", "AT", "ACTOR", "AREA", "ACTION", "ENTITY", "BEFORE", "AFTER", "DETAIL"]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def record_change(
    store: Store,
    actor: Actor | str,
    area: str,
    action: str,
    entity: str,
    *,
    before: Any = None,
    after: Any = None,
    detail: str = "",
    now: datetime | None = None,
) -> str:
    """Append one change to the log and return its id. before/after are JSON-able snapshots."""
    at = now_or(now)
    event_id = uuid.uuid4().hex
    stamp = pd.Timestamp(at)
    row = {
        "EVENT_ID": event_id,
        "AT": stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC"),
        "ACTOR": actor if isinstance(actor, str) else actor.username,
        "AREA": area,
        "ACTION": action,
        "ENTITY": entity,
        "BEFORE": _json(before),
        "AFTER": _json(after),
        "DETAIL": detail,
    }
    audit_chain.append(store, TABLE, row, at.strftime("%Y-%m"))
    return event_id


def load_changes(
    store: Store, *, area: str | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Changes newest first, optionally of one area; before/after stay JSON text.

    Changes with the same AT (a fixed `now`, a coarse clock) come back newest first too: a scan
    returns each month's rows in the order they were appended, so that order breaks the tie."""
    frame = store.scan(TABLE)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = frame.assign(_ORDER=range(len(frame)))
    if area is not None:
        frame = frame[frame["AREA"] == area]
    frame = frame.sort_values(["AT", "_ORDER"], ascending=False, kind="stable")
    frame = frame.drop(columns="_ORDER").reset_index(drop=True)
    return frame.head(limit) if limit else frame


def get_change(store: Store, event_id: str) -> dict[str, Any]:
    """One change as a dict of the log's columns (BEFORE/AFTER still JSON text); NotFound if no
    change has this id."""
    frame = store.scan(TABLE)
    if not frame.empty:
        found = frame[frame["EVENT_ID"] == event_id]
        if len(found):
            return {c: _plain(found.iloc[0].get(c)) for c in COLUMNS}
    raise NotFound(f"change {event_id!r} not found in the change log")


def _plain(value: Any) -> Any:
    """None for a missing cell (NaN/NA), the value otherwise."""
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
