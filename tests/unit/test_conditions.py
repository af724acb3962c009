"""The condition model: operators per type, nulls, nesting, aliases, validation, describe()."""

from __future__ import annotations

import json
from datetime import date, datetime

import pandas as pd
import pytest

from core.errors import InvalidRule
from core.rules.conditions import (
    LABELS,
    OPERATORS,
    Condition,
    Group,
    canonical_operator,
    describe,
    group_from_legacy,
    operators_for,
    validate_condition,
    validate_group,
)
from core.rules.masks import condition_mask, group_mask
from core.schema import COLUMN_TYPE, INPUT_COLUMNS
from tests.factories import make_colors

COLUMNS = {c: COLUMN_TYPE[c] for c in INPUT_COLUMNS}


def matches(frame: pd.DataFrame, column: str, operator: str, value=None, value2=None) -> list[bool]:
    mask = condition_mask(Condition(column, operator, value, value2), frame)
    assert mask.dtype == bool
    assert mask.index.equals(frame.index)
    return mask.tolist()


# -- numbers ---------------------------------------------------------------------------------------
@pytest.fixture
def prices() -> pd.DataFrame:
    return make_colors(PX=[90.0, 100.0, 101.5, None])


@pytest.mark.parametrize(
    ("operator", "value", "value2", "expected"),
    [
        ("equal_to", 100, None, [False, True, False, False]),
        ("equal_to", "101.50", None, [False, False, True, False]),
        ("not_equal_to", 100, None, [True, False, True, False]),
        ("less_than", 100, None, [True, False, False, False]),
        ("greater_than", "100", None, [False, False, True, False]),
        ("less_than_or_equal_to", 100, None, [True, True, False, False]),
        ("greater_than_or_equal_to", 100, None, [False, True, True, False]),
        ("between", 90, 100, [True, True, False, False]),
        ("between", 100, 90, [True, True, False, False]),
        ("between", "101", "102", [False, False, True, False]),
        ("in_list", [90, "101.5"], None, [True, False, True, False]),
        ("not_in_list", [90], None, [False, True, True, False]),
        ("is_empty", None, None, [False, False, False, True]),
        ("is_not_empty", None, None, [True, True, True, False]),
    ],
)
def test_numeric_operators(prices, operator, value, value2, expected):
    assert matches(prices, "PX", operator, value, value2) == expected


def test_integer_columns_compare_as_numbers():
    frame = make_colors(CONFIDENCE=[10, 2, None, 5])
    assert matches(frame, "CONFIDENCE", "less_than", 5) == [False, True, False, False]
    assert matches(frame, "CONFIDENCE", "equal_to", "5.0") == [False, False, False, True]


def test_numeric_equality_ignores_binary_noise():
    frame = make_colors(PRICE_DIFF=[0.1 + 0.2, 0.31])
    assert matches(frame, "PRICE_DIFF", "equal_to", 0.3) == [True, False]


# -- text ------------------------------------------------------------------------------------------
@pytest.fixture
def sources() -> pd.DataFrame:
    return make_colors(SOURCE=["SMBC", " smbc ", "DZ BANK", None, "  ", "jpm"])


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equal_to", " Smbc", [True, True, False, False, False, False]),
        ("not_equal_to", "smbc", [False, False, True, False, False, True]),
        ("contains", "MB", [True, True, False, False, False, False]),
        ("not_contains", "mb", [False, False, True, False, False, True]),
        ("starts_with", "dz", [False, False, True, False, False, False]),
        ("ends_with", "BANK ", [False, False, True, False, False, False]),
        ("in_list", ["JPM", " dz bank"], [False, False, True, False, False, True]),
        ("in_list", "jpm, smbc", [True, True, False, False, False, True]),
        ("not_in_list", ["SMBC"], [False, False, True, False, False, True]),
        ("is_empty", None, [False, False, False, True, True, False]),
        ("is_not_empty", None, [True, True, True, False, False, True]),
    ],
)
def test_text_operators_are_case_insensitive_and_trimmed(sources, operator, value, expected):
    assert matches(sources, "SOURCE", operator, value) == expected


def test_text_condition_works_on_plain_object_columns():
    frame = pd.DataFrame({"SOURCE": ["Jpm", None, 7]}, dtype=object)
    assert matches(frame, "SOURCE", "equal_to", "JPM") == [True, False, False]
    assert matches(frame, "SOURCE", "equal_to", 7) == [False, False, True]


# -- dates -----------------------------------------------------------------------------------------
@pytest.fixture
def dates() -> pd.DataFrame:
    return make_colors(DATE=["2026-03-12", "2026-03-13", "2026-03-14", None])


@pytest.mark.parametrize(
    ("operator", "value", "value2", "expected"),
    [
        ("equal_to", "2026-03-13", None, [False, True, False, False]),
        ("equal_to", date(2026, 3, 13), None, [False, True, False, False]),
        ("equal_to", datetime(2026, 3, 13, 0, 0), None, [False, True, False, False]),
        ("equal_to", "2026-03-13 00:00:00", None, [False, True, False, False]),
        ("equal_to", "2026-03-13T00:00:00", None, [False, True, False, False]),
        ("not_equal_to", "2026-03-13", None, [True, False, True, False]),
        ("before", "2026-03-13", None, [True, False, False, False]),
        ("after", "2026-03-13", None, [False, False, True, False]),
        ("between", "2026-03-13", "2026-03-14", [False, True, True, False]),
        ("between", "2026-03-14", "2026-03-13", [False, True, True, False]),
        ("is_empty", None, None, [False, False, False, True]),
        ("is_not_empty", None, None, [True, True, True, False]),
    ],
)
def test_date_operators_compare_dates_not_strings(dates, operator, value, value2, expected):
    assert matches(dates, "DATE", operator, value, value2) == expected


def test_earlier_gt_and_lt_on_a_date_column_mean_after_and_before(dates):
    assert matches(dates, "DATE", "gt", "2026-03-13") == [False, False, True, False]
    assert matches(dates, "DATE", "lt", "2026-03-13") == [True, False, False, False]


def test_a_date_covers_every_time_of_that_day():
    frame = make_colors(DATE=["2026-03-13 09:30", "2026-03-13 23:59", "2026-03-14 00:00"])
    assert matches(frame, "DATE", "equal_to", "2026-03-13") == [True, True, False]
    assert matches(frame, "DATE", "after", "2026-03-13") == [False, False, True]


def test_dates_held_as_text_or_date_objects_still_compare_as_dates():
    as_text = pd.DataFrame({"DATE": ["2026-01-11 00:00:00", "2026-01-11T00:00:00", "junk", None]})
    assert matches(as_text, "DATE", "equal_to", "2026-01-11") == [True, True, False, False]
    as_objects = pd.DataFrame({"DATE": [date(2026, 1, 11), date(2026, 1, 12)]}, dtype=object)
    assert matches(as_objects, "DATE", "after", "2026-01-11") == [False, True]


def test_timestamp_columns_compare_by_utc_day():
    frame = pd.DataFrame({"PROCESSED_AT": pd.to_datetime(
        ["2026-03-13 23:00", "2026-03-14 01:00"]).tz_localize("UTC")})
    assert matches(frame, "PROCESSED_AT", "equal_to", "2026-03-13") == [True, False]


# -- booleans --------------------------------------------------------------------------------------
def test_boolean_operators():
    frame = pd.DataFrame({"IS_PARENT": pd.array([True, False, None], dtype="boolean")})
    assert matches(frame, "IS_PARENT", "equal_to", True) == [True, False, False]
    assert matches(frame, "IS_PARENT", "equal_to", "yes") == [True, False, False]
    assert matches(frame, "IS_PARENT", "not_equal_to", "true") == [False, True, False]
    assert matches(frame, "IS_PARENT", "is_empty") == [False, False, True]
    assert matches(frame, "IS_PARENT", "is_not_empty") == [True, True, False]


# -- nulls -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "operator", "value", "value2", "expected"),
    [
        ("PX", "equal_to", 5, None, False),
        ("PX", "not_equal_to", 5, None, False),
        ("PX", "less_than", 5, None, False),
        ("PX", "greater_than", 5, None, False),
        ("PX", "less_than_or_equal_to", 5, None, False),
        ("PX", "greater_than_or_equal_to", 5, None, False),
        ("PX", "between", 0, 200, False),
        ("PX", "in_list", [5], None, False),
        ("PX", "not_in_list", [5], None, False),
        ("PX", "is_empty", None, None, True),
        ("PX", "is_not_empty", None, None, False),
        ("SOURCE", "equal_to", "x", None, False),
        ("SOURCE", "not_equal_to", "x", None, False),
        ("SOURCE", "contains", "x", None, False),
        ("SOURCE", "not_contains", "x", None, False),
        ("SOURCE", "starts_with", "x", None, False),
        ("SOURCE", "ends_with", "x", None, False),
        ("SOURCE", "in_list", ["x"], None, False),
        ("SOURCE", "not_in_list", ["x"], None, False),
        ("SOURCE", "is_empty", None, None, True),
        ("SOURCE", "is_not_empty", None, None, False),
        ("DATE", "equal_to", "2026-03-13", None, False),
        ("DATE", "not_equal_to", "2026-03-13", None, False),
        ("DATE", "before", "2026-03-13", None, False),
        ("DATE", "after", "2026-03-13", None, False),
        ("DATE", "between", "2000-01-01", "2100-01-01", False),
        ("DATE", "is_empty", None, None, True),
        ("DATE", "is_not_empty", None, None, False),
    ],
)
def test_a_null_cell_matches_only_is_empty(column, operator, value, value2, expected):
    frame = make_colors(**{column: [None]})
    assert matches(frame, column, operator, value, value2) == [expected]


# -- groups ----------------------------------------------------------------------------------------
T = Condition("SOURCE", "equal_to", "JPM")  # true on the one-row frame below
F = Condition("SOURCE", "equal_to", "GS")


@pytest.fixture
def one_row() -> pd.DataFrame:
    return make_colors(SOURCE=["JPM"])


def test_nesting_makes_precedence_explicit(one_row):
    f_and_f_or_t = Group("or", [Group("and", [F, F]), T])
    f_and_bracket_f_or_t = Group("and", [F, Group("or", [F, T])])
    assert group_mask(f_and_f_or_t, one_row).tolist() == [True]
    assert group_mask(f_and_bracket_f_or_t, one_row).tolist() == [False]


def test_group_joins_on_several_rows():
    frame = make_colors(SOURCE=["DZ BANK", "JPM", "JPM", "GS"],
                        BIAS=["BID", "VALUATION", "VALUATION", "VALUATION"],
                        CONFIDENCE=[10, 2, 9, None])
    group = Group("or", [
        Condition("SOURCE", "equal_to", "DZ BANK"),
        Group("and", [Condition("BIAS", "equal_to", "VALUATION"),
                      Condition("CONFIDENCE", "less_than", 5)]),
    ])
    assert group_mask(group, frame).tolist() == [True, True, False, False]


def test_an_empty_and_group_matches_everything_and_an_empty_or_group_nothing(one_row):
    assert group_mask(Group("and", []), one_row).tolist() == [True]
    assert group_mask(Group("or", []), one_row).tolist() == [False]


def test_masks_keep_the_frame_index():
    frame = make_colors(PX=[1.0, 2.0]).set_axis([10, 4])
    mask = group_mask(Group("and", [Condition("PX", "greater_than", 1)]), frame)
    assert mask.to_dict() == {10: False, 4: True}


# -- operator vocabulary ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("gt", "greater_than"), ("lt", "less_than"), ("gte", "greater_than_or_equal_to"),
        ("lte", "less_than_or_equal_to"), ("eq", "equal_to"), ("ne", "not_equal_to"),
        ("equals", "equal_to"), ("is equal to", "equal_to"), ("not_equals", "not_equal_to"),
        ("Greater Than", "greater_than"), ("less than equal to", "less_than_or_equal_to"),
        ("greater than equal to", "greater_than_or_equal_to"),
        ("less_or_equal", "less_than_or_equal_to"),
        ("greater_or_equal", "greater_than_or_equal_to"), ("starts with", "starts_with"),
        ("ends with", "ends_with"), ("does not contain", "not_contains"),
        ("not_contains", "not_contains"), ("between", "between"), ("in", "in_list"),
        ("not in", "not_in_list"), ("is empty", "is_empty"), ("before", "before"),
    ],
)
def test_earlier_spellings_load_as_canonical_ids(spelling, canonical):
    assert canonical_operator(spelling) == canonical
    assert Condition.from_dict({"column": "PX", "operator": spelling}).operator == canonical


def test_unknown_operator_spelling_is_kept_for_validation_to_reject():
    assert canonical_operator("Sounds Like") == "sounds_like"


def test_operators_for_each_column_type():
    assert operators_for("number") == [
        ("equal_to", "equals"), ("not_equal_to", "does not equal"), ("less_than", "less than"),
        ("greater_than", "greater than"), ("less_than_or_equal_to", "less than or equal to"),
        ("greater_than_or_equal_to", "greater than or equal to"), ("between", "between"),
        ("in_list", "in list"), ("not_in_list", "not in list"), ("is_empty", "is empty"),
        ("is_not_empty", "is not empty"),
    ]
    assert operators_for("integer") == operators_for("number")
    assert operators_for("text") == [
        ("equal_to", "equals"), ("not_equal_to", "does not equal"), ("contains", "contains"),
        ("not_contains", "does not contain"), ("starts_with", "starts with"),
        ("ends_with", "ends with"), ("in_list", "in list"), ("not_in_list", "not in list"),
        ("is_empty", "is empty"), ("is_not_empty", "is not empty"),
    ]
    assert operators_for("date") == [
        ("equal_to", "on"), ("not_equal_to", "not on"), ("before", "before"), ("after", "after"),
        ("between", "between"), ("is_empty", "is empty"), ("is_not_empty", "is not empty"),
    ]
    assert operators_for("timestamp") == operators_for("date")
    assert operators_for("boolean") == [
        ("equal_to", "equals"), ("not_equal_to", "does not equal"), ("is_empty", "is empty"),
        ("is_not_empty", "is not empty"),
    ]


# -- JSON ------------------------------------------------------------------------------------------
ONE_OF_EACH = [
    Condition("PX", op, *(
        ([90, 100] if op.endswith("in_list") else None,) if op.endswith(("in_list", "empty"))
        else (90, 100) if op == "between" else (95,)))
    for op in OPERATORS["number"]
] + [
    Condition("SOURCE", op, ["JPM", "GS"] if op.endswith("in_list") else
              None if op.endswith("empty") else "JPM")
    for op in OPERATORS["text"]
] + [
    Condition("DATE", op, None if op.endswith("empty") else "2026-03-13",
              "2026-03-20" if op == "between" else None)
    for op in OPERATORS["date"]
]


def test_every_operator_round_trips_through_json():
    assert {c.operator for c in ONE_OF_EACH} == set(LABELS)
    group = Group("or", [Group("and", ONE_OF_EACH[:5]), *ONE_OF_EACH[5:]])
    loaded = Group.from_dict(json.loads(json.dumps(group.to_dict())))
    assert loaded == group
    for cond in ONE_OF_EACH:
        assert Condition.from_dict(json.loads(json.dumps(cond.to_dict()))) == cond
        validate_condition(cond, COLUMNS)


def test_condition_and_group_dict_shapes():
    on_day = Condition("DATE", "on", date(2026, 3, 13))
    group = Group("OR", [Condition("PX", "gt", 100), Group("and", [on_day])])
    assert group.to_dict() == {"join": "or", "items": [
        {"column": "PX", "operator": "greater_than", "value": 100, "value2": None},
        {"join": "and", "items": [
            {"column": "DATE", "operator": "equal_to", "value": "2026-03-13", "value2": None}]},
    ]}


# -- the earlier system's flat lists ---------------------------------------------------------------
def legacy(kind: str, cond: Condition) -> dict:
    return {"type": kind, **cond.to_dict()}


def test_earlier_flat_lists_fold_left_to_right_as_explicit_nesting(one_row):
    f_and_f_or_t = group_from_legacy([legacy("where", F), legacy("and", F), legacy("or", T)])
    t_or_f_and_f = group_from_legacy([legacy("where", T), legacy("or", F), legacy("and", F)])
    assert f_and_f_or_t == Group("or", [Group("and", [F, F]), T])
    assert t_or_f_and_f == Group("and", [Group("or", [T, F]), F])
    assert group_mask(f_and_f_or_t, one_row).tolist() == [True]
    assert group_mask(t_or_f_and_f, one_row).tolist() == [False]  # what the earlier system gave


def test_earlier_where_restarts_and_subgroups_become_real_groups():
    restarted = group_from_legacy([legacy("where", F), legacy("and", F), legacy("where", T)])
    assert restarted == Group("and", [T])
    with_subgroup = group_from_legacy([
        legacy("where", T),
        {"type": "subgroup", "conditions": [legacy("where", F), legacy("or", T)]},
    ])
    assert with_subgroup == Group("and", [T, Group("or", [F, T])])
    assert Group.from_dict([{"column": "PX", "operator": "gt", "value": "100"}]) == Group(
        "and", [Condition("PX", "greater_than", "100")])


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cond", "message"),
    [
        (Condition("PX", "gt", "abc"),
         "condition 2 (PX greater than 'abc'): 'abc' is not a number"),
        (Condition("BWIC_COVER", "ne", "X"), "condition 2 (BWIC_COVER does not equal 'X'): "
                                             "unknown column BWIC_COVER"),
        (Condition("px", "gt", 1), "condition 2 (px greater than 1): unknown column px "
                                   "(did you mean PX?)"),
        (Condition("SOURCE", "gt", 5), "condition 2 (SOURCE greater than 5): 'greater than' does "
         "not apply to text column SOURCE (use one of: equals, does not equal, contains, does not "
         "contain, starts with, ends with, in list, not in list, is empty, is not empty)"),
        (Condition("PX", "contains", "1"), "condition 2 (PX contains '1'): 'contains' does not "
         "apply to number column PX (use one of: equals, does not equal, less than, greater than, "
         "less than or equal to, greater than or equal to, between, in list, not in list, "
         "is empty, is not empty)"),
        (Condition("DATE", "gte", "2026-03-13"), "condition 2 (DATE greater than or equal to "
         "'2026-03-13'): 'greater than or equal to' does not apply to date column DATE (use one "
         "of: on, not on, before, after, between, is empty, is not empty)"),
        (Condition("PX", "sounds like", "1"), "condition 2 (PX sounds like '1'): unknown operator "
                                              "'sounds like'"),
        (Condition("PX", "gt"), "condition 2 (PX greater than ?): a value is required"),
        (Condition("SOURCE", "eq", "  "), "condition 2 (SOURCE equals '  '): a value is required"),
        (Condition("PX", "between", 1), "condition 2 (PX between 1 and ?): between needs a second "
                                        "value"),
        (Condition("PX", "between", 1, "x"), "condition 2 (PX between 1 and 'x'): 'x' is not a "
                                             "number"),
        (Condition("DATE", "on", "13/03/2026"), "condition 2 (DATE on '13/03/2026'): '13/03/2026' "
                                                "is not a date (use YYYY-MM-DD)"),
        (Condition("SOURCE", "in_list", []), "condition 2 (SOURCE in list ()): the list is empty"),
        (Condition("PX", "in_list", [1, "x"]), "condition 2 (PX in list (1, 'x')): 'x' is not a "
                                               "number"),
        (Condition("IS_PARENT", "eq", "maybe"), "condition 2 (IS_PARENT equals 'maybe'): 'maybe' "
                                                "is not true or false"),
    ],
)
def test_validation_names_the_condition(cond, message):
    columns = {**COLUMNS, "IS_PARENT": "boolean"}
    with pytest.raises(InvalidRule) as caught:
        validate_condition(cond, columns, number=2)
    assert str(caught.value) == message
    with pytest.raises(InvalidRule) as named:
        validate_condition(cond, columns, number=2, rule="High PX")
    assert str(named.value) == f"rule 'High PX': {message}"


def test_validate_group_numbers_conditions_depth_first_and_refuses_empty_subgroups():
    group = Group("or", [Condition("PX", "gt", 1), Group("and", [Condition("PX", "gt", "x")])])
    with pytest.raises(InvalidRule, match=r"^condition 2 \(PX greater than 'x'\)"):
        validate_group(group, COLUMNS)
    with pytest.raises(InvalidRule, match=r"^a group has no conditions$"):
        validate_group(Group("and", [Condition("PX", "gt", 1), Group("or", [])]), COLUMNS)
    with pytest.raises(InvalidRule, match="a group joins with 'and' or 'or', not 'xor'"):
        Group("xor", [])


def test_evaluating_a_bad_condition_raises_rather_than_matching_nothing(one_row):
    with pytest.raises(InvalidRule, match=r"^condition 1 \(BWIC_COVER does not equal 'X'\): "
                                          r"column BWIC_COVER is not in the data$"):
        condition_mask(Condition("BWIC_COVER", "ne", "X"), one_row)
    with pytest.raises(InvalidRule, match=r"^condition 1 \(PX greater than 'abc'\): 'abc' is not"):
        condition_mask(Condition("PX", "gt", "abc"), one_row)


# -- describe --------------------------------------------------------------------------------------
def test_describe_in_plain_words():
    group = Group("or", [
        Condition("SOURCE", "equal_to", "DZ BANK"),
        Group("and", [Condition("BIAS", "equal_to", "VALUATION"),
                      Condition("CONFIDENCE", "less_than", 5)]),
    ])
    assert describe(group) == (
        "SOURCE equals 'DZ BANK' OR (BIAS equals 'VALUATION' AND CONFIDENCE less than 5)")


@pytest.mark.parametrize(
    ("cond", "text"),
    [
        (Condition("PX", "between", 101, 100.5), "PX between 101 and 100.5"),
        (Condition("SOURCE", "in_list", ["JPM", "GS"]), "SOURCE in list ('JPM', 'GS')"),
        (Condition("SOURCE", "not_in_list", "JPM, GS"), "SOURCE not in list ('JPM', 'GS')"),
        (Condition("COV_PRICE", "is_empty"), "COV_PRICE is empty"),
        (Condition("DATE", "equal_to", date(2026, 3, 13)), "DATE on '2026-03-13'"),
        (Condition("DATE_1", "gt", "2026-03-13"), "DATE_1 after '2026-03-13'"),
        (Condition("SOURCE", "does not contain", "BANK"), "SOURCE does not contain 'BANK'"),
    ],
)
def test_describe_each_form(cond, text):
    assert describe(cond) == text


def test_describe_single_item_groups_needs_no_parentheses():
    inner = Group("or", [Condition("PX", "gt", 1), Condition("PX", "lt", 0)])
    assert describe(Group("and", [Group("and", [inner]), Condition("RANK", "eq", 6)])) == (
        "(PX greater than 1 OR PX less than 0) AND RANK equals 6")
    assert describe(Group("and", [])) == "(no conditions)"
