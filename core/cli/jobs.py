"""`python -m core jobs list|add|remove|run`: automation jobs from the command line (as system).

`run` queues the run for the scheduler when one is up, else runs the job in this process under the
scheduler's lease.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.access import SYSTEM
from core.automation import jobs
from core.automation.leases import lease_holder
from core.automation.scheduler import LEASE, run_in_app
from core.automation.schedules import cron_from_builder, describe_schedule, next_runs
from core.clock import utc_now
from core.config import Settings
from core.errors import InvalidInput
from core.runs.records import load_runs
from storage import Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list, add, remove or run automation jobs")
    jsub = p.add_subparsers(dest="action", required=True)
    jsub.add_parser("list", help="list jobs with their schedule and next run")
    a = jsub.add_parser("add", help="add a job")
    a.add_argument("--name", required=True)
    when = a.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="5-field cron, 0 = Sunday, e.g. '30 9 * * 1-5'")
    when.add_argument("--at", help="daily at HH:MM (with --weekdays, default every day)")
    when.add_argument("--every-minutes", type=int, metavar="N")
    when.add_argument("--every-hours", type=int, metavar="N")
    a.add_argument("--weekdays", default="*", help="with --at: e.g. mon-fri, 1-5 or mon,thu")
    a.add_argument("--tz", help="IANA timezone (default: scheduler.timezone, Asia/Karachi)")
    a.add_argument("--no-rules", action="store_true", help="runs apply no rules (OVERRIDE)")
    a.add_argument("--inactive", action="store_true", help="create the job switched off")
    a.add_argument("--source", action="append", default=[], metavar="inbox:PATH|buffer",
                   help="where the job reads colors (repeatable)")
    r = jsub.add_parser("remove", help="delete a job")
    r.add_argument("name")
    n = jsub.add_parser("run", help="run a job now")
    n.add_argument("name")
    n.add_argument("--skip-next", action="store_true", help="and skip its next scheduled run")
    n.add_argument("--no-rules", action="store_true", help="apply no rules (OVERRIDE)")


def _source(text: str) -> dict[str, Any]:
    if text == "buffer":
        return {"kind": "buffer"}
    if text.startswith("inbox:") and len(text) > len("inbox:"):
        return {"kind": "inbox", "path": text[len("inbox:"):]}
    raise InvalidInput("source", f"{text!r}: use inbox:PATH or buffer (SQL sources: the app)")


def _schedule(args: argparse.Namespace) -> str:
    if args.cron:
        return str(args.cron)
    if args.at:
        return cron_from_builder("daily", at=args.at, weekdays=args.weekdays)
    if args.every_minutes is not None:
        return cron_from_builder("minutes", every=args.every_minutes)
    return cron_from_builder("hours", every=args.every_hours)


def _last_status(records: list[Any], name: str) -> str:
    return next((f"{r.status} (run {r.run_id})" for r in records if r.job == name), "-")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    now = utc_now()
    if args.action == "list":
        records = load_runs(store, limit=500)
        print(f"{'NAME':24} {'STATE':8} {'NEXT RUN':26} {'LAST':18} SCHEDULE")
        for job in jobs.load_jobs(store):
            upcoming = next_runs(job, now, 1) if job.active else []
            nxt = upcoming[0].isoformat(timespec="minutes") if upcoming else "-"
            state = "active" if job.active else "inactive"
            print(f"{job.name:24} {state:8} {nxt:26} {_last_status(records, job.name):18} "
                  f"{describe_schedule(job.schedule, job.timezone)}")
        return 0
    if args.action == "add":
        job = jobs.Job(name=args.name, schedule=_schedule(args),
                       timezone=args.tz or settings["scheduler.timezone"],
                       active=not args.inactive, apply_rules=not args.no_rules,
                       sources=[_source(s) for s in args.source])
        saved = jobs.save_job(store, SYSTEM, job, now=now)
        runs = ", ".join(at.isoformat(timespec="minutes") for at in next_runs(saved, now, 3))
        print(f"Added job {saved.name!r}: {describe_schedule(saved.schedule, saved.timezone)}"
              f" (cron '{saved.schedule}'); next runs {runs}")
        return 0
    job = jobs.find_job(store, args.name)
    if args.action == "remove":
        jobs.delete_job(store, SYSTEM, job.id, now=now)
        print(f"Removed job {job.name!r}")
        return 0
    holder = lease_holder(store, LEASE, now)
    if holder is not None:
        jobs.request_run(store, SYSTEM, job.id, skip_next=args.skip_next,
                         override=args.no_rules, now=now)
        print(f"Queued a run of {job.name!r}; the scheduler ({holder[0]}) will start it")
        return 0
    record = run_in_app(store, settings, SYSTEM, job.id, now, override=args.no_rules,
                        skip_next=args.skip_next)
    if args.skip_next:
        skipped = jobs.get_job(store, job.id)[0].skip_next_at
        print(f"The next scheduled run ({skipped}) will be skipped")
    if record is None:
        print(f"{job.name}: nothing to process")
        return 0
    c = record.counts
    print(f"Run {record.run_id} of {job.name!r}: {record.status}"
          + (f", published {c.get('published', 0)}, excluded {c.get('excluded', 0)}"
             if c else "") + (f" ({record.error})" if record.error else ""))
    return 0 if record.status in ("success", "skipped") else 1
