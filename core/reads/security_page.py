"""The security page's queries: every color of one CUSIP across visible runs, the header facts
(latest parent and since when it stands, the runs it appeared in) and the dealer quotes of a day,
limited to the reader's sectors and columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from core.access import VIEW, Actor, entitled_columns, require
from core.reads.search_sql import entitlement_sql
from core.runs.published import duckdb_session, fetch_frame, open_colors, published_columns
from core.schema import POSITION, RUN_ID
from storage import Store

_SIDES = {1: "trade", 2: "cover", 3: "bid", 4: "offer", 5: "talk", 6: "valuation"}
_IDENTITY = ("MESSAGE_ID", "SOURCE", "BIAS", "PX")  # a parent "changes" when one of these does


def _security_frame(store: Store, actor: Actor, cusip: str, extra: str = "",
                    extra_params: list[Any] | None = None) -> pd.DataFrame:
    require(actor, VIEW)
    rule, params = entitlement_sql(actor)
    with duckdb_session() as con:
        src = open_colors(store, con, cusips=[cusip])
        if src is None:
            return pd.DataFrame()
        names = {name for name, _ in published_columns(store, con, src)}
        position = POSITION if POSITION in names else "(CASE WHEN IS_PARENT THEN 0 ELSE 1 END)"
        return fetch_frame(con, f"SELECT * FROM {src} AS published WHERE CUSIP = ? AND ({rule})"
                                f"{extra} ORDER BY RUN_ID DESC, {position}",
                           [cusip.strip().upper(), *params, *(extra_params or [])])


def security_history(store: Store, actor: Actor, cusip: str) -> pd.DataFrame:
    """Every color of the security across visible runs: newest run first, ranked within a run."""
    return entitled_columns(_security_frame(store, actor, cusip), actor)


@dataclass(frozen=True)
class SecuritySummary:
    """The security page header: who it is, its latest parent color, since when that parent has
    stood (the first run of the current streak), and one row per run it appeared in."""

    cusip: str
    ticker: str | None
    sector: str | None
    colors: int
    latest_parent: dict[str, Any] | None
    parent_since: str | None
    parent_since_run: int | None
    runs: pd.DataFrame


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def security_summary(store: Store, actor: Actor, cusip: str) -> SecuritySummary:
    """Header facts of one security as the actor may see them (see SecuritySummary)."""
    frame = _security_frame(store, actor, cusip)
    cusip = cusip.strip().upper()
    if frame.empty:
        return SecuritySummary(cusip, None, None, 0, None, None, None, pd.DataFrame())
    parents = frame[frame["IS_PARENT"].fillna(False).astype(bool)]
    chrono = parents.sort_values(RUN_ID, kind="stable")
    since = None
    if len(chrono):
        keys = chrono[[c for c in _IDENTITY if c in chrono.columns]].astype("string").fillna("")
        same = (keys == keys.iloc[-1]).all(axis=1).to_numpy()
        start = len(same) - int(np.argmin(same[::-1])) if not same.all() else 0
        since = chrono.iloc[start]
    shown = entitled_columns(parents, actor)
    latest = {str(k): v for k, v in shown.iloc[0].to_dict().items()} if len(shown) else None
    run_columns = [RUN_ID, "PROCESSED_AT", "PROCESSING_TYPE", "DATE", "PX", "BIAS", "RANK",
                   "SOURCE", "CHILDREN_COUNT"]
    runs_frame = shown[[c for c in run_columns if c in shown.columns]].reset_index(drop=True)
    head = frame.iloc[0]
    return SecuritySummary(
        cusip, _text(head.get("TICKER")) if _visible(actor, "TICKER") else None,
        _text(head.get("SECTOR")) if _visible(actor, "SECTOR") else None, len(frame), latest,
        None if since is None else str(pd.Timestamp(since["PROCESSED_AT"]).isoformat()),
        None if since is None else int(since[RUN_ID]), runs_frame)


def _visible(actor: Actor, column: str) -> bool:
    return actor.columns is None or column in actor.columns


def dealer_dispersion(store: Store, actor: Actor, cusip: str, day: date | str) -> pd.DataFrame:
    """The distinct quotes of one security on one DATE (coverage repeats dropped), with SIDE
    (trade, cover, bid, offer, talk, valuation from RANK), best first within each side."""
    frame = _security_frame(store, actor, cusip, " AND TRY_CAST(DATE AS DATE) = ?",
                            [pd.Timestamp(day).date()])
    if frame.empty:
        return frame
    frame = frame.drop_duplicates(["SOURCE", "BIAS", "BID", "ASK", "PX", "MESSAGE_ID"])
    frame.insert(0, "SIDE", frame["RANK"].map(_SIDES).astype("string"))
    frame = frame.sort_values(["RANK", "PX"], ascending=[True, False], kind="stable")
    columns = ["SIDE", "SOURCE", "BIAS", "RANK", "PX", "BID", "ASK", "MESSAGE_ID", "DATE_1",
               RUN_ID, "IS_PARENT"]
    return entitled_columns(frame[[c for c in columns if c in frame.columns]], actor
                            ).reset_index(drop=True)
