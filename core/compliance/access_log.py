"""The access log (DESIGN.md §5): who searched, opened a security page or exported what, when, and
how many rows; append-only rows in table "access_log", one partition per month, each a link of the
audit chain (core.audit_chain)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from core.access_events import (  # recording lives below the packages, so reads log themselves
    ACTIONS,
    COLUMNS,
    EXPORT,
    SEARCH,
    SECURITY_VIEW,
    TABLE,
    log_export,
    log_search,
    log_security_view,
    record_access,
    search_what,
)
from core.clock import as_utc
from core.runs.published import duckdb_session, fetch_frame
from storage import Store, StoreUnavailable

__all__ = ["ACTIONS", "COLUMNS", "EXPORT", "SEARCH", "SECURITY_VIEW", "TABLE", "compact_access_log",
           "load_access_log", "log_export", "log_search", "log_security_view", "record_access",
           "search_what"]
_ATTEMPTS = 3


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

