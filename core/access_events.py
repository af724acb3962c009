"""Recording the access log (DESIGN.md §5): who searched, opened a security page or exported
what, when, and how many rows; one append-only row per access in table "access_log" (a partition
per month), each a link of the audit chain (core.audit_chain). A base module, so the read and
export entry points in core (core.reads) log what they serve themselves; reading the log is
core.compliance.access_log's."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from core import audit_chain, catalog
from core.access import Actor
from core.clock import utc_now_or
from storage import Store


class SearchQuery(Protocol):
    """What the log needs of core.reads.search.SearchQuery (a base module cannot import it)."""

    def to_dict(self) -> dict[str, Any]: ...

TABLE = catalog.ACCESS_LOG.key
COLUMNS = ["EVENT_ID", "AT", "ACTOR", "ACTION", "WHAT", "ROWS", "DETAIL"]
SEARCH, SECURITY_VIEW, EXPORT = "search", "security_view", "export"
ACTIONS = (SEARCH, SECURITY_VIEW, EXPORT)
_DTYPES = {"EVENT_ID": "string", "ACTOR": "string", "ACTION": "string", "WHAT": "string",
           "ROWS": "Int64", "DETAIL": "string"}


def record_access(store: Store, actor: Actor | str, action: str, what: str, *, rows: int,
                  detail: str = "", now: datetime | None = None) -> str:
    """Append one access and return its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r}; use one of {ACTIONS}")
    at = utc_now_or(now)
    event_id = uuid.uuid4().hex
    row = {"EVENT_ID": event_id, "AT": pd.Timestamp(at), "ACTOR": getattr(actor, "username", actor),
           "ACTION": action, "WHAT": what, "ROWS": int(rows), "DETAIL": detail}
    audit_chain.append(store, TABLE, row, at.strftime("%Y-%m"), dtypes=_DTYPES)
    return event_id


def search_what(query: SearchQuery) -> str:
    """How the log names a search or its export: the query's canonical JSON, page excluded."""
    return json.dumps({k: v for k, v in query.to_dict().items() if k != "page"}, sort_keys=True)


def log_search(store: Store, actor: Actor, query: SearchQuery, rows: int, *,
               now: datetime | None = None) -> str:
    """A search: WHAT is search_what(query), ROWS the result's rows. The Search page logs a new
    query once (not each page of it), a cached result included."""
    return record_access(store, actor, SEARCH, search_what(query), rows=rows, now=now)


def log_security_view(store: Store, actor: Actor, cusip: str, rows: int, *,
                      now: datetime | None = None) -> str:
    return record_access(store, actor, SECURITY_VIEW, cusip.strip().upper(), rows=rows, now=now)


def log_export(store: Store, actor: Actor, what: str, fmt: str, rows: int, *,
               now: datetime | None = None) -> str:
    """An export: WHAT names what was exported (a search's JSON, "dashboard …"), DETAIL the
    format. Core's export functions call it for the bytes they make."""
    return record_access(store, actor, EXPORT, what, rows=rows, detail=fmt, now=now)
