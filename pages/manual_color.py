"""Manual Color: upload files, read the validation report and the ranked preview, publish a
MANUAL run."""

from __future__ import annotations

import streamlit as st

from core import pipeline
from core.access import entitled
from pages._ui.services import current_actor, error_boundary, settings, store
from pages._ui.widgets import parents_with_children, validation_report

PREPARED = "manual_color.prepared_state"
RESULT = "manual_color.result_state"

st.title("Manual Color")
st_store, st_settings, actor = store(), settings(), current_actor()

uploads = st.file_uploader(
    "Color files (.xlsx, .xls, .csv, .parquet)", type=["xlsx", "xls", "csv", "parquet"],
    accept_multiple_files=True, key="manual_color.files",
)
if st.button("Check files", key="manual_color.check", disabled=not uploads, type="primary"):
    st.session_state.pop(RESULT, None)
    with error_boundary("Reading the files"), st.spinner("Reading and validating…"):
        files = [(u.name, u.getvalue()) for u in uploads or []]
        st.session_state[PREPARED] = pipeline.prepare_files(st_store, files, st_settings)

prepared = st.session_state.get(PREPARED)
if prepared is not None:
    st.subheader("Validation")
    validation_report(prepared.report, key="manual_color.report")
    if len(prepared.quarantined):
        st.download_button(
            f"Download the {len(prepared.quarantined)} quarantined rows (CSV)",
            prepared.quarantined.to_csv(index=False).encode(), file_name="quarantined.csv",
            key="manual_color.quarantined",
        )
    apply_rules = st.checkbox("Apply the active exclusion rules", value=True,
                              key="manual_color.apply_rules")
    with error_boundary("Ranking the preview"):
        rules = pipeline.active_rules(st_store) if apply_rules else []
        ranked, outcome = pipeline.rank_batch(prepared.valid, rules, st_settings)
        st.subheader("Ranked preview")
        st.caption(f"{len(outcome.excluded)} rows excluded by rules"
                   + "".join(f"; {name}: {n}" for name, n in outcome.counts.items()))
        parents_with_children(entitled(ranked, actor), key="manual_color.preview")
    if st.button("Publish as a MANUAL run", key="manual_color.publish", type="primary"):
        with error_boundary("Publishing"), st.spinner("Publishing…"):
            st.session_state[RESULT] = pipeline.publish_run(
                st_store, actor, prepared, kind=pipeline.MANUAL, trigger="manual_upload",
                settings=st_settings, rules=None if apply_rules else [],
            )
            # Once published, the prepared batch is gone: a second click cannot publish it twice.
            st.session_state.pop(PREPARED, None)
            st.rerun()

result = st.session_state.get(RESULT)
if result is not None:
    rec = result.record
    st.success(f"Published run {rec.run_id}: {rec.counts['published']} colors "
               f"({rec.counts['parents']} parents), {rec.counts['excluded']} excluded, "
               f"{rec.counts['quarantined']} quarantined.")
    st.download_button("Download the output workbook", pipeline.workbook_for(result, actor),
                       file_name=f"colors-run-{rec.run_id}.xlsx", key="manual_color.download",
                       mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
