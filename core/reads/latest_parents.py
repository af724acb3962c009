"""The latest parents: each CUSIP once, with its current parent (the parent of the newest visible
run that priced it, as on the security page), paged, with the count the Dashboard's KPI shows,
and one parent's children. SQL in DuckDB over the published colors, under the reader's sectors.

The current parent is chosen before the dashboard's filters apply (a filter never promotes an
older parent to current): a CUSIP is listed when its current parent passes the filters.

Where the store keeps them (compaction: the run-table port's latest rows, latest_parents_sql), the
candidates are each CUSIP and sector's newest parent, whole rows, one per CUSIP and sector: ~20k
rows for 10M colors, with the runs published since computed now. Otherwise the colors are read
(~0.5 s at 10M rows)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from core.access import VIEW, Actor, entitled_columns, require
from core.reads.search_sql import entitlement_sql, quote
from core.runs.published import (
    duckdb_session,
    fetch_frame,
    open_colors,
    open_latest,
    published_columns,
)
from core.schema import COLOR_ID, CUSIP, PARENT_COLOR_ID, POSITION, RUN_ID
from storage import Store

PAGE_SIZE = 50
# What the filters read of a current parent; the rest of its row is fetched for the page only.
_FACTS = ("COLOR_ID", "SECTOR", "PROCESSING_TYPE", "DATE", "PROCESSED_AT")


@dataclass(frozen=True)
class LatestParents:
    """One page of the latest parents (newest run first, ranked order within a run) and how many
    CUSIPs there are in all under the filters."""

    rows: pd.DataFrame
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def latest_parents_sql(source: str) -> tuple[str, list[Any]]:
    """The latest rows the store keeps for the latest parents (a run-table port `latest`): per
    CUSIP and SECTOR, the parent of the newest run in source, whole. Keyed by sector too, so a
    reader limited to some sectors finds the newest parent in them."""
    return (f"WITH newest AS (SELECT {CUSIP} AS KEY_CUSIP, SECTOR AS KEY_SECTOR, "
            f"max({RUN_ID}) AS KEY_RUN FROM {source} WHERE IS_PARENT AND {CUSIP} IS NOT NULL "
            f"GROUP BY ALL) SELECT * FROM {source} SEMI JOIN newest ON {CUSIP} = KEY_CUSIP AND "
            f"SECTOR IS NOT DISTINCT FROM KEY_SECTOR AND {RUN_ID} = KEY_RUN WHERE IS_PARENT", [])


def _current_parents(con: duckdb.DuckDBPyConnection, src: str, actor: Actor,
                     columns: set[str]) -> None:
    """Temp table current_parents: per CUSIP the newest visible run's parent (one per run and
    CUSIP, DOMAIN.md §2), with the columns the filters and the order read. The newest run per
    CUSIP first, then its parent's facts by a join: ~3× faster than arg_max of each fact."""
    rule, params = entitlement_sql(actor)
    facts = "".join(f", published.{c}" for c in (*_FACTS, POSITION) if c in columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE current_parents AS WITH newest AS (SELECT CUSIP, "
        f"max(RUN_ID) AS RUN_ID FROM {src} AS published WHERE IS_PARENT AND ({rule}) GROUP BY "
        f"CUSIP) SELECT CUSIP, RUN_ID{facts} FROM {src} AS published JOIN newest "
        "USING (CUSIP, RUN_ID) WHERE published.IS_PARENT", params)


def latest_parents(store: Store, actor: Actor, where: str, params: Sequence[Any], *,
                   page: int = 1, page_size: int = PAGE_SIZE,
                   visible: Sequence[int] | None = None,
                   con: duckdb.DuckDBPyConnection | None = None) -> LatestParents:
    """Page `page` of the CUSIPs whose current parent passes `where` (SQL over the parent's
    SECTOR, PROCESSING_TYPE, DATE, with `params`; the dashboard's filters), and their count.
    visible: the visible runs as the caller read them (default: read now); con: the caller's
    DuckDB connection, so one read sees one layout of the store (default: a session of its own)."""
    require(actor, VIEW)
    page, page_size = max(1, int(page)), max(1, int(page_size))
    with nullcontext(con) if con is not None else duckdb_session() as con:
        src = open_colors(store, con, visible)
        if src is None:
            return LatestParents(pd.DataFrame(), 0, 1, page_size)
        described = [name for name, _ in published_columns(store, con, src, visible)]
        kept = open_latest(store, con, latest_parents_sql, visible)
        if kept is not None:
            return _from_kept(con, kept, described, actor, where, params, page, page_size)
        columns = set(described)
        _current_parents(con, src, actor, columns)
        total = int(con.execute(f"SELECT count(*) FROM current_parents WHERE {where}",
                                list(params)).fetchall()[0][0])
        order = f"RUN_ID DESC, {POSITION}" if POSITION in columns else "RUN_ID DESC, CUSIP"
        keys = con.execute(f"SELECT CUSIP, RUN_ID FROM current_parents WHERE {where} "
                           f"ORDER BY {order} LIMIT ? OFFSET ?",
                           [*params, page_size, (page - 1) * page_size]).fetchall()
    return LatestParents(_parent_rows(store, actor, keys), total, page, page_size)


def _from_kept(con: duckdb.DuckDBPyConnection, kept: str, described: list[str], actor: Actor,
               where: str, params: Sequence[Any], page: int, page_size: int) -> LatestParents:
    """latest_parents from the store's latest rows: per CUSIP the newest of its candidates in
    the reader's sectors, filtered and paged on the facts the filters read; then the page's
    whole rows, in the colors' column order."""
    rule, rule_params = entitlement_sql(actor)
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {kept}").fetchall()}
    facts = ", ".join(c for c in (CUSIP, RUN_ID, *_FACTS, POSITION) if c in present)
    con.execute(f"CREATE OR REPLACE TEMP TABLE current_parents AS SELECT {facts} FROM {kept} "
                f"AS published WHERE ({rule}) QUALIFY rank() OVER (PARTITION BY {CUSIP} "
                f"ORDER BY {RUN_ID} DESC) = 1", rule_params)
    total = int(con.execute(f"SELECT count(*) FROM current_parents WHERE {where}",
                            list(params)).fetchall()[0][0])
    order = f"RUN_ID DESC, {POSITION}" if POSITION in present else "RUN_ID DESC, CUSIP"
    con.execute(f"CREATE OR REPLACE TEMP TABLE wanted AS SELECT {CUSIP}, {RUN_ID}, row_number() "
                f"OVER (ORDER BY {order}) AS ORDINAL FROM current_parents WHERE {where} "
                f"ORDER BY {order} LIMIT ? OFFSET ?", [*params, page_size, (page - 1) * page_size])
    select = ", ".join(f"published.{quote(name)}" for name in described if name in present)
    frame = fetch_frame(con, f"SELECT {select} FROM {kept} AS published JOIN wanted USING "
                             f"({CUSIP}, {RUN_ID}) WHERE ({rule}) ORDER BY wanted.ORDINAL",
                        rule_params)
    rows = entitled_columns(frame.drop(columns=[c for c in ("run",) if c in frame]), actor)
    return LatestParents(rows if len(rows) else pd.DataFrame(), total, page, page_size)


def _parent_rows(store: Store, actor: Actor, keys: list[tuple[str, int]]) -> pd.DataFrame:
    """The whole published rows of these (CUSIP, RUN_ID) parents, in the given order; only the
    shards holding these CUSIPs are opened."""
    if not keys:
        return pd.DataFrame()
    rule, params = entitlement_sql(actor)
    with duckdb_session() as con:
        src = open_colors(store, con, cusips=[cusip for cusip, _ in keys])
        if src is None:
            return pd.DataFrame()
        con.execute("CREATE OR REPLACE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS CUSIP,"
                    " unnest(?::BIGINT[]) AS RUN_ID, unnest(range(?)) AS ORDINAL",
                    [[c for c, _ in keys], [r for _, r in keys], len(keys)])
        frame = fetch_frame(
            con, f"SELECT published.* FROM {src} AS published JOIN wanted USING (CUSIP, RUN_ID) "
                 f"WHERE published.IS_PARENT AND ({rule}) ORDER BY wanted.ORDINAL", params)
    return entitled_columns(frame.drop(columns=[c for c in ("run",) if c in frame]), actor)


def parent_children(store: Store, actor: Actor, cusip: str, run_id: int, color_id: str
                    ) -> pd.DataFrame:
    """The children of one parent (its run's other colors of the CUSIP), in ranked order, as the
    actor may see them."""
    require(actor, VIEW)
    rule, params = entitlement_sql(actor)
    with duckdb_session() as con:
        src = open_colors(store, con, cusips=[cusip])
        if src is None:
            return pd.DataFrame()
        columns = {name for name, _ in published_columns(store, con, src)}
        order = POSITION if POSITION in columns else COLOR_ID
        frame = fetch_frame(
            con, f"SELECT * FROM {src} AS published WHERE {CUSIP} = ? AND {RUN_ID} = ? AND "
                 f"{PARENT_COLOR_ID} = ? AND NOT IS_PARENT AND ({rule}) ORDER BY {order}",
            [cusip.strip().upper(), int(run_id), str(color_id), *params])
    return entitled_columns(frame.drop(columns=[c for c in ("run",) if c in frame]), actor)
