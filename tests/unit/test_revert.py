"""The unified "last 4 changes with Revert": rules and column configuration built in, other areas
through register_area; conflicts when the entity changed since; every revert logged."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.access import SYSTEM, Actor
from core.audit import get_change, load_changes, record_change
from core.automation.jobs import Job, get_job, save_job
from core.compliance import revert
from core.compliance.revert import RulesHandler, recent_changes, register_area, revert_change
from core.config import load_settings
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.ingest.columns import add_alias, load_column_config, set_visible
from core.rules.exclusion import (
    Condition,
    Group,
    Rule,
    delete_rule,
    get_rule,
    load_rules,
    save_rule,
    toggle_rule,
)
from core.runs.pipeline import process_files
from core.schema import CUSIP, SOURCE, default_column_config
from storage import ANY_VERSION, ObjectNotFound

ANN = Actor("ann", "admin")
ZOE = Actor("zoe", "admin")
BOB = Actor("bob", "analyst")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 13, hour, minute, tzinfo=UTC)


def dz_rule(name: str = "No DZ") -> Rule:
    return Rule(name, Group("and", [Condition(SOURCE, "equal to", "DZ BANK")]))


@pytest.fixture
def store(memory_store):
    return memory_store


def last_event(store, area: str = "rules") -> str:
    return str(load_changes(store, area=area, limit=1)["EVENT_ID"].iloc[0])


def listing(store, area: str = "rules") -> list[tuple[str, str, str, bool, str]]:
    return [(c.action, c.entity, c.summary, c.revertible, c.reason)
            for c in recent_changes(store, area)]


# -- rules ----------------------------------------------------------------------------------------
def test_reverting_a_created_rule_deletes_it_and_the_revert_is_logged(store):
    rule = save_rule(store, ANN, dz_rule(), now=at(10))
    created = last_event(store)
    reverted = revert_change(store, ZOE, created, now=at(10, 5))
    assert load_rules(store) == []
    change = get_change(store, reverted)
    assert {k: change[k] for k in ("AREA", "ACTION", "ENTITY", "ACTOR", "DETAIL", "AFTER")} == {
        "AREA": "rules", "ACTION": "revert", "ENTITY": "No DZ", "ACTOR": "zoe",
        "DETAIL": created, "AFTER": None}
    assert json.loads(change["BEFORE"]) == rule.to_dict()
    assert listing(store) == [
        ("revert", "No DZ", "reverted ann's change of 2026-03-13 10:00 UTC: created rule 'No DZ'",
         False, "a revert cannot itself be reverted; make the change again instead"),
        ("create", "No DZ", "created rule 'No DZ'", False,
         "already reverted by zoe at 2026-03-13 10:05 UTC"),
    ]


def test_reverting_an_update_puts_the_rule_back_under_its_id(store):
    original = save_rule(store, ANN, dz_rule(), now=at(10))
    edited = replace(original, name="No DZ Bank", description="DZ quotes are stale",
                     conditions=Group("or", [Condition(SOURCE, "contains", "DZ")]), priority=5)
    save_rule(store, ANN, edited, now=at(10, 30))
    assert listing(store)[0][:4] == (
        "update", "No DZ Bank",
        "updated rule 'No DZ Bank' (conditions, description, name, priority)", True)
    revert_change(store, ZOE, last_event(store), now=at(11))
    restored, _ = get_rule(store, original.id)
    assert restored.to_dict() == original.to_dict()


def test_reverting_a_delete_recreates_the_rule_with_its_id(store):
    original = save_rule(store, ANN, dz_rule(), now=at(10))
    delete_rule(store, ANN, original.id, now=at(10, 30))
    revert_change(store, ZOE, last_event(store), now=at(11))
    assert [r.to_dict() for r in load_rules(store)] == [original.to_dict()]


def test_reverting_a_deactivation_switches_the_rule_back_on(store):
    original = save_rule(store, ANN, dz_rule(), now=at(10))
    toggle_rule(store, ANN, original.id, now=at(10, 30))
    assert listing(store)[0][2] == "deactivated rule 'No DZ'"
    revert_change(store, ZOE, last_event(store), now=at(11))
    assert get_rule(store, original.id)[0].active is True


def test_a_rule_changed_since_cannot_be_reverted_until_that_change_is(store):
    save_rule(store, ANN, dz_rule(), now=at(10))
    created = last_event(store)
    rule = load_rules(store)[0]
    save_rule(store, ANN, replace(rule, description="stale quotes"), now=at(10, 42))
    with pytest.raises(Conflict) as exc:
        revert_change(store, ZOE, created, now=at(11))
    assert str(exc.value) == (
        "cannot revert this change to rule 'No DZ': rule 'No DZ' was changed by ann at "
        "2026-03-13 10:42 UTC after this change; revert that change first")
    assert load_rules(store)[0].description == "stale quotes"
    revert_change(store, ZOE, last_event(store), now=at(11, 1))
    revert_change(store, ZOE, created, now=at(11, 2))
    assert load_rules(store) == []


def test_a_rename_since_is_found_by_the_rule_id(store):
    save_rule(store, ANN, dz_rule(), now=at(10))
    created = last_event(store)
    save_rule(store, ANN, replace(load_rules(store)[0], name="Old DZ"), now=at(10, 42))
    (_, _, _, revertible, reason) = listing(store)[1]
    assert (revertible, reason) == (False, "rule 'No DZ' was changed by ann at 2026-03-13 10:42 "
                                           "UTC after this change; revert that change first")
    with pytest.raises(Conflict):
        revert_change(store, ZOE, created)


def test_a_change_outside_the_log_blocks_the_revert(store):
    rule = save_rule(store, ANN, dz_rule(), now=at(10))
    store.put(f"rules/{rule.id}", {**rule.to_dict(), "priority": 1}, ANY_VERSION)
    assert listing(store)[0][3:] == (False, "rule 'No DZ' has changed since this change, outside "
                                            "the change log; it cannot be reverted")


def test_restoring_over_a_state_that_moved_on_is_a_conflict(store):
    rule = save_rule(store, ANN, dz_rule(), now=at(10))
    stale = {**rule.to_dict(), "priority": 7}
    with pytest.raises(Conflict) as exc:
        RulesHandler().restore(store, ZOE, "No DZ", None, stale)
    assert str(exc.value) == "the rule changed while it was being reverted; reload and try again"
    assert load_rules(store) == [rule]


def test_a_revert_that_would_duplicate_a_name_is_refused(store):
    rule = save_rule(store, ANN, dz_rule(), now=at(10))
    delete_rule(store, ANN, rule.id, now=at(10, 10))
    deleted = last_event(store)
    save_rule(store, ANN, dz_rule("NO DZ"), now=at(10, 20))
    with pytest.raises(Conflict) as exc:
        revert_change(store, ZOE, deleted)
    assert str(exc.value) == ("cannot revert this change to rule 'No DZ': rule 'No DZ' was "
                              "changed by ann at 2026-03-13 10:20 UTC after this change; revert "
                              "that change first")


# -- the last four --------------------------------------------------------------------------------
def test_the_last_four_changes_are_listed_newest_first_with_why_not(store):
    a = save_rule(store, ANN, dz_rule("A"), now=at(10))
    b = save_rule(store, ANN, dz_rule("B"), now=at(10, 10))
    save_rule(store, ANN, replace(a, description="why"), now=at(10, 20))
    toggle_rule(store, ANN, b.id, now=at(10, 30))
    delete_rule(store, ZOE, a.id, now=at(10, 40))
    assert listing(store) == [
        ("delete", "A", "deleted rule 'A'", True, ""),
        ("deactivate", "B", "deactivated rule 'B'", True, ""),
        ("update", "A", "updated rule 'A' (description)", False,
         "rule 'A' was changed by zoe at 2026-03-13 10:40 UTC after this change; revert that "
         "change first"),
        ("create", "B", "created rule 'B'", False,
         "rule 'B' was changed by ann at 2026-03-13 10:30 UTC after this change; revert that "
         "change first"),
    ]
    assert [c.at for c in recent_changes(store, "rules", limit=2)] == [at(10, 40), at(10, 30)]


def test_an_analyst_cannot_revert(store):
    save_rule(store, ANN, dz_rule(), now=at(10))
    with pytest.raises(PermissionDenied) as exc:
        revert_change(store, BOB, last_event(store))
    assert str(exc.value) == "bob is not allowed to revert changes"
    assert len(load_rules(store)) == 1


def test_an_unknown_change_is_not_found(store):
    with pytest.raises(NotFound) as exc:
        revert_change(store, ZOE, "nope")
    assert str(exc.value) == "change 'nope' not found in the change log"


def test_a_revert_cannot_be_reverted(store):
    save_rule(store, ANN, dz_rule(), now=at(10))
    revert_change(store, ZOE, last_event(store), now=at(10, 5))
    with pytest.raises(InvalidInput) as exc:
        revert_change(store, ZOE, last_event(store))
    assert str(exc.value) == ("revert: a revert cannot itself be reverted; make the change again "
                              "instead")


# -- column configuration -------------------------------------------------------------------------
def test_reverting_a_column_change_restores_the_configuration_before_it(store):
    add_alias(store, ANN, CUSIP, "Cusip No", now=at(10))
    assert listing(store, "columns") == [
        ("update", "column configuration", "added alias 'Cusip No' to CUSIP", True, "")]
    revert_change(store, ZOE, last_event(store, "columns"), now=at(10, 5))
    assert load_column_config(store) == default_column_config()
    assert listing(store, "columns")[0][:3] == (
        "revert", "column configuration",
        "reverted ann's change of 2026-03-13 10:00 UTC: added alias 'Cusip No' to CUSIP")


def test_a_later_column_change_blocks_reverting_an_earlier_one(store):
    add_alias(store, ANN, CUSIP, "Cusip No", now=at(10))
    first = last_event(store, "columns")
    set_visible(store, ANN, "DIFF_STATUS", False, now=at(10, 30))
    with pytest.raises(Conflict) as exc:
        revert_change(store, ZOE, first)
    assert str(exc.value) == (
        "cannot revert this change to the column configuration: the column configuration was "
        "changed by ann at 2026-03-13 10:30 UTC after this change; revert that change first")
    revert_change(store, ZOE, last_event(store, "columns"), now=at(11))
    revert_change(store, ZOE, first, now=at(11, 1))
    assert load_column_config(store) == default_column_config()


# -- jobs -----------------------------------------------------------------------------------------
def test_reverting_a_job_update_puts_the_job_back_and_logs_the_revert(store):
    created = save_job(store, ANN, Job("Morning", "30 9 * * 1-5"), now=at(9))
    updated = save_job(store, ANN, replace(created, schedule="0 10 * * 1-5", active=False),
                       now=at(10))
    assert listing(store, "jobs") == [
        ("update", "Morning", "updated job 'Morning' (active, schedule)", True, ""),
        ("create", "Morning", "created job 'Morning'", False,
         "job 'Morning' was changed by ann at 2026-03-13 10:00 UTC after this change; revert "
         "that change first")]
    update = last_event(store, "jobs")
    revert_event = revert_change(store, ZOE, update, now=at(11))
    assert get_job(store, created.id)[0] == created
    logged = get_change(store, revert_event)
    assert (logged["ACTOR"], logged["AREA"], logged["ACTION"], logged["ENTITY"],
            logged["DETAIL"]) == ("zoe", "jobs", "revert", "Morning", update)
    assert json.loads(logged["BEFORE"]) == updated.to_dict()
    assert json.loads(logged["AFTER"]) == created.to_dict()
    assert listing(store, "jobs")[1] == (
        "update", "Morning", "updated job 'Morning' (active, schedule)", False,
        "already reverted by zoe at 2026-03-13 11:00 UTC")


# -- other areas ----------------------------------------------------------------------------------
def test_an_area_without_a_handler_lists_changes_but_cannot_revert_them(store):
    record_change(store, ANN, "settings", "update", "ranking.date_column",
                  before={"value": "DATE"}, after={"value": "DATE_1"}, now=at(10))
    assert listing(store, "settings") == [
        ("update", "ranking.date_column", "updated setting 'ranking.date_column' (value)", False,
         "settings changes cannot be reverted")]
    with pytest.raises(InvalidInput) as exc:
        revert_change(store, ZOE, last_event(store, "settings"))
    assert str(exc.value) == "revert: settings changes cannot be reverted"



def test_a_published_run_is_listed_but_not_revertible(store):
    data = ("MESSAGE_ID,TICKER,SECTOR,CUSIP,DATE,PX,SOURCE,BIAS\n"
            "17734072432755618,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-13,99.5,JPM,BID\n")
    process_files(store, SYSTEM, [("a.csv", data.encode())], settings=load_settings({}, {}))
    assert listing(store, "runs") == [
        ("run_published", "run 1", "run published run 1", False,
         "'run published' changes cannot be reverted")]


class JobsHandler:
    """A stand-in for core.automation.jobs: jobs as documents "jobs/<name>"."""

    def current_state(self, store, entity):
        try:
            return store.get(f"jobs/{entity}")[0]
        except ObjectNotFound:
            return None

    def restore(self, store, actor, entity, before, after):
        key = f"jobs/{(before or after)['name']}"
        if before is None:
            store.delete(key)
        else:
            store.put(key, before, ANY_VERSION)


def test_a_registered_area_reverts_its_allowed_actions(store, monkeypatch):
    monkeypatch.setattr(revert, "_AREAS", dict(revert._AREAS))
    register_area("jobs", JobsHandler(), actions={"update"})
    old, new = {"name": "nightly", "cron": "0 6 * * *"}, {"name": "nightly", "cron": "0 7 * * *"}
    store.put("jobs/nightly", old, None)
    record_change(store, ANN, "jobs", "create", "nightly", after=old, now=at(9))
    store.put("jobs/nightly", new, ANY_VERSION)
    record_change(store, ANN, "jobs", "update", "nightly", before=old, after=new, now=at(10))
    assert listing(store, "jobs") == [
        ("update", "nightly", "updated job 'nightly' (cron)", True, ""),
        ("create", "nightly", "created job 'nightly'", False,
         "'create' changes cannot be reverted")]
    revert_change(store, ZOE, last_event(store, "jobs"), now=at(11))
    assert store.get("jobs/nightly")[0] == old


# -- the change log's order -----------------------------------------------------------------------
def test_changes_at_the_same_time_come_back_newest_first(store):
    for action in ("first", "second", "third"):
        record_change(store, ANN, "rules", action, "x", now=at(10))
    record_change(store, ANN, "rules", "earlier", "x", now=at(9))
    assert load_changes(store, area="rules")["ACTION"].tolist() == [
        "third", "second", "first", "earlier"]
    assert load_changes(store, limit=2)["ACTION"].tolist() == ["third", "second"]
