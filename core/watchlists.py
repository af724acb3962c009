"""Watchlists: a user's CUSIPs with alert rules (new color, PX move beyond a threshold against the
previous parent, a new parent of better rank), checked after each published run and delivered as
in-app notifications once per event (user, CUSIP, run, kind)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core import runs
from core.access import OWN_SEARCHES, Actor, require
from core.audit import record_change
from core.column_profiles import load_column_profiles
from core.compaction import duckdb_session, fetch_frame, open_colors, published_columns
from core.errors import Conflict, InvalidInput, NotFound
from core.identifiers import CUSIP_ID, classify
from core.notifications import list_notifications, notify_users
from core.user_records import get_user
from storage import ANY_VERSION, ObjectNotFound, Store, WriteConflict

log = logging.getLogger(__name__)

PREFIX = "watchlists/users/"
CHECKED_PREFIX = "watchlists/checked/"  # one marker per run: its alerts went out
AREA = "watchlists"
NEW_COLOR, PX_MOVE, BETTER_RANK = "watch_new_color", "watch_px_move", "watch_better_rank"
ALERT_KINDS = (NEW_COLOR, PX_MOVE, BETTER_RANK)
_ATTEMPTS = 20


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
    return _items(store, actor.username)


def _items(store: Store, username: str) -> list[WatchItem]:
    try:
        value, _ = store.get(PREFIX + username)
    except ObjectNotFound:
        return []
    return [WatchItem.from_dict(i) for i in value["items"]]


def _write(store: Store, actor: Actor, cusip: str, item: WatchItem | None,
           now: datetime | None) -> list[WatchItem]:
    key = PREFIX + actor.username
    for _ in range(_ATTEMPTS):
        try:
            value, version = store.get(key)
        except ObjectNotFound:
            value, version = {"items": []}, None
        items = [WatchItem.from_dict(i) for i in value["items"]]
        before = next((i for i in items if i.cusip == cusip), None)
        if item is None and before is None:
            raise NotFound(f"{cusip} is not on your watchlist")
        items = sorted([i for i in items if i.cusip != cusip] + ([item] if item else []),
                       key=lambda i: i.cusip)
        try:
            store.put(key, {"items": [i.to_dict() for i in items]}, expected_version=version)
        except WriteConflict:
            continue
        record_change(store, actor, AREA, "watch_saved" if item else "watch_removed", cusip,
                      before=before and before.to_dict(), after=item and item.to_dict(), now=now)
        return items
    raise Conflict(f"the watchlist of {actor.username} kept changing; try again")


def watch(store: Store, actor: Actor, item: WatchItem, *, now: datetime | None = None
          ) -> list[WatchItem]:
    """Add a CUSIP to the actor's watchlist, or change its alert rules; returns the list."""
    require(actor, OWN_SEARCHES)
    ident = classify(item.cusip, CUSIP_ID)
    if ident.kind != CUSIP_ID:
        raise InvalidInput("cusip", f"{item.cusip!r} is not a CUSIP: {ident.reason}")
    if item.px_move is not None and not item.px_move > 0:
        raise InvalidInput("px_move", "the PX move threshold is a positive number of points")
    stamp = (now or datetime.now(UTC)).isoformat()
    item = WatchItem(ident.value, item.new_color, item.px_move, item.better_rank, stamp)
    return _write(store, actor, ident.value, item, now)


def unwatch(store: Store, actor: Actor, cusip: str, *, now: datetime | None = None
            ) -> list[WatchItem]:
    """Remove a CUSIP from the actor's watchlist; returns the list."""
    require(actor, OWN_SEARCHES)
    return _write(store, actor, cusip.strip().upper(), None, now)


def _watchers(store: Store) -> dict[str, Actor]:
    """Every enabled user with a watchlist, as the Actor their alerts are limited by."""
    profiles = load_column_profiles(store)
    found = {}
    for key in store.list(PREFIX):
        try:
            user = get_user(store, key[len(PREFIX):])
        except NotFound:
            continue
        if not user.disabled and not user.pending_approval:
            found[user.username] = user.actor(profiles)
    return found


def _fmt(value: Any, actor: Actor, column: str) -> str:
    if actor.columns is not None and column not in actor.columns:
        return "(hidden)"
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
    if item.px_move is not None and abs(move) >= item.px_move:
        found.append(Alert(username, item.cusip, run_id, PX_MOVE,
                           f"{item.cusip}: PX moved {move:+.3f} in run {run_id}",
                           f"From {_fmt(last['PX'], actor, 'PX')} (run {int(last['RUN_ID'])}) "
                           f"to {px}"))
    if item.better_rank and int(parent["RANK"]) < int(last["RANK"]):
        found.append(Alert(username, item.cusip, run_id, BETTER_RANK,
                           f"{item.cusip}: better parent in run {run_id}",
                           f"{bias} (rank {int(parent['RANK'])}) replaces "
                           f"{_fmt(last['BIAS'], actor, 'BIAS')} (rank {int(last['RANK'])})"))
    return found


def alert_after_publish(store: Store, run_record: runs.RunRecord, now: datetime) -> None:
    """check_watchlists for a run just published; an alert failure never fails the run."""
    try:
        check_watchlists(store, run_record, now)
    except Exception:
        log.exception("watchlist alerts for run %s failed", run_record.run_id)


def check_watchlists(store: Store, run_record: runs.RunRecord, now: datetime) -> list[Alert]:
    """After a run publishes: raise every watcher's alerts for it and deliver each once (a second
    check of the same run delivers nothing). Returns the alerts delivered now."""
    run_id = run_record.run_id
    if run_record.status != runs.SUCCESS:
        return []
    marker = f"{CHECKED_PREFIX}{run_id:08d}"
    try:
        store.get(marker)
        return []  # checked before
    except ObjectNotFound:
        pass
    watchers = _watchers(store)
    items = {name: _items(store, name) for name in watchers}
    cusips = sorted({i.cusip for watched in items.values() for i in watched})
    delivered = _deliver(store, run_id, watchers, items, cusips, now) if cusips else []
    # Written after delivery: a crash re-checks the run, and notification ids keep it to one.
    store.put(marker, {"at": now.isoformat(), "alerts": len(delivered)}, ANY_VERSION)
    log.info("run %s: %s watchlist alert(s) delivered", run_id, len(delivered))
    return delivered


def _deliver(store: Store, run_id: int, watchers: dict[str, Actor],
             items: dict[str, list[WatchItem]], cusips: list[str], now: datetime) -> list[Alert]:
    with duckdb_session() as con:
        src = open_colors(store, con)
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


def list_alerts(store: Store, actor: Actor, *, limit: int = 50) -> list[Any]:
    """The actor's watchlist alerts (core.notifications entries), newest first."""
    require(actor, OWN_SEARCHES)
    found = list_notifications(store, actor.username, limit=10_000)
    return [n for n in found if n.kind in ALERT_KINDS][:limit]


def forget_check(store: Store, run_id: int) -> None:
    """Drop a run's checked marker (an admin re-raising a run's alerts; deliveries stay deduped)."""
    try:
        store.delete(f"{CHECKED_PREFIX}{run_id:08d}", ANY_VERSION)
    except ObjectNotFound:
        return
