"""The unified change log: one append-only row per change (who, when, area, action, entity, before,
after), written by every mutation in core."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.access import Actor
from storage import Store

TABLE = "audit"
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
    at = now or datetime.now(UTC)
    event_id = uuid.uuid4().hex
    row = {
        "EVENT_ID": event_id,
        "AT": pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC"),
        "ACTOR": actor if isinstance(actor, str) else actor.username,
        "AREA": area,
        "ACTION": action,
        "ENTITY": entity,
        "BEFORE": _json(before),
        "AFTER": _json(after),
        "DETAIL": detail,
    }
    store.append(TABLE, pd.DataFrame([row], columns=COLUMNS), partition=at.strftime("%Y-%m"))
    return event_id


def load_changes(store: Store, *, area: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Changes newest first, optionally of one area; before/after stay JSON text."""
    frame = store.scan(TABLE)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    if area is not None:
        frame = frame[frame["AREA"] == area]
    frame = frame.sort_values("AT", ascending=False, kind="stable").reset_index(drop=True)
    return frame.head(limit) if limit else frame
