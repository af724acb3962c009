"""Where a "Run now" request (or the run in progress) stands, for pages that follow it live: queued
for the scheduler, running (stage, files, rows, how long each stage took), or finished with its
record, read from the queue, the scheduler's live status (scheduler/current) and the run records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.automation.job_runs import CURRENT_KEY
from core.automation.jobs import pending_triggers
from core.clock import aware, parse_stamp
from core.runs.records import FAILED, SKIPPED, SUCCESS, RunRecord, load_runs
from storage import ObjectNotFound, Store

QUEUED, RUNNING, FINISHED, GONE = "queued", "running", "finished", "gone"
# Stages of a job's run in order, and how far along each puts the run (for a progress bar).
STAGES = {"collect": 0.05, "read": 0.15, "rules": 0.4, "publish": 0.7, "workbook": 0.85,
          "done": 0.95}
RECENT_RUNS = 50  # run records searched for a finished request


@dataclass(frozen=True)
class RunProgress:
    """One request's or run's state. stages: (stage, seconds) in order: while running, timed from
    the live timeline (the current stage up to now); once finished, the record's own timings."""

    state: str  # queued | running | finished | gone
    job: str = ""
    requested_by: str = ""
    since: str = ""  # requested (queued) or started (running, finished), ISO
    elapsed_s: float = 0.0
    stage: str = ""
    files: int = 0
    rows: int = 0
    run_id: int | None = None
    stages: list[tuple[str, float]] = field(default_factory=list)
    record: RunRecord | None = None

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def fraction(self) -> float:
        """How far along, 0 … 1 (finished: 1)."""
        if self.state == FINISHED:
            return 1.0
        return STAGES.get(self.stage, 0.0) if self.state == RUNNING else 0.0

    def sentence(self) -> str:
        """The state in words, for the page."""
        who = f", requested by {self.requested_by}" if self.requested_by else ""
        if self.state == QUEUED:
            return (f"A run of {self.job} is queued{who}: waiting {self.elapsed_s:.0f} s for the "
                    "scheduler to pick it up.")
        if self.state == RUNNING:
            run = f" (run {self.run_id})" if self.run_id else ""
            files = f", {self.files:,} file{'s' if self.files != 1 else ''}" if self.files else ""
            rows = f", {self.rows:,} rows" if self.rows else ""
            return (f"Running {self.job}{run}{who}: {self.stage}{files}{rows}, "
                    f"{self.elapsed_s:.0f} s so far.")
        if self.state == GONE or self.record is None:
            return "The queued run is no longer queued, running or recorded (it was cancelled)."
        return finished_sentence(self.record)


def finished_sentence(record: RunRecord) -> str:
    """A finished run's outcome in one sentence: what it published, or why it did not."""
    head = f"Run {record.run_id} of {record.job or record.kind}"
    counts = record.counts or {}
    if record.status == SUCCESS:
        parts = [f"{counts.get('published', 0):,} colors published",
                 f"{counts.get('parents', 0):,} parents"]
        parts += [f"{counts[k]:,} {k}" for k in ("excluded", "quarantined") if counts.get(k)]
        skipped = (record.already_published or {}).get("count")
        if skipped and not record.republished:
            parts.append(f"{skipped:,} already published skipped")
        return f"{head} succeeded in {record.duration_s:.1f} s: {', '.join(parts)}."
    if record.status == SKIPPED and record.error.startswith("nothing to process"):
        return f"{head}: {record.error[0].upper()}{record.error[1:]}. Nothing was published."
    if record.status == FAILED:
        return f"{head} failed: {record.error}. Nothing was published."
    return f"{head}: {record.status}" + (f" ({record.error})." if record.error else ".")


def _timeline(stages: list[list[str]], now: datetime) -> list[tuple[str, float]]:
    """(stage, seconds) from [stage, start] pairs: each lasts until the next starts, the last
    until now."""
    starts = [(name, parse_stamp(at)) for name, at in stages]
    if not starts:  # a marker written before stages were kept
        return []
    ends = [at for _, at in starts[1:]] + [now]
    return [(name, round(max((end - at).total_seconds(), 0.0), 3))
            for (name, at), end in zip(starts, ends, strict=True)]


def _running(current: dict[str, Any], now: datetime) -> RunProgress:
    started = parse_stamp(current["started_at"])
    return RunProgress(
        RUNNING, job=current.get("job", ""), requested_by=current.get("requested_by", ""),
        since=current["started_at"], elapsed_s=(now - started).total_seconds(),
        stage=current.get("stage", ""), files=int(current.get("files") or 0),
        rows=int(current.get("rows") or 0), run_id=current.get("run_id"),
        stages=_timeline(current.get("stages") or [], now))


def _finished(record: RunRecord) -> RunProgress:
    return RunProgress(FINISHED, job=record.job, requested_by=record.requested_by,
                       since=record.started_at, elapsed_s=record.duration_s, stage="done",
                       rows=(record.counts or {}).get("read", 0), run_id=record.run_id,
                       stages=list(record.stages.items()), record=record)


def current_run(store: Store) -> dict[str, Any] | None:
    """The scheduler's live status of the run in progress, or None."""
    try:
        return store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        return None


def run_progress(store: Store, now: datetime, request_id: str | None = None
                 ) -> RunProgress | None:
    """Where the "Run now" request `request_id` stands (GONE when it is nowhere: cancelled, or
    taken an instant before its run shows), or, without one, the run in progress (None: none)."""
    now = aware(now)
    current = current_run(store)
    if request_id is None:
        return _running(current, now) if current else None
    for trigger in pending_triggers(store):
        if trigger.id == request_id:
            asked = parse_stamp(trigger.requested_at)
            return RunProgress(QUEUED, job=trigger.job, requested_by=trigger.requested_by,
                               since=trigger.requested_at,
                               elapsed_s=max((now - asked).total_seconds(), 0.0))
    if current and current.get("request_id") == request_id:
        return _running(current, now)
    for record in load_runs(store, limit=RECENT_RUNS):
        if record.request_id == request_id:
            return _finished(record) if record.finished_at else RunProgress(
                RUNNING, job=record.job, requested_by=record.requested_by,
                since=record.started_at, run_id=record.run_id)
    return RunProgress(GONE)
