"""Reading the audit trail (admins only): the change log and the access log filtered by user, area,
action and period, each change's before/after as a readable diff, and the compliance report of a
period (core.compliance.report writes it as xlsx and PDF)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd

from core import audit_chain
from core.access import VIEW_AUDIT, Actor, require
from core.audit import load_changes
from core.clock import utc_now_or
from core.compliance.access_log import load_access_log
from core.runs import records as runs
from storage import Store

AUTH_AREA = "auth"  # logins, failures, lockouts, password changes (core.identity.login)
CHANGE_COLUMNS = ["AT", "ACTOR", "AREA", "ACTION", "ENTITY", "CHANGED", "DETAIL", "SEQ",
                  "EVENT_ID"]
ACCESS_COLUMNS = ["AT", "ACTOR", "ACTION", "WHAT", "ROWS", "DETAIL", "SEQ", "EVENT_ID"]
RUN_COLUMNS = ["RUN", "KIND", "TRIGGER", "BY", "STATUS", "STARTED", "FINISHED", "FILES",
               "PUBLISHED", "PARENTS", "ERROR"]
_MAX_VALUE = 80  # characters of one value in a diff line


@dataclass(frozen=True)
class TrailFilter:
    """What the Audit page and the report ask for; None/empty = no restriction. until is
    exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    username: str | None = None
    area: str | None = None
    action: str | None = None


EVERYTHING = TrailFilter()


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str) \
        if not isinstance(value, str) else value
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 1] + "…"


def _parse(text: Any) -> Any:
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def describe_diff(before: Any, after: Any) -> str:
    """Before/after snapshots (JSON text as the change log keeps them) as lines a person reads:
    'field: old → new' for each field that differs, 'created' / 'removed' for a whole thing."""
    old, new = _parse(before), _parse(after)
    if old is None and new is None:
        return ""
    if old is None:
        return "created: " + _short(new)
    if new is None:
        return "removed: " + _short(old)
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                lines.append(f"{key}: {_short(old[key])} → (removed)")
            elif key not in old:
                lines.append(f"{key}: (added) {_short(new[key])}")
            elif old[key] != new[key]:
                lines.append(f"{key}: {_short(old[key])} → {_short(new[key])}")
        return "\n".join(lines) or "no difference"
    return f"{_short(old)} → {_short(new)}" if old != new else "no difference"


def _in_period(frame: pd.DataFrame, wanted: TrailFilter) -> pd.DataFrame:
    at = pd.to_datetime(frame["AT"], utc=True)
    keep = pd.Series(True, index=frame.index)
    if wanted.since is not None:
        keep &= at >= pd.Timestamp(wanted.since).tz_convert(UTC)
    if wanted.until is not None:
        keep &= at < pd.Timestamp(wanted.until).tz_convert(UTC)
    return frame[keep]


def changes(store: Store, actor: Actor, wanted: TrailFilter = EVERYTHING) -> pd.DataFrame:
    """Change-log entries newest first, with CHANGED: the readable diff of before/after."""
    require(actor, VIEW_AUDIT)
    frame = load_changes(store)
    if frame.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    frame = _in_period(frame, wanted)
    for column, value in (("ACTOR", wanted.username), ("AREA", wanted.area),
                          ("ACTION", wanted.action)):
        if value:
            frame = frame[frame[column] == value]
    frame = frame.assign(CHANGED=[describe_diff(b, a) for b, a in
                                  zip(frame["BEFORE"], frame["AFTER"], strict=True)])
    if "SEQ" not in frame.columns:
        frame = frame.assign(SEQ=pd.Series(pd.NA, index=frame.index, dtype="Int64"))
    return frame[CHANGE_COLUMNS].reset_index(drop=True)


def accesses(store: Store, actor: Actor, wanted: TrailFilter = EVERYTHING) -> pd.DataFrame:
    """Access-log entries (searches, security views, exports) newest first."""
    require(actor, VIEW_AUDIT)
    frame = load_access_log(store, username=wanted.username or None,
                            action=wanted.action or None, since=wanted.since,
                            until=wanted.until)
    if frame.empty:
        return pd.DataFrame(columns=ACCESS_COLUMNS)
    seq = store.scan(audit_chain.TRAIL_TABLES[1], columns=None)
    if "SEQ" in seq.columns:
        frame = frame.merge(seq[["EVENT_ID", "SEQ"]].drop_duplicates("EVENT_ID"), how="left",
                            on="EVENT_ID")
    else:
        frame = frame.assign(SEQ=pd.Series(pd.NA, index=frame.index, dtype="Int64"))
    return frame[ACCESS_COLUMNS].reset_index(drop=True)


def run_activity(store: Store, actor: Actor, wanted: TrailFilter = EVERYTHING) -> pd.DataFrame:
    """Runs started in the period (any status): who asked, what came in, what was published."""
    require(actor, VIEW_AUDIT)
    rows = []
    since = wanted.since and pd.Timestamp(wanted.since).tz_convert(UTC)
    until = wanted.until and pd.Timestamp(wanted.until).tz_convert(UTC)
    for record in runs.load_runs(store):
        started = pd.Timestamp(record.started_at) if record.started_at else None
        if started is not None and started.tzinfo is None:
            started = started.tz_localize(UTC)
        if started is None or (since is not None and started < since) or (
                until is not None and started >= until):
            continue
        who = record.requested_by or record.actor
        if wanted.username and who != wanted.username:
            continue
        rows.append({"RUN": record.run_id, "KIND": record.kind, "TRIGGER": record.trigger,
                     "BY": who, "STATUS": record.status, "STARTED": started,
                     "FINISHED": pd.Timestamp(record.finished_at) if record.finished_at
                     else pd.NaT,
                     "FILES": ", ".join(str(f.get("name")) for f in record.files),
                     "PUBLISHED": int(record.counts.get("published", 0)),
                     "PARENTS": int(record.counts.get("parents", 0)), "ERROR": record.error})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def day_bounds(first: date, last: date) -> TrailFilter:
    """The period of whole UTC days first..last (inclusive)."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    return TrailFilter(since=datetime.combine(first, time(), UTC),
                       until=datetime.combine(last + timedelta(days=1), time(), UTC))


@dataclass(frozen=True)
class ComplianceReport:
    """Everything the report of a period holds; core.compliance.report writes it out."""

    first: date
    last: date
    generated_at: datetime
    generated_by: str
    changes: pd.DataFrame  # every area but auth
    auth: pd.DataFrame  # logins, failures, lockouts, password and role changes
    access: pd.DataFrame
    runs: pd.DataFrame
    activity: pd.DataFrame  # per user: logins, changes, searches, views, exports, runs
    chain: audit_chain.Verdict


def _activity(all_changes: pd.DataFrame, access: pd.DataFrame, run_rows: pd.DataFrame
              ) -> pd.DataFrame:
    counts: dict[str, dict[str, int]] = {}

    def bump(user: str, what: str) -> None:
        counts.setdefault(user, {}).setdefault(what, 0)
        counts[user][what] += 1

    for area, action, user in zip(all_changes["AREA"], all_changes["ACTION"],
                                  all_changes["ACTOR"], strict=True):
        bump(user, "LOGINS" if (area, action) == (AUTH_AREA, "login_ok")
             else "FAILED LOGINS" if (area, action) == (AUTH_AREA, "login_failed")
             else "CHANGES")
    for action, user in zip(access["ACTION"], access["ACTOR"], strict=True):
        bump(user, {"search": "SEARCHES", "security_view": "SECURITY VIEWS"}.get(action,
                                                                               "EXPORTS"))
    for user in run_rows["BY"]:
        bump(user, "RUNS")
    columns = ["USER", "LOGINS", "FAILED LOGINS", "CHANGES", "SEARCHES", "SECURITY VIEWS",
               "EXPORTS", "RUNS"]
    rows = [{"USER": user, **{c: found.get(c, 0) for c in columns[1:]}}
            for user, found in sorted(counts.items())]
    return pd.DataFrame(rows, columns=columns)


def compliance_report(store: Store, actor: Actor, first: date, last: date, *,
                      now: datetime | None = None) -> ComplianceReport:
    """The report of whole UTC days first..last: changes with before/after, user activity, data
    accessed and exported, runs, and the chain's verification now."""
    require(actor, VIEW_AUDIT)
    period = day_bounds(first, last)
    all_changes = changes(store, actor, period)
    access = accesses(store, actor, period)
    run_rows = run_activity(store, actor, period)
    is_auth = all_changes["AREA"] == AUTH_AREA
    return ComplianceReport(
        first=first, last=last, generated_at=utc_now_or(now), generated_by=actor.username,
        changes=all_changes[~is_auth].reset_index(drop=True),
        auth=all_changes[is_auth].reset_index(drop=True), access=access, runs=run_rows,
        activity=_activity(all_changes, access, run_rows), chain=audit_chain.verify(store))
