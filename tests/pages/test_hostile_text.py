"""Values from files on the pages (issue 10 item 8): a TICKER or a file name written as Markdown
shows as literal text (no image fetched, no link), the validation report's CSV escapes formulas,
and a viewer's session that reaches Manual Color directly is refused there."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest, app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core.identity.user_records import get_user
from core.schema import CUSIP, TICKER
from pages._ui.markdown import escape_markdown
from tests.factories import SAMPLE
from tests.pages.conftest import APP, add_user, upload

PAGE = "pages/manual_color.py"
IMAGE = "![x](http://host/p.png)"
LINK_NAME = "[a](http://x).csv"
# Markdown an element would render: an image or link opened, or a bare URL autolinked
ACTIVE = re.compile(r"(?<!\\)\[|(?<!\\)\]\(|https?://|www\.")


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves (AppTest's media storage is made and dropped every run)."""
    storages = []

    class Recording(app_test.MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            storages.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(button: DownloadButton) -> tuple[bytes, str | None]:
        file = storages[-1].get_file(button.proto.url.rsplit("/", 1)[1])
        return file.content, file.filename

    return read


def _colors(**changes) -> pd.DataFrame:
    frame = pd.read_excel(SAMPLE, dtype={"MESSAGE_ID": str}, engine="openpyxl")
    for column, value in changes.items():
        frame[column] = value
    return frame


def _texts(at: AppTest) -> list[str]:
    """Every piece of text the page renders as Markdown (AppTest shows the Markdown source)."""
    kinds = ("markdown", "caption", "info", "success", "warning", "error", "toast", "subheader",
             "title", "expander")
    return [str(getattr(e, "value", None) or getattr(e, "label", "")) for kind in kinds
            for e in at.get(kind)]


def _manual_color(app_as, *files: tuple[str, bytes]) -> AppTest:
    at = app_as("ana", "analyst", page=PAGE)
    at.button(key="manual_color.start").click().run()
    at = upload(at, "manual_color.files", *files)
    at.button(key="manual_color.load_files").click().run()
    assert not at.exception
    return at


def test_a_markdown_ticker_and_file_name_show_as_literal_text(app_as):
    data = _colors(**{TICKER: IMAGE}).to_csv(index=False).encode()
    at = _manual_color(app_as, (LINK_NAME, data))
    assert r"Loaded: \[a\](http\://x).csv" in _texts(at)
    at.session_state["manual_color.preview"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    [line] = [t for t in _texts(at) if "children of parent" in t]
    cusip = at.dataframe(key="manual_color.preview").value.iloc[0][CUSIP]
    assert line.startswith(rf"**{cusip}** !\[x\](http\://host/p.png): ")
    assert [t for t in _texts(at) if ACTIVE.search(t)] == []


def test_a_hostile_file_name_in_an_error_shows_as_literal_text(app_as):
    at = _manual_color(app_as, ("[a](http://x).csv", b"not,a,color,file\n1,2,3,4\n"))
    assert len(at.error) == 1
    assert r"\[a\](http\://x).csv" in at.error[0].value
    assert [t for t in _texts(at) if ACTIVE.search(t)] == []


def test_the_validation_report_download_escapes_formulas(app_as, served):
    frame = _colors()
    frame.loc[[3], CUSIP] = ""  # one blocking problem, reported with the file's name
    at = _manual_color(app_as, ("=1+2.csv", frame.to_csv(index=False).encode()))
    button = next(b for b in at.get("download_button") if b.key == "manual_color.report.download")
    data, name = served(button)
    assert name == "validation-report.csv"
    report = pd.read_csv(io.BytesIO(data), dtype=str, encoding="utf-8-sig")
    assert set(report["FILE"]) == {"'=1+2.csv"}


def test_a_viewers_session_reaching_manual_color_directly_is_refused(app_store):
    """Streamlit serves a pages/ file by URL before app.py's first run in the server process: the
    page itself must refuse a viewer (and core refuses every session and buffer change)."""
    viewer = add_user(app_store, "vera", "viewer")
    at = AppTest.from_file(str(Path(APP).parent / PAGE), default_timeout=30)
    now = datetime.now(UTC)
    at.session_state["auth.user"] = viewer
    at.session_state["auth.login_at"] = now
    at.session_state["auth.last_seen"] = now
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Only analysts and admins can open Manual Color."]
    assert (len(at.tabs), len(at.file_uploader), len(at.button)) == (0, 0, 0)
    assert get_user(app_store, "vera").role == "viewer"


@pytest.mark.parametrize(("text", "shown"), [
    (IMAGE, r"!\[x\](http\://host/p.png)"),
    ("<http://x> www.x.com", r"\<http\://x\> www\.x.com"),
    ("*bold* _it_ `code`", r"\*bold\* \_it\_ \`code\`"),
    ("~~gone~~ $x$ :red[y]", r"\~\~gone\~\~ \$x\$ :red\[y\]"),
    ("# heading", r"\# heading"), ("- item", r"\- item"), ("2. item", r"2\. item"),
    ("two\nlines", "two lines"), (r"a\[b", r"a\\\[b"),
    # what does nothing alone stays as typed: file names, ids, messages, numbers
    ("colors_2026-03.xlsx (sheet 1): PX", "colors_2026-03.xlsx (sheet 1): PX"),
    ("1.7734E+16", "1.7734E+16"), ("-5", "-5"), ("=1+2", "=1+2"),
])
def test_markdown_in_a_value_is_escaped_and_plain_text_is_not(text, shown):
    assert escape_markdown(text) == shown
