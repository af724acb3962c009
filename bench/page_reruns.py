"""Page rerun benchmark on the demo store (DESIGN.md §7: a page rerun, server side, ≤ 300 ms).

    .venv/bin/python bench/page_reruns.py             # every page as an admin, 10 reruns each
    .venv/bin/python bench/page_reruns.py --repeat 30

Loads the demo data `make run` loads (five days, one demo rule) into a temporary local store, opens
app.py in Streamlit's AppTest as a logged-in admin (the page tests' way), and times each page: the
first run (caches cold) and then reruns, which are what a user's every click costs on the server.
Streamlit caches stay warm across reruns, as in the app. The browser's own rendering is not in
these numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_RERUN_MS = 300
PASSWORD = "correct horse battery staple"  # a throwaway admin of a temporary store
PAGES = (("Dashboard", "pages/dashboard.py"), ("Search", "pages/search.py"),
         ("Security", "pages/security.py"), ("Manual Color", "pages/manual_color.py"),
         ("Rules", "pages/rules.py"), ("Automation", "pages/automation.py"),
         ("Settings", "pages/settings.py"), ("Account", "pages/account.py"))


def _open(username: str, page: str, query: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    now = datetime.now(UTC)
    for key, value in {"authentication_status": True, "username": username, "name": username,
                       "roles": ["admin"], "logout": False, "auth.login_at": now,
                       "auth.last_seen": now}.items():
        at.session_state[key] = value
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at.switch_page(page)


def _time(run) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="reruns per page")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # AppTest's "missing ScriptRunContext" noise
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MARKETPULSE_STORE_URL"] = f"{tmp}/store"
        os.environ["MARKETPULSE_AUTH_COOKIE_KEY"] = "k" * 40  # this process only
        from core.cli.demo import load_demo
        from core.config import load_settings
        from core.identity.users import create_first_admin
        from storage import open_store

        store = open_store(f"{tmp}/store")
        started = time.perf_counter()
        load_demo(store, load_settings({}, {}))
        create_first_admin(store, "bench", "Bench", "bench@desk.test", PASSWORD)
        cusip = store.scan("colors", None, ["CUSIP"])["CUSIP"].iloc[0]
        loaded = time.perf_counter() - started
        print(f"MarketPulse page benchmark: demo store loaded in {loaded:.1f} s; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; reruns of each "
              f"page as an admin, budget {BUDGET_RERUN_MS} ms", flush=True)
        for title, path in PAGES:
            query = {"cusip": cusip} if title == "Security" else {}
            at = _open("bench", path, query)
            first = _time(at.run)
            problems = [e.value for e in at.exception]
            reruns = [_time(at.run) for _ in range(args.repeat)]
            p50 = statistics.median(reruns)
            p95 = sorted(reruns)[max(0, round(len(reruns) * 0.95) - 1)]
            verdict = "OK" if p50 <= BUDGET_RERUN_MS else "OVER"
            print(f"  {title:<13} first {first:>6.0f} ms  rerun p50 {p50:>5.0f} ms  "
                  f"p95 {p95:>5.0f} ms  {verdict}"
                  + (f"  EXCEPTION: {problems[0][:80]}" if problems else ""), flush=True)


if __name__ == "__main__":
    main()
