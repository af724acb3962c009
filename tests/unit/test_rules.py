"""Exclusion rules: the record, validation, apply/filter/test, and rules in the store with audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from core.access import ADMIN, ANALYST, VIEWER, Actor
from core.audit import load_changes
from core.errors import Conflict, InvalidRule, NotFound, PermissionDenied
from core.rules.conditions import Condition, Group
from core.rules.exclusion import (
    Rule,
    apply_rules,
    delete_rule,
    filter_frame,
    get_rule,
    load_rules,
    save_rule,
    set_priority,
    test_rule,
    toggle_rule,
    validate_rule,
)
from core.schema import BIAS, CONFIDENCE, EXCLUDED_BY, PX, SOURCE
from tests.factories import make_colors

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
LATER = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
ADMIN_USER = Actor("ayesha", ADMIN)


def high_px(name: str = "High PX", **fields) -> Rule:
    return Rule(name, Group("and", [Condition(PX, "greater_than", 100)]), **fields)


# -- the record ------------------------------------------------------------------------------------
def test_rule_round_trips_through_json():
    rule = Rule(
        "Low-confidence valuations",
        Group("or", [Condition(SOURCE, "equal_to", "DZ BANK"),
                     Group("and", [Condition(BIAS, "in_list", ["VALUATION", "BWIC TALK"]),
                                   Condition(CONFIDENCE, "less_than", 5)])]),
        description="house marks", priority=20, active=False, id="abc123",
        created_by="ayesha", created_at=NOW, updated_by="omar", updated_at=LATER,
    )
    document = json.loads(json.dumps(rule.to_dict()))
    assert document["created_at"] == "2026-03-14T09:30:00+00:00"
    assert document["conditions"]["join"] == "or"
    assert Rule.from_dict(document) == rule


def test_a_single_condition_becomes_a_group():
    assert Rule("x", Condition(PX, "gt", 1)).conditions == Group("and", [Condition(PX, "gt", 1)])


def test_the_earlier_systems_rule_json_loads():
    earlier = {"id": 1, "name": "testing1", "is_active": True,
               "conditions": [{"type": "where", "column": "PX", "operator": "gt", "value": "100",
                               "value2": None},
                              {"type": "or", "column": "SOURCE", "operator": "equals",
                               "value": "smbc", "value2": None},
                              {"type": "and", "column": "BIAS", "operator": "starts with",
                               "value": "bwic", "value2": None}],
               "created_at": "2026-03-14T00:48:07.373091",
               "updated_at": "2026-03-14T01:11:34.270698"}
    rule = Rule.from_dict(earlier)
    assert rule == Rule(
        "testing1",
        Group("and", [Group("or", [Condition(PX, "greater_than", "100"),
                                   Condition(SOURCE, "equal_to", "smbc")]),
                      Condition(BIAS, "starts_with", "bwic")]),
        priority=100, active=True, id="1",
        created_at=datetime(2026, 3, 14, 0, 48, 7, 373091, tzinfo=UTC),
        updated_at=datetime(2026, 3, 14, 1, 11, 34, 270698, tzinfo=UTC),
    )
    assert Rule.from_dict({"name": "no flag", "conditions": []}).active is True


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (high_px("  "), "a rule needs a name"),
        (high_px("x" * 101), f"rule '{'x' * 101}': the name is longer than 100 characters (101)"),
        (Rule("Empty", Group("and", [])), "rule 'Empty': add at least one condition"),
        (high_px(priority=-1),
         "rule 'High PX': priority must be a whole number of 0 or more, not -1"),
        (Rule("Bad PX", Group("and", [Condition(PX, "gt", 1), Condition(PX, "gt", "abc")])),
         "rule 'Bad PX': condition 2 (PX greater than 'abc'): 'abc' is not a number"),
        (Rule("Custom", Condition("DESK", "eq", "CLO")),
         "rule 'Custom': condition 1 (DESK equals 'CLO'): unknown column DESK"),
    ],
)
def test_validate_rule_messages(rule, message):
    with pytest.raises(InvalidRule) as caught:
        validate_rule(rule)
    assert str(caught.value) == message


def test_validate_rule_accepts_custom_columns_when_given():
    validate_rule(Rule("Custom", Condition("DESK", "eq", "CLO")), {"DESK": "text"})
    validate_rule(high_px("x" * 100))


# -- apply_rules -----------------------------------------------------------------------------------
@pytest.fixture
def batch() -> pd.DataFrame:
    return make_colors(
        SOURCE=["DZ BANK", "JPM", "DZ BANK", "GS", "JPM"],
        PX=[101.0, 99.0, 95.0, 102.0, 50.0],
        BIAS=["BID", "VALUATION", "BID", "OFFER", "BID"],
        CONFIDENCE=[10, 2, 10, 10, 10],
    ).set_axis([10, 11, 12, 13, 14])


def test_apply_rules_records_the_first_matching_rule_by_priority(batch):
    rules = [
        high_px(priority=50),  # rows 10, 13
        Rule("No DZ", Condition(SOURCE, "equal_to", "dz bank"), priority=10),  # rows 10, 12
        Rule("Low-confidence valuations", Group("and", [
            Condition(BIAS, "equal_to", "VALUATION"), Condition(CONFIDENCE, "less_than", 5)]),
            priority=50),  # row 11; same priority as High PX, and the name decides
        Rule("Off", Condition(PX, "less_than", 60), active=False),  # row 14, but inactive
    ]
    outcome = apply_rules(batch, rules)
    assert_frame_equal(outcome.kept, batch.loc[[14]])
    expected = batch.loc[[10, 11, 12, 13]].copy()
    expected[EXCLUDED_BY] = pd.array(
        ["No DZ", "Low-confidence valuations", "No DZ", "High PX"], dtype="string")
    assert_frame_equal(outcome.excluded, expected)
    assert outcome.counts == {"No DZ": 2, "High PX": 1, "Low-confidence valuations": 1}
    assert list(outcome.counts) == ["No DZ", "High PX", "Low-confidence valuations"]
    assert outcome.matches == {"No DZ": 2, "High PX": 2, "Low-confidence valuations": 1}


def test_apply_rules_leaves_the_input_alone(batch):
    before = batch.copy()
    apply_rules(batch, [high_px()])
    assert_frame_equal(batch, before)


def test_apply_rules_on_an_empty_batch():
    empty = make_colors(PX=[1.0]).iloc[:0]
    outcome = apply_rules(empty, [high_px()])
    assert_frame_equal(outcome.kept, empty)
    assert list(outcome.excluded.columns) == [*empty.columns, EXCLUDED_BY]
    assert outcome.counts == {"High PX": 0}


def test_inactive_rules_are_ignored(batch):
    outcome = apply_rules(batch, [high_px(active=False)])
    assert_frame_equal(outcome.kept, batch)
    assert outcome.excluded.empty
    assert list(outcome.excluded.columns) == [*batch.columns, EXCLUDED_BY]
    assert outcome.counts == {}
    assert outcome.matches == {}


def test_a_rule_that_matches_nothing_counts_zero(batch):
    outcome = apply_rules(batch, [Rule("Nothing", Condition(PX, "greater_than", 500))])
    assert outcome.counts == {"Nothing": 0}
    assert_frame_equal(outcome.kept, batch)


def test_apply_rules_names_the_rule_whose_condition_cannot_run(batch):
    rule = Rule("Stale", Condition("BWIC_COVER", "not_equal_to", "X"))
    with pytest.raises(InvalidRule) as caught:
        apply_rules(batch, [rule])
    assert str(caught.value) == (
        "rule 'Stale': condition 1 (BWIC_COVER does not equal 'X'): "
        "column BWIC_COVER is not in the data")


def test_filter_frame_keeps_the_matching_rows(batch):
    group = Group("or", [Condition(SOURCE, "equal_to", "GS"), Condition(PX, "less_than", 60)])
    assert_frame_equal(filter_frame(batch, group), batch.loc[[13, 14]])
    assert_frame_equal(filter_frame(batch, Group("or", [])), batch)


def test_test_rule_counts_each_condition_and_samples_rows():
    frame = make_colors(PX=[float(p) for p in range(95, 105)], SOURCE=["JPM", "GS"] * 5)
    rule = Rule("High JPM", Group("and", [Condition(PX, "gt", 96), Condition(SOURCE, "eq", "JPM")]))
    result = test_rule(rule, frame)
    samples = result.pop("samples")
    assert result == {
        "rule": "High JPM",
        "rows": 10,
        "matched": 4,
        "conditions": [
            {"number": 1, "condition": "PX greater than 96", "matched": 8},
            {"number": 2, "condition": "SOURCE equals 'JPM'", "matched": 5},
        ],
    }
    assert_frame_equal(samples, frame.loc[[2, 4, 6, 8]])
    everything = test_rule(Rule("All", Condition(PX, "gt", 0)), frame)
    assert_frame_equal(everything["samples"], frame.head(5))


# -- the store -------------------------------------------------------------------------------------
def test_save_creates_a_rule_with_an_id_and_who_and_when(memory_store):
    saved = save_rule(memory_store, ADMIN_USER, high_px(" High PX ", description="cheap"), now=NOW)
    assert len(saved.id) == 12
    assert saved == high_px(description="cheap", id=saved.id, created_by="ayesha", created_at=NOW,
                            updated_by="ayesha", updated_at=NOW)
    assert memory_store.list("rules/") == [f"rules/{saved.id}"]
    assert get_rule(memory_store, saved.id) == (saved, "1")
    assert load_rules(memory_store) == [saved]


def test_an_unknown_id_creates_the_rule_under_it_and_a_bad_id_is_refused(memory_store):
    imported = save_rule(memory_store, ADMIN_USER, high_px(id="1"), now=NOW)
    assert (imported.id, memory_store.list("rules/")) == ("1", ["rules/1"])
    with pytest.raises(InvalidRule, match="an id is letters, digits, _ and -"):
        save_rule(memory_store, ADMIN_USER, high_px("Other", id="../x"), now=NOW)
    with pytest.raises(NotFound, match=r"^rule '\.\./x' not found$"):
        get_rule(memory_store, "../x")


def test_load_rules_sorts_by_priority_then_name(memory_store):
    for name, priority in [("b", 5), ("C", 1), ("a", 5)]:
        save_rule(memory_store, ADMIN_USER, high_px(name, priority=priority), now=NOW)
    assert [r.name for r in load_rules(memory_store)] == ["C", "a", "b"]


def test_update_keeps_creation_and_stamps_the_editor(memory_store):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    editor = Actor("omar", ADMIN)
    updated = save_rule(memory_store, editor, Rule(
        "Higher PX", Condition(PX, "gt", 110), id=created.id, created_by="forged"),
        expected_version="1", now=LATER)
    assert (updated.created_by, updated.created_at) == ("ayesha", NOW)
    assert (updated.updated_by, updated.updated_at) == ("omar", LATER)
    assert get_rule(memory_store, created.id) == (updated, "2")


def test_names_are_unique_case_insensitively_on_create_and_update(memory_store):
    save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    other = save_rule(memory_store, ADMIN_USER, high_px("Other"), now=NOW)
    with pytest.raises(InvalidRule) as on_create:
        save_rule(memory_store, ADMIN_USER, high_px("  high px"), now=NOW)
    assert str(on_create.value) == "rule 'high px': another rule is already named 'High PX'"
    with pytest.raises(InvalidRule) as on_update:
        save_rule(memory_store, ADMIN_USER, high_px("HIGH PX", id=other.id), now=NOW)
    assert str(on_update.value) == "rule 'HIGH PX': another rule is already named 'High PX'"
    renamed_itself = save_rule(memory_store, ADMIN_USER, high_px("OTHER", id=other.id), now=NOW)
    assert renamed_itself.name == "OTHER"


def test_save_refuses_an_invalid_rule_and_writes_nothing(memory_store):
    with pytest.raises(InvalidRule, match="'abc' is not a number"):
        save_rule(memory_store, ADMIN_USER, Rule("Bad", Condition(PX, "gt", "abc")), now=NOW)
    assert memory_store.list("rules/") == []
    assert load_changes(memory_store).empty


def test_save_validates_custom_columns_only_when_given(memory_store):
    rule = Rule("Desk", Condition("DESK", "equal_to", "CLO"))
    with pytest.raises(InvalidRule, match="unknown column DESK"):
        save_rule(memory_store, ADMIN_USER, rule, now=NOW)
    assert save_rule(memory_store, ADMIN_USER, rule, columns={"DESK": "text"}, now=NOW).id


def test_a_stale_version_is_a_conflict(memory_store):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    save_rule(memory_store, ADMIN_USER, high_px(id=created.id, priority=1), expected_version="1",
              now=NOW)
    with pytest.raises(Conflict) as caught:
        save_rule(memory_store, ADMIN_USER, high_px(id=created.id, priority=2),
                  expected_version="1", now=NOW)
    assert str(caught.value) == (
        "rule 'High PX' was changed by someone else since it was opened "
        "(version '1', now '2'); reload it and try again")
    assert get_rule(memory_store, created.id)[0].priority == 1


def test_saving_a_rule_deleted_meanwhile_is_a_conflict(memory_store):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    delete_rule(memory_store, ADMIN_USER, created.id, now=NOW)
    with pytest.raises(Conflict, match=r"^rule 'High PX' was deleted since it was opened$"):
        save_rule(memory_store, ADMIN_USER, high_px(id=created.id), expected_version="1", now=NOW)


def test_delete_toggle_and_priority(memory_store):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    off = toggle_rule(memory_store, ADMIN_USER, created.id, now=LATER)
    assert (off.active, off.updated_at) == (False, LATER)
    assert toggle_rule(memory_store, ADMIN_USER, created.id, False, now=LATER) == off  # no change
    assert toggle_rule(memory_store, ADMIN_USER, created.id, now=LATER).active is True
    assert set_priority(memory_store, ADMIN_USER, created.id, 7, now=LATER).priority == 7
    assert get_rule(memory_store, created.id)[0].priority == 7
    with pytest.raises(InvalidRule, match="priority must be a whole number of 0 or more, not -3"):
        set_priority(memory_store, ADMIN_USER, created.id, -3, now=LATER)
    delete_rule(memory_store, ADMIN_USER, created.id, now=LATER)
    assert load_rules(memory_store) == []
    with pytest.raises(NotFound, match=f"rule '{created.id}' not found"):
        get_rule(memory_store, created.id)
    with pytest.raises(NotFound):
        delete_rule(memory_store, ADMIN_USER, created.id, now=LATER)


def test_a_stale_delete_is_a_conflict(memory_store):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    toggle_rule(memory_store, ADMIN_USER, created.id, now=NOW)
    with pytest.raises(Conflict):
        delete_rule(memory_store, ADMIN_USER, created.id, expected_version="1", now=NOW)
    assert len(load_rules(memory_store)) == 1


def test_a_broken_earlier_rule_cannot_be_switched_on(memory_store):
    memory_store.put("rules/1", {"id": 1, "name": "stale", "is_active": False, "conditions": [
        {"type": "where", "column": "Bwic Cover", "operator": "gt", "value": "1"}]}, None)
    with pytest.raises(InvalidRule, match=r"^rule 'stale': condition 1 \(Bwic Cover greater than "
                                          r"'1'\): unknown column Bwic Cover$"):
        toggle_rule(memory_store, ADMIN_USER, "1", now=NOW)
    assert get_rule(memory_store, "1")[0].active is False


def test_every_change_is_logged_with_before_and_after(memory_store):
    at = [datetime(2026, 3, 14, 9, minute, tzinfo=UTC) for minute in range(5)]
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=at[0])
    updated = save_rule(memory_store, ADMIN_USER, high_px("Renamed", id=created.id), now=at[1])
    toggled = toggle_rule(memory_store, ADMIN_USER, created.id, now=at[2])
    moved = set_priority(memory_store, ADMIN_USER, created.id, 3, now=at[3])
    delete_rule(memory_store, ADMIN_USER, created.id, now=at[4])
    changes = load_changes(memory_store, area="rules").iloc[::-1]  # oldest first
    assert changes["AT"].tolist() == [pd.Timestamp(t) for t in at]
    assert changes["ACTION"].tolist() == [
        "create", "update", "deactivate", "set_priority", "delete"]
    assert changes["ENTITY"].tolist() == ["High PX", "Renamed", "Renamed", "Renamed", "Renamed"]
    assert changes["ACTOR"].tolist() == ["ayesha"] * 5
    before = [None if b is None else json.loads(b) for b in changes["BEFORE"]]
    after = [None if a is None else json.loads(a) for a in changes["AFTER"]]
    assert before == [None, created.to_dict(), updated.to_dict(), toggled.to_dict(),
                      moved.to_dict()]
    assert after == [created.to_dict(), updated.to_dict(), toggled.to_dict(), moved.to_dict(),
                     None]


# -- permissions -----------------------------------------------------------------------------------
def test_viewer_cannot_save_a_rule(memory_store):
    with pytest.raises(PermissionDenied, match=r"^sam is not allowed to edit rules$"):
        save_rule(memory_store, Actor("sam", VIEWER), high_px(), now=NOW)
    assert memory_store.list("rules/") == []


@pytest.mark.parametrize("role", [VIEWER, ANALYST])
def test_only_admins_change_rules(memory_store, role):
    created = save_rule(memory_store, ADMIN_USER, high_px(), now=NOW)
    actor = Actor("sam", role)
    with pytest.raises(PermissionDenied):
        save_rule(memory_store, actor, high_px("Another"), now=NOW)
    with pytest.raises(PermissionDenied):
        save_rule(memory_store, actor, high_px(id=created.id, priority=1), now=NOW)
    with pytest.raises(PermissionDenied):
        delete_rule(memory_store, actor, created.id, now=NOW)
    with pytest.raises(PermissionDenied):
        toggle_rule(memory_store, actor, created.id, now=NOW)
    with pytest.raises(PermissionDenied):
        set_priority(memory_store, actor, created.id, 1, now=NOW)
    assert load_rules(memory_store) == [created]
    assert load_changes(memory_store)["ACTION"].tolist() == ["create"]
