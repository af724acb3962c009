"""How color tables read on every page (issue 14 item 5). One header per column: the column's own
name, as the Excel export, the filters, the sort and the rule builder call it, with its meaning on
hover (so DATE_1 is DATE_1 everywhere, never "Received" on one page). Prices have three decimals
(the workbook's 0.000); a BID or ASK of 0 reads "no bid" / "no offer" (DOMAIN.md §0); CUSIP comes
first and stays on screen when the table scrolls sideways; long text gets a wide column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from core.schema import (
    ASK,
    BIAS,
    BID,
    CHILDREN_COUNT,
    COLOR_ID,
    CONFIDENCE,
    COV_PRICE,
    CUSIP,
    DATE,
    DATE_1,
    DIFF_STATUS,
    EXCLUDED_BY,
    IS_PARENT,
    MESSAGE_ID,
    PARENT_COLOR_ID,
    PARENT_MESSAGE_ID,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PROCESSED_AT,
    PROCESSING_TYPE,
    PX,
    QUARANTINE_REASON,
    RANK,
    RUN_ID,
    SECTOR,
    SOURCE,
    SOURCE_FILE,
    TICKER,
)

PRICE_FORMAT = "%.3f"  # the output workbook's 0.000
PRICES = (PRICE_LEVEL, BID, ASK, PX, COV_PRICE, PRICE_DIFF)
NO_PRICE = {BID: "no bid", ASK: "no offer"}  # DOMAIN.md §0: a 0 means there is none
ROLE, GROUP_ROWS = "ROLE", "COLORS"  # columns pages add to color tables
PARENT, CHILD = "parent", "child"
# What each column means, shown on hovering its header (DOMAIN.md §0 and §1).
HELP: dict[str, str] = {
    CUSIP: "9-character security id",
    TICKER: "Deal and tranche",
    SECTOR: "Asset class",
    DATE: "Business (extraction) date of the color",
    DATE_1: "Date the quote was received",
    BIAS: "Kind of color; sets RANK",
    RANK: "Quality tier from BIAS: 1 best … 6 worst",
    PX: "Ranking price: BID if BID > 0, else ASK",
    BID: "Bid price; 0 is shown as no bid",
    ASK: "Offer price; 0 is shown as no offer",
    PRICE_LEVEL: "Price level (equals PX in practice)",
    COV_PRICE: "Coverage (house) price",
    PRICE_DIFF: "PX − COV_PRICE",
    PERCENT_DIFF: "|PX − COV_PRICE| / COV_PRICE × 100",
    DIFF_STATUS: "Significant when PERCENT_DIFF is above the sector's threshold",
    CONFIDENCE: "0–10",
    SOURCE: "Dealer",
    MESSAGE_ID: "Dealer message the color came from",
    RUN_ID: "Run that published the color",
    PROCESSED_AT: "When the run processed it (UTC)",
    PROCESSING_TYPE: "AUTOMATED, MANUAL or OVERRIDE",
    IS_PARENT: "The best color of its CUSIP in the run",
    CHILDREN_COUNT: "Other colors of its CUSIP in the run",
    COLOR_ID: "The color's id",
    PARENT_COLOR_ID: "COLOR_ID of its parent",
    PARENT_MESSAGE_ID: "MESSAGE_ID of its parent",
    SOURCE_FILE: "File the color came from",
    EXCLUDED_BY: "Rule that excluded the row",
    QUARANTINE_REASON: "Why the row was set aside",
    ROLE: "As published: the parent of its CUSIP in the run, or a child",
    GROUP_ROWS: "Colors of this CUSIP in this run that match",
}
# Text that must not be cut off: file names, reasons, messages.
WIDE = (SOURCE_FILE, EXCLUDED_BY, QUARANTINE_REASON, "MESSAGE", "DETAIL")
# A row height that lets Streamlit wrap text (it wraps only above 4rem): tables of long
# sentences (validation messages, rule conditions, schedules) show them whole.
WRAPPED = 72


def _price_text(values: pd.Series, none: str) -> pd.Series:
    """Prices as the table shows them: three decimals, and the word for 0 (blank stays blank).
    Text, not a number column: Streamlit formats numbers one way per column, and a Styler that
    could say "no bid" costs ~0.4 ms a row on every rerun."""
    numbers = pd.to_numeric(values, errors="coerce").astype("Float64")
    text = pd.Series(pd.NA, index=values.index, dtype="string")
    present = numbers.notna().to_numpy(dtype=bool, na_value=False)
    text[present] = [none if v == 0 else f"{v:.3f}" for v in numbers[present]]
    return text


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as a table shows it: CUSIP first, BID and ASK in words when 0."""
    order = [CUSIP, *[c for c in frame.columns if c != CUSIP]] if CUSIP in frame.columns else \
        list(frame.columns)
    shown = frame[order].copy(deep=False)
    for column, none in NO_PRICE.items():
        if column in shown.columns:
            shown[column] = _price_text(shown[column], none)
    return shown


def column_config(columns: Iterable[str], **extra: Any) -> dict[str, Any]:
    """The column_config of a color table: typed, formatted and explained, headers unchanged.
    `extra` adds or replaces a column's config (a page's own columns)."""
    cc = st.column_config
    config: dict[str, Any] = {}
    for column in columns:
        help_ = HELP.get(column)
        if column == CUSIP:
            config[column] = cc.TextColumn(column, help=help_, pinned=True)
        elif column in NO_PRICE:
            config[column] = cc.TextColumn(column, help=help_, alignment="right")
        elif column in PRICES:
            config[column] = cc.NumberColumn(column, help=help_, format=PRICE_FORMAT)
        elif column == PERCENT_DIFF:
            config[column] = cc.NumberColumn(column, help=help_, format="%.2f")
        elif column in (DATE, DATE_1):
            config[column] = cc.DateColumn(column, help=help_, format="YYYY-MM-DD")
        elif column == PROCESSED_AT:
            config[column] = cc.DatetimeColumn(column, help=help_, format="YYYY-MM-DD HH:mm:ss")
        elif column in (RUN_ID, RANK, CHILDREN_COUNT, CONFIDENCE, GROUP_ROWS):
            config[column] = cc.NumberColumn(column, help=help_, format="%d")
        elif column in WIDE:
            config[column] = cc.TextColumn(column, help=help_, width="large")
        elif help_:
            config[column] = cc.Column(column, help=help_)
    return {**config, **extra}


def roles(is_parent: pd.Series) -> pd.Series:
    """Each row's role as published (IS_PARENT), in words."""
    flags = is_parent.astype("boolean").fillna(False).to_numpy(dtype=bool)
    return pd.Series([PARENT if f else CHILD for f in flags], index=is_parent.index,
                     dtype="string")


def show_table(frame: pd.DataFrame, *, key: str | None = None,
               config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """st.dataframe of a color table (display_frame, column_config); kwargs pass through
    (height, on_select, selection_mode). Returns what st.dataframe returns."""
    shown = display_frame(frame)
    return st.dataframe(shown, key=key, hide_index=True, width="stretch",
                        column_config=column_config(shown.columns, **dict(config or {})),
                        **kwargs)
