"""Issue 4's promise end to end: a file queued in the buffer is published by the next automated
run exactly once (real buffer, real job, the scheduler's run_once with a fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.access import SYSTEM, Actor
from core.automation.jobs import Job, save_job
from core.automation.scheduler import run_once
from core.cli.demo import generate_colors
from core.config import load_settings
from core.intake import buffer
from core.runs import records as runs
from core.runs.exports import write_xlsx
from core.schema import INPUT_COLUMNS

SETTINGS = load_settings({}, {})
CREATED = datetime(2026, 3, 13, 8, 0, tzinfo=UTC)


def test_a_buffered_file_is_published_by_the_next_run_exactly_once(local_store):
    ana = Actor("ana", "analyst")
    data = write_xlsx(generate_colors(60, seed=12)[list(INPUT_COLUMNS)])
    [entry] = buffer.add_files(local_store, ana, [("desk.xlsx", data)], SETTINGS, now=CREATED)
    save_job(local_store, SYSTEM, Job(id="", name="Every 10 minutes", schedule="*/10 * * * *",
                                      timezone="UTC", sources=[{"kind": "buffer"}]), now=CREATED)

    first = run_once(local_store, SETTINGS, CREATED + timedelta(minutes=10, seconds=5),
                     owner="scheduler-a")
    assert [(r.status, r.kind, r.counts["read"]) for r in first] == [
        (runs.SUCCESS, "AUTOMATED", 60)]
    assert [f["name"] for f in first[0].files] == ["desk.xlsx"]
    [done] = buffer.list_entries(local_store)
    assert (done.id, done.status, done.run_id) == (entry.id, "processed", first[0].run_id)

    later = run_once(local_store, SETTINGS, CREATED + timedelta(minutes=20, seconds=5),
                     owner="scheduler-a")
    assert later == []  # nothing new in the buffer: no second run, no run record
    assert [r.run_id for r in runs.load_runs(local_store)] == [first[0].run_id]
    assert len(local_store.scan(runs.COLORS_TABLE)) == first[0].counts["published"]
