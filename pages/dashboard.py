"""Dashboard: KPIs of the latest run, its parents with expandable children, and the runs list."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import history, runs
from core.access import TRIGGER_RUN
from pages._ui.automation_views import render_run_buttons
from pages._ui.services import current_actor, error_boundary, store
from pages._ui.widgets import parents_with_children

st.title("Dashboard")
st_store = store()
actor = current_actor()

if actor.can(TRIGGER_RUN):
    with st.expander("Run a job now"), error_boundary("Loading the run buttons"):
        render_run_buttons(st_store, actor, "dashboard")

with error_boundary("Loading the dashboard"):
    latest = history.latest_run(st_store)
    if latest is None:
        st.info("No runs yet. Publish colors from the Manual Color page, or run "
                "`python -m core process FILE`.")
        st.stop()
    # KPIs come from the rows this user may see, not the run's totals (entitlements).
    summary = history.run_summary(st_store, actor, latest.run_id)
    colors = summary.pop("colors")
    st.subheader(f"Latest run: {latest.run_id} ({latest.kind}) at {latest.started_at[:19]} UTC")
    k1, k2, k3, k4, k5 = st.columns(5)
    k1.metric("Published", f"{summary['published']:,}")
    k2.metric("Parents", f"{summary['parents']:,}")
    k3.metric("Excluded", f"{summary['excluded']:,}")
    k4.metric("Quarantined", f"{summary['quarantined']:,}")
    k5.metric("Quality", f"{latest.quality_score or 0:.1f}")

    parents_with_children(colors, key="dashboard.parents")

    st.subheader("Runs")
    records = runs.load_runs(st_store, limit=200)
    table = pd.DataFrame(
        [{"Run": r.run_id, "Kind": r.kind, "Status": r.status, "Trigger": r.trigger,
          "By": r.actor, "Started (UTC)": r.started_at[:19].replace("T", " "),
          "Seconds": r.duration_s, "Read": r.counts.get("read", 0),
          "Published": r.counts.get("published", 0), "Parents": r.counts.get("parents", 0),
          "Excluded": r.counts.get("excluded", 0),
          "Quarantined": r.counts.get("quarantined", 0), "Error": r.error}
         for r in records]
    )
    if actor.sectors is not None:
        # Whole-run counts include sectors this user may not see.
        table = table.drop(columns=["Read", "Published", "Parents", "Excluded", "Quarantined"])
        st.caption("Run totals are shown to users who see every sector.")
    st.dataframe(table, hide_index=True, width="stretch", key="dashboard.runs")
