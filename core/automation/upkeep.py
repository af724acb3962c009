"""The scheduler's upkeep between its jobs, each step keeping the lease while it works and
recording a failure in the heartbeat (the next step tries again): dead runs swept, output
workbooks whose builder died rebuilt, new runs added to the compacted copy search reads."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.access import SYSTEM
from core.automation.sweep import sweep_runs
from core.clock import aware
from core.reads.compaction import compact_colors, plan_compaction
from core.runs import workbooks
from core.runs.liveness import stale_seconds
from core.runs.records import RunRecord
from storage import WriteConflict

if TYPE_CHECKING:
    from core.automation.scheduler import Context

log = logging.getLogger("core.automation.scheduler")  # the scheduler's log, as before
COMPACT_RETRY = timedelta(minutes=15)  # after a failed compaction


def sweep_if_due(ctx: Context) -> None:
    """Every tenth of runs.stale_seconds: mark runs whose process died (a CLI or manual run too)
    abandoned and remove their partial data (core.runs.liveness)."""
    every = timedelta(seconds=stale_seconds(ctx.settings) / 10)
    if ctx.swept_at and timedelta(0) <= ctx.now - datetime.fromisoformat(ctx.swept_at) < every:
        return
    try:
        for record in sweep_runs(ctx.store, SYSTEM, ctx.settings, now=ctx.now):
            ctx.error(record.job or record.kind, f"run {record.run_id} {record.error}")
    except Exception as exc:  # the next step tries again
        log.exception("sweeping dead runs failed")
        ctx.error("runs", f"sweeping dead runs failed: {exc}")
    ctx.swept_at = ctx.now.isoformat()


def rebuild_workbooks(ctx: Context) -> list[RunRecord]:
    """Build the output workbooks of published runs whose builder died before finishing
    (core.runs.workbooks), keeping the lease meanwhile. A failure is recorded; the next step
    tries again."""
    try:
        found = workbooks.orphaned(ctx.store, stale_seconds(ctx.settings), ctx.now)
        if not found:
            return []
        with ctx.keep():
            settled = [workbooks.rebuild(ctx.store, run_id, version, ctx.now)
                       for run_id, version in found]
    except Exception as exc:  # the colors are published; only the download waits
        log.exception("rebuilding output workbooks failed")
        ctx.error("workbooks", f"rebuilding output workbooks failed: {exc}")
        return []
    done = [record for record in settled if record is not None]
    for record in done:
        if record.workbook == workbooks.FAILED:
            ctx.error(record.job or record.kind, f"run {record.run_id}: output workbook "
                                                 f"failed: {record.workbook_error}")
    return done


def compact_if_needed(ctx: Context) -> bool:
    """Keep search fast as runs arrive: when core.reads.compaction says the layout needs it, add
    the new
    runs to the copy's delta or write a new copy (readers switch when it is complete), keeping the
    lease meanwhile. A failure is recorded in the heartbeat and retried after COMPACT_RETRY; a
    compaction that lost the race to another (`python -m core compact`) is retried next step."""
    failed = (ctx.compaction or {}).get("failed_at")
    if failed and aware(ctx.clock()) - datetime.fromisoformat(failed) < COMPACT_RETRY:
        return False
    try:
        plan = plan_compaction(ctx.store)
        if not plan.needed:
            return False
        log.info("compacting published colors: %s", plan.reason)
        with ctx.keep():
            report = compact_colors(ctx.store, now=ctx.clock())
    except WriteConflict:
        log.info("another compaction switched the copy first; planning again next step")
        return False
    except Exception as exc:  # search stays correct on the old layout, only slower
        log.exception("compaction failed")
        ctx.error("compaction", f"failed: {exc}")
        ctx.compaction = {**(ctx.compaction or {}), "failed_at": aware(ctx.clock()).isoformat()}
        return False
    ctx.compaction = {"at": aware(ctx.clock()).isoformat(), "mode": report.mode,
                      "runs": report.runs, "rows": report.rows, "seconds": report.seconds,
                      "reason": report.reason}
    return report.done
