"""The condition builder of the Rules page (rules and saved filters): nested AND/OR groups of
conditions kept as a Group dict in st.session_state["<key>_state"], one keyed widget per field
("<key>.<generation>.<path>.column", "<key>.<generation>.<path>.operator", ...).

The Group dict is the one place for the values: each widget is drawn with its value there as its
default, and no widget value is set through the Session State API. A value set that way reaches
the browser only with the run that set it; when a later run supersedes that run first (a second
rerun while the page still draws, as under load) the browser mounts the widget at its own default
(the first column, an empty pick) and sends that back with the next edit. A loaded rule and a
structural change (a condition or group added or removed: the paths shift) bump the generation in
the widget keys instead, so the browser mounts fresh widgets at the new defaults."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from core.rules.conditions import (
    BETWEEN,
    EQUAL_TO,
    IN_LIST,
    IS_EMPTY,
    IS_NOT_EMPTY,
    NOT_EQUAL_TO,
    NOT_IN_LIST,
    Group,
    column_kind,
    operator_label,
    operators_for,
)
from core.schema import TEXT

JOINS = ("and", "or")
JOIN_WORDS = {"and": "ALL of these (AND)", "or": "ANY of these (OR)"}
MAX_DEPTH = 3  # the top-level group, its sub-groups and theirs
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
State = dict[str, Any]
Path = tuple[int, ...]
PICKED = (EQUAL_TO, NOT_EQUAL_TO, IN_LIST, NOT_IN_LIST)  # operators whose values can be picked


def state_key(key: str) -> str:
    return f"{key}_state"


def _choices_key(key: str) -> str:
    return f"{key}_choices_state"


def generation_key(key: str) -> str:
    """Where the builder's widget generation is kept (a part of each widget's key)."""
    return f"{key}_generation_state"


def _picks(key: str, column: str, operator: str) -> list[str] | None:
    """The known values offered for this column and operator (None: the value is typed)."""
    known = st.session_state.get(_choices_key(key)) or {}
    return list(known[column]) if column in known and operator in PICKED else None


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _k(key: str, path: Path, name: str) -> str:
    generation = st.session_state.get(generation_key(key), 0)
    return ".".join([key, str(generation), *map(str, path), name])


def _operators(columns: Mapping[str, str], column: str) -> list[str]:
    return [op for op, _ in operators_for(columns.get(column, TEXT))]


def blank_condition(columns: Mapping[str, str]) -> State:
    column = next(iter(columns))
    return {"column": column, "operator": _operators(columns, column)[0], "value": None,
            "value2": None}


def blank_group(columns: Mapping[str, str], join: str = "and") -> State:
    return {"join": join, "items": [blank_condition(columns)]}


def _new_widgets(key: str) -> None:
    """Draw the builder's widgets afresh, at the state dict's values (paths shift when an item is
    added or removed, and a loaded rule brings its own values): a new generation of keys."""
    st.session_state[generation_key(key)] = st.session_state.get(generation_key(key), 0) + 1


def load_builder(key: str, group: Group | None, columns: Mapping[str, str]) -> None:
    """Put a rule's (or a filter's) conditions in the builder; None or empty: one blank condition.
    Call it before the builder is drawn in this run (a callback, or ahead of render_builder)."""
    st.session_state[state_key(key)] = (group.to_dict() if group is not None and group.items
                                        else blank_group(columns))
    _new_widgets(key)


def group_from_builder(key: str) -> Group:
    """The builder's conditions as a Group (validation is core's, when the rule is saved)."""
    return Group.from_dict(st.session_state[state_key(key)])


# -- values: the widgets hold text; the state holds what core stores -------------------------------
def _shape(operator: str) -> str:
    if operator in (IS_EMPTY, IS_NOT_EMPTY):
        return "none"
    if operator == BETWEEN:
        return "two"
    return "list" if operator in (IN_LIST, NOT_IN_LIST) else "one"


def _typed(text: str, kind: str) -> Any:
    """A number column's '5' is stored as 5; anything else stays text for core to judge (so
    'abc' reaches validation and its message names the condition)."""
    text = text.strip()
    if not text:
        return None
    if kind == "number" and _NUMBER.match(text):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() \
            else number
    return text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read(key: str, path: Path, cond: State, columns: Mapping[str, str]) -> State:
    """The condition as its widgets now say (a widget not drawn yet keeps the state's value)."""
    state = st.session_state
    column = state.get(_k(key, path, "column"), cond["column"])
    operator = state.get(_k(key, path, "operator"), cond["operator"])
    offered = _operators(columns, column)
    if column != cond["column"] and operator not in offered:
        operator = offered[0]  # a new column keeps the operator only when its type offers it
    kind, shape = column_kind(columns.get(column, TEXT)), _shape(operator)
    if _picks(key, column, operator) is not None:  # a multiselect of known values
        picked = state.get(_k(key, path, "picked"), _as_list(cond["value"]))
        value = list(picked) if shape == "list" else (picked[0] if picked else None)
        return {"column": column, "operator": operator, "value": value, "value2": None}
    value = state.get(_k(key, path, "value"), _text(cond["value"]))
    value2 = state.get(_k(key, path, "value2"), _text(cond["value2"]))
    if shape == "none":
        value = value2 = None
    elif shape == "list":
        value = [_typed(v, kind) for v in str(value).split(",") if v.strip()]
        value2 = None
    else:
        value = _typed(str(value), kind)
        value2 = _typed(str(value2), kind) if shape == "two" else None
    return {"column": column, "operator": operator, "value": value, "value2": value2}


def _sync(key: str, node: State, path: Path, columns: Mapping[str, str]) -> None:
    if "items" in node:
        join = st.session_state.get(_k(key, path, "join"), node["join"])
        node["join"] = join if join in JOINS else node["join"]
        for i, item in enumerate(node["items"]):
            _sync(key, item, (*path, i), columns)
    else:
        node.update(_read(key, path, node, columns))


def _node(root: State, path: Path) -> State:
    for i in path:
        root = root["items"][i]
    return root


def _change(key: str, columns: Mapping[str, str], edit: Callable[[State], None]) -> None:
    """A button's callback: take the widgets' latest values, change the structure, draw the
    widgets afresh."""
    root = st.session_state[state_key(key)]
    _sync(key, root, (), columns)
    edit(root)
    _new_widgets(key)


def _add_condition(path: Path, columns: Mapping[str, str]) -> Callable[[State], None]:
    return lambda root: _node(root, path)["items"].append(blank_condition(columns))


def _add_group(path: Path, columns: Mapping[str, str]) -> Callable[[State], None]:
    def edit(root: State) -> None:
        parent = _node(root, path)
        other = "and" if parent["join"] == "or" else "or"  # a sub-group with the same join is moot
        parent["items"].append(blank_group(columns, other))
    return edit


def _remove(path: Path) -> Callable[[State], None]:
    return lambda root: _node(root, path[:-1])["items"].pop(path[-1])


# -- drawing ---------------------------------------------------------------------------------------
def _condition(key: str, cond: State, path: Path, columns: Mapping[str, str]) -> None:
    known = list(columns)
    options = known if cond["column"] in columns else [*known, cond["column"]]
    cells = st.columns([3, 3, 4, 1], vertical_alignment="bottom")
    column = cells[0].selectbox("Column", options, index=options.index(cond["column"]),
                                key=_k(key, path, "column"))
    column_type = columns.get(column, TEXT)
    offered = _operators(columns, column)
    held = cond["operator"]  # a new column keeps the operator only when its type offers it
    if column != cond["column"] and held not in offered:
        held = offered[0]
    ops = offered if held in offered else [*offered, held]
    operator = cells[1].selectbox("Operator", ops, index=ops.index(held),
                                  key=_k(key, path, "operator"),
                                  format_func=lambda op: operator_label(op, column_type))
    shape = _shape(operator)
    hint = {"date": "YYYY-MM-DD", "boolean": "true or false"}.get(column_kind(column_type), "")
    picks = _picks(key, column, operator)
    if picks is not None:  # known values (dealers, sectors) to pick, or a new one typed
        pk = _k(key, path, "picked")
        default = _as_list(cond["value"])[:None if shape == "list" else 1]
        picked = [*st.session_state.get(pk, default), *default]
        cells[2].multiselect("Values" if shape == "list" else "Value",
                             [*picks, *dict.fromkeys(v for v in picked if v not in picks)],
                             default=default, key=pk, accept_new_options=True,
                             placeholder="Choose or type",
                             max_selections=None if shape == "list" else 1)
    elif shape == "one":
        cells[2].text_input("Value", value=_text(cond["value"]), key=_k(key, path, "value"),
                            placeholder=hint)
    elif shape == "list":
        cells[2].text_input("Values (comma-separated)", value=_text(cond["value"]),
                            key=_k(key, path, "value"), placeholder=hint)
    elif shape == "two":
        low, high = cells[2].columns(2)
        low.text_input("From", value=_text(cond["value"]), key=_k(key, path, "value"),
                       placeholder=hint)
        high.text_input("To", value=_text(cond["value2"]), key=_k(key, path, "value2"),
                        placeholder=hint)
    cells[3].button("✕", key=_k(key, path, "remove"), help="Remove this condition",
                    on_click=_change, args=(key, columns, _remove(path)))
    cond.update(_read(key, path, cond, columns))


def _group(key: str, group: State, path: Path, columns: Mapping[str, str]) -> None:
    depth = len(path) + 1
    group["join"] = st.radio("Match", JOINS, index=JOINS.index(group["join"]),
                             key=_k(key, path, "join"), horizontal=True,
                             format_func=JOIN_WORDS.__getitem__)
    if not group["items"]:
        st.caption("No conditions yet.")
    for i, item in enumerate(group["items"]):
        if "items" in item:
            with st.container(border=True):
                _group(key, item, (*path, i), columns)
        else:
            _condition(key, item, (*path, i), columns)
    buttons = st.columns(3)
    buttons[0].button("Add condition", key=_k(key, path, "add_condition"),
                      on_click=_change, args=(key, columns, _add_condition(path, columns)))
    if depth < MAX_DEPTH:
        buttons[1].button("Add group", key=_k(key, path, "add_group"),
                          help="A sub-group of conditions with its own AND/OR",
                          on_click=_change, args=(key, columns, _add_group(path, columns)))
    if path:
        buttons[2].button("Remove group", key=_k(key, path, "remove_group"),
                          on_click=_change, args=(key, columns, _remove(path)))


def render_builder(key: str, columns: Mapping[str, str],
                   choices: Mapping[str, list[str]] | None = None) -> Group:
    """Draw the builder for `columns` (name → core.schema type) and return its Group. `choices`
    (column → known values, e.g. the dealers of published colors) are offered to pick for
    equals, not equals, in list and not in list; any other value can still be typed."""
    st.session_state[_choices_key(key)] = {c: list(v) for c, v in (choices or {}).items()}
    if state_key(key) not in st.session_state:
        st.session_state[state_key(key)] = blank_group(columns)
    st.session_state.setdefault(generation_key(key), 0)
    _group(key, st.session_state[state_key(key)], (), columns)
    return group_from_builder(key)
