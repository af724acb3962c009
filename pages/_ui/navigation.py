"""The app's pages: which a role may open, and stand-ins for their addresses while nobody is
logged in, so a shared link (`/security?cusip=…`) survives the login screen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from core.access import ADMIN, ANALYST, VIEWER


@dataclass(frozen=True)
class PageSpec:
    section: str
    url_path: str  # the page's address, /<url_path>; stand-ins keep it through the login
    title: str
    icon: str
    roles: tuple[str, ...] = (VIEWER, ANALYST, ADMIN)
    hidden: bool = False  # reached by link only (a CUSIP's page)

    @property
    def script(self) -> str:
        return f"pages/{self.url_path}.py"


DEFAULT = "dashboard"
PAGES = (
    PageSpec("Colors", "dashboard", "Dashboard", "📊"),
    PageSpec("Colors", "search", "Search", "🔍"),
    PageSpec("Colors", "security", "Security", "🏷️", hidden=True),
    PageSpec("Colors", "manual_color", "Manual Color", "✍️", roles=(ANALYST, ADMIN)),
    PageSpec("Account", "automation", "Automation", "⏱️", roles=(ADMIN,)),
    PageSpec("Account", "rules", "Rules", "🚫", roles=(ADMIN,)),
    PageSpec("Account", "settings", "Settings", "⚙️", roles=(ADMIN,)),
    PageSpec("Account", "audit", "Audit", "🧾", roles=(ADMIN,)),
    PageSpec("Account", "backups", "Backups", "💾", roles=(ADMIN,)),
    PageSpec("Account", "account", "Account", "👤"),
)


def pages_for(role: str) -> dict[str, list[st.Page]]:
    """The pages this role may open, by section. Pages a role cannot use are not registered, so a
    link to them is "not found" for that role."""
    sections: dict[str, list[st.Page]] = {}
    for spec in PAGES:
        if role in spec.roles:
            sections.setdefault(spec.section, []).append(st.Page(
                spec.script, title=spec.title, icon=spec.icon, url_path=spec.url_path,
                default=spec.url_path == DEFAULT,
                visibility="hidden" if spec.hidden else "visible"))
    return sections


def stand_ins(render: Callable[[], None]) -> list[st.Page]:
    """One page at every address of the app, each rendering `render` (nothing), for the runs
    before login. Streamlit names a page by its address, so the browser keeps the address and
    query parameters it was opened with, and the run after login opens that page. The root's
    stand-in has an address of its own: sharing the Dashboard's made AppTest drop the login
    form's input on submit (it treated the run as a page change)."""
    return [st.Page(render, title="MarketPulse", url_path="signed_out", default=True),
            *(st.Page(render, title="MarketPulse", url_path=spec.url_path) for spec in PAGES)]


@contextmanager
def same_ids_in_every_run() -> Iterator[None]:
    """Draw app.py's own elements (login screens, sidebar, bell) with the ids of every run.

    A server process runs its first script run in Streamlit's old pages-folder mode (app.py has
    a pages/ folder beside it): until the first st.navigation call in the process, Streamlit runs
    app.py as a page of a navigation built from the folder, and an element's id carries the page
    it is drawn under: that run's ids differ from every later run's. The first visitor's login
    form and cookie component were therefore replaced by new ones in the run the component's
    answer asks for, about a second after the form showed: what had been typed was gone (Login
    sent an empty username), and the new component answered again, one more rerun. AppTest runs
    every run in that mode. Under the main script's hash, the ids are the same in both modes."""
    ctx = get_script_run_ctx()
    if ctx is None:  # bare mode: no ids
        yield
        return
    with ctx.run_with_active_hash(ctx.pages_manager.main_script_hash):
        yield


def through_the_login_gate() -> NoReturn:
    """A page script ran without app.py's login gate: only a server's first run does that
    (Streamlit's pages-folder mode runs the page the address names; see same_ids_in_every_run),
    and AppTest. Declare the app's navigation, which ends that mode for the process, and run
    again: app.py's gate runs at the page's address, so a shared link opens after the login."""
    st.navigation(stand_ins(_nothing), position="hidden")
    st.rerun()


def _nothing() -> None:
    """The stand-ins' page while the gate is passed (the run ends before any page runs)."""
