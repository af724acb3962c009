"""Watchlist alerts by email: after a run's alerts are delivered in-app (core.alerts.watchlists),
one
message per opted-in user listing the alerts new to them, sent through core.alerts.email's retries
into
the send log (event "watchlist"). An email failure never touches the run or the in-app alerts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING

from core.alerts import email as notify
from core.alerts.templates import EmailSettings
from core.config import Settings
from storage import Store

if TYPE_CHECKING:  # core.alerts.watchlists imports this module to send its alerts
    from core.alerts.watchlists import Alert

log = logging.getLogger(__name__)
EVENT = "watchlist"  # EVENT of the send log


@dataclass(frozen=True)
class WatchEmail:
    """Whether a user's watchlist alerts go out by email: their own switch, their account's
    address and an SMTP server configured by an admin are all needed."""

    on: bool
    address: str
    smtp_configured: bool

    @property
    def active(self) -> bool:
        return self.on and bool(self.address) and self.smtp_configured


def alert_subject(run_id: int, count: int) -> str:
    return f"MarketPulse: {count} watchlist alert(s) in run {run_id}"


def alert_body(alerts: Sequence[Alert], base_url: str) -> str:
    """Each alert's title and detail, then a link to the security page once per CUSIP. The titles
    and details were written for the user (columns they cannot see read "(hidden)")."""
    lines = [f"Your MarketPulse watchlist raised {len(alerts)} alert(s) in run "
             f"{alerts[0].run_id}:", ""]
    for cusip, same in groupby(alerts, key=lambda a: a.cusip):
        for alert in same:
            lines += [alert.title, f"  {alert.body}"]
        if base_url:
            lines.append(f"  Open {cusip}: {base_url}/security?cusip={cusip}")
        lines.append("")
    lines.append("You can turn these emails off on the Search page, under My watchlist.")
    return "\n".join(lines) + "\n"


def email_alerts(store: Store, settings: Settings, alerts: Sequence[Alert],
                 addresses: Mapping[str, str], *, now: datetime,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, notify.Delivery]:
    """Email each user in `addresses` (opted in, with an address) their alerts among `alerts`
    (those delivered in-app just now): one message per user, only when SMTP is configured.
    Never raises; every attempt is in the send log. Once a user's email has failed all its
    attempts, the others of the run get one attempt each, so a dead server costs one backoff."""
    by_user: dict[str, list[Alert]] = {}
    for alert in alerts:
        if addresses.get(alert.username):
            by_user.setdefault(alert.username, []).append(alert)
    try:
        smtp = notify.load_smtp_config(store) if by_user else None
        base_url = str(settings["app.base_url"]).rstrip("/")
    except Exception:  # an email problem must not reach the run
        log.exception("watchlist emails: could not read the SMTP settings")
        return {}
    if smtp is None:
        return {}
    attempts = notify.ATTEMPTS
    outcomes: dict[str, notify.Delivery] = {}
    for username, mine in by_user.items():
        try:
            outcomes[username] = notify.deliver_email(
                store, settings, smtp, EmailSettings(to=[addresses[username]]),
                alert_subject(mine[0].run_id, len(mine)), alert_body(mine, base_url), [],
                event=EVENT, run_id=mine[0].run_id, now=now, sleep=sleep, attempts=attempts)
        except Exception as exc:
            log.exception("watchlist email to %s failed", username)
            outcomes[username] = notify.Delivery("failed", error=str(exc) or type(exc).__name__)
        if outcomes[username].status != "sent":
            attempts = 1
    return outcomes
