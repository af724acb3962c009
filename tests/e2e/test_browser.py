"""One real-browser smoke test: `streamlit run app.py` in Debian's Chromium through Playwright.

Log in through the real form, reload (the cookie keeps you in), visit every page, log out; a wrong
password shows an error; an analyst finds a demo CUSIP in Search and opens its price chart."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.access import SYSTEM
from core.cli.demo import load_demo
from core.config import load_settings
from core.identity.users import create_first_admin, create_user
from core.reads.history import published_colors
from core.schema import CUSIP, RUN_ID, TICKER
from storage import open_store

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.e2e

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's Chromium is not installed (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402  (after the skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """The served store: an admin and a viewer, no colors (a test may publish some)."""
    store_dir = tmp_path_factory.mktemp("e2e") / "store"
    store = open_store(str(store_dir))
    create_first_admin(store, "admin", "Ada Admin", "admin@desk.test", PASSWORD)
    create_user(store, SYSTEM, "vera", name="Vera Viewer", email="vera@desk.test", role="viewer",
                password=PASSWORD, temporary=False)
    return store_dir


@pytest.fixture(scope="module")
def server(store_dir):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    # Its own secrets file: the app generates the login key there, never in the clone's .streamlit/
    env.update(MARKETPULSE_STORE_URL=str(store_dir), MARKETPULSE_DEMO="0",
               MARKETPULSE_SECRETS_FILE=str(store_dir.parent / "secrets.toml"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not become healthy in 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


def _open_page(page, title: str) -> None:
    """Click a sidebar link once; its page's heading shows."""
    # exact: "Search" is not "Saved searches"; .first: a rerun in flight can briefly show the
    # previous run's heading beside the new one.
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=20_000)


def _signed_in(page) -> None:
    """After a login: the Dashboard shows and the browser holds the login cookie. The cookie
    component answers in the same step as it writes the cookie, so from here on no rerun it asks
    for can land after a click (pages/_ui/auth.py _signing_in)."""
    expect(page.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=20_000)
    page.wait_for_function("document.cookie.includes('marketpulse_auth=')", timeout=20_000)


def _login(page, username: str, password: str) -> None:
    # The first run of a fresh server reruns once (pages/ → st.navigation); let it settle first.
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=20_000)
    page.wait_for_timeout(1000)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_a_deep_link_before_login_shows_the_login_form(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/settings")
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("heading", name="Settings")).to_have_count(0)
    page.close()


def test_wrong_password_shows_an_error(server, browser):
    page = browser.new_page()
    page.goto(server)
    _login(page, "admin", "not the password at all")
    expect(page.get_by_text("Username or password is incorrect")).to_be_visible(timeout=15_000)
    page.close()


def test_admin_logs_in_stays_in_after_reload_visits_every_page_and_logs_out(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    _login(page, "admin", PASSWORD)
    _signed_in(page)
    page.reload()
    expect(page.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=20_000)
    expect(page.get_by_role("textbox", name="Username")).to_have_count(0)
    for title in ("Manual Color", "Automation", "Rules", "Settings", "Account"):
        _open_page(page, title)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("textbox", name="Username").first).to_be_visible(timeout=20_000)
    page.reload()
    # .first: a rerun in flight can briefly leave the previous run's form on screen too.
    expect(page.get_by_role("textbox", name="Username").first).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    context.close()


def test_viewer_sees_only_viewer_pages(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    _login(page, "vera", PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=20_000)
    expect(page.get_by_role("link", name="Account")).to_be_visible()
    expect(page.get_by_role("link", name="Manual Color")).to_have_count(0)
    expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    context.close()


@pytest.fixture(scope="module")
def demo(store_dir):
    """The demo colors `make run` loads, published in the served store, and an analyst."""
    store = open_store(str(store_dir))
    create_user(store, SYSTEM, "ana", name="Ana Analyst", email="ana@desk.test", role="analyst",
                password=PASSWORD, temporary=False)
    assert load_demo(store, load_settings({}, {})) == 5  # what `make run` loads
    return published_colors(store, SYSTEM)


def test_analyst_finds_a_demo_cusip_and_opens_its_chart(server, demo, browser):
    colors = demo
    cusip = colors[CUSIP].value_counts().index[0]
    mine = colors[colors[CUSIP] == cusip]
    newest = mine[mine[RUN_ID] == mine[RUN_ID].max()]
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    _login(page, "ana", PASSWORD)
    _signed_in(page)
    _open_page(page, "Search")

    # The CUSIP's rows: a parent per run (the table is a canvas: its caption says what it holds).
    box = page.get_by_role("textbox", name="CUSIP, ticker or MESSAGE_ID")
    found = page.get_by_text(f"{mine[RUN_ID].nunique()} groups (a CUSIP in a run) · "
                             f"{len(mine)} colors · page 1 of 1").first

    box.fill(cusip.lower())
    box.press("Enter")
    expect(found).to_be_visible(timeout=20_000)

    # Select the newest run's row (its checkbox, first in the grid) and open the security.
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    opener = page.get_by_role("button", name=f"Open security {cusip}").first

    corner = grid.bounding_box()
    page.mouse.click(corner["x"] + 17, corner["y"] + 35 + 17)  # under the 35 px header
    expect(opener).to_be_visible(timeout=20_000)
    expect(page.get_by_text(f"{cusip} run {newest[RUN_ID].iloc[0]}: {len(newest) - 1} other "
                            "color(s)").first).to_be_visible()
    opener.click()
    expect(page.get_by_role("heading", name="Security", exact=True).first).to_be_visible(
        timeout=20_000)
    assert page.url.endswith(f"/security?cusip={cusip}")
    ticker = newest[TICKER].iloc[0]
    expect(page.get_by_role("heading", name=f"{cusip} · {ticker}").first).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text(f"{cusip}: price history").first).to_be_visible()
    context.close()


def _grid_cell(page, grid, row: int, column: int) -> None:
    """Select a cell of a data editor: click the row's first cell (rows and header 35 px), then
    walk right with the arrow keys (column widths follow the content)."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 60, box["y"] + 35 + row * 35 + 17)
    for _ in range(column):
        page.keyboard.press("ArrowRight")


def _page_drawn(page) -> None:
    """Manual Color's run is over (no running indicator, no stale element of the previous run
    left beside the new ones) and Save is enabled (no change waits to be applied)."""
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=20_000)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=20_000)
    expect(page.get_by_role("button", name="Save and publish…")).to_be_enabled(timeout=20_000)


def test_analyst_edits_pastes_and_publishes_in_manual_color(server, store_dir, browser):
    from core.access import Actor
    from core.manual import sessions
    from core.runs import records as runs

    store = open_store(str(store_dir))
    create_user(store, SYSTEM, "ivo", name="Ivo Analyst", email="ivo@desk.test", role="analyst",
                password=PASSWORD, temporary=False)
    context = browser.new_context(viewport={"width": 1600, "height": 1200},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(server)
    _login(page, "ivo", PASSWORD)
    _signed_in(page)
    _open_page(page, "Manual Color")
    page.get_by_role("button", name="Start a session").click()
    expect(page.get_by_role("heading", name="Load colors")).to_be_visible(timeout=20_000)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Color files (.xlsx")
    uploader.locator("input[type=file]").set_input_files(
        str(ROOT / "tests" / "data" / "colors-2026-01-11.xlsx"))
    load = page.get_by_role("button", name="Load the files")
    expect(load).to_be_enabled(timeout=20_000)
    load.click()
    expect(page.get_by_text("Loaded 1 file(s)").first).to_be_visible(timeout=20_000)
    # The run has drawn the whole page once Save is there (it comes after the rows).
    _page_drawn(page)
    editor = page.get_by_test_id("stDataFrame").nth(2)  # report, preview, then the rows
    bid = 9  # COLOR_ID Role Pinned MESSAGE_ID TICKER SECTOR CUSIP DATE PRICE_LEVEL BID

    # Type a cell: Enter opens its editor, Enter commits; PX follows BID once applied.
    _grid_cell(page, editor, 0, bid)
    page.keyboard.press("Enter")
    cell = page.locator("input.gdg-input")
    expect(cell).to_be_visible(timeout=20_000)
    cell.fill("102.5")
    cell.press("Enter")
    expect(page.get_by_text("Not applied yet: 1 cell.")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Apply the changes").click()
    expect(page.get_by_text("Applied 1 cell").first).to_be_visible(timeout=20_000)
    _page_drawn(page)

    # Paste a 2×2 block (BID, ASK of rows 3 and 4) as copied from Excel.
    _grid_cell(page, page.get_by_test_id("stDataFrame").nth(2), 2, bid)
    page.evaluate("text => navigator.clipboard.writeText(text)", "99.5\t100.25\n98.5\t100.5")
    page.keyboard.press("Control+V")
    expect(page.get_by_text("Not applied yet: 4 cells.")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Apply the changes").click()
    expect(page.get_by_text("Applied 4 cells").first).to_be_visible(timeout=20_000)
    _page_drawn(page)
    ivo = Actor("ivo", "analyst")
    session = sessions.load_session(store, ivo)
    assert [step["label"] for step in session.undo] == ["edit 1 cell", "edit 4 cells"]
    rows = sessions.preview(store, ivo, load_settings({}, {})).ranked
    assert rows.loc[rows["BID"] == 102.5, "PX"].tolist() == [102.5]

    # Publish after the confirmation.
    page.get_by_role("button", name="Save and publish…").click()
    expect(page.get_by_text("Publish this session as one MANUAL run?")).to_be_visible(
        timeout=20_000)
    page.get_by_role("button", name="Yes, publish").click()
    expect(page.get_by_text("Published run").first).to_be_visible(timeout=30_000)
    mine = [r for r in runs.load_runs(store) if r.actor == "ivo"]
    assert [(r.kind, r.counts["published"]) for r in mine] == [("MANUAL", 50)]
def test_a_shared_link_opened_logged_out_leads_to_its_page_after_login(server, demo, browser):
    cusip = demo[CUSIP].value_counts().index[-1]
    mine = demo[demo[CUSIP] == cusip]
    ticker = mine[mine[RUN_ID] == mine[RUN_ID].max()][TICKER].iloc[0]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/security?cusip={cusip}")
    _login(page, "ana", PASSWORD)
    expect(page.get_by_role("heading", name=f"{cusip} · {ticker}").first).to_be_visible(
        timeout=20_000)
    assert page.url.endswith(f"/security?cusip={cusip}")
    context.close()


def test_the_first_login_password_change_survives_a_reload(server, store_dir, browser):
    temporary = "a temporary password 1"
    create_user(open_store(str(store_dir)), SYSTEM, "tom", name="Tom Trader",
                email="tom@desk.test", role="viewer", password=temporary, temporary=True)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server)
    _login(page, "tom", temporary)
    expect(page.get_by_role("heading", name="Change your password").first).to_be_visible(
        timeout=20_000)
    page.get_by_role("textbox", name="Temporary password").fill(temporary)
    page.get_by_role("textbox", name="New password (at least 12 characters)").fill(
        "a desk trader's own passphrase")
    page.get_by_role("textbox", name="New password again").fill("a desk trader's own passphrase")
    page.get_by_role("button", name="Change password").click()
    _signed_in(page)
    page.reload()
    expect(page.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=20_000)
    expect(page.get_by_role("textbox", name="Username")).to_have_count(0)
    context.close()
