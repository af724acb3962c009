"""How soon a run published through one node shows on another node's page (shared stores).

    .venv/bin/python bench/nodes.py --store postgres   # a schema of its own on 127.0.0.1:5432
    .venv/bin/python bench/nodes.py --store s3         # moto's S3 server, started here
    .venv/bin/python bench/nodes.py --store local      # a folder (one host)

Starts app node B (`streamlit run app.py`, its own secrets file and read copy) on the store and
logs an admin into its Dashboard in Chromium. Node A is this process: it publishes a run through
core (as `python -m core process` or a scheduler on another host would), and the clock starts
when the run's record says success. Then, for each of --repeat runs:

- idle: node B's Dashboard, left alone, shows "Run N: success" (its run watch polls the store
  every 30 s while nothing runs: pages/dashboard.py IDLE_EVERY), and
- rerun: a reload of node B's Dashboard right after the publish shows the run (the page's caches
  are keyed by the store's data version, read on every rerun), beside a reload with nothing new.

Prints seconds per run and the load average (wall times depend on what else the box runs).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _shared_store(kind: str, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(store URL, its secrets section as TOML lines' key → value) for `kind`; removed after."""
    if kind == "local":
        yield str(folder / "store"), {}
    elif kind == "postgres":
        import sqlalchemy as sa

        schema = f"mp_bench_nodes_{os.getpid()}"
        try:
            yield f"{POSTGRES_URL}?schema={schema}", {"section": "sql"}
        finally:
            engine = sa.create_engine(POSTGRES_URL)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()
    else:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        bucket = f"mp-{uuid.uuid4().hex[:12]}"
        boto3.session.Session().client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
            region_name="us-east-1").create_bucket(Bucket=bucket)
        try:
            yield f"s3://{bucket}/desk", {"section": "s3", "endpoint_url": endpoint,
                                          "access_key_id": "test", "secret_access_key": "test",
                                          "region": "us-east-1"}
        finally:
            server.stop()


def _settings_file(path: Path, section: dict[str, str], cache: Path) -> None:
    lines = ["[auth]", f'cookie_key = "{uuid.uuid4().hex * 2}"']
    if section:
        values = {k: v for k, v in section.items() if k != "section"}
        lines += [f"[{section['section']}]", f'cache_dir = "{cache}"']
        lines += [f'{k} = "{v}"' for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")


def _environ(url: str, secrets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    env.update(MARKETPULSE_STORE_URL=url, MARKETPULSE_DEMO="0",
               MARKETPULSE_SECRETS_FILE=str(secrets))
    return env


@contextmanager
def _node(env: dict[str, str], log: Path) -> Iterator[str]:
    """`streamlit run app.py` with env; its URL once healthy."""
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
             str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"node did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _publish(store, settings, number: int) -> int:
    """Node A publishes a run of 200 colors of its own; returns its id once it is visible."""
    from core.access import SYSTEM
    from core.cli.demo import generate_colors
    from core.runs.exports import write_csv
    from core.runs.pipeline import process_files
    from core.schema import INPUT_COLUMNS

    frame = generate_colors(200, seed=100 + number, date=f"2026-03-{10 + number:02d}")
    result = process_files(store, SYSTEM, [(f"node-a-{number}.csv",
                                            write_csv(frame[list(INPUT_COLUMNS)]))],
                           settings=settings)
    return result.record.run_id


def measure(kind: str, repeat: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    from core.access import SYSTEM
    from core.config import load_settings, store_options
    from core.identity.users import create_user
    from storage import open_store

    with tempfile.TemporaryDirectory(prefix="mp-bench-nodes-") as tmp, \
            _shared_store(kind, Path(tmp)) as (url, section):
        folder = Path(tmp)
        secrets_a, secrets_b = folder / "secrets-a.toml", folder / "secrets-b.toml"
        _settings_file(secrets_a, section, folder / "cache-a")
        _settings_file(secrets_b, section, folder / "cache-b")
        env_a = _environ(url, secrets_a)
        settings = load_settings(_toml(secrets_a), env_a)
        store = open_store(url, store_options(settings))  # node A
        create_user(store, SYSTEM, "ada", name="Ada Admin", email="ada@desk.test", role="admin",
                    password=PASSWORD, temporary=False)
        _publish(store, settings, 0)
        with _node(_environ(url, secrets_b), folder / "node-b.log") as node_b, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(node_b)
            page.get_by_role("textbox", name="Username").fill("ada")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            expect(page.get_by_text("Run 1: success").first).to_be_visible(timeout=WAIT_MS)
            idle, rerun, unchanged = [], [], []
            for number in range(1, repeat + 1):
                run_id = _publish(store, settings, 2 * number - 1)
                published = time.monotonic()
                expect(page.get_by_text(f"Run {run_id}: success").first).to_be_visible(
                    timeout=WAIT_MS)
                idle.append(time.monotonic() - published)
                started = time.monotonic()
                page.reload()
                expect(page.get_by_text(f"Run {run_id}: success").first).to_be_visible(
                    timeout=WAIT_MS)
                unchanged.append(time.monotonic() - started)
                run_id = _publish(store, settings, 2 * number)
                published = time.monotonic()
                page.reload()
                expect(page.get_by_text(f"Run {run_id}: success").first).to_be_visible(
                    timeout=WAIT_MS)
                rerun.append(time.monotonic() - published)
                print(f"  run {run_id}: idle page {idle[-1]:5.1f} s · reload after the publish "
                      f"{rerun[-1]:4.1f} s (a reload with nothing new {unchanged[-1]:4.1f} s)",
                      flush=True)
            browser.close()
        print(f"{kind}: a publish by node A shows on node B's Dashboard: left alone "
              f"{min(idle):.1f}–{max(idle):.1f} s (median {statistics.median(idle):.1f}); on a "
              f"reload {statistics.median(rerun):.1f} s (a reload with nothing new "
              f"{statistics.median(unchanged):.1f} s); load average "
              f"{os.getloadavg()[0]:.1f}")
        if hasattr(store, "dispose"):
            store.dispose()


def _toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("postgres", "s3", "local"), default="postgres")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    measure(args.store, args.repeat)


if __name__ == "__main__":
    main()
