"""Automation (admin): jobs, triggers, run history and scheduler health."""

from __future__ import annotations

import streamlit as st

st.title("Automation")
