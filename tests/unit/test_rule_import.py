"""Importing rules: each entry is added, updated (same id), unchanged (equal to the stored rule) or
rejected with the reason; the payload's forms; the permission; every write logged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.access import ADMIN, ANALYST, VIEWER, Actor
from core.audit import load_changes
from core.errors import InvalidInput, PermissionDenied
from core.rules.conditions import Condition, Group
from core.rules.exclusion import Rule, get_rule, load_rules, save_rule
from core.rules.rule_import import (
    ADDED,
    REJECTED,
    UNCHANGED,
    UPDATED,
    ImportedRule,
    ImportReport,
    import_rules,
)
from core.schema import PX, SOURCE

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
LATER = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
ADMIN_USER = Actor("ayesha", ADMIN)
HIGH_PX = "PX greater than 100"


def high_px(name: str = "High PX", **fields) -> Rule:
    return Rule(name, Group("and", [Condition(PX, "greater_than", 100)]), **fields)


def document(rule: Rule) -> dict:
    return json.loads(json.dumps(rule.to_dict()))


@pytest.fixture
def stored(memory_store) -> Rule:
    """'High PX' (id hp1), saved by the admin at NOW."""
    return save_rule(memory_store, ADMIN_USER, high_px(id="hp1"), now=NOW)


# -- each decision ---------------------------------------------------------------------------------
def test_a_new_rule_is_added_under_its_id(memory_store):
    report = import_rules(memory_store, ADMIN_USER, [document(high_px(id="hp1"))], now=NOW)
    assert report.entries == (ImportedRule("High PX", ADDED, HIGH_PX),)
    rule, _ = get_rule(memory_store, "hp1")
    assert (rule.name, rule.created_by, rule.created_at) == ("High PX", "ayesha", NOW)


def test_a_rule_without_an_id_is_added_with_a_new_one(memory_store):
    entry = {"name": "No MS", "conditions": [
        {"type": "where", "column": "SOURCE", "operator": "equals", "value": "MS"}]}
    report = import_rules(memory_store, ADMIN_USER, [entry], now=NOW)
    assert report.entries == (ImportedRule("No MS", ADDED, "SOURCE equals 'MS'"),)
    (rule,) = load_rules(memory_store)
    assert (rule.name, len(rule.id)) == ("No MS", 12)


def test_the_same_id_updates_the_rule_and_keeps_its_creation(memory_store, stored):
    changed = document(high_px("Very high PX", id="hp1", priority=5, active=False))
    report = import_rules(memory_store, ADMIN_USER, [changed], now=LATER)
    assert report.entries == (ImportedRule("Very high PX", UPDATED, HIGH_PX),)
    rule, _ = get_rule(memory_store, "hp1")
    assert (rule.name, rule.priority, rule.active, rule.created_at, rule.updated_at) == (
        "Very high PX", 5, False, NOW, LATER)


def test_an_identical_rule_is_unchanged_and_not_written(memory_store, stored):
    exported = document(stored)
    exported.update(created_by="someone else", updated_at="2020-01-01T00:00:00+00:00")
    report = import_rules(memory_store, ADMIN_USER, [exported], now=LATER)
    assert report.entries == (ImportedRule("High PX", UNCHANGED, "the same rule is already here"),)
    assert get_rule(memory_store, "hp1")[0] == stored
    assert load_changes(memory_store, area="rules")["ACTION"].tolist() == ["create"]


def test_an_identical_rule_without_an_id_is_unchanged_by_its_name(memory_store, stored):
    entry = {k: v for k, v in document(stored).items() if k != "id"}
    entry["name"] = " High PX "  # saving would strip it
    report = import_rules(memory_store, ADMIN_USER, [entry], now=LATER)
    assert report.entries == (ImportedRule("High PX", UNCHANGED, "the same rule is already here"),)
    assert load_changes(memory_store, area="rules")["ACTION"].tolist() == ["create"]


@pytest.mark.parametrize(("name", "priority"), [("High PX", 1), ("high px", 100)])
def test_a_different_rule_without_an_id_does_not_overwrite_one_of_its_name(memory_store, stored,
                                                                           name, priority):
    entry = {k: v for k, v in document(high_px(name, priority=priority)).items() if k != "id"}
    report = import_rules(memory_store, ADMIN_USER, [entry], now=LATER)
    assert report.entries == (ImportedRule(
        name, REJECTED, f"rule {name!r}: another rule is already named 'High PX'"),)
    assert load_rules(memory_store) == [stored]


@pytest.mark.parametrize(
    ("entry", "result"),
    [
        ({"name": "Bad", "conditions": {"join": "and", "items": [
            {"column": "PX", "operator": "greater_than", "value": "high"}]}},
         ImportedRule("Bad", REJECTED,
                      "rule 'Bad': condition 1 (PX greater than 'high'): 'high' is not a number")),
        ({"name": "Empty", "conditions": []},
         ImportedRule("Empty", REJECTED, "rule 'Empty': add at least one condition")),
        ({"conditions": []}, ImportedRule("entry 1", REJECTED, "a rule needs a name")),
        ({"name": "Odd id", "id": "a/b", "conditions": [
            {"type": "where", "column": "PX", "operator": "gt", "value": 1}]},
         ImportedRule("Odd id", REJECTED,
                      "rule 'Odd id': an id is letters, digits, _ and - (at most 64)")),
        ({"name": "Bad priority", "priority": "soon", "conditions": []},
         ImportedRule("Bad priority", REJECTED,
                      "invalid literal for int() with base 10: 'soon'")),
        ("nonsense", ImportedRule("entry 1", REJECTED, "entry 1: not a rule (a JSON object)")),
        (7, ImportedRule("entry 1", REJECTED, "entry 1: not a rule (a JSON object)")),
    ],
)
def test_an_invalid_entry_is_rejected_with_the_reason(memory_store, entry, result):
    assert import_rules(memory_store, ADMIN_USER, [entry], now=NOW).entries == (result,)
    assert load_rules(memory_store) == []


def test_custom_columns_are_allowed_when_given(memory_store):
    entry = document(Rule("Desk", Group("and", [Condition("DESK", "equal_to", "CLO")])))
    assert import_rules(memory_store, ADMIN_USER, [entry], now=NOW).names(REJECTED) == ["Desk"]
    report = import_rules(memory_store, ADMIN_USER, [entry], columns={"DESK": "text"}, now=NOW)
    assert report.entries == (ImportedRule("Desk", ADDED, "DESK equals 'CLO'"),)


# -- a whole import --------------------------------------------------------------------------------
def test_an_import_reports_every_entry_in_order_and_goes_on_after_a_rejection(memory_store,
                                                                              stored):
    payload = [document(stored), "nonsense", document(high_px("Very high PX", id="hp1")),
               document(Rule("No GS", Condition(SOURCE, "equal_to", "GS"), id="gs"))]
    report = import_rules(memory_store, ADMIN_USER, payload, now=LATER)
    assert report == ImportReport((
        ImportedRule("High PX", UNCHANGED, "the same rule is already here"),
        ImportedRule("entry 2", REJECTED, "entry 2: not a rule (a JSON object)"),
        ImportedRule("Very high PX", UPDATED, HIGH_PX),
        ImportedRule("No GS", ADDED, "SOURCE equals 'GS'"),
    ))
    assert report.counts == {UNCHANGED: 1, REJECTED: 1, UPDATED: 1, ADDED: 1}
    assert (report.names(ADDED), report.names(UPDATED), report.names(UNCHANGED)) == (
        ["No GS"], ["Very high PX"], ["High PX"])
    assert report.rejected == [("entry 2", "entry 2: not a rule (a JSON object)")]
    assert [r.name for r in load_rules(memory_store)] == ["No GS", "Very high PX"]
    changes = load_changes(memory_store, area="rules")
    assert changes[["ACTION", "ENTITY", "ACTOR"]].values.tolist() == [
        ["create", "No GS", "ayesha"], ["update", "Very high PX", "ayesha"],
        ["create", "High PX", "ayesha"]]


def test_importing_an_export_twice_changes_nothing_the_second_time(memory_store, stored):
    exported = json.dumps([r.to_dict() for r in load_rules(memory_store)])
    memory_store.delete("rules/hp1")
    assert import_rules(memory_store, ADMIN_USER, exported, now=LATER).counts == {ADDED: 1}
    assert import_rules(memory_store, ADMIN_USER, exported, now=LATER).counts == {UNCHANGED: 1}
    assert load_changes(memory_store, area="rules")["ACTION"].tolist() == ["create", "create"]


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps([document(high_px(id="hp1"))]),
        json.dumps([document(high_px(id="hp1"))]).encode(),
        json.dumps({"rules": [document(high_px(id="hp1"))]}).encode(),
        json.dumps(document(high_px(id="hp1"))).encode(),
        document(high_px(id="hp1")),
        [high_px(id="hp1")],
        high_px(id="hp1"),
    ],
    ids=["text", "bytes", "wrapped", "one-document", "a-dict", "rules", "a-rule"],
)
def test_the_payload_may_be_json_a_list_a_wrapper_or_one_rule(memory_store, payload):
    report = import_rules(memory_store, ADMIN_USER, payload, now=NOW)
    assert report.entries == (ImportedRule("High PX", ADDED, HIGH_PX),)


def test_an_empty_list_imports_nothing(memory_store):
    report = import_rules(memory_store, ADMIN_USER, b"[]", now=NOW)
    assert (report.entries, report.counts) == ((), {})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "rules.json: not JSON (Expecting property name enclosed in double quotes: "
                       "line 1 column 2 (char 1))"),
        (b"42", "rules.json: holds no list of rules"),
        (b'{"rules": "all of them"}', "rules.json: holds no list of rules"),
    ],
)
def test_a_payload_that_is_not_a_list_of_rules_cannot_be_imported(memory_store, payload,
                                                                  message):
    with pytest.raises(InvalidInput) as caught:
        import_rules(memory_store, ADMIN_USER, payload, source="rules.json", now=NOW)
    assert str(caught.value) == message
    assert load_rules(memory_store) == []


# -- permissions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [VIEWER, ANALYST])
def test_only_admins_import_rules(memory_store, stored, role):
    payload = [document(high_px(id="hp1", priority=1)), document(high_px("New", id="new"))]
    with pytest.raises(PermissionDenied, match=r"^sam is not allowed to edit rules$"):
        import_rules(memory_store, Actor("sam", role), payload, now=LATER)
    assert load_rules(memory_store) == [stored]
    assert load_changes(memory_store)["ACTION"].tolist() == ["create"]


def test_a_non_admin_is_refused_before_the_payload_is_read(memory_store):
    with pytest.raises(PermissionDenied):
        import_rules(memory_store, Actor("sam", VIEWER), b"{not json", now=NOW)
