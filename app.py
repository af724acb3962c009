"""MarketPulse entry point: page config, the login gate, and the pages the user's role may open."""

from __future__ import annotations

import streamlit as st

from pages._ui.auth import require_login
from pages._ui.bell import render_bell
from pages._ui.navigation import pages_for, same_ids_in_every_run
from pages._ui.services import remember_user, settings, store

st.set_page_config(page_title="MarketPulse", page_icon="📈", layout="wide")

with same_ids_in_every_run():  # the first run of a server process too
    user = require_login(store(), settings())
    remember_user(user)
    render_bell(store(), user)
    st.navigation(pages_for(user.role)).run()
