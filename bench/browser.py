"""Browser-felt latency on the demo store (issue 14 item 9): click → content in a real browser.

    .venv/bin/python bench/browser.py                 # 10 rounds
    .venv/bin/python bench/browser.py --repeat 20

Sets up a fresh store in a temporary folder as `make run` does (`python -m core init` with the
demo data, an admin, and a job whose inbox gets a new demo file before each Run now), starts the
scheduler and `streamlit run app.py` on a free loopback port, logs in as the admin in headless
Debian Chromium (Playwright) and times, N times each:

- every page switch of the sidebar (the pages an admin's nav shows), from the click on the link to
  the page's own main element on screen (a heading and a widget of that page, not just the
  address), and to the end of the page's run (no running indicator);
- the main actions: search a CUSIP (Enter → its result caption), open a security from the search
  result (click → its price chart), load a file in Manual Color (click → the loaded rows), Run
  now on Automation (click → the run's result, drawn live by the page).

The clock is the page's own (performance.now() in a capture-phase click listener, then a check on
every animation frame), so Playwright's polling adds nothing. Prints p50/p95 and the budget
verdict: every page switch p50 ≤ 500 ms, the Dashboard included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
BUDGET_PAGE_MS = 500  # p50 of every page switch
ADMIN, PASSWORD = "desk", "correct horse battery staple"
JOB = "Bench inbox"
WAIT_MS = 60_000  # the longest any one step may take before the bench gives up


# -- what "content" is, per page ---------------------------------------------------------------
@dataclass(frozen=True)
class Needle:
    """An element that must be on screen: a CSS selector, and text it must hold (exactly for
    headings, as a substring otherwise)."""

    css: str
    text: str = ""
    exact: bool = False


def heading(title: str) -> Needle:
    return Needle("h1", title, exact=True)


def by_testid(name: str, text: str = "") -> Needle:
    return Needle(f'[data-testid="{name}"]', text)


# Each page's heading and its main widget (the part a person opened the page for).
PAGES: dict[str, tuple[Needle, ...]] = {
    "Dashboard": (heading("Dashboard"), by_testid("stMetric", "Latest parents"),
                  by_testid("stPlotlyChart")),
    "Search": (heading("Search"), Needle('input[aria-label="CUSIP, ticker or MESSAGE_ID"]')),
    "Manual Color": (heading("Manual Color"),
                     Needle('[data-testid="stTab"][aria-selected="true"]', "Session"),
                     Needle("button", "Start a session")),
    "Automation": (heading("Automation"), by_testid("stAlert", "The scheduler is running"),
                   Needle('[data-testid="stDataFrame"]')),
    "Rules": (heading("Rules"), Needle('[data-testid="stDataFrame"]')),
    "Settings": (heading("Settings"), Needle('[data-testid="stDataFrame"]')),
    "Audit": (heading("Audit"), by_testid("stMarkdownContainer", "Changes ("),
              Needle('[data-testid="stDataFrame"]')),
    "Account": (heading("Account"), by_testid("stHeading", "Your recent logins")),
}

# In the page: true once every needle has a visible match outside a stale (fading) element; the
# first true check stamps window.__mpDone.
SHOWN_JS = """needles => {
  const visible = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const fresh = el => !el.closest('[data-stale="true"]');
  const ok = needles.every(n => [...document.querySelectorAll(n.css)].some(el =>
      visible(el) && fresh(el) && (!n.text || (n.exact ? el.innerText.trim() === n.text
                                                       : el.innerText.includes(n.text)))));
  if (ok && window.__mpDone === null) window.__mpDone = performance.now();
  return ok;
}"""
IDLE_JS = """() => {
  const busy = document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
            || document.querySelector('[data-stale="true"]');
  if (!busy && window.__mpIdle === null) window.__mpIdle = performance.now();
  return !busy;
}"""
ARM_JS = """() => {
  window.__mpClick = null; window.__mpDone = null; window.__mpIdle = null;
  const stamp = () => { if (window.__mpClick === null) window.__mpClick = performance.now(); };
  document.addEventListener('click', stamp, {capture: true, once: true});
  document.addEventListener('keydown', stamp, {capture: true, once: true});
}"""


def needles_js(needles: tuple[Needle, ...]) -> list[dict]:
    return [{"css": n.css, "text": n.text, "exact": n.exact} for n in needles]


# -- the served app ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    env.update(MARKETPULSE_STORE_URL=str(folder / "store"), MARKETPULSE_DEMO="1",
               MARKETPULSE_SECRETS_FILE=str(folder / "secrets.toml"))
    return env


def set_up_store(folder: Path, env: dict[str, str]) -> Path:
    """`python -m core init` (demo data, the login key), an admin, and a job reading an inbox
    folder. Returns the inbox."""
    py = sys.executable
    subprocess.run([py, "-m", "core", "init"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([py, "-m", "core", "users", "create", ADMIN, "--role", "admin",
                    "--password-stdin"], cwd=ROOT, env=env, check=True, input=PASSWORD,
                   text=True, stdout=subprocess.DEVNULL)
    inbox = folder / "inbox"
    inbox.mkdir()
    subprocess.run([py, "-m", "core", "jobs", "add", "--name", JOB, "--at", "05:00",
                    "--weekdays", "sat", "--tz", "UTC", "--source", f"inbox:{inbox}"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return inbox


def _healthy(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"streamlit did not become healthy in {seconds:.0f} s")


@contextmanager
def served(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """The scheduler and `streamlit run app.py` on a free loopback port; yields the app's URL."""
    port = free_port()
    with ExitStack() as stack:
        logs = [stack.enter_context(open(folder / name, "wb"))  # read them when a step fails
                for name in ("scheduler.log", "streamlit.log")]
        scheduler = subprocess.Popen([sys.executable, "-m", "core.scheduler"], cwd=ROOT, env=env,
                                     stdout=logs[0], stderr=subprocess.STDOUT)
        stack.callback(_stop, scheduler)
        app = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
             str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        stack.callback(_stop, app)
        url = f"http://127.0.0.1:{port}"
        _healthy(url, app)
        yield url


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- timing ------------------------------------------------------------------------------------
@dataclass
class Timing:
    content_ms: float  # click → the needles on screen
    idle_ms: float  # click → the run over (no running indicator, nothing stale)


def timed(page, act: Callable[[], None], needles: tuple[Needle, ...]) -> Timing:
    """Arm the page's clock, act (a click or a key), and wait on every animation frame for the
    needles, then for the end of the run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate(ARM_JS)
    act()
    try:
        page.wait_for_function(SHOWN_JS, arg=needles_js(needles), polling="raf",
                               timeout=WAIT_MS)
    except PlaywrightTimeout:
        missing = [n for n in needles if not page.evaluate(SHOWN_JS, needles_js((n,)))]
        raise RuntimeError(f"not on screen after {WAIT_MS / 1000:.0f} s at {page.url}: "
                           f"{missing}") from None
    page.wait_for_function(IDLE_JS, polling="raf", timeout=WAIT_MS)
    click, done, idle = page.evaluate("() => [window.__mpClick, window.__mpDone, window.__mpIdle]")
    if click is None:
        raise RuntimeError("the action sent no click or key to the page")
    return Timing(done - click, max(idle, done) - click)


def settle(page) -> None:
    """Wait until the page's run is over: no running indicator, no stale element."""
    page.evaluate(ARM_JS)
    page.wait_for_function(IDLE_JS, polling="raf", timeout=WAIT_MS)


def login(page, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("textbox", name="Username").fill(ADMIN)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True).first).to_be_visible(
        timeout=WAIT_MS)
    page.wait_for_function("document.cookie.includes('marketpulse_auth=')", timeout=WAIT_MS)
    settle(page)


def nav_titles(page) -> list[str]:
    """The pages the sidebar lists, in its order."""
    links = page.locator('[data-testid="stSidebarNav"] a')
    return [t.split("\n")[-1].strip() for t in links.all_inner_texts()]  # after the icon


def nav_link(page, title: str):
    return page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)


def page_switches(page, titles: list[str], rounds: int,
                  only: list[str]) -> dict[str, list[Timing]]:
    """Visit the pages in the nav's order, `rounds` times; each switch comes from the page
    before it in that order. only: time just these pages (each reached from the page before it
    in the nav)."""
    found: dict[str, list[Timing]] = {title: [] for title in (only or titles)}
    start = titles.index("Dashboard")
    order = titles[start + 1:] + titles[:start + 1]  # the session starts on the Dashboard
    if only:
        order = [t for title in only for t in (titles[titles.index(title) - 1], title)]
    for _ in range(rounds):
        for title in order:
            needles = PAGES.get(title, (heading(title),))  # a new page: its heading
            timing = timed(page, nav_link(page, title).click, needles)
            if title in found:  # else only the way to a timed page
                found[title].append(timing)
    return found


def new_inbox_file(inbox: Path, round_: int) -> None:
    """A demo workbook the job's inbox has not seen (a new seed: new prices, so no duplicates)."""
    from core.cli.demo import generate_colors
    from core.runs.exports import write_xlsx
    from core.schema import INPUT_COLUMNS

    frame = generate_colors(400, seed=1000 + round_, date="2026-03-13", cusips=80)
    data = write_xlsx(frame[list(INPUT_COLUMNS)], sheet_name="Colors")
    partial = inbox / f".bench-{round_}.part"
    partial.write_bytes(data)
    partial.rename(inbox / f"bench-{round_}.xlsx")


def actions(page, url: str, inbox: Path, sample: Path, cusip: str,
            rounds: int) -> dict[str, list[Timing]]:
    from playwright.sync_api import expect

    found: dict[str, list[Timing]] = {"search a CUSIP": [], "open a security": [],
                                      "load a file (Manual Color)": [], "run now (Automation)": []}
    for round_ in range(rounds):
        # Search → a CUSIP's rows → its security page.
        nav_link(page, "Search").click()
        box = page.get_by_role("textbox", name="CUSIP, ticker or MESSAGE_ID")
        expect(box).to_be_visible(timeout=WAIT_MS)
        settle(page)
        typed = box.input_value()
        box.fill(cusip if typed == cusip.lower() else cusip.lower())  # a new value: a new search
        found["search a CUSIP"].append(timed(page, partial(box.press, "Enter"), (
            by_testid("stCaptionContainer", "groups (a CUSIP in a run)"),
            by_testid("stDataFrame"))))
        grid = page.get_by_test_id("stDataFrame").first
        corner = grid.bounding_box()
        page.mouse.click(corner["x"] + 17, corner["y"] + 35 + 17)  # the first row's checkbox
        opener = page.get_by_role("button", name=f"Open security {cusip}").first
        expect(opener).to_be_visible(timeout=WAIT_MS)
        settle(page)
        found["open a security"].append(timed(page, opener.click, (
            Needle("h1, h2, h3", f"{cusip} · "), by_testid("stPlotlyChart"))))

        # Manual Color: a new session, one file loaded, then discarded.
        nav_link(page, "Manual Color").click()
        page.get_by_role("button", name="Start a session").click()
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Color files (.xlsx")
        uploader.locator("input[type=file]").set_input_files(str(sample))
        load = page.get_by_role("button", name="Load the files")
        expect(load).to_be_enabled(timeout=WAIT_MS)
        settle(page)
        found["load a file (Manual Color)"].append(timed(page, load.click, (
            by_testid("stToast", "Loaded 1 file(s)"), Needle("button", "Save and publish…"))))
        page.get_by_role("button", name="Discard…").click()
        page.get_by_role("button", name="Yes, discard").click()
        expect(page.get_by_role("button", name="Start a session")).to_be_visible(
            timeout=WAIT_MS)

        # Automation: Run now on the inbox job, followed live until its result shows.
        new_inbox_file(inbox, round_)
        nav_link(page, "Automation").click()
        run_now = page.get_by_role("button", name="Run now", exact=True)
        expect(run_now).to_be_visible(timeout=WAIT_MS)
        settle(page)
        found["run now (Automation)"].append(timed(page, run_now.click, (
            by_testid("stAlert", f"of {JOB} succeeded in"),)))
        page.get_by_role("button", name="Dismiss").click()
        expect(page.get_by_role("button", name="Dismiss")).to_have_count(0, timeout=WAIT_MS)
        settle(page)
    return found


# -- report ------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(len(ordered) * q) - 1)]


def report(title: str, rows: dict[str, list[Timing]], budget: float | None) -> bool:
    print(title)
    ok = True
    for name, timings in rows.items():
        content = [t.content_ms for t in timings]
        idle = [t.idle_ms for t in timings]
        p50 = statistics.median(content)
        verdict = ""
        if budget is not None:
            verdict = "  OK" if p50 <= budget else "  OVER"
            ok = ok and p50 <= budget
        print(f"  {name:<27} content p50 {p50:>6.0f} ms  p95 {percentile(content, 0.95):>6.0f} ms"
              f"   run over p50 {statistics.median(idle):>6.0f} ms  p95 "
              f"{percentile(idle, 0.95):>6.0f} ms{verdict}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="times each switch and action")
    parser.add_argument("--pages-only", action="store_true", help="skip the actions")
    parser.add_argument("--actions-only", action="store_true", help="skip the page switches")
    parser.add_argument("--page", action="append", default=[], metavar="TITLE",
                        help="time only switches to this page (again for more), e.g. Dashboard")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from storage import open_store

    with tempfile.TemporaryDirectory(prefix="mp-browser-bench-") as tmp:
        folder = Path(tmp)
        env = _env(folder)
        started = time.perf_counter()
        inbox = set_up_store(folder, env)
        cusip = str(open_store(env["MARKETPULSE_STORE_URL"]).scan(
            "colors", None, ["CUSIP"])["CUSIP"].value_counts().index[0])
        sample = ROOT / "tests" / "data" / "colors-2026-01-11.xlsx"
        print(f"MarketPulse browser benchmark: demo store set up in "
              f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}; headless Chromium, admin, {args.repeat} rounds; budget: "
              f"every page switch p50 ≤ {BUDGET_PAGE_MS} ms", flush=True)
        with served(folder, env) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM,
                                        headless=True, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            login(page, url)
            titles = nav_titles(page)
            unknown = set(args.page) - set(titles)
            if unknown:
                print(f"Not in the nav: {', '.join(sorted(unknown))}", file=sys.stderr)
                return 2
            for title in titles:
                if title not in PAGES:
                    print(f"  ({title}: no main widget named in PAGES; timed to its heading)")
            ok = True
            if not args.actions_only:
                switches = page_switches(page, titles, args.repeat, args.page)
                ok = report("Page switches (sidebar click → the page's main element; → its run "
                            "over)", switches, BUDGET_PAGE_MS)
            if not args.pages_only:
                report("Actions (click or Enter → the result on screen; → the run over)",
                       actions(page, url, inbox, sample, cusip, args.repeat), None)
            browser.close()
        if not args.actions_only:
            print("Budget met." if ok else "Budget missed: a page switch's p50 is over "
                  f"{BUDGET_PAGE_MS} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
