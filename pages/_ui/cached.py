"""st.cache_data wrappers around core's pure reads for Search, Security and the Dashboard.

Each entry is keyed by the store's url and data version (a published or removed run refreshes it)
and by what the actor may see (role, sectors, columns), so users with the same entitlements share
entries and nobody is served rows of a sector they may not see. The store and actor themselves are
passed unhashed (leading underscore): the key says everything they contribute."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import audit, audit_chain
from core.access import Actor
from core.reads import dashboard as analytics
from core.reads import latest_parents as parents
from core.reads import search
from core.reads import security_page as security
from core.reads.latest_parents import LatestParents
from core.reads.search import SearchQuery, SearchResult
from core.reads.security_page import SecuritySummary
from core.runs import records as runs
from pages._ui import charts
from storage import Store

_ENTRIES = 256


def _seen(actor: Actor) -> tuple:
    return actor.role, actor.sectors, actor.columns


def _version(store: Store) -> str:
    return runs.data_version(store)


def _query(key: str) -> SearchQuery:
    return SearchQuery.from_dict(json.loads(key))


# -- search -----------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def _search(_store: Store, _actor: Actor, url: str, version: str, seen: tuple,
            query: str) -> SearchResult:
    return search.search_colors(_store, _actor, _query(query))


def search_page(store: Store, actor: Actor, query: SearchQuery) -> SearchResult:
    """core.reads.search.search_colors, cached."""
    return _search(store, actor, store.url, _version(store), _seen(actor), query.key())


# -- the security page ------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def _summary(_store: Store, _actor: Actor, url: str, version: str, seen: tuple,
             cusip: str) -> SecuritySummary:
    return security.security_summary(_store, _actor, cusip)


def security_summary(store: Store, actor: Actor, cusip: str) -> SecuritySummary:
    return _summary(store, actor, store.url, _version(store), _seen(actor), cusip)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def _history(_store: Store, _actor: Actor, url: str, version: str, seen: tuple,
             cusip: str) -> pd.DataFrame:
    return security.security_history(_store, _actor, cusip)


def security_history(store: Store, actor: Actor, cusip: str) -> pd.DataFrame:
    return _history(store, actor, store.url, _version(store), _seen(actor), cusip)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def _dispersion(_store: Store, _actor: Actor, url: str, version: str, seen: tuple, cusip: str,
                day: date) -> pd.DataFrame:
    return security.dealer_dispersion(_store, _actor, cusip, day)


def dealer_dispersion(store: Store, actor: Actor, cusip: str, day: date) -> pd.DataFrame:
    return _dispersion(store, actor, store.url, _version(store), _seen(actor), cusip, day)


@st.cache_data(show_spinner=False, max_entries=16)
def _run_ids(_store: Store, url: str, version: str) -> list[int]:
    return runs.visible_run_ids(_store)


def visible_run_ids(store: Store) -> list[int]:
    """core.runs.records.visible_run_ids, cached (it reads every run record)."""
    return _run_ids(store, store.url, _version(store))


# -- the dashboard ----------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def _dashboard(_store: Store, _actor: Actor, _filters: analytics.DashboardFilters, url: str,
               version: str, latest_run: tuple, seen: tuple, filters: str, today: date,
               tz: str) -> analytics.DashboardData:
    # The KPIs read only the day and month of `now` in its timezone (analytics._day_bounds).
    now = datetime.combine(today, time(), tzinfo=ZoneInfo(tz))
    return analytics.dashboard_data(_store, _actor, _filters, now)


def _dashboard_key(store: Store, actor: Actor, filters: analytics.DashboardFilters,
                   now: datetime) -> tuple:
    """What the dashboard's data depend on: the store and its data version, the newest run's id
    and status (a failed run changes the "last run" KPI without changing the data version), what
    the actor sees, the filters, and the day of `now` in its timezone."""
    newest = runs.load_runs(store, limit=1)
    latest = (newest[0].run_id, newest[0].status) if newest else ()
    return (store.url, _version(store), latest, _seen(actor), repr(filters), now.date(),
            str(now.tzinfo))


def dashboard(store: Store, actor: Actor, filters: analytics.DashboardFilters,
              now: datetime) -> analytics.DashboardData:
    """core.reads.dashboard.dashboard_data, cached for the day of `now` (an aware time in the desk's
    timezone)."""
    return _dashboard(store, actor, filters, *_dashboard_key(store, actor, filters, now))


@st.cache_data(show_spinner=False, max_entries=64)
def _choices(_store: Store, _actor: Actor, _filters: analytics.DashboardFilters, url: str,
             version: str, latest_run: tuple, seen: tuple, filters: str, today: date,
             tz: str) -> tuple[list[str], list[str]]:
    now = datetime.combine(today, time(), tzinfo=ZoneInfo(tz))
    data = analytics.dashboard_data(_store, _actor, _filters, now)
    cusips = data.latest_parents.get("CUSIP", pd.Series(dtype=str))
    return sorted(data.volume_by_sector["SECTOR"].unique()), sorted(set(cusips))


def dashboard_choices(store: Store, actor: Actor, filters: analytics.DashboardFilters,
                      now: datetime) -> tuple[list[str], list[str]]:
    """The sectors and the latest parents' CUSIPs of the dashboard's data under `filters` (the
    filters' choices), cached: only the two lists are copied on each rerun, not the data."""
    return _choices(store, actor, filters, *_dashboard_key(store, actor, filters, now))


@st.cache_resource(show_spinner=False, max_entries=64)
def _figures(key: tuple, _data: analytics.DashboardData) -> dict[str, go.Figure | None]:
    return charts.dashboard_figures(_data)


def dashboard_figures(store: Store, actor: Actor, filters: analytics.DashboardFilters,
                      now: datetime, data: analytics.DashboardData) -> dict[str, go.Figure | None]:
    """The Dashboard's charts of `data` (dashboard() of the same arguments), made once per data:
    keyed like the data, so a rerun neither rebuilds nor fingerprints them. Figures are shared
    between sessions of the same entitlements, as the data are (st.plotly_chart only reads)."""
    return _figures(_dashboard_key(store, actor, filters, now), data)


@st.cache_data(show_spinner=False, max_entries=64)
def _latest(_store: Store, _actor: Actor, _filters: analytics.DashboardFilters, url: str,
            version: str, seen: tuple, filters: str, page: int) -> LatestParents:
    return analytics.dashboard_latest_parents(_store, _actor, _filters, page)


def latest_parents(store: Store, actor: Actor, filters: analytics.DashboardFilters,
                   page: int) -> LatestParents:
    """core.reads.dashboard.dashboard_latest_parents (a page after the first), cached."""
    return _latest(store, actor, filters, store.url, _version(store), _seen(actor), repr(filters),
                   page)


@st.cache_data(show_spinner=False, max_entries=_ENTRIES)
def _children(_store: Store, _actor: Actor, url: str, version: str, seen: tuple, cusip: str,
              run_id: int, color_id: str) -> pd.DataFrame:
    return parents.parent_children(_store, _actor, cusip, run_id, color_id)


def parent_children(store: Store, actor: Actor, cusip: str, run_id: int, color_id: str
                    ) -> pd.DataFrame:
    """core.reads.latest_parents.parent_children, cached."""
    return _children(store, actor, store.url, _version(store), _seen(actor), cusip, run_id,
                     color_id)


# -- the change log ---------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=16)
def _changes(_store: Store, url: str, head: tuple[int, str], area: str | None,
             limit: int | None) -> pd.DataFrame:
    return audit.load_changes(_store, area=area, limit=limit)


def recent_changes(store: Store, area: str | None = None, limit: int | None = None
                   ) -> pd.DataFrame:
    """core.audit.load_changes, cached until the audit chain grows (every recorded change moves
    its head): the log is a scan of every month's entries, which each rerun paid before."""
    return _changes(store, store.url, audit_chain.head(store), area, limit)
