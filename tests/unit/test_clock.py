"""core/clock.py is the one place that reads the machine's clock for domain time (issue 11)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from core.clock import as_utc, aware, now_or, parse_stamp, utc_now, utc_now_or, utc_today

ROOT = Path(__file__).resolve().parents[2]
# Reading "now" this way anywhere but core/clock.py bypasses the injectable clock. Durations
# (time.monotonic, time.perf_counter) are not domain time and stay allowed.
CLOCK_READS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
               ("date", "today"), ("time", "time"), ("time", "time_ns"),
               ("Timestamp", "now"), ("Timestamp", "utcnow"), ("Timestamp", "today")}


def _clock_reads(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (name, node.func.attr) in CLOCK_READS:
            found.append(f"{path.relative_to(root)}:{node.lineno} calls {name}.{node.func.attr}()")
    return found


def _sources() -> list[Path]:
    files = [*sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py")),
             ROOT / "app.py"]
    return [p for p in files if p != ROOT / "core" / "clock.py"]


def test_only_the_clock_module_reads_the_time_in_core_and_pages():
    assert [hit for path in _sources() for hit in _clock_reads(path)] == []


def test_the_static_check_sees_every_way_of_reading_the_time(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import datetime as dt\nimport time\nimport pandas as pd\n"
                     "from datetime import date, datetime\n"
                     "a = dt.datetime.now(dt.UTC)\nb = datetime.now()\nc = date.today()\n"
                     "d = time.time()\ne = pd.Timestamp.now()\nf = dt.datetime.utcnow()\n"
                     "g = time.monotonic()\n")
    hits = sorted(_clock_reads(probe, tmp_path), key=lambda hit: int(hit.split(":")[1].split()[0]))
    found = [hit.split(" calls ")[1] for hit in hits]
    assert found == ["datetime.now()", "datetime.now()", "date.today()", "time.time()",
                     "Timestamp.now()", "datetime.utcnow()"]


KARACHI = timezone(timedelta(hours=5))


def test_utc_now_is_aware_utc():
    assert utc_now().tzinfo is UTC
    assert utc_now_or(None).tzinfo is UTC
    assert now_or(None).tzinfo is UTC


def test_a_naive_time_is_taken_as_utc():
    expected = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
    naive = datetime(2026, 3, 13, 9, 30)
    assert (aware(naive), as_utc(naive), now_or(naive), utc_now_or(naive)) == (expected,) * 4
    assert parse_stamp("2026-03-13T09:30:00") == expected


def test_aware_keeps_a_callers_zone_and_as_utc_converts_the_same_instant():
    local = datetime(2026, 3, 13, 14, 30, tzinfo=KARACHI)
    assert aware(local).isoformat() == "2026-03-13T14:30:00+05:00"
    assert now_or(local).isoformat() == "2026-03-13T14:30:00+05:00"
    assert parse_stamp("2026-03-13T14:30:00+05:00").isoformat() == "2026-03-13T14:30:00+05:00"
    assert as_utc(local).isoformat() == "2026-03-13T09:30:00+00:00"
    assert utc_now_or(local).isoformat() == "2026-03-13T09:30:00+00:00"
    assert as_utc(local) == local


def test_an_injected_now_wins_over_the_clock():
    fixed = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)
    assert (now_or(fixed), utc_now_or(fixed)) == (fixed, fixed)


def test_utc_today_is_the_date_of_utc_now():
    before = utc_now().date()
    today = utc_today()
    assert today in (before, before + timedelta(days=1))  # midnight may pass between the calls
