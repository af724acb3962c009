"""Shared Streamlit helpers for the pages (services, error boundary, widgets)."""
