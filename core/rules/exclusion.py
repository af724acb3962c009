"""Exclusion rules (DOMAIN.md §3): the Rule record, its validation, applying rules to a batch (kept
and excluded rows with EXCLUDED_BY), the "Test rule" summary, and rules kept as store documents."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from core import catalog
from core.access import EDIT_RULES, Actor, require
from core.audit import record_change
from core.claims import T, claim_key, release, write_named
from core.clock import aware, now_or, parse_stamp
from core.errors import Conflict, NotFound
from core.rules.conditions import (
    Condition,
    Group,
    describe,
    invalid_rule,
    iter_conditions,
    validate_group,
)
from core.rules.masks import PreparedFrame, condition_mask, group_mask
from core.schema import COLUMN_TYPE, EXCLUDED_BY, INPUT_COLUMNS
from storage import ObjectNotFound, Store, WriteConflict

__all__ = [  # Condition, Group and describe are re-exported: rules are written with them
    "Condition", "Group", "Rule", "RulesOutcome", "active_in_order", "apply_rules", "delete_rule",
    "describe", "filter_frame", "get_rule", "load_rules", "rule_columns", "save_rule",
    "set_priority", "test_rule", "toggle_rule", "validate_rule",
]

AREA = "rules"
PREFIX = catalog.RULES.key
NAME_MAX = 100
SAMPLE_ROWS = 5
# Rules run before ranking (DOMAIN.md §4), so they may test the input columns; custom columns are
# added by the caller (save_rule(columns=...)).
RULE_COLUMNS: dict[str, str] = {c: COLUMN_TYPE[c] for c in INPUT_COLUMNS}
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    # the earlier system stored naive UTC stamps
    return aware(value) if isinstance(value, datetime) else parse_stamp(str(value))


@dataclass
class Rule:
    """An exclusion rule: a row matching `conditions` is excluded; lower priority runs first."""

    name: str
    conditions: Group = field(default_factory=Group)
    description: str = ""
    priority: int = 100
    active: bool = True
    id: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_by: str = ""
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.conditions, Condition):
            self.conditions = Group("and", [self.conditions])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "priority": self.priority, "active": self.active,
            "conditions": self.conditions.to_dict(),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from its document; the earlier system's JSON loads too: `is_active` is `active`
        (missing = active), an integer id becomes text, and a flat `conditions` list of
        where/and/or/subgroup entries is folded into a Group
        (core.rules.conditions.group_from_legacy)."""
        active = data.get("active", data.get("is_active", True))
        return cls(
            name=str(data.get("name") or ""),
            conditions=Group.from_dict(data.get("conditions") or []),
            description=str(data.get("description") or ""),
            priority=100 if data.get("priority") is None else int(data["priority"]),
            active=True if active is None else bool(active),
            id="" if data.get("id") is None else str(data["id"]),
            created_by=str(data.get("created_by") or ""),
            created_at=_time(data.get("created_at")),
            updated_by=str(data.get("updated_by") or ""),
            updated_at=_time(data.get("updated_at")),
        )


def _order(rule: Rule) -> tuple[int, str]:
    return rule.priority, rule.name.casefold()


def rule_columns(custom: Mapping[str, str] | None = None) -> dict[str, str]:
    """Columns a rule may test (name → type): the input columns plus an admin's custom columns."""
    return {**RULE_COLUMNS, **(custom or {})}


def _bad_priority(priority: Any) -> str:
    return f"priority must be a whole number of 0 or more, not {priority!r}"


def validate_rule(rule: Rule, columns: Mapping[str, str] | None = None) -> None:
    """Raise InvalidRule unless the rule can be saved: a name of 1–100 characters, a whole-number
    priority ≥ 0, at least one condition, and every condition valid for `columns`."""
    columns = RULE_COLUMNS if columns is None else columns
    name = rule.name.strip()
    if not name:
        raise invalid_rule("", "a rule needs a name")
    if len(name) > NAME_MAX:
        raise invalid_rule(name, f"the name is longer than {NAME_MAX} characters ({len(name)})")
    if isinstance(rule.priority, bool) or not isinstance(rule.priority, int) or rule.priority < 0:
        raise invalid_rule(name, _bad_priority(rule.priority))
    if next(iter_conditions(rule.conditions), None) is None:
        raise invalid_rule(name, "add at least one condition")
    validate_group(rule.conditions, columns, rule=name)


@dataclass
class RulesOutcome:
    """kept and excluded keep the input's index order and columns (excluded adds EXCLUDED_BY, the
    first matching rule by priority). counts: rows attributed to each rule (its first matches);
    matches: rows each rule matches regardless of order."""

    kept: pd.DataFrame
    excluded: pd.DataFrame
    counts: dict[str, int]
    matches: dict[str, int] = field(default_factory=dict)


def active_in_order(rules: Iterable[Rule]) -> list[Rule]:
    """The active rules in the order they apply: priority, then name (case-insensitive)."""
    return sorted((r for r in rules if r.active), key=_order)


def _rule_flags(rule: Rule, prepared: PreparedFrame) -> np.ndarray:
    if next(iter_conditions(rule.conditions), None) is None:
        return np.zeros(len(prepared.frame), dtype=bool)  # an empty rule never matches
    return group_mask(rule.conditions, prepared, rule=rule.name).to_numpy()


@dataclass
class RuleMatches:
    """Which rule excludes each row, without copying the rows: `first[i]` is the position in
    `names` of the first rule (by priority) matching row i, or -1 when no rule does."""

    first: np.ndarray
    names: list[str]
    counts: dict[str, int]
    matches: dict[str, int]

    @property
    def excluded(self) -> np.ndarray:
        return self.first >= 0

    def excluded_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The excluded rows of `frame` (input order) with EXCLUDED_BY."""
        hit = self.excluded
        excluded = frame[hit]
        names = pd.array(self.names or [""], dtype="string")
        excluded[EXCLUDED_BY] = pd.Series(names.take(self.first[hit]), index=excluded.index)
        return excluded


def match_rules(
    frame: pd.DataFrame, rules: Iterable[Rule], *, column_types: Mapping[str, str] | None = None
) -> RuleMatches:
    """Evaluate the active rules on a batch (vectorised); a row is excluded if any matches."""
    ordered = active_in_order(rules)
    prepared = PreparedFrame(frame, column_types)
    first = np.full(len(frame), -1, dtype=np.int32)
    counts: dict[str, int] = {}
    matches: dict[str, int] = {}
    for position, rule in enumerate(ordered):
        if not len(frame):  # nothing to match: a run whose files were all published already
            counts[rule.name] = matches[rule.name] = 0
            continue
        flags = _rule_flags(rule, prepared)
        claimed = flags & (first < 0)
        first[claimed] = position
        counts[rule.name] = int(claimed.sum())
        matches[rule.name] = int(flags.sum())
    return RuleMatches(first, [r.name for r in ordered], counts, matches)


def apply_rules(
    frame: pd.DataFrame, rules: Iterable[Rule], *, column_types: Mapping[str, str] | None = None
) -> RulesOutcome:
    """Split a batch into kept and excluded rows; a row is excluded if any active rule matches."""
    found = match_rules(frame, rules, column_types=column_types)
    hit = found.excluded
    # pandas copy-on-write: the selections below never share writes with `frame`.
    kept = frame[~hit] if hit.any() else frame.copy(deep=False)
    return RulesOutcome(kept=kept, excluded=found.excluded_rows(frame), counts=found.counts,
                        matches=found.matches)


def filter_frame(
    frame: pd.DataFrame, group: Condition | Group, *, column_types: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows matching the group (an inclusion filter for search and presets); no conditions = all."""
    if next(iter_conditions(group), None) is None:
        return frame.copy(deep=False)  # copy-on-write keeps the caller's frame safe
    return frame[group_mask(group, frame, column_types=column_types).to_numpy()]


# Named after the "Test rule" button, so ruff's pytest checks take it for a test: PT028 is moot.
def test_rule(
    rule: Rule,
    frame: pd.DataFrame,
    *,
    column_types: Mapping[str, str] | None = None,  # noqa: PT028  # not a pytest test
) -> dict[str, Any]:
    """What the "Test" button shows: rows, rows matched, matches per condition, up to 5 samples."""
    prepared = PreparedFrame(frame, column_types)
    flags = _rule_flags(rule, prepared)
    per_condition = [
        {
            "number": number,
            "condition": describe(cond, column_types),
            "matched": int(condition_mask(cond, prepared, number=number, rule=rule.name).sum()),
        }
        for number, cond in enumerate(iter_conditions(rule.conditions), start=1)
    ]
    return {
        "rule": rule.name,
        "rows": len(frame),
        "matched": int(flags.sum()),
        "conditions": per_condition,
        "samples": frame[flags].head(SAMPLE_ROWS),
    }


test_rule.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


# -- rules in the store ---------------------------------------------------------------------------
def load_rules(store: Store) -> list[Rule]:
    """Every stored rule, in the order they apply (priority, then name)."""
    rules = []
    for key in store.list(PREFIX):
        try:
            value, _ = store.get(key)
        except ObjectNotFound:  # deleted between list and get
            continue
        rules.append(replace(Rule.from_dict(value), id=key[len(PREFIX):]))
    return sorted(rules, key=_order)


def get_rule(store: Store, rule_id: str) -> tuple[Rule, str]:
    """(rule, version); NotFound if there is no such rule."""
    if _ID.match(str(rule_id)):  # anything else cannot be a key we wrote
        try:
            value, version = store.get(PREFIX + rule_id)
        except ObjectNotFound:
            pass
        else:
            return replace(Rule.from_dict(value), id=rule_id), version
    raise NotFound(f"rule {rule_id!r} not found")


def _commit(store: Store, actor: Actor, action: str, before: Rule | None, after: Rule,
            version: str | None, at: datetime) -> Rule:
    """Write `after` over `version` (None = must not exist) and log the change."""
    try:
        store.put(PREFIX + after.id, after.to_dict(), version)
    except WriteConflict as exc:
        raise Conflict(
            f"rule {after.name!r} was changed by someone else since it was opened "
            f"(version {exc.expected!r}, now {exc.actual!r}); reload it and try again"
        ) from exc
    record_change(store, actor, AREA, action, after.name, now=at, after=after.to_dict(),
                  before=None if before is None else before.to_dict())
    return after


def save_rule(
    store: Store,
    actor: Actor,
    rule: Rule,
    *,
    expected_version: str | None = None,
    columns: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Rule:
    """Create (empty id: one is assigned) or update a rule and log the change; returns it as stored.

    The name must be unique (case-insensitive) among all rules; the conditions must fit the input
    columns plus `columns` (custom name → type). expected_version: the version the editor read (a
    stale one raises Conflict); None on an update means the version read here. An id that does not
    exist yet creates the rule under that id (imports of earlier rules keep theirs).
    """
    require(actor, EDIT_RULES)
    at = now_or(now)
    rule = replace(rule, name=rule.name.strip(), description=rule.description.strip())
    validate_rule(rule, rule_columns(columns))
    if rule.id and not _ID.match(rule.id):
        raise invalid_rule(rule.name, "an id is letters, digits, _ and - (at most 64)")
    current: tuple[Rule, str] | None = None
    if rule.id:
        try:
            current = get_rule(store, rule.id)
        except NotFound:
            if expected_version is not None:
                raise Conflict(f"rule {rule.name!r} was deleted since it was opened") from None
    for other in load_rules(store):
        if other.id != rule.id and other.name.casefold() == rule.name.casefold():
            raise invalid_rule(rule.name, f"another rule is already named {other.name!r}")
    who = actor.username
    if current is None:
        created = replace(rule, id=rule.id or uuid.uuid4().hex[:12], created_by=who,
                          created_at=at, updated_by=who, updated_at=at)
        return named_write(store, created, None,
                           lambda: _commit(store, actor, "create", None, created, None, at))
    before, version = current
    updated = replace(rule, created_by=before.created_by, created_at=before.created_at,
                      updated_by=who, updated_at=at)
    return named_write(store, updated, before.name, lambda: _commit(
        store, actor, "update", before, updated, expected_version or version, at))


def named_write(store: Store, rule: Rule, old_name: str | None,
                write: Callable[[], T]) -> T:
    """write() holding the claim on the rule's name (core.claims): two processes creating or
    renaming rules to one name never both succeed."""

    def holds(rule_id: str) -> bool:
        try:
            return get_rule(store, rule_id)[0].name.casefold() == rule.name.casefold()
        except NotFound:
            return False

    taken = invalid_rule(rule.name, f"another rule is already named {rule.name!r}")
    return write_named(store, AREA, rule.name, rule.id, write, old_name=old_name, holds=holds,
                       taken=taken)


def delete_rule(
    store: Store, actor: Actor, rule_id: str, *, expected_version: str | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a rule and log it (the before snapshot makes it revertible)."""
    require(actor, EDIT_RULES)
    rule, version = get_rule(store, rule_id)
    try:
        store.delete(PREFIX + rule_id, expected_version or version)
    except WriteConflict as exc:
        raise Conflict(f"rule {rule.name!r} was changed by someone else since it was opened; "
                       "reload it and try again") from exc
    except ObjectNotFound:
        raise NotFound(f"rule {rule_id!r} not found") from None
    release(store, claim_key(AREA, rule.name), rule_id)
    record_change(store, actor, AREA, "delete", rule.name, before=rule.to_dict(),
                  now=now_or(now))


def toggle_rule(
    store: Store, actor: Actor, rule_id: str, active: bool | None = None, *,
    expected_version: str | None = None, columns: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Rule:
    """Switch a rule on or off (None flips it); no change, no write. A rule is validated before it
    is switched on, so an imported earlier rule that cannot run is refused rather than failing
    every run."""
    require(actor, EDIT_RULES)
    before, version = get_rule(store, rule_id)
    target = (not before.active) if active is None else bool(active)
    if target == before.active:
        return before
    if target:
        validate_rule(before, rule_columns(columns))
    at = now_or(now)
    after = replace(before, active=target, updated_by=actor.username, updated_at=at)
    action = "activate" if target else "deactivate"
    return _commit(store, actor, action, before, after, expected_version or version, at)


def set_priority(
    store: Store, actor: Actor, rule_id: str, priority: int, *,
    expected_version: str | None = None, now: datetime | None = None,
) -> Rule:
    """Give a rule a new priority (lower runs first and claims EXCLUDED_BY); no change, no write."""
    require(actor, EDIT_RULES)
    before, version = get_rule(store, rule_id)
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise invalid_rule(before.name, _bad_priority(priority))
    if priority == before.priority:
        return before
    at = now_or(now)
    after = replace(before, priority=priority, updated_by=actor.username, updated_at=at)
    return _commit(store, actor, "set_priority", before, after, expected_version or version, at)
