"""Driving the Manual Color page in AppTest: start a session, load files, read the tables, edit
the rows table (AppTest cannot type into st.data_editor, so a test sets its edit state as the
browser does), apply, and save through the confirmation."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.access import Actor
from core.config import load_settings
from core.manual import sessions
from core.schema import COLOR_ID, CUSIP, IS_PARENT, PX
from tests.pages.conftest import upload

PAGE = "pages/manual_color.py"
SETTINGS = load_settings({}, {})
ANA = Actor("ana", "analyst")
STALE = "the session changed in another window; reload"
EDITOR = "manual_color.editor."


def ok(at: AppTest) -> AppTest:
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def page(app_as, username="ana", role="analyst", **kwargs) -> AppTest:
    at = app_as(username, role, page=PAGE, **kwargs)
    assert at.title[0].value == "Manual Color"
    return ok(at)


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception
    return at


def start(app_as, *files, **kwargs) -> AppTest:
    """The page with a started session and `files` loaded through the uploader."""
    at = ok(click(page(app_as, **kwargs), "manual_color.start"))
    if files:
        at = upload(at, "manual_color.files", *files)
        ok(click(at, "manual_color.load_files"))
    return at


def editor(at: AppTest):
    (found,) = [e for e in at.data_editor if (e.key or "").startswith(EDITOR)]
    return found


def rows(at: AppTest) -> pd.DataFrame:
    """The rows table as shown (COLOR_ID, Role, Pinned, then the columns)."""
    return editor(at).value.reset_index(drop=True)


def edit(at: AppTest, *, edited: dict[int, dict] | None = None, added: list[dict] | None = None,
         deleted: list[int] | None = None) -> AppTest:
    """Change the rows table as typing, pasting, adding or deleting in the browser does: the
    editor's state holds the changes by row position; nothing is applied yet."""
    at.session_state[editor(at).key] = {"edited_rows": edited or {}, "added_rows": added or [],
                                        "deleted_rows": deleted or []}
    at.run()
    assert not at.exception
    return at


def apply(at: AppTest) -> AppTest:
    return click(at, "manual_color.apply_edits")


def save(at: AppTest) -> AppTest:
    """Save and publish…, then Yes in the confirmation."""
    click(at, "manual_color.save")
    return click(at, "manual_color.save_confirm")


def preview(at: AppTest) -> pd.DataFrame:
    return at.dataframe(key="manual_color.preview").value.reset_index(drop=True)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def counts(colors, parents, excluded=0, quarantined=0) -> dict[str, str]:
    return {"Colors": str(colors), "Parents": str(parents), "Children": str(colors - parents),
            "Excluded": str(excluded), "Quarantined": str(quarantined)}


def toasts(at: AppTest) -> list[str]:
    return [t.value for t in at.toast]


def core_view(store, actor=ANA) -> sessions.SessionView:
    return sessions.preview(store, actor, SETTINGS)


def expected_rows(view: sessions.SessionView) -> list[tuple]:
    ranked = view.ranked
    roles = ["pinned parent" if p and c in view.session.pinned else "parent" if p else "child"
             for p, c in zip(ranked[IS_PARENT], ranked[COLOR_ID], strict=True)]
    return list(zip(ranked[COLOR_ID], roles, ranked[CUSIP], ranked[PX], strict=True))


def shown_rows(at: AppTest) -> list[tuple]:
    table = rows(at)
    return list(zip(table[COLOR_ID], table["Role"], table[CUSIP], table[PX], strict=True))
