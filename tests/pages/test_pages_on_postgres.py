"""The app on a PostgreSQL store (the server on 127.0.0.1, a schema of the test's own), configured
as a desk would configure it: MARKETPULSE_STORE_URL=postgresql+psycopg://…?schema=… and the read
copy's folder as sql.cache_dir. With the demo data every page renders for an admin, and a search
finds a CUSIP's colors."""

from __future__ import annotations

import os

import pytest

from core.access import SYSTEM
from core.cli.demo import load_demo
from core.config import load_settings, store_options
from core.reads import history
from storage import open_store
from tests.conftest import POSTGRES_URL
from tests.pages.conftest import open_app
from tests.pages.test_navigation import ALL_PAGES
from tests.pages.test_search_page import form_key

DOWN = "The scheduler is not running"  # Automation's banner: no scheduler runs in tests


@pytest.fixture
def postgres_app_store(monkeypatch, postgres_schema, tmp_path):
    for name, value in {
        "MARKETPULSE_STORE_URL": f"{POSTGRES_URL}?schema={postgres_schema}",
        "MARKETPULSE_SQL_CACHE_DIR": str(tmp_path / "sql-cache"),
        "MARKETPULSE_AUTH_COOKIE_KEY": "k" * 40,
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({}, os.environ)
    store = open_store(settings["store.url"], store_options(settings))
    load_demo(store, settings, days=2, rows_per_day=60)
    yield store
    store.dispose()  # type: ignore[attr-defined]  # a SqlStore


def test_every_page_renders_for_an_admin_on_a_postgres_store(postgres_app_store):
    at = open_app(postgres_app_store, "admin", "admin")
    assert not at.exception
    for page, (title, _) in ALL_PAGES.items():
        at.switch_page(page).run()
        assert not at.exception, page
        assert [t.value for t in at.title] == [title], page
        assert [e.value for e in at.error if not e.value.startswith(DOWN)] == [], page


def test_a_search_on_a_postgres_store_finds_the_cusip_s_colors(postgres_app_store):
    cusip = str(history.published_colors(postgres_app_store, SYSTEM)["CUSIP"].iloc[0])
    at = open_app(postgres_app_store, "admin", "admin", page="pages/search.py")
    at.text_input(key=form_key(at, "text")).input(cusip).run()
    assert not at.exception
    [frame] = [d.value for d in at.dataframe][:1]
    assert set(frame["CUSIP"]) == {cusip}
