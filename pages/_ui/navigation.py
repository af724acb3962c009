"""The app's pages: which a role may open, and stand-ins for their addresses while nobody is
logged in, so a shared link (`/security?cusip=…`) survives the login screen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

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
