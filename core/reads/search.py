"""Search over published colors in DuckDB (DOMAIN.md §6): one box (CUSIP, ticker, MESSAGE_ID), bulk
ids, filters in the shared condition model, sort, pagination over parent groups, export; every
query bound-parameterised and limited to the reader's sectors and columns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc

from core.access import VIEW, Actor, entitled_columns, require
from core.access_events import log_export, search_what
from core.errors import InvalidInput, InvalidRule
from core.reads.identifiers import CUSIP_ID, MANGLED, MESSAGE_ID_ID, TICKER_ID, Identifier, classify
from core.reads.search_sql import (
    bulk_sql,
    column_types,
    condition_sql,
    entitlement_sql,
    quote,
    text_sql,
)
from core.rules.conditions import BETWEEN, Condition, Group
from core.runs.exports import write_csv, write_parquet, write_xlsx
from core.runs.published import (
    duckdb_session,
    fetch_frame,
    open_colors,
    published_columns,
    to_frame,
    visible_runs,
)
from core.schema import POSITION, RUN_ID
from storage import Store

MATCHES = ("exact", "prefix", "contains")
TEXT_KINDS = ("auto", CUSIP_ID, TICKER_ID, MESSAGE_ID_ID)
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000  # far beyond any result; keeps the row offset a small number for DuckDB
EXPORT_FORMATS = ("xlsx", "csv", "parquet")


@dataclass(frozen=True)
class QueryPreset:
    """A preset (core.rules.presets) applied to a search: its conditions as they were when it was
    picked, so an edited preset is a new query (and a new cached page), with its id and name to
    show and to pick it again."""

    id: str
    name: str
    conditions: Group

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "conditions": self.conditions.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryPreset:
        return cls(str(data.get("id") or ""), str(data.get("name") or ""),
                   Group.from_dict(data.get("conditions") or []))


@dataclass(frozen=True)
class SearchQuery:
    """Everything a search asks, hashable and JSON-able (pages cache on it; saved searches store
    to_dict()). `match` applies to tickers and MESSAGE_IDs; a CUSIP always matches exactly."""

    text: str = ""
    kind: str = "auto"
    match: str = "prefix"
    bulk: tuple[Identifier, ...] = ()
    filters: Group | None = None
    sort: str = RUN_ID
    descending: bool = True
    page: int = 1
    page_size: int = 50
    preset: QueryPreset | None = None  # rows must match it too (AND with everything else)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bulk", tuple(self.bulk))

    def to_dict(self) -> dict[str, Any]:
        """The query as JSON; "preset" only when one is applied (queries saved, logged and kept
        in history before presets came keep their keys)."""
        data = {"text": self.text, "kind": self.kind, "match": self.match,
                "bulk": [i.to_dict() for i in self.bulk],
                "filters": self.filters.to_dict() if self.filters else None, "sort": self.sort,
                "descending": self.descending, "page": self.page, "page_size": self.page_size}
        if self.preset is not None:
            data["preset"] = self.preset.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchQuery:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["bulk"] = tuple(Identifier.from_dict(i) for i in data.get("bulk") or ())
        known["filters"] = Group.from_dict(data["filters"]) if data.get("filters") else None
        known["preset"] = QueryPreset.from_dict(data["preset"]) if data.get("preset") else None
        return cls(**known)

    def key(self) -> str:
        """Canonical JSON: the cache and history key."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def __hash__(self) -> int:
        return hash(self.key())

    def with_page(self, page: int) -> SearchQuery:
        return replace(self, page=page)


@dataclass(frozen=True)
class BulkEntry:
    identifier: Identifier
    status: str  # matched | unmatched | mangled
    rows: int = 0
    reason: str = ""


@dataclass(frozen=True)
class BulkReport:
    """Per pasted id: matched (with its rows), unmatched, or mangled (with why)."""

    entries: tuple[BulkEntry, ...] = ()

    def _with(self, status: str) -> list[Identifier]:
        return [e.identifier for e in self.entries if e.status == status]

    @property
    def matched(self) -> list[Identifier]:
        return self._with("matched")

    @property
    def unmatched(self) -> list[Identifier]:
        return self._with("unmatched")

    @property
    def mangled(self) -> list[Identifier]:
        return self._with("mangled")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"ID": e.identifier.text, "KIND": e.identifier.kind,
                              "STATUS": e.status, "ROWS": e.rows, "REASON": e.reason}
                             for e in self.entries], columns=["ID", "KIND", "STATUS", "ROWS",
                                                              "REASON"])


@dataclass(frozen=True)
class SearchResult:
    """One page: `frame` holds the page's groups (a run's colors of one CUSIP that match), each in
    ranked order, so a parent comes before its children. Totals count the whole result."""

    frame: pd.DataFrame
    total_parents: int
    total_rows: int
    page: int
    page_size: int
    text: Identifier | None = None
    bulk: BulkReport | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total_parents // self.page_size))


def filters_group(*, date_from: date | str | None = None, date_to: date | str | None = None,
                  sectors: tuple[str, ...] = (), sources: tuple[str, ...] = (),
                  biases: tuple[str, ...] = (), ranks: tuple[int, ...] = (),
                  processing_types: tuple[str, ...] = (), px_min: float | None = None,
                  px_max: float | None = None, parents_only: bool = False,
                  run_ids: tuple[int, ...] = ()) -> Group:
    """The search page's standard filters as one AND group of the shared condition model."""
    items: list[Condition | Group] = []
    if date_from is not None and date_to is not None:
        items.append(Condition("DATE", BETWEEN, str(date_from), str(date_to)))
    elif date_from is not None:  # on or after
        items.append(Group("or", [Condition("DATE", "equal_to", str(date_from)),
                                  Condition("DATE", "after", str(date_from))]))
    elif date_to is not None:
        items.append(Group("or", [Condition("DATE", "equal_to", str(date_to)),
                                  Condition("DATE", "before", str(date_to))]))
    for column, values in (("SECTOR", sectors), ("SOURCE", sources), ("BIAS", biases),
                           ("RANK", ranks), ("PROCESSING_TYPE", processing_types),
                           (RUN_ID, run_ids)):
        if values:
            items.append(Condition(column, "in_list", list(values)))
    if px_min is not None and px_max is not None:
        items.append(Condition("PX", BETWEEN, px_min, px_max))
    elif px_min is not None:
        items.append(Condition("PX", "greater_than_or_equal_to", px_min))
    elif px_max is not None:
        items.append(Condition("PX", "less_than_or_equal_to", px_max))
    if parents_only:
        items.append(Condition("IS_PARENT", "equal_to", True))
    return Group("and", items)



# -- the query as SQL ------------------------------------------------------------------------------
def text_identifier(query: SearchQuery) -> Identifier | None:
    """What the search box holds, as the search reads it."""
    if not query.text.strip():
        return None
    forced = None if query.kind == "auto" else query.kind
    return classify(query.text, forced, partial=query.match != "exact")


def query_cusips(query: SearchQuery) -> list[str] | None:
    """The only CUSIPs a query can match (a CUSIP in the box, or bulk ids that are all CUSIPs),
    so only the shards holding them are read; None when it can match any."""
    ident = text_identifier(query)
    if ident is not None and ident.kind == CUSIP_ID:
        return [ident.value]
    if ident is None and query.bulk and all(i.kind in (CUSIP_ID, MANGLED) for i in query.bulk):
        return [i.value for i in query.bulk if i.kind == CUSIP_ID]
    return None


def where_sql(actor: Actor, query: SearchQuery, columns: Mapping[str, str]
              ) -> tuple[str, list[Any]]:
    """The whole query (entitlements, box, bulk ids, filters, preset) as one WHERE expression."""
    if query.match not in MATCHES:
        raise InvalidInput("match", f"use one of {', '.join(MATCHES)}")
    if query.kind not in TEXT_KINDS:
        raise InvalidInput("kind", f"use one of {', '.join(TEXT_KINDS)}")
    parts = [entitlement_sql(actor)]
    ident = text_identifier(query)
    if ident is not None:
        parts.append(text_sql(ident, query.match))
    if query.bulk:
        parts.append(bulk_sql(query.bulk))
    if query.filters is not None and query.filters.items:
        parts.append(condition_sql(query.filters, columns))
    if query.preset is not None:
        try:
            parts.append(condition_sql(query.preset.conditions, columns))
        except InvalidRule as exc:  # e.g. a column the reader may not see, or not published
            raise InvalidInput(f"preset {query.preset.name!r}", str(exc)) from None
    return " AND ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]


# -- running a search -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """A query made SQL: the published FROM item, WHERE with its params, and the orders."""

    src: str
    where: str
    params: list[Any]
    position: str
    sort: str
    groups_order: str


def _plan(store: Store, con: duckdb.DuckDBPyConnection, src: str, actor: Actor,
          query: SearchQuery, visible: Sequence[int]) -> _Plan:
    described = published_columns(store, con, src, visible)
    columns = column_types(described, actor)
    if query.sort not in columns and query.sort != RUN_ID:  # runs order every result anyway
        raise InvalidInput("sort", f"{query.sort or '(none)'} is not a column you can sort on")
    where, params = where_sql(actor, query, columns)
    names = {name for name, _ in described}
    position = POSITION if POSITION in names else "(CASE WHEN IS_PARENT THEN 0 ELSE 1 END)"
    direction = "DESC" if query.descending else "ASC"
    return _Plan(f"{src} AS published", where, params, position, quote(query.sort),
                 f"SORT_VALUE {direction} NULLS LAST, RUN_ID DESC, CUSIP")


def _groups_sql(plan: _Plan) -> str:
    """One row per (RUN_ID, CUSIP) with matching rows: the sort value of its best-ranked matching
    row (even when empty: arg_min would take the next row's) and its row count."""
    return (f"SELECT RUN_ID, CUSIP, arg_min_null({plan.sort}, {plan.position}) AS SORT_VALUE, "
            f"count(*) AS N FROM {plan.src} WHERE {plan.where} GROUP BY RUN_ID, CUSIP")


def _bulk_report(con: duckdb.DuckDBPyConnection, plan: _Plan, query: SearchQuery) -> BulkReport:
    counts: dict[tuple[str, str], int] = {}
    for kind, column in ((CUSIP_ID, "CUSIP"), (MESSAGE_ID_ID, "MESSAGE_ID"),
                         (TICKER_ID, "lower(TICKER)")):
        if any(i.kind == kind for i in query.bulk):
            found = con.execute(f"SELECT {column}, count(*) FROM {plan.src} WHERE {plan.where} "
                                "GROUP BY 1", plan.params).fetchall()
            counts.update({(kind, str(value)): int(n) for value, n in found})
    entries = []
    for ident in query.bulk:
        value = ident.value.lower() if ident.kind == TICKER_ID else ident.value
        rows = counts.get((ident.kind, value), 0)
        if ident.kind == MANGLED or (rows == 0 and ident.suspect):
            entries.append(BulkEntry(ident, "mangled", 0, ident.reason))
        else:
            entries.append(BulkEntry(ident, "matched" if rows else "unmatched", rows, ident.reason))
    return BulkReport(tuple(entries))


def _empty_result(query: SearchQuery) -> SearchResult:
    bulk = BulkReport(tuple(BulkEntry(i, "mangled" if i.kind == MANGLED or i.suspect
                                      else "unmatched", 0, i.reason) for i in query.bulk))
    return SearchResult(pd.DataFrame(), 0, 0, query.page, query.page_size,
                        text_identifier(query), bulk if query.bulk else None)


def _check_page(query: SearchQuery) -> None:
    if not 1 <= query.page <= MAX_PAGE or not 1 <= query.page_size <= MAX_PAGE_SIZE:
        raise InvalidInput("page", f"pages run from 1 to {MAX_PAGE:,} and hold "
                                   f"1–{MAX_PAGE_SIZE} parents")


def search_colors(store: Store, actor: Actor, query: SearchQuery) -> SearchResult:
    """One page of the search: groups (a run's matching colors of one CUSIP, ranked) ordered by the
    sort column of each group's best-ranked matching row, then newest run, then CUSIP. Totals
    count every group ("parents") and row of the result."""
    require(actor, VIEW)
    _check_page(query)
    visible = visible_runs(store)  # read once: each read is a request on a shared store
    with duckdb_session() as con:
        src = open_colors(store, con, visible, cusips=query_cusips(query))
        if src is None:
            return _empty_result(query)
        plan = _plan(store, con, src, actor, query, visible)
        offset = (query.page - 1) * query.page_size
        if _selective(query):
            frame, totals = _one_pass(con, plan, query, offset)
        else:
            keys = con.execute(
                f"SELECT RUN_ID, CUSIP, count(*) OVER (), sum(N) OVER () FROM "
                f"({_groups_sql(plan)}) ORDER BY {plan.groups_order} LIMIT ? OFFSET ?",
                [*plan.params, query.page_size, offset]).fetchall()
            totals = (keys[0][2], keys[0][3]) if keys else None
            frame = _page_rows(con, plan, [(k[0], k[1]) for k in keys])
        if totals is None:  # past the last page (or nothing matched): count without a page
            totals = con.execute(f"SELECT count(*), coalesce(sum(N), 0) FROM "
                                 f"({_groups_sql(plan)})", plan.params).fetchall()[0]
        bulk = _bulk_report(con, plan, query) if query.bulk else None
    ident = text_identifier(query)
    notes = (ident.reason,) if ident is not None and ident.reason else ()
    return SearchResult(entitled_columns(frame, actor), int(totals[0]), int(totals[1]),
                        query.page, query.page_size, ident, bulk, notes)


def _selective(query: SearchQuery) -> bool:
    """A query that matches few rows (one CUSIP, one MESSAGE_ID): read them once, whole."""
    ident = text_identifier(query)
    return not query.bulk and ident is not None and (
        ident.kind == CUSIP_ID or (ident.kind == MESSAGE_ID_ID and query.match == "exact"))


def _one_pass(con: duckdb.DuckDBPyConnection, plan: _Plan, query: SearchQuery, offset: int
              ) -> tuple[pd.DataFrame, tuple[int, int] | None]:
    """The page and the totals from one plain scan of the matching rows (a CUSIP's or a message's
    few hundred), grouped, ordered and paged in Arrow: cheaper here than the same steps in SQL."""
    table = con.sql(f"SELECT *, {plan.position} AS _POS, {plan.sort} AS _SORT FROM {plan.src} "
                    f"WHERE {plan.where}", params=plan.params).to_arrow_table()
    if table.num_rows == 0:
        return to_frame(table.drop_columns(["_POS", "_SORT"])), None
    # Rows in group order (RUN_ID, CUSIP), best-ranked first: each group is a block of rows.
    table = table.take(pc.sort_indices(table, [("RUN_ID", "ascending"), ("CUSIP", "ascending"),
                                               ("_POS", "ascending")]))
    run, cusip = table["RUN_ID"], table["CUSIP"]
    change = pc.or_(pc.not_equal(run[1:], run[:-1]), pc.not_equal(cusip[1:], cusip[:-1]))
    starts = np.concatenate([[0], np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1])
    heads = table.select(["_SORT", "RUN_ID", "CUSIP"]).take(starts)  # each group's best row
    direction = "descending" if query.descending else "ascending"
    # Null placement per key (pyarrow deprecated the global option in 25); pyarrow-stubs 20
    # type only (name, order) keys.
    keys = [("_SORT", direction, "at_end"), ("RUN_ID", "descending", "at_end"),
            ("CUSIP", "ascending", "at_end")]
    order = pc.sort_indices(heads, keys).to_numpy()  # type: ignore[arg-type]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))  # group → its place in the result
    row_rank = np.repeat(rank, np.diff(np.append(starts, table.num_rows)))  # row → its group's
    page = np.flatnonzero((row_rank >= offset) & (row_rank < offset + query.page_size))
    page = page[np.argsort(row_rank[page], kind="stable")]  # groups in result order, ranked
    frame = to_frame(table.take(page).drop_columns(["_POS", "_SORT"]))
    return frame, (len(starts), table.num_rows)


def _page_rows(con: duckdb.DuckDBPyConnection, plan: _Plan, keys: list[tuple[int, str]]
               ) -> pd.DataFrame:
    """The matching rows of the page's groups, group by group, each in ranked order. The CUSIP
    list lets DuckDB skip the row groups of other CUSIPs."""
    if not keys:
        return fetch_frame(con, f"SELECT * FROM {plan.src} LIMIT 0")
    return fetch_frame(
        con, f"SELECT hits.* FROM (SELECT *, {plan.position} AS _POS FROM {plan.src} "
             f"WHERE {plan.where} AND CUSIP IN (SELECT unnest(?::VARCHAR[]))) AS hits "
             "JOIN (SELECT unnest(?::BIGINT[]) AS RUN_ID, unnest(?::VARCHAR[]) AS CUSIP, "
             "unnest(?::BIGINT[]) AS _GROUP) AS page USING (RUN_ID, CUSIP) "
             "ORDER BY page._GROUP, hits._POS",
        [*plan.params, sorted({k[1] for k in keys}), [k[0] for k in keys], [k[1] for k in keys],
         list(range(len(keys)))], drop=["_POS"])


def search_rows(store: Store, actor: Actor, query: SearchQuery) -> pd.DataFrame:
    """Every row of the result (all pages) in result order, columns as the actor may see them."""
    require(actor, VIEW)
    visible = visible_runs(store)
    with duckdb_session() as con:
        src = open_colors(store, con, visible, cusips=query_cusips(query))
        if src is None:
            return pd.DataFrame()
        plan = _plan(store, con, src, actor, query, visible)
        frame = fetch_frame(
            con, f"SELECT hits.* FROM (SELECT *, {plan.position} AS _POS FROM {plan.src} "
                 f"WHERE {plan.where}) AS hits JOIN ({_groups_sql(plan)}) AS groups "
                 f"USING (RUN_ID, CUSIP) ORDER BY {plan.groups_order}, hits._POS",
            [*plan.params, *plan.params], drop=["_POS"])
    return entitled_columns(frame, actor)


def export_search(store: Store, actor: Actor, query: SearchQuery, fmt: str = "xlsx") -> bytes:
    """The whole result (not only the page) as .xlsx, .csv or .parquet bytes (core.runs.exports
    formatting); the export is logged with its rows."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput("format", f"use one of {', '.join(EXPORT_FORMATS)}")
    frame = search_rows(store, actor, query)
    data = (write_xlsx(frame, sheet_name="Search") if fmt == "xlsx"
            else write_csv(frame) if fmt == "csv" else write_parquet(frame))
    log_export(store, actor, search_what(query), fmt, len(frame))
    return data
