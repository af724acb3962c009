"""Search: one box (CUSIP, ticker, MESSAGE_ID), bulk ids, filters, sort and pages over parent
groups, presets (saved filters: pick, create, edit, delete your own), the whole result to Excel
or CSV, saved searches, the last 20 searches, and My watchlist.
Every query goes through core.reads.search under the user's sectors and columns."""

from __future__ import annotations

import streamlit as st

from pages._ui import search_presets as presets
from pages._ui import search_views as views
from pages._ui.automation_views import show_flashes
from pages._ui.services import current_actor, error_boundary, store
from pages._ui.watch_views import render_watchlist

st.title("Search")
st_store = store()
actor = current_actor()
show_flashes("search")

text, kind, match = views.render_box()
picked = None
with error_boundary("Loading the presets"):
    picked = presets.render_picker(st_store, actor)
with st.expander("Bulk lookup: paste or upload a list of identifiers"):
    bulk = views.render_bulk()
filters = None
with st.expander("Filters"), error_boundary("Loading the filter values"):
    filters = views.render_filters(actor, views.filter_options(st_store, actor))
with st.expander("Presets: create a saved filter, edit or delete yours"), \
        error_boundary("The presets"):
    presets.render_manager(st_store, actor, picked)
order = views.render_order(actor)
query = views.query_from_form(text, kind, match, bulk, filters, order, preset=picked is not None)

if query is None:
    st.info("Type a CUSIP, a ticker or a MESSAGE_ID, paste a list of them, or set a filter.")
else:
    with error_boundary("Searching"):
        query = presets.apply(st_store, actor, query, picked)  # core reads the preset now
        result = views.search(st_store, actor, query)
        views.record(st_store, actor, query, result)
        views.render_notes(result)
        views.render_bulk_report(result)
        views.open_security(views.render_results(result))
        if result.pages > 1:
            st.pagination(result.pages, key=views.PAGE)
        views.render_export(st_store, actor, query, result)

st.subheader("Saved searches")
with error_boundary("Loading saved searches"):
    views.render_saved(st_store, actor, query)
    views.render_history(st_store, actor)

st.subheader("My watchlist")
with error_boundary("Loading your watchlist"):
    render_watchlist(st_store, actor)
