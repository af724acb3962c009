"""MarketPulse entry point: page config and the navigation of the pages the user may open."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="MarketPulse", page_icon="📈", layout="wide")

pages = [
    st.Page("pages/dashboard.py", title="Dashboard", icon="📊", default=True),
    st.Page("pages/manual_color.py", title="Manual Color", icon="✍️"),
]
st.navigation(pages).run()
