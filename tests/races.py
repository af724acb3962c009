"""Race workers for tests/unit/test_races.py: `python -m tests.races OP STORE GATE INDEX COUNT`
prepares OP, waits until GATE exists (all workers start together), tries OP COUNT times on the
local store and prints one JSON line: the outcome of each try ("ok" or the error's class name)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import core.identity.passwords
from core.access import Actor
from core.rules.conditions import Condition, Group
from core.schema import PX, SECTOR
from storage import Store, open_store

ADMIN = Actor("ann", "admin")
ANALYST = Actor("bob", "analyst")
PASSWORD = "a-long-race-password-7"  # a test account's password
RULE_NAME, JOB_NAME, USER_NAME, PRESET_NAME, SEARCH_NAME = (
    "Wide bids", "Nightly", "trader", "Mezz only", "Mine")

Act = Callable[[], Any]


def _rule(store: Store, index: int) -> Act:
    from core.rules.exclusion import Rule, save_rule

    rule = Rule(RULE_NAME if index % 2 else RULE_NAME.upper(),
                Group("and", [Condition(PX, "greater_than", 100)]))
    return lambda: save_rule(store, ADMIN, rule)


def _job(store: Store, index: int) -> Act:
    from core.automation.jobs import Job, save_job

    return lambda: save_job(store, ADMIN, Job(name=JOB_NAME, schedule="0 6 * * 1-5"))


def _user(store: Store, index: int) -> Act:
    from core.identity.users import create_user

    return lambda: create_user(store, ADMIN, USER_NAME, name="Trader", email="", role="viewer",
                               password=PASSWORD)


def _preset(store: Store, index: int) -> Act:
    from core.rules.presets import Preset, save_preset

    preset = Preset(PRESET_NAME, Group("and", [Condition(SECTOR, "equal to", "2.0_mezz")]))
    return lambda: save_preset(store, ANALYST, preset)


def _search(store: Store, index: int) -> Act:
    from core.reads.saved_searches import save_search
    from core.reads.search import SearchQuery

    return lambda: save_search(store, ANALYST, SEARCH_NAME, SearchQuery(text=f"ares{index}"))


def _first_admin(store: Store, index: int) -> Act:
    from core.identity.users import create_first_admin

    return lambda: create_first_admin(store, f"admin{index}", "Admin", "", PASSWORD)


def _run_now(store: Store, index: int) -> Act:
    from core.automation.jobs import find_job, request_run

    job_id = find_job(store, JOB_NAME).id
    return lambda: request_run(store, ADMIN, job_id, now=datetime.now(UTC))


def _smtp(store: Store, index: int) -> Act:
    from core.alerts.email import SmtpConfig, get_smtp_config, save_smtp_config

    _, version = get_smtp_config(store)
    config = SmtpConfig(host=f"smtp{index}.desk.example", sender="desk@desk.example")
    return lambda: save_smtp_config(store, ADMIN, config, expected_version=version)


def _webhooks(store: Store, index: int) -> Act:
    from core.alerts.webhooks import WebhookSettings, get_webhook_settings, save_webhook_settings

    _, version = get_webhook_settings(store)
    config = WebhookSettings(slack_url=f"https://hooks.slack.com/services/T{index}/B{index}/x")
    return lambda: save_webhook_settings(store, ADMIN, config, expected_version=version)


def _email(store: Store, index: int) -> Act:
    from core.alerts.templates import EmailSettings, get_email_settings, save_email_settings

    _, version = get_email_settings(store)
    config = EmailSettings(to=[f"desk{index}@desk.example"])
    return lambda: save_email_settings(store, ADMIN, config, expected_version=version)


def _signup(store: Store, index: int) -> Act:
    from core.identity.login import get_self_registration_version, set_self_registration

    _, version = get_self_registration_version(store)
    return lambda: set_self_registration(store, ADMIN, bool(index % 2), expected_version=version)


def _profile(store: Store, index: int) -> Act:
    from core.identity.column_profiles import save_column_profile

    return lambda: save_column_profile(store, ADMIN, "Slim", ["CUSIP", f"PX{index}"],
                                       expected=None)


OPS: dict[str, Callable[[Store, int], Act]] = {
    "rule": _rule, "job": _job, "user": _user, "preset": _preset, "search": _search,
    "first_admin": _first_admin, "run_now": _run_now, "smtp": _smtp, "webhooks": _webhooks,
    "email": _email, "signup": _signup, "profile": _profile}


def main(op: str, url: str, gate: str, index: str, count: str) -> None:
    core.identity.passwords.BCRYPT_ROUNDS = 4  # the policy is checked, the hashing kept cheap
    store = open_store(url)
    act = OPS[op](store, int(index))
    Path(f"{gate}.ready{index}").touch()
    while not Path(gate).exists():
        time.sleep(0.005)
    outcomes = []
    for _ in range(int(count)):
        try:
            act()
            outcomes.append("ok")
        except Exception as exc:  # the outcome is the data: the parent counts them
            outcomes.append(type(exc).__name__)
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(*sys.argv[1:])
