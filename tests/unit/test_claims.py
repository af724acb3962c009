"""Name claims (core.claims) in one process: a rename or delete frees the old name, a claim left by
a crash (its entity never written) blocks the name only for a while, the first-admin gate likewise;
a second Run now is refused while one is queued; a stale settings save names who changed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.access import Actor
from core.alerts.email import SmtpConfig, get_smtp_config, save_smtp_config
from core.automation.jobs import Job, delete_job, request_run, save_job, take_trigger
from core.automation.jobs import pending_triggers as queued
from core.claims import STALE_AFTER, claim_key
from core.errors import ChangedMeanwhile, Conflict, InvalidInput, InvalidRule
from core.identity.users import FIRST_ADMIN_GATE, create_first_admin, list_users
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, delete_rule, load_rules, save_rule
from core.rules.presets import Preset, delete_preset, save_preset
from core.schema import PX
from storage import open_store

ANN = Actor("ann", "admin")
BOB = Actor("bob", "analyst")
WIDE = Group("and", [Condition(PX, "greater_than", 100)])
PASSWORD = "a-long-claims-password-3"  # a test account's password


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


def crashed_claim(store, key: str, holder: str, age: timedelta) -> None:
    """What a process that died after claiming and before writing leaves behind."""
    store.put(key, {"holder": holder, "at": (datetime.now(UTC) - age).isoformat()}, None)


def test_a_renamed_rule_frees_its_old_name_and_a_deleted_one_its_name(store):
    first = save_rule(store, ANN, Rule("Wide bids", WIDE))
    save_rule(store, ANN, Rule("Very wide bids", WIDE, id=first.id))
    second = save_rule(store, ANN, Rule("WIDE BIDS", WIDE))
    with pytest.raises(InvalidRule, match="another rule is already named 'Very wide bids'"):
        save_rule(store, ANN, Rule("very wide bids", WIDE))
    delete_rule(store, ANN, first.id)
    third = save_rule(store, ANN, Rule("Very wide bids", WIDE))
    assert sorted(r.id for r in load_rules(store)) == sorted([second.id, third.id])
    assert store.list("claims/rules/") == sorted(
        [claim_key("rules", "wide bids"), claim_key("rules", "very wide bids")])


def test_a_claim_whose_rule_was_never_written_blocks_the_name_only_until_it_is_stale(store):
    key = claim_key("rules", "Wide bids")
    crashed_claim(store, key, "dead0rule", timedelta(seconds=5))  # may still be being written
    with pytest.raises(InvalidRule, match="another rule is already named 'Wide bids'"):
        save_rule(store, ANN, Rule("Wide bids", WIDE))
    store.delete(key)
    crashed_claim(store, key, "dead0rule", STALE_AFTER + timedelta(seconds=1))
    saved = save_rule(store, ANN, Rule("Wide bids", WIDE))
    assert [r.id for r in load_rules(store)] == [saved.id]
    assert store.get(key)[0]["holder"] == saved.id


def test_a_failed_rule_write_gives_its_new_name_back(store):
    rule = save_rule(store, ANN, Rule("Wide bids", WIDE))
    with pytest.raises(Conflict, match="changed by someone else"):
        save_rule(store, ANN, Rule("Tight bids", WIDE, id=rule.id), expected_version="stale")
    assert store.list("claims/rules/") == [claim_key("rules", "wide bids")]


def test_job_and_preset_names_are_claimed_and_freed_the_same_way(store):
    job = save_job(store, ANN, Job(name="Nightly", schedule="0 6 * * 1-5"))
    crashed_claim(store, claim_key("jobs", "Morning"), "dead0job", timedelta(0))
    with pytest.raises(InvalidInput, match="another job is already named 'Morning'"):
        save_job(store, ANN, Job(name="Morning", schedule="0 6 * * 1-5"))
    delete_job(store, ANN, job.id)
    save_job(store, ANN, Job(name="nightly", schedule="0 6 * * 1-5"))
    mezz = save_preset(store, BOB, Preset("Mezz", WIDE))
    save_preset(store, ANN, Preset("Mezz", WIDE))  # names are unique per owner
    delete_preset(store, BOB, mezz.id)
    assert store.list("claims/presets/") == [claim_key("presets/ann", "mezz")]


def test_a_second_run_now_while_one_is_queued_is_refused_and_allowed_once_it_was_taken(store):
    job = save_job(store, ANN, Job(name="Nightly", schedule="0 6 * * 1-5"))
    at = datetime(2026, 3, 13, 10, 0, tzinfo=UTC)
    request_run(store, ANN, job.id, now=at)
    with pytest.raises(Conflict, match=r"a run of 'Nightly' is already queued \(requested by ann "
                                       r"at 2026-03-13T10:00:00\)"):
        request_run(store, Actor("cy", "admin"), job.id, now=at)
    [trigger] = queued(store)
    assert take_trigger(store, trigger)
    again = request_run(store, ANN, job.id, now=at + timedelta(minutes=1))
    assert [t.id for t in queued(store)] == [again.id]


def test_the_first_admin_gate_left_by_a_crash_opens_again_once_stale(store):
    crashed_claim(store, FIRST_ADMIN_GATE, "ghost", timedelta(seconds=5))
    with pytest.raises(Conflict, match="users already exist"):
        create_first_admin(store, "ada", "Ada", "", PASSWORD)
    store.delete(FIRST_ADMIN_GATE)
    crashed_claim(store, FIRST_ADMIN_GATE, "ghost", STALE_AFTER + timedelta(seconds=1))
    create_first_admin(store, "ada", "Ada", "", PASSWORD)
    assert [(u.username, u.role) for u in list_users(store)] == [("ada", "admin")]


def test_a_stale_settings_save_names_who_changed_it_and_when(store):
    _, loaded = get_smtp_config(store)
    save_smtp_config(store, Actor("eve", "admin"), SmtpConfig(host="smtp.eve.test",
                     sender="eve@desk.test"), expected_version=loaded)
    with pytest.raises(ChangedMeanwhile) as refused:
        save_smtp_config(store, ANN, SmtpConfig(host="smtp.ann.test", sender="ann@desk.test"),
                         expected_version=loaded)
    stamp = refused.value.at  # when eve's change was logged
    assert str(refused.value) == (f"the SMTP server changed meanwhile (by eve at "
                                  f"{stamp[:10]} {stamp[11:16]} UTC): reload and apply your "
                                  "change again")
    assert get_smtp_config(store)[0].host == "smtp.eve.test"


def test_reverting_a_creation_or_a_rename_frees_the_name_at_once(store):
    from core.audit import load_changes
    from core.compliance.revert import revert_change

    def last_event() -> str:
        return str(load_changes(store, area="rules", limit=1)["EVENT_ID"].iloc[0])

    save_rule(store, ANN, Rule("Wide bids", WIDE))
    revert_change(store, ANN, last_event())
    again = save_rule(store, ANN, Rule("Wide bids", WIDE))  # not blocked by the reverted claim
    save_rule(store, ANN, Rule("Tight bids", WIDE, id=again.id))
    revert_change(store, ANN, last_event())  # back to "Wide bids"
    other = save_rule(store, ANN, Rule("Tight bids", WIDE))
    assert sorted((r.name, r.id) for r in load_rules(store)) == sorted(
        [("Wide bids", again.id), ("Tight bids", other.id)])
    assert store.list("claims/rules/") == sorted(
        [claim_key("rules", "wide bids"), claim_key("rules", "tight bids")])
