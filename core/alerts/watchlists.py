"""Watchlists: a user's CUSIPs with alert rules (new color, PX move beyond a threshold against the
previous parent, a new parent of better rank), checked after each published run and delivered as
in-app notifications once per event (user, CUSIP, run, kind), and by email
(core.alerts.watch_email)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from core import catalog
from core.access import OWN_SEARCHES, Actor, require
from core.alerts.bell import list_notifications, notify_users
from core.alerts.email import load_smtp_config
from core.alerts.watch_email import WatchEmail, email_alerts
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.identity.column_profiles import load_column_profiles
from core.identity.user_records import get_user
from core.reads.identifiers import CUSIP_ID, classify
from core.runs import records as runs
from core.runs.published import duckdb_session, fetch_frame, open_colors, published_columns
from storage import ANY_VERSION, ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)

PREFIX = catalog.WATCHLISTS.key
CHECKED_PREFIX = catalog.WATCHLIST_CHECKS.key  # one marker per run: its alerts went out
AREA = "watchlists"
NEW_COLOR, PX_MOVE, BETTER_RANK = "watch_new_color", "watch_px_move", "watch_better_rank"
ALERT_KINDS = (NEW_COLOR, PX_MOVE, BETTER_RANK)
_ATTEMPTS = 20
HIDDEN = "(hidden)"  # a value of a column the user may not see


@dataclass(frozen=True)
class WatchItem:
    """One watched CUSIP and which alerts it raises; px_move is in points (None = off)."""

    cusip: str
    new_color: bool = True
    px_move: float | None = None
    better_rank: bool = True
    added_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatchItem:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Alert:
    username: str
    cusip: str
    run_id: int
    kind: str
    title: str
    body: str

    @property
    def key(self) -> str:
        """The event's identity: one delivery per user, CUSIP, run and kind."""
        return f"{self.kind}-{self.run_id:08d}-{self.cusip}"


def load_watchlist(store: Store, actor: Actor) -> list[WatchItem]:
    """The actor's watched CUSIPs, in CUSIP order."""
    require(actor, OWN_SEARCHES)
    return [WatchItem.from_dict(i) for i in _document(store, actor.username)["items"]]


def _document(store: Store, username: str) -> dict[str, Any]:
    """{"items": [...], "email": bool}; documents written before the email switch lack "email"."""
    try:
        return dict(store.get(PREFIX + username)[0])
    except ObjectNotFound:
        return {"items": []}


def _update(store: Store, username: str, change: Callable[[dict[str, Any]], dict[str, Any]]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write change(document) unless someone wrote in between (then again); (before, after)."""
    key = PREFIX + username
    for _ in range(_ATTEMPTS):
        try:
            value, version = store.get(key)
        except ObjectNotFound:
            value, version = {"items": []}, None
        updated = change(value)
        try:
            store.put(key, updated, expected_version=version)
        except WriteConflict:
            continue
        return value, updated
    raise Conflict(f"the watchlist of {username} kept changing; try again")


def _write(store: Store, actor: Actor, cusip: str, item: WatchItem | None,
           now: datetime | None) -> list[WatchItem]:
    def change(value: dict[str, Any]) -> dict[str, Any]:
        items = [WatchItem.from_dict(i) for i in value["items"]]
        if item is None and all(i.cusip != cusip for i in items):
            raise NotFound(f"{cusip} is not on your watchlist")
        items = sorted([i for i in items if i.cusip != cusip] + ([item] if item else []),
                       key=lambda i: i.cusip)
        return {**value, "items": [i.to_dict() for i in items]}

    value, updated = _update(store, actor.username, change)
    before = next((i for i in value["items"] if i["cusip"] == cusip), None)
    record_change(store, actor, AREA, "watch_saved" if item else "watch_removed", cusip,
                  before=before, after=item and item.to_dict(), now=now)
    return [WatchItem.from_dict(i) for i in updated["items"]]


def watch(store: Store, actor: Actor, item: WatchItem, *, now: datetime | None = None,
          new_issue: bool = False) -> list[WatchItem]:
    """Add a CUSIP to the actor's watchlist, or change its alert rules; returns the list. A CUSIP
    not on the list yet must have been published (InvalidInput otherwise), unless `new_issue`
    says it is a security not quoted yet, watched for its first color."""
    require(actor, OWN_SEARCHES)
    ident = classify(item.cusip, CUSIP_ID)
    if ident.kind != CUSIP_ID:
        raise InvalidInput("cusip", f"{item.cusip!r} is not a CUSIP: {ident.reason}")
    if item.px_move is not None and not item.px_move > 0:
        raise InvalidInput("px_move", "the PX move threshold is a positive number of points")
    watched = any(i["cusip"] == ident.value for i in _document(store, actor.username)["items"])
    if not (watched or new_issue or ever_published(store, ident.value)):
        raise InvalidInput("cusip", f"{ident.value} has never been published: check the CUSIP "
                                    "(a typo would never raise an alert)")
    stamp = now_or(now).isoformat()
    item = WatchItem(ident.value, item.new_color, item.px_move, item.better_rank, stamp)
    return _write(store, actor, ident.value, item, now)


def ever_published(store: Store, cusip: str) -> bool:
    """Whether a published run holds a color of the CUSIP, in any sector: a CUSIP a user may not
    see still exists (its alerts are filtered when raised), a mistyped one does not."""
    with duckdb_session() as con:
        src = open_colors(store, con, cusips=[cusip])
        if src is None:
            return False
        found = con.execute(f"SELECT 1 FROM {src} WHERE CUSIP = ? LIMIT 1", [cusip]).fetchall()
    return bool(found)


def unwatch(store: Store, actor: Actor, cusip: str, *, now: datetime | None = None
            ) -> list[WatchItem]:
    """Remove a CUSIP from the actor's watchlist; returns the list."""
    require(actor, OWN_SEARCHES)
    return _write(store, actor, cusip.strip().upper(), None, now)


def load_watch_email(store: Store, actor: Actor) -> WatchEmail:
    """Whether the actor's alerts are also emailed: their switch (on unless turned off), their
    account's address and whether an admin configured SMTP."""
    require(actor, OWN_SEARCHES)
    return WatchEmail(on=bool(_document(store, actor.username).get("email", True)),
                      address=get_user(store, actor.username).email,
                      smtp_configured=load_smtp_config(store) is not None)


def save_watch_email(store: Store, actor: Actor, on: bool, *, now: datetime | None = None
                     ) -> WatchEmail:
    """Turn the emailing of the actor's own watchlist alerts on or off (audited)."""
    require(actor, OWN_SEARCHES)
    value, _ = _update(store, actor.username, lambda v: {**v, "email": bool(on)})
    if bool(value.get("email", True)) != bool(on):
        record_change(store, actor, AREA, "watch_email_changed", actor.username,
                      before={"email": not on}, after={"email": bool(on)}, now=now)
    return load_watch_email(store, actor)


def _watchers(store: Store) -> tuple[dict[str, Actor], dict[str, str]]:
    """Every enabled user with a watchlist, as the Actor their alerts are limited by, and the
    email addresses of those who have one."""
    profiles = load_column_profiles(store)
    found: dict[str, Actor] = {}
    addresses: dict[str, str] = {}
    for key in store.list(PREFIX):
        try:
            user = get_user(store, key[len(PREFIX):])
        except NotFound:
            continue
        if not user.disabled and not user.pending_approval:
            found[user.username] = user.actor(profiles)
            if user.email:
                addresses[user.username] = user.email
    return found, addresses


def _fmt(value: Any, actor: Actor, column: str) -> str:
    if actor.columns is not None and column not in actor.columns:
        return HIDDEN
    return "?" if value is None or pd.isna(value) else str(value)


def _alerts(username: str, actor: Actor, item: WatchItem, rows: pd.DataFrame,
            previous: pd.DataFrame, run_id: int) -> list[Alert]:
    mine = rows if actor.sectors is None else rows[rows["SECTOR"].isin(actor.sectors)]
    mine = mine[mine["CUSIP"] == item.cusip]
    if mine.empty:
        return []
    parents = mine[mine["IS_PARENT"].fillna(False).astype(bool)]
    parent = (parents if len(parents) else mine).iloc[0]
    px, bias = _fmt(parent["PX"], actor, "PX"), _fmt(parent["BIAS"], actor, "BIAS")
    found = []
    if item.new_color:
        source = _fmt(parent["SOURCE"], actor, "SOURCE")
        found.append(Alert(username, item.cusip, run_id, NEW_COLOR,
                           f"{item.cusip}: {len(mine)} new color(s) in run {run_id}",
                           f"Parent: {bias} at {px} from {source}"))
    before = previous[previous["CUSIP"] == item.cusip]
    if actor.sectors is not None:
        before = before[before["SECTOR"].isin(actor.sectors)]
    before = before.sort_values("RUN_ID")
    if before.empty:
        return found
    last = before.iloc[-1]
    move = float(parent["PX"]) - float(last["PX"])
    # No PX move for a user who may not see PX: the move would reveal the prices.
    if item.px_move is not None and px != HIDDEN and abs(move) >= item.px_move:
        found.append(Alert(username, item.cusip, run_id, PX_MOVE,
                           f"{item.cusip}: PX moved {move:+.3f} in run {run_id}",
                           f"From {_fmt(last['PX'], actor, 'PX')} (run {int(last['RUN_ID'])}) "
                           f"to {px}"))
    if item.better_rank and int(parent["RANK"]) < int(last["RANK"]):
        found.append(Alert(username, item.cusip, run_id, BETTER_RANK,
                           f"{item.cusip}: better parent in run {run_id}",
                           f"{bias} (rank {_fmt(int(parent['RANK']), actor, 'RANK')}) replaces "
                           f"{_fmt(last['BIAS'], actor, 'BIAS')} "
                           f"(rank {_fmt(int(last['RANK']), actor, 'RANK')})"))
    return found


def alert_after_publish(store: Store, run_record: runs.RunRecord, now: datetime, *,
                        settings: Settings) -> None:
    """check_watchlists for a run just published; an alert failure never fails the run."""
    try:
        check_watchlists(store, run_record, now, settings=settings)
    except Exception:
        log.exception("watchlist alerts for run %s failed", run_record.run_id)


def check_watchlists(store: Store, run_record: runs.RunRecord, now: datetime, *,
                     settings: Settings | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> list[Alert]:
    """After a run publishes: raise every watcher's alerts for it and deliver each once (a second
    check of the same run delivers nothing). With settings, the alerts delivered now are also
    emailed, one message per watcher whose switch is on (core.alerts.watch_email; never raises).
    Returns the alerts delivered now."""
    run_id = run_record.run_id
    if run_record.status != runs.SUCCESS:
        return []
    marker = f"{CHECKED_PREFIX}{run_id:08d}"
    try:
        store.get(marker)
        return []  # checked before
    except ObjectNotFound:
        pass
    watchers, addresses = _watchers(store)
    documents = {name: _document(store, name) for name in watchers}
    items = {n: [WatchItem.from_dict(i) for i in d["items"]] for n, d in documents.items()}
    cusips = sorted({i.cusip for watched in items.values() for i in watched})
    delivered = _deliver(store, run_id, watchers, items, cusips, now) if cusips else []
    # Written after delivery: a crash re-checks the run, and notification ids keep it to one.
    store.put(marker, {"at": now.isoformat(), "alerts": len(delivered)}, ANY_VERSION)
    log.info("run %s: %s watchlist alert(s) delivered", run_id, len(delivered))
    if settings is not None and delivered:
        opted_in = {n: a for n, a in addresses.items() if documents[n].get("email", True)}
        email_alerts(store, settings, delivered, opted_in, now=now, sleep=sleep)
    return delivered


def _deliver(store: Store, run_id: int, watchers: dict[str, Actor],
             items: dict[str, list[WatchItem]], cusips: list[str], now: datetime) -> list[Alert]:
    with duckdb_session() as con:
        src = open_colors(store, con, cusips=cusips)
        if src is None:
            return []
        names = {name for name, _ in published_columns(store, con, src)}
        columns = "RUN_ID, CUSIP, SECTOR, IS_PARENT, PX, RANK, BIAS, SOURCE"
        order = "RUN_ID, POSITION" if "POSITION" in names else "RUN_ID"
        rows = fetch_frame(con, f"SELECT {columns} FROM {src} AS published WHERE RUN_ID = ? AND "
                                f"CUSIP IN (SELECT unnest(?::VARCHAR[])) ORDER BY {order}",
                           [run_id, cusips])
        previous = fetch_frame(
            con, f"SELECT {columns} FROM {src} AS published WHERE IS_PARENT AND RUN_ID < ? AND "
                 "CUSIP IN (SELECT unnest(?::VARCHAR[])) QUALIFY row_number() OVER "
                 "(PARTITION BY CUSIP, SECTOR ORDER BY RUN_ID DESC) = 1", [run_id, cusips])
    delivered = []
    for name, actor in watchers.items():
        for item in items[name]:
            for alert in _alerts(name, actor, item, rows, previous, run_id):
                if notify_users(store, [name], alert.kind, alert.title, alert.body, now,
                                run_id=run_id, notification_id=alert.key):
                    delivered.append(alert)
    return delivered


def list_alerts(store: Store, actor: Actor, *, limit: int = 50, cusip: str | None = None
                ) -> list[Any]:
    """The actor's watchlist alerts (core.alerts.bell entries), newest first; only one CUSIP's
    when given (an alert's id ends with its CUSIP, see Alert.key)."""
    require(actor, OWN_SEARCHES)
    found = list_notifications(store, actor.username, limit=10_000)
    suffix = None if cusip is None else f"-{cusip.strip().upper()}"
    return [n for n in found if n.kind in ALERT_KINDS
            and (suffix is None or n.id.endswith(suffix))][:limit]


def forget_check(store: Store, run_id: int) -> None:
    """Drop a run's checked marker (an admin re-raising a run's alerts; deliveries stay deduped)."""
    try:
        store.delete(f"{CHECKED_PREFIX}{run_id:08d}", ANY_VERSION)
    except ObjectNotFound:
        return
