"""One run of a job: collect its sources → core.runs.pipeline.publish_run → notify, the run's live
status (scheduler/current) and last errors, and recovery of runs a stopped process left running.
core.automation.scheduler decides when jobs run; a job's error is recorded here, never raised.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core import catalog
from core.access import SYSTEM, Actor
from core.automation.jobs import Job, Trigger, get_job, take_trigger
from core.clock import aware, parse_stamp, utc_now
from core.config import Settings
from core.errors import NotFound
from core.runs.liveness import remove_run_data
from core.runs.pipeline import AUTOMATED, OVERRIDE, Prepared, prepare_files, publish_run
from core.runs.records import ABANDONED as ABANDONED_STATUS
from core.runs.records import (
    FAILED,
    RUNNING,
    SKIPPED,
    SUCCESS,
    RunRecord,
    get_run,
    load_runs,
    next_run_id,
    save_run,
)
from storage import ANY_VERSION, ObjectNotFound, Store

# runs are logged as the scheduler's (also in the app)
log = logging.getLogger("core.automation.scheduler")

# (store, job, settings, now) → core.intake.sources.Collected: files, on_success(run_id),
# on_failure(exc)
Collect = Callable[[Store, Job, Settings, datetime], Any]
Notify = Callable[[Store, Settings, Job, RunRecord], None]

CURRENT_KEY = catalog.CURRENT_RUN.key
ABANDONED = "abandoned: the scheduler stopped during the run"
NOTHING_TEXT = "nothing to process: {sources} had no new input"


def describe_sources(sources: list[dict[str, Any]]) -> str:
    """A job's sources in words, for "nothing to process" (the upload buffer, inbox x, ...)."""
    words = []
    for source in sources:
        kind = source.get("kind")
        words.append("the upload buffer" if kind == "buffer" else
                     f"inbox {source.get('path', '')}" if kind == "inbox" else
                     f"SQL source {source.get('secret', '')} {source.get('table', '')}"
                     if kind == "sql" else f"source {kind}")
    if not words:
        return "the job has no sources: it"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _default_collect(store: Store, job: Job, settings: Settings, now: datetime) -> Any:
    from core.intake.sources import collect_inputs  # lazy: sources pull in SQL drivers

    return collect_inputs(store, job.sources, settings, job_name=job.name, now=now,
                          job_id=job.id)


def _default_notify(store: Store, settings: Settings, job: Job, record: RunRecord) -> None:
    """Email (when the job asks for it and the email switches agree), webhooks, in-app bell."""
    from core.alerts import bell as notifications
    from core.alerts import email as notify
    from core.alerts import watchlists, webhooks

    # Stamped when the run ended (the scheduler's clock; the wall clock only for a record without).
    now = parse_stamp(record.finished_at) if record.finished_at else utc_now()
    wants_email = job.email_on_success if record.status == SUCCESS else job.email_on_failure
    if wants_email:
        notify.notify_run(store, settings, record, workbook=None, excluded=None, now=now)
    webhooks.notify_webhooks(store, settings, record, now=now)
    notifications.notify_run_finished(store, record, now)
    watchlists.alert_after_publish(store, record, now, settings=settings)


class RunContext:
    """Where runs write, who runs them (owner), the collect/notify hooks and the last errors.
    The scheduler's Context adds its heartbeat (write_heartbeat) and lease keeping (keep)."""

    def __init__(self, store: Store, settings: Settings, owner: str, *, now: datetime,
                 collect: Collect | None = None, notify: Notify | None = None,
                 stop: threading.Event | None = None, clock: Callable[[], datetime] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        self.store, self.settings, self.owner, self.now = store, settings, owner, now
        self.collect = collect or _default_collect
        self.notify = notify or _default_notify
        self.stop, self.clock, self.live = stop, clock or (lambda: now), clock is not None
        self.current: dict[str, Any] | None = None
        self.requested_by, self.request_id = "", ""  # of the run execute() is carrying out
        self.errors: list[dict[str, str]] = list(errors or [])

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def error(self, job: str, text: str) -> None:
        """Remember one of the last 5 errors for the heartbeat (a repeat only moves its time)."""
        log.error("%s: %s", job, text)
        entry = {"at": aware(self.clock()).isoformat(), "job": job, "error": text}
        if self.errors and (self.errors[-1]["job"], self.errors[-1]["error"]) == (job, text):
            self.errors = self.errors[:-1]
        self.errors = [*self.errors, entry][-5:]

    def write_heartbeat(self) -> None:
        """Publish that this process is alive, after each status change (nothing by default)."""

    def keep(self) -> contextlib.AbstractContextManager[Any]:
        """Held while a run is in progress (the scheduler keeps its lease alive in it)."""
        return contextlib.nullcontext()

    def show(self, **changes: Any) -> None:
        """Update the live status of the current run (scheduler/current and the heartbeat); a new
        stage is added to its timeline (stage, start), from which the page times the stages."""
        if self.current is None:
            return
        stage = changes.get("stage")
        timeline = self.current.setdefault("stages", [])
        if stage and (not timeline or timeline[-1][0] != stage):
            timeline.append([stage, aware(self.clock()).isoformat()])
            log.info("%s: %s%s", self.current["job"], stage,
                     f" ({changes['rows']:,} rows)" if changes.get("rows") else "")
        self.current.update(changes)
        self.store.put(CURRENT_KEY, dict(self.current), ANY_VERSION)
        self.write_heartbeat()

    def mark(self, job: Job, slot: datetime, status: str, text: str) -> RunRecord:
        """A record for a slot that did not run (skipped, missed)."""
        record = RunRecord(run_id=next_run_id(self.store), kind=_kind(job, False),
                           trigger="scheduled", actor=SYSTEM.username, status=status,
                           started_at=slot.isoformat(), finished_at=slot.isoformat(),
                           job=job.name, error=text, requested_by=SYSTEM.username)
        save_run(self.store, record)
        return record

    def execute(self, job: Job, *, trigger: str, override: bool, actor: Actor,
                record_empty: bool = False, requested_by: str = "",
                request_id: str = "") -> RunRecord | None:
        """Collect → validate → publish one run of the job; never raises for a job error.
        requested_by and request_id: whose "Run now" this is (else the actor's run)."""
        started = aware(self.clock())
        self.requested_by, self.request_id = requested_by or actor.username, request_id
        self.current = {"owner": self.owner, "run_id": None, "job": job.name, "job_id": job.id,
                        "trigger": trigger, "stage": "", "rows": 0, "files": 0,
                        "started_at": started.isoformat(), "requested_by": self.requested_by,
                        "request_id": request_id}
        try:
            with self.keep():
                self.show(stage="collect")
                record = self._run(job, trigger, _kind(job, override), actor, started,
                                   record_empty)
        finally:
            self.current = None
            with contextlib.suppress(ObjectNotFound):
                self.store.delete(CURRENT_KEY)
        if record is not None and record.status in (SUCCESS, FAILED):
            try:
                self.notify(self.store, self.settings, job, record)
            except Exception as exc:  # a failed email never fails the run
                self.error(job.name, f"notification failed: {exc}")
        return record

    def _run(self, job: Job, trigger: str, kind: str, actor: Actor, started: datetime,
             record_empty: bool) -> RunRecord | None:
        collected = None
        try:
            collected = self.collect(self.store, job, self.settings, started)
            files = list(collected.files)
            self.show(stage="read", files=len(files))
            prepared = prepare_files(self.store, files, self.settings) if files else None
            _note_sources(prepared, getattr(collected, "notes", {}))
        except Exception as exc:
            log.exception("run of %s failed before publishing", job.name)
            self._release(job, collected, exc)
            return self._failed(job, kind, trigger, actor, started, str(exc))
        if prepared is None:
            self._release(job, collected, None)
            nothing = NOTHING_TEXT.format(sources=describe_sources(job.sources))
            log.info("%s: %s", job.name, nothing)
            if not record_empty:  # a frequent job would flood the history with empty runs
                return None
            record = RunRecord(run_id=next_run_id(self.store), kind=kind, trigger=trigger,
                               actor=actor.username, status=SKIPPED,
                               started_at=started.isoformat(),
                               finished_at=aware(self.clock()).isoformat(), job=job.name,
                               error=nothing, requested_by=self.requested_by,
                               request_id=self.request_id)
            save_run(self.store, record)
            return record
        self.show(stage="rules", rows=len(prepared.valid) + len(prepared.quarantined))

        def progress(stage: str, _fraction: float) -> None:
            if self.current is not None and self.current["run_id"] is None:
                self.current["run_id"] = _running_id(self.store, job, started)
            self.show(stage=stage)

        try:
            result = publish_run(self.store, actor, prepared, kind=kind, trigger=trigger,
                                 settings=self.settings, job=job.name, now=started,
                                 progress=progress, requested_by=self.requested_by,
                                 request_id=self.request_id)
        except Exception as exc:  # publish_run has recorded the failed run and removed its data
            self._release(job, collected, exc)
            self.error(job.name, str(exc) or type(exc).__name__)
            return _published_failure(self.store, job, started) or self._failed(
                job, kind, trigger, actor, started, str(exc))
        try:
            problems = collected.on_success(result.record.run_id) or []
        except Exception as exc:  # the run is published; report the source problem
            problems = [str(exc)]
        for problem in problems:
            self.error(job.name, f"run {result.record.run_id} published; source: {problem}")
        return result.record

    def _release(self, job: Job, collected: Any, error: BaseException | None) -> None:
        """Return claimed inputs (on_failure), e.g. buffer files back to pending."""
        if collected is None:
            return
        try:
            problems = collected.on_failure(error) or []
        except Exception as exc:
            problems = [str(exc)]
        for problem in problems:
            self.error(job.name, f"claimed inputs could not be released: {problem}")

    def _failed(self, job: Job, kind: str, trigger: str, actor: Actor, started: datetime,
                error: str) -> RunRecord:
        self.error(job.name, error)
        record = RunRecord(run_id=next_run_id(self.store), kind=kind, trigger=trigger,
                           actor=actor.username, status=FAILED, started_at=started.isoformat(),
                           finished_at=aware(self.clock()).isoformat(), job=job.name,
                           error=error, requested_by=self.requested_by,
                           request_id=self.request_id)
        save_run(self.store, record)
        return record


def _note_sources(prepared: Prepared | None, notes: dict[str, str]) -> None:
    """Name where each file came from in the run record's file list (a SQL source: its
    connection, table, rows and watermarks)."""
    for entry in prepared.files if prepared else []:
        if entry.get("name") in notes:
            entry["source"] = notes[str(entry["name"])]


def _kind(job: Job, override: bool) -> str:
    return OVERRIDE if override or not job.apply_rules else AUTOMATED


def _running_id(store: Store, job: Job, started: datetime) -> int | None:
    for record in load_runs(store, limit=20):
        if record.job == job.name and record.started_at == started.isoformat():
            return record.run_id
    return None


def _published_failure(store: Store, job: Job, started: datetime) -> RunRecord | None:
    run_id = _running_id(store, job, started)
    return None if run_id is None else get_run(store, run_id)


def run_trigger(ctx: RunContext, trigger: Trigger) -> list[RunRecord]:
    """Run a queued "Run now" request once (take_trigger decides who runs it)."""
    try:
        job, _ = get_job(ctx.store, trigger.job_id)
    except NotFound:
        if take_trigger(ctx.store, trigger):
            ctx.error(trigger.job, "job deleted before its queued run started; request dropped")
        return []
    if not take_trigger(ctx.store, trigger):
        return []  # consumed by someone else (cancelled, or another scheduler)
    log.info("running %s now (requested by %s)", job.name, trigger.requested_by)
    done = ctx.execute(job, trigger="run_now", override=trigger.override, actor=SYSTEM,
                       record_empty=True, requested_by=trigger.requested_by,
                       request_id=trigger.id)
    return [done] if done else []


def recover_abandoned(ctx: RunContext, *, fresh: bool) -> list[RunRecord]:
    """Mark runs a dead scheduler left 'running' abandoned, remove what they wrote and
    let the sources release their claims. Runs only when we just took the lease or a stale
    live-status marker exists (we hold the lease, so nobody else is running a job)."""
    try:
        marker: dict[str, Any] | None = ctx.store.get(CURRENT_KEY)[0]
    except ObjectNotFound:
        marker = None
    if not fresh and marker is None:
        return []
    found = []
    for record in load_runs(ctx.store, limit=100):
        if record.status == RUNNING and record.job and record.kind in (AUTOMATED, OVERRIDE):
            record.status, record.error = ABANDONED_STATUS, ABANDONED
            record.finished_at = ctx.now.isoformat()
            save_run(ctx.store, record)  # first: a run still publishing then fails, never holes
            remove_run_data(ctx.store, record.run_id)
            ctx.error(record.job, f"run {record.run_id} {ABANDONED}")
            found.append(record)
    names = {r.job for r in found} | ({marker["job"]} if marker else set())
    for name in sorted(names):
        _release_abandoned(ctx, name)
    if marker is not None:
        with contextlib.suppress(ObjectNotFound):
            ctx.store.delete(CURRENT_KEY)
    return found


def _release_abandoned(ctx: RunContext, job_name: str) -> None:
    """Return the buffer files a dead run of the job had claimed to pending (core.intake.sources
    claims
    them as "job:<name>"; inbox files stay in the inbox until a run succeeds, SQL holds none)."""
    try:
        from core.intake import buffer

        owner = f"job:{job_name}"
        ids = [e.id for e in buffer.list_entries(ctx.store, buffer.CLAIMED)
               if e.claimed_by == owner]
        if ids:
            buffer.release(ctx.store, ids, owner=owner, now=ctx.now)
            log.info("released %d buffer file(s) of the abandoned run of %s", len(ids), job_name)
    except Exception as exc:  # best effort: buffer.release_stale can still free them later
        ctx.error(job_name, f"claims of the abandoned run could not be released: {exc}")
