"""Security: one CUSIP's header (ticker, sector, latest parent color and since when), its price
history, the dealer quotes of a chosen day, every color, the runs it appeared in, and its watchlist
alerts. Opened from a Search result or a link with ?cusip=; each view is in the access log."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from core.access import Actor
from core.alerts.watchlists import load_watchlist
from core.compliance.access_log import log_security_view
from core.reads.security_page import SecuritySummary
from core.schema import BIAS, DATE, PX, RUN_ID, SOURCE
from pages._ui import cached, charts
from pages._ui.automation_views import show_flashes
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.services import current_actor, error_boundary, store
from pages._ui.tables import show_table
from pages._ui.watch_views import alerts_table, render_watch
from storage import Store

BOX = FormValues("security.box")  # the CUSIP box's value: its default, never set on its key
PARAM, VIEWED = "security.param_state", "security.viewed_state"
DAY = "security.day"


def _cusip_from_link_or_box() -> tuple[str, bool]:
    """The CUSIP to show (the box, seeded from ?cusip=), and whether this view is new: the page
    was just opened (Streamlit drops a widget's state when its page is left) or the CUSIP
    changed."""
    param = str(st.query_params.get("cusip") or "").strip().upper()
    entering = not BOX.loaded() or BOX.key("cusip") not in st.session_state
    if entering or st.session_state.get(PARAM) != param:
        BOX.load({"cusip": param})  # a box drawn afresh, at the CUSIP
        st.session_state[PARAM] = param
    typed = st.text_input("CUSIP", value=BOX["cusip"], key=BOX.key("cusip"), max_chars=12)
    BOX.keep(cusip=typed)
    cusip = typed.strip().upper()
    if cusip != param:  # keep the address shareable
        if cusip:
            st.query_params["cusip"] = cusip
        else:
            del st.query_params["cusip"]
        st.session_state[PARAM] = cusip
    new = bool(cusip) and (entering or st.session_state.get(VIEWED) != cusip)
    return cusip, new


def _when(stamp: str | None) -> str:
    if not stamp:
        return "—"
    at = pd.Timestamp(stamp)
    return f"{(at.tz_convert('UTC') if at.tzinfo else at):%Y-%m-%d %H:%M} UTC"


def _header(summary: SecuritySummary) -> None:
    """Ticker and sector; the latest parent color (BIAS and PX) and since when it stands."""
    parent = summary.latest_parent or {}
    color = " ".join(f"{parent[c]:.3f}" if c == PX else str(parent[c]) for c in (BIAS, PX)
                     if parent.get(c) is not None and not pd.isna(parent[c]))
    ticker, sector = st.columns(2)
    ticker.metric("Ticker", summary.ticker or "—")
    sector.metric("Sector", summary.sector or "—")
    latest, changed = st.columns(2)
    latest.metric("Latest parent", color or "—")
    changed.metric("Parent since", _when(summary.parent_since),
                   help=f"Run {summary.parent_since_run} is the first of the runs in a row whose "
                        "parent is this color" if summary.parent_since_run else None)
    facts = [f"{summary.colors:,} colors in {len(summary.runs):,} runs"]
    if parent.get(SOURCE):
        facts.append(f"latest parent quoted by {parent[SOURCE]}")
    day = parent.get(DATE)
    if day is not None and not pd.isna(day):
        facts.append(f"dated {pd.Timestamp(day):%Y-%m-%d}")
    if RUN_ID in parent:
        facts.append(f"run {parent[RUN_ID]}")
    if summary.parent_since_run is not None:
        facts.append(f"unchanged since run {summary.parent_since_run}")
    st.caption(" · ".join(facts))


def _dispersion(st_store: Store, actor: Actor, cusip: str, history: pd.DataFrame) -> None:
    st.subheader("Dealer dispersion")
    if DATE not in history.columns or history[DATE].dropna().empty:
        st.info("No dated colors to compare.")
        return
    days = sorted({pd.Timestamp(d).date() for d in history[DATE].dropna()}, reverse=True)
    day: date = st.selectbox("Day", days, key=DAY, format_func=lambda d: f"{d:%Y-%m-%d}")
    quotes = cached.dealer_dispersion(st_store, actor, cusip, day)
    dealers = quotes[SOURCE].nunique() if SOURCE in quotes.columns else 0
    st.caption(f"{len(quotes)} distinct quote(s) from {dealers} dealer(s) on {day:%Y-%m-%d}.")
    charts.show(charts.dispersion(quotes, cusip, f"{day:%Y-%m-%d}"), "security.dispersion_chart",
                "No quotes on that day.")
    if len(quotes):
        show_table(quotes)


st.title("Security")
st_store = store()
actor = current_actor()
show_flashes("security")

cusip, new_view = _cusip_from_link_or_box()
if not cusip:
    st.info("Enter a CUSIP, or open a security from a Search result.")
    st.stop()

with error_boundary(f"Loading {cusip}"):
    summary = cached.security_summary(st_store, actor, cusip)
    if new_view:
        log_security_view(st_store, actor, cusip, summary.colors)
        st.session_state[VIEWED] = cusip
    if not summary.colors:
        st.info(f"No colors of {escape_markdown(cusip)} that you may see.")
    else:
        st.subheader(escape_markdown(f"{summary.cusip} · {summary.ticker}" if summary.ticker
                                     else summary.cusip))
        _header(summary)
        history = cached.security_history(st_store, actor, cusip)
        charts.show(charts.price_history(history, cusip), "security.price_chart",
                    "No prices to chart.")
        _dispersion(st_store, actor, cusip, history)
        st.subheader("Every color")
        show_table(history)
        st.subheader("Runs it appeared in")
        show_table(summary.runs)

st.subheader("Watchlist")
with error_boundary("Loading your watchlist"):
    render_watch(st_store, actor, cusip, "security", load_watchlist(st_store, actor))
    alerts = alerts_table(st_store, actor, cusip=cusip)
    if alerts.empty:
        st.caption(f"No watchlist alerts of {escape_markdown(cusip)} yet.")
    else:
        st.markdown(f"**Your alerts of {escape_markdown(cusip)}**")
        st.dataframe(alerts, hide_index=True, width="stretch", key="security.alerts")
