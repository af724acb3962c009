"""Dashboard data (DOMAIN.md §6): KPIs, chart frames and the latest parents, computed in DuckDB from
the per-run rollups (core.runs.published) under the reader's sectors and the dashboard's filters.
Every filter the charts follow (dates, sectors, processing types) drives the KPIs too, and days are
the desk's days (the timezone of `now`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import pandas as pd

from core.access import VIEW, Actor, entitled_columns, require
from core.access_events import log_export
from core.clock import as_utc, aware, parse_stamp
from core.reads.latest_parents import LatestParents, latest_parents
from core.reads.search_sql import entitlement_sql
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.runs.published import (
    DIFF_BIN,
    duckdb_session,
    fetch_frame,
    open_colors,
    open_rollups,
)
from storage import Store
from storage.run_tables import run_tables


@dataclass(frozen=True)
class DashboardFilters:
    """What drives every dashboard element (hashable: pages cache on it). Dates bound DATE (the
    colors' business date), inclusive; empty tuples mean all; cusips pick the price trends."""

    date_from: date | None = None
    date_to: date | None = None
    sectors: tuple[str, ...] = ()
    processing_types: tuple[str, ...] = ()
    cusips: tuple[str, ...] = ()
    latest_limit: int = 50  # the latest parents' page size (dashboard_data gives page 1)


@dataclass(frozen=True)
class DashboardData:
    """KPIs (today and this month by processing time, in `now`'s timezone, under every filter;
    latest_parents: how many CUSIPs the latest parents list; next_run_at is for the page to fill)
    and one frame per chart, in long form ready for plotly."""

    kpis: dict[str, Any]
    colors_by_month_bias: pd.DataFrame  # MONTH, BIAS, COLORS
    volume_by_sector: pd.DataFrame  # DAY, SECTOR, COLORS
    volume_by_source: pd.DataFrame  # DAY, SOURCE, COLORS
    price_trend: pd.DataFrame  # CUSIP, DATE, PX, COV_PRICE, SOURCE, BIAS (newest run's parent)
    diff_distribution: pd.DataFrame  # DIFF_STATUS, BIN_LOW, BIN_HIGH, COLORS (points, PX − COV)
    runs: pd.DataFrame  # RUN_COLUMNS; without WHOLE_RUN for a sector-limited reader
    latest_parents: pd.DataFrame  # page 1 of core.reads.latest_parents: each CUSIP once


def filter_sql(actor: Actor, filters: DashboardFilters, *, dates: bool = True
               ) -> tuple[str, list[Any]]:
    """The reader's sectors and the filters as a SQL condition over SECTOR, PROCESSING_TYPE and
    DATE, with its parameters (dates=False: without the date window)."""
    rule, params = entitlement_sql(actor)
    parts = [f"({rule})"]
    if filters.sectors:
        parts.append("SECTOR IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(filters.sectors))
    if filters.processing_types:
        parts.append("PROCESSING_TYPE IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(filters.processing_types))
    if dates and filters.date_from is not None:
        parts.append("TRY_CAST(DATE AS DATE) >= ?")
        params.append(filters.date_from)
    if dates and filters.date_to is not None:
        parts.append("TRY_CAST(DATE AS DATE) <= ?")
        params.append(filters.date_to)
    return " AND ".join(parts), params


def _day_bounds(now: datetime) -> tuple[datetime, datetime, datetime]:
    """Start of today, of tomorrow and of this month in now's timezone, as UTC instants."""
    now = aware(now)
    today = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    month = today.replace(day=1)
    return today.astimezone(UTC), (today + timedelta(days=1)).astimezone(UTC), month.astimezone(UTC)


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _charts(con: duckdb.DuckDBPyConnection, rollups: str, where: str, params: list[Any]
            ) -> dict[str, Any]:
    counts = f"FROM {rollups} AS rollups WHERE KIND = 'count' AND {where}"
    return {
        "colors_by_month_bias": fetch_frame(
            con, f"SELECT CAST(date_trunc('month', DATE) AS DATE) AS MONTH, BIAS, "
                 f"sum(COLORS)::BIGINT AS COLORS {counts} GROUP BY ALL ORDER BY MONTH, BIAS",
            params),
        "volume_by_sector": fetch_frame(
            con, f"SELECT CAST(DATE AS DATE) AS DAY, SECTOR, sum(COLORS)::BIGINT AS COLORS "
                 f"{counts} GROUP BY ALL ORDER BY DAY, SECTOR", params),
        "volume_by_source": fetch_frame(
            con, f"SELECT CAST(DATE AS DATE) AS DAY, SOURCE, sum(COLORS)::BIGINT AS COLORS "
                 f"{counts} GROUP BY ALL ORDER BY DAY, SOURCE", params),
        "diff_distribution": fetch_frame(
            con, f"SELECT DIFF_STATUS, BIN * ? AS BIN_LOW, (BIN + 1) * ? AS BIN_HIGH, "
                 f"sum(COLORS)::BIGINT AS COLORS FROM {rollups} AS rollups WHERE KIND = 'diff' "
                 f"AND {where} "
                 "GROUP BY ALL ORDER BY DIFF_STATUS, BIN_LOW", [DIFF_BIN, DIFF_BIN, *params]),
    }


def _kpis(con: duckdb.DuckDBPyConnection, store: Store, actor: Actor, filters: DashboardFilters,
          now: datetime, rollups: str | None, records: list[runs.RunRecord]) -> dict[str, Any]:
    start, end, month = _day_bounds(now)
    where, params = filter_sql(actor, filters)
    today = month_total = parents = 0
    if rollups is not None:
        row = con.execute(
            "SELECT coalesce(sum(COLORS) FILTER (WHERE PROCESSED_AT >= ? AND PROCESSED_AT < ?), 0),"
            " coalesce(sum(COLORS) FILTER (WHERE PROCESSED_AT >= ? AND PROCESSED_AT < ?), 0),"
            " coalesce(sum(COLORS) FILTER (WHERE PROCESSED_AT >= ? AND PROCESSED_AT < ? "
            f"AND IS_PARENT), 0) FROM {rollups} AS rollups WHERE KIND = 'count' AND {where}",
            [start, end, month, end, start, end, *params]).fetchall()[0]
        today, month_total, parents = (int(v) for v in row)
    todays = [r.run_id for r in records if r.status == runs.SUCCESS
              and start.isoformat() <= _utc_text(r.started_at) < end.isoformat()]
    kpis: dict[str, Any] = {"today_colors": today, "month_colors": month_total,
                            "today_parents": parents}
    needed = {"SECTOR"} if actor.sectors is not None or filters.sectors else set()
    needed |= {"PROCESSING_TYPE"} if filters.processing_types else set()
    needed |= {"DATE"} if filters.date_from or filters.date_to else set()
    tables = run_tables(store)
    for table in (runs.EXCLUDED_TABLE, runs.QUARANTINED_TABLE):
        kpis[f"today_{table}"] = 0
        rows = tables.open(con, table, todays) if todays else None
        if rows is not None:
            columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rows}").fetchall()}
            if needed <= columns:  # rows without a SECTOR are not shown to sector-limited users
                found = con.execute(f"SELECT count(*) FROM {rows} AS rows WHERE {where}",
                                    params).fetchall()
                kpis[f"today_{table}"] = int(found[0][0])
    last = records[0] if records else None
    kpis.update(last_run_id=last.run_id if last else None,
                last_run_status=last.status if last else None,
                last_run_kind=last.kind if last else None,
                last_run_at=(last.finished_at or last.started_at) if last else None,
                next_run_at=None)
    return kpis


def _local_day(stamp: str, now: datetime) -> str:
    """The day of a stamp in now's timezone (ISO), "" for none."""
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return ""
    at = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return at.astimezone(now.tzinfo or UTC).date().isoformat()


def _utc_text(stamp: str) -> str:
    try:
        return as_utc(parse_stamp(stamp)).isoformat()
    except ValueError:
        return ""


RUN_COLUMNS = ["RUN_ID", "KIND", "STATUS", "TRIGGER", "ACTOR", "REQUESTED_BY", "STARTED_AT",
               "DURATION_S", "READ", "ROWS_PER_S", "PUBLISHED", "PARENTS", "EXCLUDED",
               "QUARANTINED", "QUALITY", "ERROR"]
# Counts over every sector of a run: a user limited to some sectors never receives them.
WHOLE_RUN = ("READ", "ROWS_PER_S", "EXCLUDED", "QUARANTINED")


def _sector_counts(con: duckdb.DuckDBPyConnection, rollups: str | None, actor: Actor
                   ) -> dict[int, tuple[int, int]]:
    """RUN_ID → (colors, parents) published in the actor's sectors, from the rollups."""
    if rollups is None:
        return {}
    rule, params = entitlement_sql(actor)
    found = con.execute(
        "SELECT RUN_ID, sum(COLORS)::BIGINT, coalesce(sum(COLORS) FILTER (WHERE IS_PARENT), 0)"
        f"::BIGINT FROM {rollups} AS rollups WHERE KIND = 'count' AND ({rule}) GROUP BY RUN_ID",
        params).fetchall()
    return {int(run): (int(colors), int(parents)) for run, colors, parents in found}


def _run_stats(records: list[runs.RunRecord], actor: Actor, filters: DashboardFilters,
               con: duckdb.DuckDBPyConnection, rollups: str | None, now: datetime
               ) -> pd.DataFrame:
    """One row per run under the date (the day it started, in now's timezone) and
    processing-type filters, oldest first. A user limited
    to some sectors gets no whole-run counts (WHOLE_RUN): PUBLISHED and PARENTS count the colors
    of their sectors still visible; duration, status and quality are theirs to see."""
    limited = actor.sectors is not None
    mine = _sector_counts(con, rollups, actor) if limited else {}
    rows = []
    for record in records:
        day = _local_day(record.started_at, now)
        if filters.processing_types and record.kind not in filters.processing_types:
            continue
        if (filters.date_from and day < filters.date_from.isoformat()) or (
                filters.date_to and day > filters.date_to.isoformat()):
            continue
        counts = record.counts
        read = counts.get("read", 0)
        published, parents = (mine.get(record.run_id, (0, 0)) if limited else
                              (counts.get("published", 0), counts.get("parents", 0)))
        rows.append({"RUN_ID": record.run_id, "KIND": record.kind, "STATUS": record.status,
                     "TRIGGER": record.trigger, "ACTOR": record.actor,
                     "REQUESTED_BY": record.requested_by or record.actor,
                     "STARTED_AT": record.started_at, "DURATION_S": record.duration_s,
                     "READ": read, "ROWS_PER_S": round(read / record.duration_s)
                     if record.duration_s else None, "PUBLISHED": published, "PARENTS": parents,
                     "EXCLUDED": counts.get("excluded", 0),
                     "QUARANTINED": counts.get("quarantined", 0),
                     "QUALITY": record.quality_score, "ERROR": record.error})
    columns = [c for c in RUN_COLUMNS if not (limited and c in WHOLE_RUN)]
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)[columns]
    return frame.sort_values("RUN_ID").reset_index(drop=True)


def _price_trend(con: duckdb.DuckDBPyConnection, src: str, actor: Actor,
                 filters: DashboardFilters) -> pd.DataFrame:
    where, params = filter_sql(actor, filters)
    frame = fetch_frame(
        con, "SELECT CUSIP, CAST(DATE AS DATE) AS DATE, arg_max(PX, RUN_ID) AS PX, "
             "arg_max(COV_PRICE, RUN_ID) AS COV_PRICE, arg_max(SOURCE, RUN_ID) AS SOURCE, "
             f"arg_max(BIAS, RUN_ID) AS BIAS FROM {src} AS published WHERE IS_PARENT AND "
             f"CUSIP IN (SELECT unnest(?::VARCHAR[])) AND {where} GROUP BY ALL "
             "ORDER BY CUSIP, DATE", [[c.strip().upper() for c in filters.cusips], *params])
    return entitled_columns(frame, actor)


def dashboard_data(store: Store, actor: Actor, filters: DashboardFilters, now: datetime
                   ) -> DashboardData:
    """Everything the dashboard shows, in one call the page caches (key: store url, data_version,
    actor, filters, today)."""
    require(actor, VIEW)
    records = runs.load_runs(store)  # once: on a shared store a listing is a request
    visible = tuple(runs.visible_of(records))
    where, params = filter_sql(actor, filters)
    with duckdb_session() as con:  # one connection: the store's layout is read once
        latest = latest_parents(store, actor, where, params, page_size=filters.latest_limit,
                                visible=visible, con=con)
        rollups = open_rollups(store, con, visible) if visible else None
        if rollups is not None:  # read once here, not by each chart and KPI (a SQL store's are
            # a file per run of the node's read copy: 100 runs, ~50 ms a query)
            con.execute(f"CREATE OR REPLACE TEMP TABLE dashboard_rollups AS SELECT * FROM "
                        f"{rollups}")
            rollups = "dashboard_rollups"
        # The trend's CUSIPs only: the store reads what holds them (SQL: its CUSIP index).
        src = open_colors(store, con, visible, cusips=filters.cusips) if filters.cusips else None
        charts = _charts(con, rollups, where, params) if rollups is not None else {
            "colors_by_month_bias": _empty("MONTH", "BIAS", "COLORS"),
            "volume_by_sector": _empty("DAY", "SECTOR", "COLORS"),
            "volume_by_source": _empty("DAY", "SOURCE", "COLORS"),
            "diff_distribution": _empty("DIFF_STATUS", "BIN_LOW", "BIN_HIGH", "COLORS")}
        trend = (_price_trend(con, src, actor, filters) if src is not None and filters.cusips
                 else _empty("CUSIP", "DATE", "PX", "COV_PRICE", "SOURCE", "BIAS"))
        kpis = _kpis(con, store, actor, filters, now, rollups, records)
        stats = _run_stats(records, actor, filters, con, rollups, now)
    kpis["latest_parents"] = latest.total
    return DashboardData(kpis=kpis, price_trend=trend, runs=stats, latest_parents=latest.rows,
                         **charts)


def dashboard_latest_parents(store: Store, actor: Actor, filters: DashboardFilters, page: int
                             ) -> LatestParents:
    """Page `page` of the latest parents under the filters (dashboard_data holds page 1)."""
    where, params = filter_sql(actor, filters)
    return latest_parents(store, actor, where, params, page=page,
                          page_size=filters.latest_limit)


_SHEETS = {"colors_by_month_bias": "Colors by month x bias", "volume_by_sector": "Volume by sector",
           "volume_by_source": "Volume by source", "price_trend": "Price trend",
           "diff_distribution": "PX - COV distribution", "runs": "Runs",
           "latest_parents": "Latest parents"}


def _kpi_cell(name: str, value: Any) -> Any:
    """A KPI as its cell holds it: a run time (an ISO stamp) as a timestamp, the rest as is."""
    if name.endswith("_at") and isinstance(value, str) and value:
        stamp = pd.Timestamp(value)
        return stamp if stamp.tzinfo else stamp.tz_localize("UTC")
    return value


def _stamped(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its *_AT columns of ISO stamps (run times) as timestamps, so Excel gets
    dates it can sort and filter, not text."""
    text = [c for c in frame.columns if str(c).endswith("_AT")
            and not pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame.assign(**{c: pd.to_datetime(frame[c], utc=True, format="ISO8601",
                                             errors="coerce") for c in text}) if text else frame


def dashboard_workbook(data: DashboardData) -> bytes:
    """The dashboard's data as an .xlsx: a KPIs sheet, then one sheet per chart and table. The
    KPIs are one row, a column each, so every cell keeps its type (counts are numbers, the run
    times are dates): one column of mixed values would have to be text."""
    kpis = pd.DataFrame([{name: _kpi_cell(name, value) for name, value in data.kpis.items()}])
    sheets = {_SHEETS[f.name]: _stamped(getattr(data, f.name)) for f in fields(data)
              if f.name in _SHEETS}
    return write_xlsx(kpis, sheet_name="KPIs", extra_sheets=sheets)


def export_dashboard(store: Store, actor: Actor, filters: DashboardFilters, now: datetime,
                     data: DashboardData | None = None) -> bytes:
    """What the actor sees (data: the page's dashboard_data for these filters, else read now) as
    an .xlsx; the export is logged with the filters and the rows it holds."""
    data = dashboard_data(store, actor, filters, now) if data is None else data
    book = dashboard_workbook(data)
    rows = sum(len(getattr(data, f.name)) for f in fields(data) if f.name in _SHEETS)
    what = "dashboard " + json.dumps(asdict(filters), sort_keys=True, default=str)
    log_export(store, actor, what, "xlsx", rows)
    return book
