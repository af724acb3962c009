"""The access log (DESIGN.md §5): who searched, opened a security page or exported what, when, and
how many rows; append-only rows in table "access_log", one partition per month, each a link of the
audit chain (core.audit_chain)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from core import audit_chain, catalog
from core.access import Actor
from core.clock import as_utc, utc_now_or
from core.runs.published import duckdb_session, fetch_frame
from storage import Store, StoreUnavailable

if TYPE_CHECKING:
    from core.reads.search import SearchQuery

TABLE = catalog.ACCESS_LOG.key
COLUMNS = ["EVENT_ID", "AT", "ACTOR", "ACTION", "WHAT", "ROWS", "DETAIL"]
SEARCH, SECURITY_VIEW, EXPORT = "search", "security_view", "export"
ACTIONS = (SEARCH, SECURITY_VIEW, EXPORT)
_ATTEMPTS = 3
_DTYPES = {"EVENT_ID": "string", "ACTOR": "string", "ACTION": "string", "WHAT": "string",
           "ROWS": "Int64", "DETAIL": "string"}


def record_access(store: Store, actor: Actor | str, action: str, what: str, *, rows: int,
                  detail: str = "", now: datetime | None = None) -> str:
    """Append one access and return its id. Pages call this after a (possibly cached) read, so a
    cache hit is still logged."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r}; use one of {ACTIONS}")
    at = utc_now_or(now)
    event_id = uuid.uuid4().hex
    row = {"EVENT_ID": event_id, "AT": pd.Timestamp(at), "ACTOR": getattr(actor, "username", actor),
           "ACTION": action, "WHAT": what, "ROWS": int(rows), "DETAIL": detail}
    audit_chain.append(store, TABLE, row, at.strftime("%Y-%m"), dtypes=_DTYPES)
    return event_id


def log_search(store: Store, actor: Actor, query: SearchQuery, rows: int, *,
               now: datetime | None = None) -> str:
    """A search: WHAT is the query's canonical JSON (page excluded), ROWS the result's rows."""
    what = json.dumps({k: v for k, v in query.to_dict().items() if k != "page"}, sort_keys=True)
    return record_access(store, actor, SEARCH, what, rows=rows, now=now)


def log_security_view(store: Store, actor: Actor, cusip: str, rows: int, *,
                      now: datetime | None = None) -> str:
    return record_access(store, actor, SECURITY_VIEW, cusip.strip().upper(), rows=rows, now=now)


def log_export(store: Store, actor: Actor, what: str, fmt: str, rows: int, *,
               now: datetime | None = None) -> str:
    """An export: WHAT names what was exported (e.g. a search's JSON, "dashboard"), DETAIL the
    format."""
    return record_access(store, actor, EXPORT, what, rows=rows, detail=fmt, now=now)


def load_access_log(store: Store, *, username: str | None = None, action: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int | None = None) -> pd.DataFrame:
    """Accesses newest first, optionally of one user or action and within [since, until). Only the
    months in range are read. Compliance data: pages show it to admins only."""
    partitions = store.partitions(TABLE)
    if since is not None:
        partitions = [p for p in partitions if p >= as_utc(since).strftime("%Y-%m")]
    if until is not None:
        partitions = [p for p in partitions if p <= as_utc(until).strftime("%Y-%m")]
    parts: list[str] = ["TRUE"]
    params: list[object] = []
    bounds = (('"ACTOR" = ?', username), ('"ACTION" = ?', action),
              ('"AT" >= ?', since and as_utc(since)), ('"AT" < ?', until and as_utc(until)))
    for clause, value in bounds:
        if value is not None:
            parts.append(clause)
            params.append(value)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)  # AT is an SQL keyword
    # A row merged by compact_access_log can show twice for a moment: one per EVENT_ID.
    sql = (f'SELECT {columns} FROM {TABLE} WHERE {" AND ".join(parts)} QUALIFY row_number() '
           'OVER (PARTITION BY "EVENT_ID") = 1 ORDER BY "AT" DESC, "EVENT_ID"')
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    for attempt in range(_ATTEMPTS):
        try:
            with duckdb_session() as con:
                if not partitions or not store.register(con, TABLE, partitions):
                    return pd.DataFrame(columns=COLUMNS)
                return fetch_frame(con, sql, params)
        except (duckdb.IOException, StoreUnavailable):
            if attempt == _ATTEMPTS - 1:  # a part merged away while we read it: read again
                raise
    raise AssertionError("unreachable")


def compact_access_log(store: Store) -> int:
    """Merge each month's one-file-per-access parts into one file (loading 2,000 parts took
    1.7 s here); returns how many parts were merged away. Safe while accesses are recorded."""
    return store.compact(TABLE)

