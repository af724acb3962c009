"""MarketPulse entry point: page config, the login gate, and the pages the user's role may open."""

from __future__ import annotations

import streamlit as st

from core.access import ADMIN, ANALYST
from pages._ui.auth import require_login
from pages._ui.bell import render_bell
from pages._ui.services import remember_user, settings, store

st.set_page_config(page_title="MarketPulse", page_icon="📈", layout="wide")

user = require_login(store(), settings())
remember_user(user)
render_bell(store(), user)

# Pages a role cannot use are not registered, so a deep link to them is "not found".
pages: dict[str, list] = {
    "Colors": [
        st.Page("pages/dashboard.py", title="Dashboard", icon="📊", default=True),
        st.Page("pages/search.py", title="Search", icon="🔍"),
        st.Page("pages/security.py", title="Security", icon="🏷️", url_path="security",
                visibility="hidden"),
    ],
}
if user.role in (ANALYST, ADMIN):
    pages["Colors"].append(st.Page("pages/manual_color.py", title="Manual Color", icon="✍️"))
admin = [
    st.Page("pages/automation.py", title="Automation", icon="⏱️"),
    st.Page("pages/rules.py", title="Rules", icon="🚫"),
    st.Page("pages/settings.py", title="Settings", icon="⚙️"),
] if user.role == ADMIN else []
pages["Account"] = [*admin, st.Page("pages/account.py", title="Account", icon="👤")]
st.navigation(pages).run()
