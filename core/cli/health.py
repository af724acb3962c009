"""`python -m core scheduler-health`: one line and an exit status (0 healthy, 1 not) for a
service manager, a load balancer's script check or monitoring. It reads the heartbeat the
scheduler holding the lease writes after every step (core.automation.scheduler) and changes
nothing in the store."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from core.automation.scheduler import scheduler_health
from core.clock import utc_now
from storage import Store

HEALTHY, UNHEALTHY = 0, 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scheduler-health",
                       help="exit 0 when the scheduler running jobs beat recently, else 1 (one "
                            "line saying why)")
    p.add_argument("--max-age", type=float, metavar="SECONDS",
                   help="oldest heartbeat accepted (default: three of the scheduler's ticks)")


def health_verdict(health: dict[str, Any], max_age_s: float | None = None) -> tuple[bool, str]:
    """(healthy, one line) from scheduler_health's answer. Healthy: a heartbeat not stopped and
    younger than max_age_s (None: the scheduler's own rule, three ticks)."""
    beat, age = health["heartbeat"], health["heartbeat_age_s"]
    if beat is None:
        return False, ("no scheduler has run on this store yet: start python -m core.scheduler "
                       "(one per host; the lease picks the one that runs jobs)")
    who = f"{beat.get('owner')} (version {beat.get('version')})"
    if beat.get("stopped"):
        return False, f"the scheduler {who} stopped at {beat['at']} and none has taken over"
    fresh = health["alive"] if max_age_s is None else age <= max_age_s
    if not fresh:
        limit = (f"{max_age_s:g} s" if max_age_s is not None
                 else f"three ticks of {float(beat.get('tick_s') or 0):g} s")
        return False, (f"the scheduler {who} last beat {age:.0f} s ago (more than {limit}): "
                       "stuck, or stopped without a word; a standby takes over when its lease "
                       "ends")
    line = f"ok: the scheduler {who} beat {age:.0f} s ago"
    if health["current"]:
        line += f", running job {health['current'].get('job')}"
    if health["last_errors"]:
        line += f"; {len(health['last_errors'])} recent job error(s) on the Automation page"
    return True, line


def run(args: argparse.Namespace, store: Store, now: datetime | None = None) -> int:
    healthy, line = health_verdict(scheduler_health(store, now or utc_now()), args.max_age)
    print(line)
    return HEALTHY if healthy else UNHEALTHY
