"""One real-browser smoke test: `streamlit run app.py` in Debian's Chromium through Playwright.

Log in through the real form, reload (the cookie keeps you in), visit every page, log out; a wrong
password shows an error; an analyst finds a demo CUSIP in Search and opens its price chart, edits
and publishes in Manual Color; an admin watches a Run now live on Automation.

The served store is the app's MARKETPULSE_STORE_URL: a local folder, then a PostgreSQL schema of
its own (`served`; the app, its scheduler and the test share it by URL, as `make run` does). On
PostgreSQL only the journeys that work the store most run (LOCAL_ONLY marks the others): the
analyst's search and chart on the demo data, the Manual Color publish and the live Run now. Every
journey on both cost ~127 s more than local alone (218 s against 91 s on this 2-core box), over
CI's budget; these three cost ~50 s more (141 s in all)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock
import pytest

from core.access import SYSTEM
from core.automation.jobs import Job, save_job
from core.cli.demo import load_demo
from core.config import load_settings
from core.identity.users import create_first_admin, create_user
from core.reads.history import published_colors
from core.runs.exports import write_xlsx
from core.runs.records import load_runs
from core.schema import CUSIP, INPUT_COLUMNS, RUN_ID, TICKER
from storage import Store, open_store
from tests.conftest import POSTGRES_URL
from tests.factories import VALID_CUSIPS, make_colors

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


@dataclass
class Served:
    """The served store as the app and its scheduler get it (a URL), and the test's own view."""

    kind: str  # "local" or "postgres"
    url: str
    folder: Path  # temporary: the secrets file and the nodes' read copy
    store: Store
    schema: str = ""  # PostgreSQL's

    def env(self) -> dict[str, str]:
        """The served app's environment (the scheduler's too): the store URL, and its own
        secrets file (the app generates the login key there, never in the clone's .streamlit/)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
        env.update(MARKETPULSE_STORE_URL=self.url, MARKETPULSE_DEMO="0",
                   MARKETPULSE_SECRETS_FILE=str(self.folder / "secrets.toml"),
                   MARKETPULSE_SQL_CACHE_DIR=str(self.folder / "sql-cache"))
        return env

    @contextmanager
    def documents_held(self) -> Iterator[None]:
        """Hold every document write of the store (reads go on) until the block ends: the local
        store's document lock; on PostgreSQL, the documents table locked EXCLUSIVE (readers'
        ACCESS SHARE still passes, every writer's ROW EXCLUSIVE waits)."""
        if self.kind == "local":
            with filelock.FileLock(str(Path(self.url) / ".lock")):
                yield
            return
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(sa.text(
                    f'LOCK TABLE "{self.schema}".mp_documents IN EXCLUSIVE MODE'))
                yield
        finally:
            engine.dispose()


@pytest.fixture(scope="module",
                params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request, tmp_path_factory) -> Iterator[Served]:
    """The served store: an admin and a viewer, no colors (a test may publish some). Once a local
    folder, once a PostgreSQL schema of its own (dropped at the end)."""
    folder = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "local":
        served = Served("local", str(folder / "store"), folder, open_store(str(folder / "store")))
    else:
        engine, prefix = request.getfixturevalue("_postgres")
        schema = f"{prefix}browser"
        url = f"{POSTGRES_URL}?schema={schema}"
        store = open_store(url, {"sql.cache_dir": str(folder / "sql-cache-test")})
        served = Served("postgres", url, folder, store, schema)
    create_first_admin(served.store, "admin", "Ada Admin", "admin@desk.test", PASSWORD)
    create_user(served.store, SYSTEM, "vera", name="Vera Viewer", email="vera@desk.test",
                role="viewer", password=PASSWORD, temporary=False)
    yield served
    if served.kind == "postgres":
        import sqlalchemy as sa

        served.store.dispose()  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{served.schema}" CASCADE'))


# The journeys that barely touch the store run on the local one only (CI's time budget).
LOCAL_ONLY = pytest.mark.parametrize("served", ["local"], indirect=True)


@pytest.fixture(scope="module")
def server(served):
    port = _free_port()
    env = served.env()
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
    """Type as soon as the form shows: the runs that follow (the cookie component's answer, and
    on a fresh server its first run) draw the same form, so nothing typed is lost."""
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=20_000)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Login").click()


@LOCAL_ONLY
def test_the_first_visitor_of_a_fresh_server_logs_in_through_a_deep_link(server, browser):
    """The server's first run (Streamlit's pages-folder mode, see pages/_ui/navigation.py
    same_ids_in_every_run) shows the login form, keeps what is typed at once and the address."""
    page = browser.new_page()
    page.goto(f"{server}/settings")
    _login(page, "admin", PASSWORD)
    expect(page.get_by_role("heading", name="Settings", exact=True).first).to_be_visible(
        timeout=20_000)
    assert page.url == f"{server}/settings"
    page.close()


@LOCAL_ONLY
def test_a_deep_link_before_login_shows_the_login_form(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/settings")
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("heading", name="Settings")).to_have_count(0)
    page.close()


@LOCAL_ONLY
def test_wrong_password_shows_an_error(server, browser):
    page = browser.new_page()
    page.goto(server)
    _login(page, "admin", "not the password at all")
    expect(page.get_by_text("Username or password is incorrect")).to_be_visible(timeout=15_000)
    page.close()


@LOCAL_ONLY
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


@LOCAL_ONLY
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
def demo(served):
    """The demo colors `make run` loads, published in the served store, and an analyst."""
    store = served.store
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
    walk right with the arrow keys (column widths follow the content). The walk starts once the
    grid's canvas has the focus (the grid may take it an animation frame after the click, and a
    key pressed before is lost): on a busy box the first edit twice landed a column short."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 60, box["y"] + 35 + row * 35 + 17)
    expect(grid.get_by_test_id("data-grid-canvas")).to_be_focused(timeout=20_000)
    for _ in range(column):
        page.keyboard.press("ArrowRight")


def _page_drawn(page) -> None:
    """Manual Color's run is over (no running indicator, no stale element of the previous run
    left beside the new ones) and Save is enabled (no change waits to be applied)."""
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=20_000)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=20_000)
    expect(page.get_by_role("button", name="Save and publish…")).to_be_enabled(timeout=20_000)


def test_analyst_edits_pastes_and_publishes_in_manual_color(server, served, browser):
    from core.access import Actor
    from core.manual import sessions
    from core.runs import records as runs

    store = served.store
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
@LOCAL_ONLY
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


@LOCAL_ONLY
def test_the_first_login_password_change_survives_a_reload(server, served, browser):
    temporary = "a temporary password 1"
    create_user(served.store, SYSTEM, "tom", name="Tom Trader",
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


@contextmanager
def _scheduler(served: Served) -> Iterator[subprocess.Popen]:
    """`python -m core.scheduler` on the served store, as `make run` starts it beside the app."""
    proc = subprocess.Popen([sys.executable, "-m", "core.scheduler"], cwd=ROOT,
                            env=served.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()  # it stops after the run in progress
        proc.wait(timeout=60)


def _until_running(store, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Return once the scheduler's live status shows a run in progress (polled every 10 ms)."""
    from core.automation.progress import current_run

    deadline = time.monotonic() + timeout
    while current_run(store) is None:
        assert proc.poll() is None, "the scheduler exited"
        assert not load_runs(store, limit=1) or load_runs(store, limit=1)[0].job != "Inbox", (
            "the run ended before it was seen running")
        assert time.monotonic() < deadline, "the scheduler did not start the run"
        time.sleep(0.01)


def test_an_admin_watches_a_run_now_live_on_automation(server, served, browser, tmp_path):
    """Run now on a job whose inbox holds a file: the page says the run is queued, then running,
    then what it published, by itself (no reload)."""
    rows = 3000
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "colors.xlsx").write_bytes(write_xlsx(make_colors(rows)[list(INPUT_COLUMNS)]))
    store = served.store
    save_job(store, SYSTEM, Job(name="Inbox", schedule="0 0 1 1 *", timezone="UTC",
                                sources=[{"kind": "inbox", "path": str(inbox)}]))
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    page = context.new_page()
    page.goto(server)
    _login(page, "admin", PASSWORD)
    _signed_in(page)
    _open_page(page, "Automation")
    expect(page.get_by_text("The scheduler is not running").first).to_be_visible(timeout=20_000)

    # No scheduler yet: the request waits in the queue, and the page says so.
    page.get_by_role("button", name="Run now", exact=True).click()
    expect(page.get_by_text(re.compile(
        r"^A run of Inbox is queued, requested by admin: waiting \d+ s for the scheduler to pick "
        r"it up\.$"))).to_be_visible(timeout=20_000)
    with _scheduler(served) as scheduler:
        # Once the run shows as running, the test holds the store's document writes (Served.
        # documents_held): the run cannot write its next stage or its record, so the page shows
        # it running however fast it is (the page only reads).
        _until_running(store, scheduler)
        with served.documents_held():
            expect(page.get_by_text(re.compile(
                r"^Running Inbox( \(run \d+\))?, requested by admin: [a-z+_]+(, 1 file)?"
                r"(, [\d,]+ rows)?, \d+ s so far\.$"))).to_be_visible(timeout=20_000)
        done = page.get_by_text(re.compile(r"^Run \d+ of Inbox succeeded in "))
        expect(done).to_be_visible(timeout=60_000)
    record = load_runs(store, limit=1)[0]
    assert (record.job, record.status, record.trigger, record.requested_by) == (
        "Inbox", "success", "run_now", "admin")
    assert done.inner_text() == (
        f"Run {record.run_id} of Inbox succeeded in {record.duration_s:.1f} s: "
        f"{rows:,} colors published, {len(VALID_CUSIPS)} parents.")
    assert list(record.stages) == ["read", "validate", "already_published", "rules+rank",
                                   "publish", "workbook"]
    expect(page.get_by_text("Stages: " + " · ".join(
        f"{stage} {seconds:.2f} s" for stage, seconds in record.stages.items()))).to_be_visible()
    assert [p.name for p in (inbox / "processed").iterdir()] == [
        f"{record.run_id}-colors.xlsx"]
    context.close()
