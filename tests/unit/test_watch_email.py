"""Watchlist alerts by email against a real SMTP server on loopback (aiosmtpd): one message per
opted-in user per run, never twice, never beyond the user's entitlements, never failing the run."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from core.access import SYSTEM, Actor
from core.alerts.bell import list_notifications
from core.alerts.email import SmtpConfig, load_send_log, save_smtp_config
from core.alerts.watch_email import WatchEmail
from core.alerts.watchlists import (
    PREFIX,
    WatchItem,
    alert_after_publish,
    check_watchlists,
    forget_check,
    load_watch_email,
    load_watchlist,
    save_watch_email,
    watch,
)
from core.audit import load_changes
from core.config import load_settings
from core.errors import PermissionDenied
from core.identity.column_profiles import save_column_profile
from core.identity.users import create_user
from storage import ANY_VERSION
from tests.unit.test_watchlists import publish  # one run of (CUSIP, SECTOR, BIAS, PX, SOURCE)

SETTINGS = load_settings({}, {"MARKETPULSE_APP_BASE_URL": "https://mp.desk.example/"})
A, B = "97988RBL5", "000840AG3"  # A in 2.0_Mezz, B in MM-CLO
RUN1 = [(A, "2.0_Mezz", "BID", 99.0, "JPM"), (A, "2.0_Mezz", "OFFER", 99.5, "GS"),
        (B, "MM-CLO", "BID", 95.0, "MS"), (B, "MM-CLO", "OFFER", 96.0, "JPM")]
RUN2 = [(A, "2.0_Mezz", "BID", 99.25, "JPM"), (A, "2.0_Mezz", "VALUATION", 90.0, "DB"),
        (B, "MM-CLO", "TRADE CONFIRM", 95.5, "BARCAP")]
NOW = datetime(2026, 3, 13, 19, tzinfo=UTC)
FOOTER = "You can turn these emails off on the Search page, under My watchlist.\n"
ANA_BODY = (
    "Your MarketPulse watchlist raised 4 alert(s) in run 2:\n\n"
    f"{B}: 1 new color(s) in run 2\n  Parent: TRADE CONFIRM at 95.5 from BARCAP\n"
    f"{B}: better parent in run 2\n  TRADE CONFIRM (rank 1) replaces BID (rank 3)\n"
    f"  Open {B}: https://mp.desk.example/security?cusip={B}\n\n"
    f"{A}: 2 new color(s) in run 2\n  Parent: BID at 99.25 from JPM\n"
    f"{A}: PX moved +0.250 in run 2\n  From 99.0 (run 1) to 99.25\n"
    f"  Open {A}: https://mp.desk.example/security?cusip={A}\n\n" + FOOTER)
MIA_BODY = (
    "Your MarketPulse watchlist raised 2 alert(s) in run 2:\n\n"
    f"{B}: PX moved +0.500 in run 2\n  From 95.0 (run 1) to 95.5\n"
    f"{B}: better parent in run 2\n  TRADE CONFIRM (rank 1) replaces BID (rank 3)\n"
    f"  Open {B}: https://mp.desk.example/security?cusip={B}\n\n" + FOOTER)


def configure_smtp(store, port: int) -> None:
    save_smtp_config(store, SYSTEM, SmtpConfig(host="127.0.0.1", port=port, security="none",
                                               sender="marketpulse@desk.test", timeout_s=5),
                     expected_version=None)


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s after a delivered email")


def text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def in_app(store, username: str) -> list[str]:
    return sorted(n.title for n in list_notifications(store, username))


@pytest.fixture
def watchers(memory_store):
    """ana (every sector) and mia (MM-CLO only) watching A and B, run 1 published; run 2 not yet."""
    store = memory_store
    ana, _ = create_user(store, SYSTEM, "ana", name="Ana", email="ana@desk.example",
                         role="analyst")
    mia, _ = create_user(store, SYSTEM, "mia", name="Mia", email="mia@desk.example",
                         role="viewer", sectors=["MM-CLO"])
    publish(store, RUN1, "2026-03-12")
    watch(store, ana.actor(), WatchItem(A, px_move=0.2), now=NOW)
    watch(store, ana.actor(), WatchItem(B), now=NOW)
    watch(store, mia.actor(), WatchItem(A), now=NOW)  # mia may not see 2.0_Mezz
    watch(store, mia.actor(), WatchItem(B, new_color=False, px_move=0.1), now=NOW)
    return store, ana.actor(), mia.actor()


def test_each_opted_in_user_gets_one_email_of_the_alerts_of_the_run(watchers, smtp_server):
    store, _, _ = watchers
    port, inbox = smtp_server
    configure_smtp(store, port)
    record = publish(store, RUN2, "2026-03-13")
    alerts = check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep)

    assert len(alerts) == 6
    assert [(envelope, m["To"], m["Subject"]) for envelope, m in inbox.messages] == [
        (["ana@desk.example"], "ana@desk.example", "MarketPulse: 4 watchlist alert(s) in run 2"),
        (["mia@desk.example"], "mia@desk.example", "MarketPulse: 2 watchlist alert(s) in run 2")]
    assert [text(m) for _, m in inbox.messages] == [ANA_BODY, MIA_BODY]
    log = load_send_log(store).sort_values("TO")
    assert log[["EVENT", "RUN_ID", "ATTEMPT", "STATUS", "TO", "SUBJECT", "ERROR"]].values.tolist() \
        == [["watchlist", 2, 1, "ok", "ana@desk.example",
             "MarketPulse: 4 watchlist alert(s) in run 2", ""],
            ["watchlist", 2, 1, "ok", "mia@desk.example",
             "MarketPulse: 2 watchlist alert(s) in run 2", ""]]


def test_a_second_check_of_the_same_run_sends_nothing(watchers, smtp_server):
    store, _, _ = watchers
    port, inbox = smtp_server
    configure_smtp(store, port)
    record = publish(store, RUN2, "2026-03-13")
    check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep)
    assert check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep) == []
    forget_check(store, record.run_id)  # re-checked: every alert was delivered before
    assert check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep) == []
    assert len(inbox.messages) == 2
    assert len(load_send_log(store)) == 2


def test_alert_after_publish_emails_with_the_settings_it_is_given(watchers, smtp_server):
    store, _, _ = watchers
    port, inbox = smtp_server
    configure_smtp(store, port)
    alert_after_publish(store, publish(store, RUN2, "2026-03-13"), NOW, settings=SETTINGS)
    assert [m["Subject"] for _, m in inbox.messages] == [
        "MarketPulse: 4 watchlist alert(s) in run 2", "MarketPulse: 2 watchlist alert(s) in run 2"]


def test_opted_out_users_and_users_without_an_address_get_alerts_in_app_only(
        watchers, smtp_server):
    store, ana, _ = watchers
    port, inbox = smtp_server
    configure_smtp(store, port)
    noe, _ = create_user(store, SYSTEM, "noe", name="Noe", email="", role="analyst")
    watch(store, noe.actor(), WatchItem(B), now=NOW)
    save_watch_email(store, ana, False, now=NOW)
    record = publish(store, RUN2, "2026-03-13")
    check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep)

    assert [(envelope, text(m)) for envelope, m in inbox.messages] == [
        (["mia@desk.example"], MIA_BODY)]
    assert len(in_app(store, "ana")) == 4
    assert in_app(store, "noe") == [f"{B}: 1 new color(s) in run 2",
                                    f"{B}: better parent in run 2"]


def test_without_smtp_alerts_stay_in_app(watchers, smtp_server):
    store, _, _ = watchers
    _, inbox = smtp_server
    record = publish(store, RUN2, "2026-03-13")
    assert len(check_watchlists(store, record, NOW, settings=SETTINGS, sleep=no_sleep)) == 6
    assert inbox.messages == []
    assert load_send_log(store).empty
    assert len(in_app(store, "ana")) == 4
    assert len(in_app(store, "mia")) == 2


def test_a_sector_limited_users_email_never_names_another_sectors_cusip(watchers, smtp_server):
    store, _, _ = watchers
    port, inbox = smtp_server
    configure_smtp(store, port)
    check_watchlists(store, publish(store, RUN2, "2026-03-13"), NOW, settings=SETTINGS,
                     sleep=no_sleep)
    [mia_mail] = [m for envelope, m in inbox.messages if envelope == ["mia@desk.example"]]
    assert A not in mia_mail.as_string()
    assert "2.0_Mezz" not in mia_mail.as_string()


def test_a_user_who_may_not_see_px_gets_no_prices_and_no_px_moves(memory_store, smtp_server):
    store = memory_store
    port, inbox = smtp_server
    configure_smtp(store, port)
    save_column_profile(store, SYSTEM, "No prices", ["CUSIP", "SECTOR", "BIAS", "SOURCE"])
    pia, _ = create_user(store, SYSTEM, "pia", name="Pia", email="pia@desk.example",
                         role="viewer", column_profile="No prices")
    publish(store, RUN1, "2026-03-12")
    watch(store, pia.actor(), WatchItem(B, px_move=0.1), now=NOW)
    check_watchlists(store, publish(store, RUN2, "2026-03-13"), NOW, settings=SETTINGS,
                     sleep=no_sleep)
    [(_, message)] = inbox.messages
    assert message["Subject"] == "MarketPulse: 2 watchlist alert(s) in run 2"
    assert text(message) == (
        "Your MarketPulse watchlist raised 2 alert(s) in run 2:\n\n"
        f"{B}: 1 new color(s) in run 2\n  Parent: TRADE CONFIRM at (hidden) from BARCAP\n"
        f"{B}: better parent in run 2\n  TRADE CONFIRM (rank (hidden)) replaces BID "
        "(rank (hidden))\n"
        f"  Open {B}: https://mp.desk.example/security?cusip={B}\n\n" + FOOTER)


def test_a_dead_smtp_server_fails_the_emails_into_the_send_log_not_the_alerts(watchers):
    store, _, _ = watchers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    configure_smtp(store, unused)
    slept: list[float] = []
    record = publish(store, RUN2, "2026-03-13")
    alerts = check_watchlists(store, record, NOW, settings=SETTINGS, sleep=slept.append)

    assert len(alerts) == 6
    assert (len(in_app(store, "ana")), len(in_app(store, "mia"))) == (4, 2)
    assert slept == [2.0, 4.0]  # ana's 3 attempts; after that mia gets a single one
    log = load_send_log(store).sort_values(["TO", "ATTEMPT"])
    assert log[["EVENT", "RUN_ID", "ATTEMPT", "STATUS", "TO"]].values.tolist() == [
        ["watchlist", 2, 1, "failed", "ana@desk.example"],
        ["watchlist", 2, 2, "failed", "ana@desk.example"],
        ["watchlist", 2, 3, "failed", "ana@desk.example"],
        ["watchlist", 2, 1, "failed", "mia@desk.example"]]
    assert all(f"127.0.0.1:{unused}" in error for error in log["ERROR"])


# -- the switch -----------------------------------------------------------------------------------
def test_the_email_switch_is_on_by_default_and_the_user_turns_it_off_audited(watchers):
    store, ana, _ = watchers
    assert load_watch_email(store, ana) == WatchEmail(True, "ana@desk.example", False)
    assert save_watch_email(store, ana, False, now=NOW) == WatchEmail(
        False, "ana@desk.example", False)
    save_watch_email(store, ana, False, now=NOW)  # no change: nothing more in the log
    watch(store, ana, WatchItem(A, px_move=1.0), now=NOW)  # items keep the switch
    assert load_watch_email(store, ana).on is False
    assert [i.cusip for i in load_watchlist(store, ana)] == [B, A]
    changes = load_changes(store, area="watchlists")
    emailed = changes[changes["ACTION"] == "watch_email_changed"]
    assert emailed[["ENTITY", "ACTOR"]].values.tolist() == [["ana", "ana"]]


def test_an_old_watchlist_without_the_switch_is_emailed(watchers):
    store, ana, _ = watchers
    store.put(PREFIX + "ana", {"items": [WatchItem(A).to_dict()]}, ANY_VERSION)
    assert load_watch_email(store, ana).on is True
    assert [i.cusip for i in load_watchlist(store, ana)] == [A]


def test_only_a_user_with_own_searches_sets_the_switch(watchers):
    store, _, _ = watchers
    with pytest.raises(PermissionDenied):
        save_watch_email(store, Actor("x", "nobody"), False)
    with pytest.raises(PermissionDenied):
        load_watch_email(store, Actor("x", "nobody"))
