"""Reusable Streamlit pieces: parents with expandable children, validation reports, run tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.ingest.validation import ValidationReport
from core.runs.exports import write_csv
from core.schema import (
    ASK,
    BIAS,
    BID,
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    DATE,
    DATE_1,
    IS_PARENT,
    MESSAGE_ID,
    PARENT_COLOR_ID,
    PX,
    RANK,
    RUN_ID,
    SECTOR,
    SOURCE,
    TICKER,
)
from pages._ui.markdown import escape_markdown

SUMMARY_COLUMNS = [RUN_ID, CUSIP, TICKER, SECTOR, DATE, BIAS, RANK, PX, BID, ASK, SOURCE,
                   DATE_1, MESSAGE_ID, CHILDREN_COUNT]


def parents_with_children(frame: pd.DataFrame, key: str, *, height: int = 420) -> None:
    """Parents in a table; selecting one shows its children beneath (DOMAIN.md glossary)."""
    if frame.empty or IS_PARENT not in frame.columns:
        st.info("No colors to show.")
        return
    parents = frame[frame[IS_PARENT].fillna(False).astype(bool)]
    shown = [c for c in SUMMARY_COLUMNS if c in parents.columns]
    st.caption(f"{len(parents):,} parents, {len(frame) - len(parents):,} children. "
               "Select a parent to see its children.")
    event = st.dataframe(
        parents[shown], key=key, hide_index=True, width="stretch", height=height,
        on_select="rerun", selection_mode="single-row",
        column_config={
            PX: st.column_config.NumberColumn("PX", format="%.3f"),
            BID: st.column_config.NumberColumn("BID", format="%.3f"),
            ASK: st.column_config.NumberColumn("ASK", format="%.3f"),
            DATE: st.column_config.DateColumn("DATE"),
            DATE_1: st.column_config.DateColumn("Received"),
            CHILDREN_COUNT: st.column_config.NumberColumn("Children"),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows:
        parent = parents.iloc[rows[0]]
        children = frame[frame[PARENT_COLOR_ID] == parent[COLOR_ID]]
        ticker = escape_markdown(parent.get(TICKER) or "")
        st.markdown(f"**{escape_markdown(parent[CUSIP])}** {ticker}: "
                    f"{len(children)} children of parent {escape_markdown(parent[COLOR_ID])}")
        st.dataframe(children[shown], hide_index=True, width="stretch", key=f"{key}.children")


def validation_report(report: ValidationReport, key: str) -> None:
    """Quality score, counts, and the problems table with a download."""
    blocking, warnings = len(report.blocking), len(report.warnings)
    a, b, c = st.columns(3)
    a.metric("Quality score", f"{report.quality_score:.1f}/100")
    b.metric("Blocking problems", blocking)
    c.metric("Warnings", warnings)
    if report.problems:
        table = report.to_frame()
        st.dataframe(table, hide_index=True, width="stretch", height=240, key=f"{key}.problems")
        # Its FILE and MESSAGE columns carry file names and cell text: formulas escaped.
        st.download_button("Download the report (CSV)", write_csv(table),
                           file_name="validation-report.csv", key=f"{key}.download")
    else:
        st.success("No problems found.")
