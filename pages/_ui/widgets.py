"""Reusable Streamlit pieces: parents with expandable children, validation reports, run tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.ingest.grouped_report import group_problems, score_words
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
from pages._ui.tables import WRAPPED, show_table

SUMMARY_COLUMNS = [CUSIP, RUN_ID, TICKER, SECTOR, DATE, BIAS, RANK, PX, BID, ASK, SOURCE,
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
    event = show_table(parents[shown], key=key, height=height, on_select="rerun",
                       selection_mode="single-row")
    rows = event.selection.rows if event is not None else []
    if rows:
        parent = parents.iloc[rows[0]]
        children = frame[frame[PARENT_COLOR_ID] == parent[COLOR_ID]]
        ticker = escape_markdown(parent.get(TICKER) or "")
        st.markdown(f"**{escape_markdown(parent[CUSIP])}** {ticker}: "
                    f"{len(children)} children of parent {escape_markdown(parent[COLOR_ID])}")
        show_table(children[shown], key=f"{key}.children")


def validation_report(report: ValidationReport, key: str) -> None:
    """Quality score (and what it means), counts, the problems one line per kind (a warning on
    every row is one line with its count and rows), and the full report to download."""
    blocking, warnings = len(report.blocking), len(report.warnings)
    a, b, c = st.columns(3)
    a.metric("Quality score", f"{report.quality_score:.1f}/100")
    b.metric("Blocking problems", blocking)
    c.metric("Warnings", warnings)
    st.caption(score_words(report))
    if report.problems:
        grouped = group_problems(report)
        # Their FILE and MESSAGE columns carry file names and cell text: shown as text.
        st.dataframe(grouped, hide_index=True, width="stretch", key=f"{key}.problems",
                     row_height=WRAPPED, column_config={
                         "MESSAGE": st.column_config.TextColumn("MESSAGE", width="large"),
                         "ROWS": st.column_config.TextColumn("ROWS", width="medium"),
                         "COUNT": st.column_config.NumberColumn("COUNT", format="%d")})
        # One line per problem; formulas escaped.
        st.download_button(f"Download the full report, {len(report.problems):,} lines (CSV)",
                           write_csv(report.to_frame()), file_name="validation-report.csv",
                           key=f"{key}.download")
    else:
        st.success("No problems found.")
