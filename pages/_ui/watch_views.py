"""Watchlist pieces of the Search and Security pages: watch a CUSIP with its alert rules, my
watchlist, the email switch and the alerts. Core checks, stores and raises the alerts; this draws
and collects."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Actor
from core.alerts.watch_email import WatchEmail
from core.alerts.watchlists import (
    WatchItem,
    list_alerts,
    load_watch_email,
    load_watchlist,
    save_watch_email,
    unwatch,
    watch,
)
from pages._ui.automation_views import flash
from pages._ui.form_values import FormValues
from pages._ui.services import error_boundary
from storage import Store

WATCH_ADD, WATCH_ADD_BUTTON, WATCH_ITEM = "search.watch_add", "search.watch_add_button", \
    "search.watch_item"
WATCH_EMAIL = FormValues("search.watch_email")  # the switch's value as stored ("on")


def watch_form(prefix: str) -> FormValues:
    """The alert settings' values (and the CUSIP and stored item they were filled for)."""
    return FormValues(f"{prefix}.watch_form")


def _load_watch(form: FormValues, cusip: str, current: WatchItem | None) -> None:
    """Fill the alert widgets from the stored item when the CUSIP or the item changes."""
    if form.get("for") == (cusip, current):
        return
    base = current or WatchItem(cusip)
    form.load({"for": (cusip, current), "new_color": base.new_color,
               "px_on": base.px_move is not None, "px": float(base.px_move or 1.0),
               "better_rank": base.better_rank})


def render_watch(store: Store, actor: Actor, cusip: str, prefix: str,
                 items: list[WatchItem]) -> None:
    """Watch a CUSIP or change its alerts (new color, PX move beyond a threshold, a better-rank
    new parent), or stop watching it. Alerts arrive in the bell after each run."""
    current = next((i for i in items if i.cusip == cusip), None)
    form = watch_form(prefix)
    _load_watch(form, cusip, current)
    new, better, move, points = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    new_color = new.checkbox("Alert on a new color", value=form["new_color"],
                             key=form.key("new_color"))
    better_rank = better.checkbox("Alert on a better-rank parent", value=form["better_rank"],
                                  key=form.key("better_rank"))
    px_on = move.checkbox("Alert on a PX move", value=form["px_on"], key=form.key("px_on"))
    px_move = points.number_input("of at least (points)", min_value=0.01, step=0.25,
                                  value=form["px"], key=form.key("px"), disabled=not px_on)
    form.keep(new_color=new_color, better_rank=better_rank, px_on=px_on, px=px_move)
    save, stop = st.columns([1, 3])
    if save.button("Save alert settings" if current else "Watch this CUSIP",
                   key=f"{prefix}.watch"):
        with error_boundary(f"Watching {cusip}"):
            watch(store, actor, WatchItem(cusip, new_color, px_move if px_on else None,
                                          better_rank))
            flash(prefix, f"Saved the alerts of {cusip}" if current else f"Watching {cusip}")
            st.rerun()
    if current is not None and stop.button("Stop watching", key=f"{prefix}.unwatch"):
        with error_boundary(f"Removing {cusip} from your watchlist"):
            unwatch(store, actor, cusip)
            flash(prefix, f"Stopped watching {cusip}")
            st.rerun()


def watchlist_table(items: list[WatchItem]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"CUSIP": i.cusip, "New color": i.new_color, "PX move (points)": i.px_move,
          "Better rank": i.better_rank, "Since (UTC)": i.added_at[:16].replace("T", " ")}
         for i in items],
        columns=["CUSIP", "New color", "PX move (points)", "Better rank", "Since (UTC)"])


def alerts_table(store: Store, actor: Actor, limit: int = 20, cusip: str | None = None
                 ) -> pd.DataFrame:
    return pd.DataFrame(
        [{"When (UTC)": n.at[:16].replace("T", " "), "Alert": n.title, "Detail": n.body,
          "Read": n.read} for n in list_alerts(store, actor, limit=limit, cusip=cusip)],
        columns=["When (UTC)", "Alert", "Detail", "Read"])


def watch_email_caption(status: WatchEmail) -> str:
    """When the switch applies: an admin's SMTP server and the address of the account."""
    where = (f"to {status.address}" if status.address
             else "to your account's email address (it has none: ask an admin to add one)")
    smtp = ("" if status.smtp_configured
            else " Email is not set up yet: an admin configures the SMTP server in Settings.")
    return f"After each run, one email with the alerts new to you, sent {where}.{smtp}"


def render_watch_email(store: Store, actor: Actor) -> None:
    """The switch for emailing my alerts, seeded from the store (again if changed elsewhere)."""
    status = load_watch_email(store, actor)
    if WATCH_EMAIL.get("on") != status.on:
        WATCH_EMAIL.load({"on": status.on})
    on = st.checkbox("Email me my watchlist alerts", value=WATCH_EMAIL["on"],
                     key=WATCH_EMAIL.key("on"))
    st.caption(watch_email_caption(status))
    if on != status.on:
        with error_boundary("Saving your email choice"):
            save_watch_email(store, actor, on)
            WATCH_EMAIL.keep(on=on)
            st.toast("Your watchlist alerts will be emailed" if on
                     else "Your watchlist alerts will no longer be emailed")


def render_watchlist(store: Store, actor: Actor) -> None:
    """My watchlist: add a CUSIP, the list, one item's alerts or removal, the email switch and
    the recent alerts."""
    items = load_watchlist(store, actor)
    box, add = st.columns([3, 1], vertical_alignment="bottom")
    typed = box.text_input("Watch a CUSIP", key=WATCH_ADD, placeholder="97988RBL5")
    if add.button("Add", key=WATCH_ADD_BUTTON):
        with error_boundary(f"Watching {typed.strip()}"):
            watch(store, actor, WatchItem(typed))
            flash("search", f"Watching {typed.strip().upper()}")
            st.rerun()
    if not items:
        st.caption("You watch no CUSIPs yet: add one here or from its security page.")
    else:
        st.dataframe(watchlist_table(items), hide_index=True, width="stretch")
        chosen = st.selectbox("Alerts of", [i.cusip for i in items], key=WATCH_ITEM)
        render_watch(store, actor, chosen, "search", items)
    render_watch_email(store, actor)
    alerts = alerts_table(store, actor)
    st.markdown("**Recent alerts**")
    if alerts.empty:
        st.caption("No watchlist alerts yet.")
    else:
        st.dataframe(alerts, hide_index=True, width="stretch")
