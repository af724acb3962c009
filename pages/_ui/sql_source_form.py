"""The SQL table source in the job editor (Automation): connection name, table, column map,
watermark column, row limit, and "Test the connection". Core checks the source and reads it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.access import Actor
from core.errors import InvalidInput
from core.ingest.columns import load_column_config
from core.intake.sources import check_sources
from core.intake.sql_source import SQL, probe_sql_source
from pages._ui.markdown import escape_markdown
from pages._ui.services import error_boundary, settings
from storage import Store

KEYS = ("automation.sql_secret", "automation.sql_table", "automation.sql_map",
        "automation.sql_watermark", "automation.sql_row_limit")
MAP_HINT = "MSG_ID = MESSAGE_ID"


def editor_values(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The form's values for a job's (first) SQL source."""
    sql = next((s for s in sources if s.get("kind") == SQL), {})
    return {"automation.sql": bool(sql), "automation.sql_secret": sql.get("secret", ""),
            "automation.sql_table": sql.get("table", ""),
            "automation.sql_map": "\n".join(f"{k} = {v}"
                                            for k, v in sql.get("column_map", {}).items()),
            "automation.sql_watermark": sql.get("watermark_column", ""),
            "automation.sql_row_limit": int(sql.get("row_limit") or 0)}


def parse_column_map(text: str) -> dict[str, str]:
    """Lines "SOURCE_COLUMN = OUR_COLUMN" as a map (blank lines skipped); core checks the names."""
    mapped: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        column, equals, ours = line.partition("=")
        if not equals or not column.strip() or not ours.strip():
            raise InvalidInput("column map", f"line {number}: {line.strip()!r} is not "
                                             f"SOURCE_COLUMN = OUR_COLUMN (e.g. {MAP_HINT})")
        if column.strip() in mapped:
            raise InvalidInput("column map", f"line {number}: {column.strip()} is mapped twice")
        mapped[column.strip()] = ours.strip()
    return mapped


def source_from_form(original: dict[str, Any]) -> dict[str, Any]:
    """The SQL source the form shows, over the stored one (keeping what the form does not show)."""
    s = st.session_state
    return {**original, "kind": SQL, "secret": s["automation.sql_secret"],
            "table": s["automation.sql_table"],
            "column_map": parse_column_map(s["automation.sql_map"]),
            "watermark_column": s["automation.sql_watermark"],
            "row_limit": int(s["automation.sql_row_limit"] or 0) or None}


def render_sql_source(store: Store, actor: Actor, job_id: str,
                      original: dict[str, Any]) -> None:
    """The SQL fields (when the source is ticked) and Test the connection, with its result."""
    if not st.checkbox("A SQL table or view (Oracle, PostgreSQL, SQLite…)", key="automation.sql"):
        return
    named = settings().source_names()
    left, right = st.columns(2)
    left.text_input("Connection name", key="automation.sql_secret",
                    help="Its URL, password included, is sources.<name>.url in "
                         ".streamlit/secrets.toml or MARKETPULSE_SOURCES_<NAME>_URL on the "
                         "scheduler's host; the job keeps only the name")
    right.text_input("Table or view (SCHEMA.TABLE)", key="automation.sql_table")
    st.caption("Connections set on this host: " + (", ".join(named) if named else "none"))
    st.text_area(f"Column map, one per line: SOURCE_COLUMN = OUR_COLUMN (e.g. {MAP_HINT})",
                 key="automation.sql_map", height=150)
    left, right = st.columns(2)
    left.text_input("Watermark column (a timestamp or increasing id: each run reads newer rows)",
                    key="automation.sql_watermark")
    right.number_input(f"Row limit per run (0: the setting, "
                       f"{settings()['sources.sql_row_limit']:,})", min_value=0, step=1000,
                       key="automation.sql_row_limit")
    if st.button("Test the connection", key="automation.sql_test"):
        with error_boundary("Testing the connection"), st.spinner("Connecting…"):
            columns = load_column_config(store)
            source = check_sources([source_from_form(original)], columns=columns)[0]
            probe = probe_sql_source(store, actor, source, settings(), job_id=job_id)
            limit = source["row_limit"] or settings()["sources.sql_row_limit"]
            since = ("no run of this job has read it yet" if probe.watermark == "(start)"
                     else f"after the watermark {probe.watermark}")
            st.success(escape_markdown(
                f"Connected: {probe.table} has {probe.newer:,} row(s) to read ({since}); the "
                f"next run reads {min(probe.newer, limit):,}"
                + (f", the first {len(probe.preview)}:" if probe.newer else ".")))
            if probe.newer:
                st.dataframe(probe.preview, hide_index=True, key="automation.sql_preview")
