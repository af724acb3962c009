"""Two app nodes and two schedulers on one shared store (PostgreSQL, then S3 on moto's server).

Four real processes share nothing but the store: `streamlit run app.py` twice (node A and node B,
each with its own secrets file and read copy, the same cookie key) and `python -m core.scheduler`
twice. Through node A's pages in Chromium an admin saves a rule and presses Run now; node B's pages
list the rule and show the run at once. One scheduler holds the lease and runs every trigger
exactly once; it is killed with SIGKILL while a run is held between its rows and its record, which
publishes nothing, and the standby takes the lease over, marks the run abandoned (its rows
removed) and runs the next trigger.

The run is held at a gate the test controls, so it is caught mid-way however fast it goes: its
rows are written and committed, and the run is writing the document that precedes its record
(core.runs.workbooks.mark_pending). On PostgreSQL the test's open transaction has inserted that
document's row first (the run's INSERT waits on it); on S3 the moto server in front of the store
holds that PUT (and never applies it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from core.access import Actor
from core.automation.jobs import Job, pending_triggers, request_run, save_job
from core.automation.leases import lease_holder
from core.automation.scheduler import HEARTBEAT_KEY, LEASE
from core.identity.users import create_first_admin
from core.reads.history import published_colors
from core.rules.exclusion import load_rules
from core.runs.exports import write_xlsx
from core.runs.records import RUN_TABLES, RunRecord, get_run, load_runs, visible_run_ids
from core.runs.workbooks import pending_key
from core.schema import INPUT_COLUMNS, MESSAGE_ID, RUN_ID
from storage import ObjectNotFound, Store, open_store
from storage.run_tables import run_tables
from tests.conftest import POSTGRES_URL, S3_TEST_CREDENTIALS
from tests.e2e.test_browser import PASSWORD, _free_port, browser
from tests.factories import make_colors

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "ada"  # logs in through the pages
ADA = Actor(ADMIN, "admin")  # the same admin, queueing runs through core
RULE = "Drop the test message"
RULE_MESSAGE = "90000000000000001"  # one row of every file the test drops in the inbox
ROWS = 40  # per file
# Short enough for a test: a tick of half a second; a lease of six seconds (a holder's step on
# this busy box must not outlast it, or the standby takes over while the holder still runs).
TICK_S, LEASE_S = "0.5", "6"

WAIT_MS = 60_000  # a page's longest wait: four servers and Chromium share two busy cores

pytestmark = pytest.mark.e2e
__all__ = ["browser"]  # the module-scoped Chromium of tests/e2e/test_browser.py


def _colors_file(number: int) -> bytes:
    """An .xlsx of ROWS colors of its own (no color of another file: none is a duplicate), one of
    them with the message the rule drops."""
    ids = [RULE_MESSAGE] + [str(80000000000000000 + number * 1000 + i) for i in range(ROWS - 1)]
    frame = make_colors(ROWS, MESSAGE_ID=ids,
                        PX=[90.0 + number + i / 100 for i in range(ROWS)])
    return write_xlsx(frame[list(INPUT_COLUMNS)])


def _until(check: Callable[[], Any], what: str, procs: list[subprocess.Popen] | None = None,
           timeout: float = 60.0) -> Any:
    """Poll check() every 50 ms until it returns something true; fail naming `what` when the
    timeout passes or one of `procs` (those that must stay up) exits."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        for proc in procs or []:
            assert proc.poll() is None, f"{proc.args} exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.05)


class _Steps:
    """Prints how far the test got and when (shown when it fails)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {what}", flush=True)


def _open(page: Any, title: str) -> None:
    """Click a sidebar link; its page's heading shows."""
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(
        timeout=WAIT_MS)


def _idle(page: Any) -> None:
    """The page's run is over: no running indicator, no stale element of an earlier run left
    beside the new ones (tests/e2e/test_browser.py _page_drawn)."""
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=WAIT_MS)


def _log_in(page: Any, url: str) -> None:
    """Log in as the admin through the form; done once the Dashboard shows and the browser
    holds the login cookie (tests/e2e/test_browser.py _signed_in)."""
    page.goto(url)
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("textbox", name="Username").fill(ADMIN)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("document.cookie.includes('marketpulse_auth=')", timeout=WAIT_MS)


# -- the gates ------------------------------------------------------------------------------
class PostgresGate:
    """Holds a run's pending-workbook INSERT: the test's open transaction inserted the row first,
    so the run waits on it (its rows committed, its record still running) until `open`."""

    def __init__(self, schema: str) -> None:
        import sqlalchemy as sa

        self._sa, self.schema = sa, schema
        self._engine = sa.create_engine(POSTGRES_URL, pool_size=2)
        self._conn: Any = None
        self._pid = 0

    def close_for(self, run_id: int) -> None:
        """Insert run_id's pending-workbook row in a transaction left open."""
        sa = self._sa
        self._conn = self._engine.connect()
        self._conn.begin()
        self._pid = self._conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        self._conn.execute(sa.text(
            f'INSERT INTO "{self.schema}".mp_documents (doc_key, version, body) '
            "VALUES (:key, 1, '{}')"), {"key": pending_key(run_id)})

    def _ask(self, sql: str, **values: Any) -> list[Any]:
        """One query on another connection (a transaction sees pg_stat_activity as it first
        looked in it)."""
        with self._engine.connect() as conn:
            return list(conn.execute(self._sa.text(sql), values).scalars())

    def waiting(self) -> list[int]:
        """Backend pids waiting on the gate's transaction."""
        return self._ask("SELECT pid FROM pg_stat_activity "
                         "WHERE CAST(:gate AS integer) = ANY(pg_blocking_pids(pid))",
                         gate=self._pid)

    def open(self, held: list[int]) -> None:
        """Roll the gate's row back; the held sessions of the killed process then end (they
        never get their COMMIT): wait until they are gone."""
        self._conn.rollback()
        self._conn.close()
        self._conn = None
        _until(lambda: not self._ask("SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)",
                                     pids=held),
               "the killed scheduler's database sessions end")

    def dispose(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._engine.dispose()


class S3Gate:
    """WSGI middleware in front of moto's server: holds the PUT of one object until `open`, then
    answers 503 without applying it (the process that sent it is dead by then)."""

    def __init__(self, app: Any) -> None:
        self.app, self.suffix = app, ""
        self.arrived, self.released = threading.Event(), threading.Event()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if (self.suffix and environ["REQUEST_METHOD"] == "PUT"
                and environ.get("PATH_INFO", "").endswith(self.suffix)):
            self.arrived.set()
            self.released.wait(120)
            start_response("503 Service Unavailable", [("Content-Type", "application/xml")])
            return [b"<Error><Code>SlowDown</Code><Message>held by the test</Message></Error>"]
        return self.app(environ, start_response)

    def close_for(self, run_id: int) -> None:
        """Hold the PUT of run_id's pending-workbook document."""
        self.suffix = f"/docs/{pending_key(run_id)}.json"

    def waiting(self) -> list[int]:
        """[1] once the held PUT arrived."""
        return [1] if self.arrived.is_set() else []

    def open(self, held: list[int]) -> None:
        self.released.set()

    def dispose(self) -> None:
        self.released.set()


@contextmanager
def _gated_moto() -> Iterator[tuple[str, S3Gate]]:
    """moto's S3 API on 127.0.0.1 behind an S3Gate: (its URL, the gate)."""
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # the held request's broken pipe
    gate = S3Gate(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, gate, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gate
    finally:
        gate.dispose()
        server.shutdown()
        thread.join(timeout=10)


# -- the desk: one store, two nodes ---------------------------------------------------------
@dataclass
class Desk:
    url: str
    store: Store  # the test's own view of the shared store
    gate: PostgresGate | S3Gate
    section: str  # the store's secrets section: "s3" or "sql"
    values: dict[str, str]  # what it holds besides each node's cache_dir
    folder: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self, node: str) -> dict[str, str]:
        """A node's environment: the shared store, its own secrets file and read copy."""
        secrets = self.folder / f"secrets-{node}.toml"
        if not secrets.exists():
            section = {**self.values, "cache_dir": str(self.folder / f"cache-{node}")}
            lines = ["[auth]", f'cookie_key = "{COOKIE_KEY}"', f"[{self.section}]"]
            lines += [f'{k} = "{v}"' for k, v in section.items()]
            secrets.write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
        env.update(MARKETPULSE_STORE_URL=self.url, MARKETPULSE_DEMO="0",
                   MARKETPULSE_SECRETS_FILE=str(secrets),
                   MARKETPULSE_SCHEDULER_TICK_SECONDS=TICK_S,
                   MARKETPULSE_SCHEDULER_LEASE_SECONDS=LEASE_S)
        return env

    def start(self, node: str, role: str, *command: str) -> subprocess.Popen:
        """`python *command` as `role` of node `node` (its output in <node>-<role>.log)."""
        log = open(self.folder / f"{node}-{role}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=self.env(node),
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def app(self, node: str) -> str:
        """`streamlit run app.py` as node `node`; its URL once healthy."""
        port = _free_port()
        proc = self.start(node, "app", "-m", "streamlit", "run", str(ROOT / "app.py"),
                          "--server.port", str(port), "--server.address", "127.0.0.1",
                          "--server.headless", "true", "--browser.gatherUsageStats", "false")
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
            except OSError:
                return False

        _until(healthy, f"node {node} answers /_stcore/health", [proc])
        return url

    def report(self, browser: Any) -> None:
        """After a failure: the end of each process's output, and a screenshot of each page."""
        for log in sorted(self.folder.glob("*.log")):
            print(f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        for c, context in enumerate(browser.contexts):
            for p, page in enumerate(context.pages):
                shot = self.folder / f"page-{c}-{p}.png"
                page.screenshot(path=shot, full_page=True)
                print(f"== {page.url}: {shot}")


COOKIE_KEY = uuid.uuid4().hex + uuid.uuid4().hex  # the same on every node


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "s3"])
def desk(request, tmp_path) -> Iterator[Desk]:
    if request.param == "postgres":
        schema = request.getfixturevalue("postgres_schema")
        url = f"{POSTGRES_URL}?schema={schema}"
        store = open_store(url, {"sql.cache_dir": str(tmp_path / "cache-test")})
        gate: PostgresGate | S3Gate = PostgresGate(schema)
        yield from _desk(Desk(url, store, gate, "sql", {}, tmp_path))
        store.dispose()  # type: ignore[attr-defined]
        return
    with _gated_moto() as (endpoint, s3_gate):
        import boto3

        bucket = f"mp-{uuid.uuid4().hex[:16]}"
        boto3.session.Session().client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
            region_name="us-east-1").create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/desk"
        options = {**S3_TEST_CREDENTIALS, "s3.endpoint_url": endpoint}
        store = open_store(url, {**options, "s3.cache_dir": str(tmp_path / "cache-test")})
        section = {k.removeprefix("s3."): str(v) for k, v in options.items()}
        yield from _desk(Desk(url, store, s3_gate, "s3", section, tmp_path))


def _desk(desk: Desk) -> Iterator[Desk]:
    create_first_admin(desk.store, ADMIN, "Ada Admin", "ada@desk.test", PASSWORD)
    try:
        yield desk
    finally:
        for proc in desk.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in desk.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        desk.gate.dispose()


# -- checks ---------------------------------------------------------------------------------
def _pid(owner: str) -> int:
    """The pid in a scheduler's owner name (host:pid:random)."""
    return int(owner.split(":")[1])


def _holder(store: Store) -> int | None:
    held = lease_holder(store, LEASE, datetime.now(UTC))
    return None if held is None else _pid(held[0])


def _beat(store: Store) -> dict | None:
    """The lease holder's last heartbeat (None before the first)."""
    try:
        return store.get(HEARTBEAT_KEY)[0]
    except ObjectNotFound:
        return None


def _runs_of(store: Store, request_id: str) -> list[RunRecord]:
    return [r for r in load_runs(store) if r.request_id == request_id]


def _finished(store: Store, request_id: str) -> RunRecord | None:
    """The run record of a Run now request once it has ended (None before)."""
    done = [r for r in _runs_of(store, request_id) if r.status != "running"]
    return done[0] if done else None


def _settled(store: Store) -> bool:
    """No request queued, no run in progress."""
    return not pending_triggers(store) and all(r.status != "running" for r in load_runs(store))


def _rows_of(store: Store, run_id: int) -> list[str]:
    """The run tables holding rows of the run."""
    return [t for t in RUN_TABLES if run_id in run_tables(store).runs(t)]


def _next_run_id(store: Store) -> int:
    try:
        return int(store.get("sequences/run_id")[0]["next"])
    except ObjectNotFound:
        return 1


def _drop_in(inbox: Path, number: int) -> None:
    (inbox / f"colors-{number}.xlsx").write_bytes(_colors_file(number))


def _expect_run(record: RunRecord, *, pid: int, files: int = 1) -> None:
    """A successful Run now of the admin's, of `files` inbox files, by the scheduler `pid`, with
    the rule applied (one row of each file excluded)."""
    assert (record.job, record.status, record.trigger, record.requested_by) == (
        "Inbox", "success", "run_now", ADMIN)
    assert record.owner["pid"] == pid
    assert record.rules_applied == [RULE]
    assert record.per_rule == {RULE: files}
    assert (record.counts["read"], record.counts["excluded"], record.counts["published"]) == (
        files * ROWS, files, files * (ROWS - 1))


@dataclass
class Nodes:
    """The running desk: node A and B's addresses, the schedulers, the inbox job's folder."""

    desk: Desk
    a: str
    b: str
    holder: subprocess.Popen
    standby: subprocess.Popen
    apps: list[subprocess.Popen]
    inbox: Path
    job_id: str

    @property
    def store(self) -> Store:
        return self.desk.store

    def run_now(self, file_number: int) -> str:
        """A file in the inbox and Run now through core: the request's id."""
        _drop_in(self.inbox, file_number)
        return request_run(self.store, ADA, self.job_id, now=datetime.now(UTC)).id


def _start(desk: Desk, inbox: Path) -> Nodes:
    """Both schedulers, then both app nodes; one scheduler takes the lease and beats."""
    inbox.mkdir()
    job = save_job(desk.store, ADA, Job(
        name="Inbox", schedule="0 0 1 1 *", timezone="UTC",
        sources=[{"kind": "inbox", "path": str(inbox)}]))
    schedulers = [desk.start(node, "scheduler", "-m", "core.scheduler") for node in "ab"]
    a, b = desk.app("a"), desk.app("b")
    apps = desk.procs[2:]
    holder = _until(lambda: _holder(desk.store), "a scheduler holds the lease",
                    [*schedulers, *apps])
    assert holder in [p.pid for p in schedulers]
    beat = _until(lambda: _beat(desk.store), "the lease holder writes its heartbeat",
                  [*schedulers, *apps])
    assert _pid(beat["owner"]) == holder
    return Nodes(desk, a, b, next(p for p in schedulers if p.pid == holder),
                 next(p for p in schedulers if p.pid != holder), apps, inbox, job.id)


def _rule_saved_on_a_is_listed_on_b(nodes: Nodes, page_a: Any, page_b: Any) -> None:
    """Save a rule through node A's Rules page; node B's Rules page lists it. The login cookie
    node A set lets the browser into node B (one cookie key on every node)."""
    # The tab a person would be looking at, typing once the page has drawn: twice at load 13-15,
    # a rule typed in a background tab while the page still ran was saved inactive (once with
    # priority 0), not reproduced since; the saved rule is checked below.
    page_a.bring_to_front()
    _log_in(page_a, nodes.a)
    _open(page_a, "Rules")
    _idle(page_a)
    page_a.get_by_role("textbox", name="Name").first.fill(RULE)
    page_a.get_by_role("textbox", name="Value").first.fill(RULE_MESSAGE)
    _idle(page_a)  # the rerun Name's change started
    page_a.get_by_role("button", name="Save rule").click()
    expect(page_a.get_by_text(f"Saved rule '{RULE}'").first).to_be_visible(timeout=WAIT_MS)
    saved = [(r.name, r.priority, r.active) for r in load_rules(nodes.store)]
    assert saved == [(RULE, 100, True)]  # as the form showed it: priority 100, active

    page_b.bring_to_front()
    page_b.goto(nodes.b)
    expect(page_b.get_by_role("heading", name="Dashboard").first).to_be_visible(timeout=WAIT_MS)
    expect(page_b.get_by_role("textbox", name="Username")).to_have_count(0)
    _open(page_b, "Rules")
    page_b.get_by_role("combobox", name="Rule", exact=True).click(timeout=WAIT_MS)
    expect(page_b.get_by_role("option", name=RULE)).to_be_visible(timeout=WAIT_MS)
    page_b.keyboard.press("Escape")


def _each_run_now_runs_once(nodes: Nodes, page_a: Any, page_b: Any) -> list[RunRecord]:
    """Run now through node A's Automation page, then through core: the lease holder runs each
    request exactly once, with node A's rule; node B's Dashboard shows the run when it next
    draws (its caches are keyed by the store's data version)."""
    store, procs = nodes.store, [nodes.holder, nodes.standby, *nodes.apps]
    _drop_in(nodes.inbox, 1)
    page_a.bring_to_front()
    _open(page_a, "Automation")
    page_a.get_by_role("button", name="Run now", exact=True).click()
    first = _until(lambda: next((r for r in load_runs(store) if r.status != "running"), None),
                   "the run requested on node A ends", procs)
    _expect_run(first, pid=nodes.holder.pid)
    request = nodes.run_now(2)
    second = _until(lambda: _finished(store, request), "the run requested in core ends", procs)
    _expect_run(second, pid=nodes.holder.pid)
    _until(lambda: _settled(store), "nothing is queued or running", procs)
    assert [(r.run_id, r.request_id) for r in load_runs(store)] == [
        (second.run_id, request), (first.run_id, first.request_id)]
    assert first.request_id not in ("", request)

    page_b.bring_to_front()
    page_b.goto(nodes.b)
    expect(page_b.get_by_text(f"Run {second.run_id}: success").first).to_be_visible(
        timeout=WAIT_MS)
    return [first, second]


def _killed_mid_run_publishes_nothing(nodes: Nodes) -> RunRecord:
    """kill -9 of the lease holder while its run is held between its rows and its record: the
    run stays invisible; the standby takes the lease, marks it abandoned and removes its rows."""
    store, gate = nodes.store, nodes.desk.gate
    held_id = _next_run_id(store)
    gate.close_for(held_id)
    request = nodes.run_now(3)
    held = _until(gate.waiting, "the run reaches the gate",
                  [nodes.holder, nodes.standby, *nodes.apps])
    running = get_run(store, held_id)
    assert (running.status, running.request_id, running.owner["pid"]) == (
        "running", request, nodes.holder.pid)
    assert _rows_of(store, held_id) != []  # its rows are stored, not visible
    nodes.holder.send_signal(signal.SIGKILL)
    nodes.holder.wait(timeout=30)
    gate.open(held)

    assert held_id not in visible_run_ids(store)
    assert held_id not in set(published_colors(store, ADA)[RUN_ID])
    _until(lambda: _holder(store) == nodes.standby.pid, "the standby takes the lease",
           [nodes.standby, *nodes.apps])
    _until(lambda: get_run(store, held_id).status == "abandoned", "the held run is abandoned",
           [nodes.standby])
    # The record first, then its rows go.
    _until(lambda: _rows_of(store, held_id) == [], "the held run's rows are removed",
           [nodes.standby])
    assert (nodes.inbox / "colors-3.xlsx").exists()  # it waits for the next run
    return get_run(store, held_id)


def _standby_runs_the_next_request(nodes: Nodes, page_b: Any) -> RunRecord:
    """The new lease holder runs the next request (the held run's file with it) and reports
    healthy; node B's Dashboard shows its run."""
    request = nodes.run_now(4)
    last = _until(lambda: _finished(nodes.store, request), "the standby runs the next request",
                  [nodes.standby])
    _expect_run(last, pid=nodes.standby.pid, files=2)
    health = subprocess.run([sys.executable, "-m", "core", "scheduler-health", "--max-age", "60"],
                            cwd=ROOT, env=nodes.desk.env("b"), capture_output=True, text=True,
                            timeout=120)
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith(
        f"ok: the scheduler {socket.gethostname()}:{nodes.standby.pid}:"), health.stdout
    page_b.goto(nodes.b)
    expect(page_b.get_by_text(f"Run {last.run_id}: success").first).to_be_visible(
        timeout=WAIT_MS)
    return last


def test_two_nodes_and_two_schedulers_share_one_store(desk, browser, tmp_path):
    step = _Steps()
    try:
        nodes = _start(desk, tmp_path / "inbox")
        step("started: two schedulers (one holds the lease), two app nodes")
        context = browser.new_context(viewport={"width": 1600, "height": 1200})
        page_a, page_b = context.new_page(), context.new_page()
        _rule_saved_on_a_is_listed_on_b(nodes, page_a, page_b)
        step("a rule saved on node A is listed on node B")
        first, second = _each_run_now_runs_once(nodes, page_a, page_b)
        step("each Run now ran once, on the lease holder")
        abandoned = _killed_mid_run_publishes_nothing(nodes)
        step("kill -9 mid-run published nothing; the standby took over")
        last = _standby_runs_the_next_request(nodes, page_b)
        step("the standby ran the next request")
        context.close()
    except BaseException:
        desk.report(browser)
        raise

    store = desk.store
    records = load_runs(store)
    assert [(r.run_id, r.status) for r in records] == [
        (last.run_id, "success"), (abandoned.run_id, "abandoned"),
        (second.run_id, "success"), (first.run_id, "success")]
    assert len({r.request_id for r in records}) == 4  # one run per request
    assert visible_run_ids(store) == [first.run_id, second.run_id, last.run_id]
    published = published_colors(store, ADA)
    assert published.groupby(RUN_ID).size().to_dict() == {
        first.run_id: ROWS - 1, second.run_id: ROWS - 1, last.run_id: 2 * (ROWS - 1)}
    assert RULE_MESSAGE not in set(published[MESSAGE_ID])
