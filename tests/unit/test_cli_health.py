"""`python -m core scheduler-health`: a health check for deployments (exit 0 healthy, 1 not, with
one line saying why), read from the heartbeat of the scheduler holding the lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.__main__ import main
from core.automation.scheduler import HEARTBEAT_KEY, run_once, scheduler_health
from core.cli.health import health_verdict
from core.clock import utc_now
from core.config import load_settings
from storage import ANY_VERSION, open_store

NOW = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
SETTINGS = load_settings({}, {})  # a tick of 1 s: alive for 3 s after a beat


def _beat(store, at: datetime) -> None:
    run_once(store, SETTINGS, at, owner="host-a:41:f00d")


def test_a_scheduler_that_beat_recently_is_healthy(memory_store):
    _beat(memory_store, NOW)
    version = memory_store.get(HEARTBEAT_KEY)[0]["version"]
    healthy, line = health_verdict(scheduler_health(memory_store, NOW + timedelta(seconds=3)))
    assert (healthy, line) == (
        True, f"ok: the scheduler host-a:41:f00d (version {version}) beat 3 s ago")


def test_a_heartbeat_older_than_three_ticks_or_than_max_age_is_not(memory_store):
    _beat(memory_store, NOW)
    version = memory_store.get(HEARTBEAT_KEY)[0]["version"]
    late = scheduler_health(memory_store, NOW + timedelta(seconds=91))
    assert health_verdict(late) == (False, (
        f"the scheduler host-a:41:f00d (version {version}) last beat 91 s ago (more than three "
        "ticks of 1 s): stuck, or stopped without a word; a standby takes over when its lease "
        "ends"))
    assert health_verdict(late, max_age_s=120)[0] is True
    assert health_verdict(scheduler_health(memory_store, NOW + timedelta(seconds=40)),
                          max_age_s=30)[0] is False


def test_no_heartbeat_or_a_stopped_scheduler_is_unhealthy(memory_store):
    assert health_verdict(scheduler_health(memory_store, NOW)) == (False, (
        "no scheduler has run on this store yet: start python -m core.scheduler (one per host; "
        "the lease picks the one that runs jobs)"))
    _beat(memory_store, NOW)
    beat = memory_store.get(HEARTBEAT_KEY)[0]
    memory_store.put(HEARTBEAT_KEY, {**beat, "stopped": True}, ANY_VERSION)
    healthy, line = health_verdict(scheduler_health(memory_store, NOW + timedelta(seconds=1)))
    assert (healthy, line) == (False, f"the scheduler host-a:41:f00d (version {beat['version']}) "
                                      f"stopped at {NOW.isoformat()} and none has taken over")


@pytest.mark.parametrize(("beat_age_s", "code", "start", "end"), [
    (0, 0, "ok: the scheduler host-a:41:f00d (version ", " s ago\n"),
    (3600, 1, "the scheduler host-a:41:f00d (version ", " s ago (more than 600 s): stuck, or "
     "stopped without a word; a standby takes over when its lease ends\n"),
    (None, 1, "no scheduler has run on this store yet", "runs jobs)\n")])
def test_the_command_exits_0_or_1_with_one_line(tmp_path, monkeypatch, capsys, beat_age_s,
                                                code, start, end):
    store = open_store(str(tmp_path / "store"))
    if beat_age_s is not None:
        _beat(store, utc_now() - timedelta(seconds=beat_age_s))
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "store"))
    before = {key: store.get(key) for key in store.list("")}

    # a generous --max-age: the default (three ticks, 3 s) is the unit tests' above
    assert main(["scheduler-health", "--max-age", "600"]) == code

    out = capsys.readouterr().out
    assert (out.startswith(start), out.endswith(end), out.count("\n")) == (True, True, 1)
    assert {key: store.get(key) for key in store.list("")} == before  # only read
