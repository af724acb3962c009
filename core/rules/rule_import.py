"""Importing exclusion rules (an export of the Rules page, or the earlier system's JSON): what
happens to each entry (added, updated, unchanged or rejected with the reason), saved through
core.rules.exclusion so every write is validated, permission-checked and logged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.access import EDIT_RULES, Actor, require
from core.errors import InvalidInput, MarketPulseError, NotFound
from core.rules.exclusion import Rule, describe, get_rule, load_rules, save_rule
from core.schema import COLUMN_TYPE
from storage import Store

ADDED, UPDATED, UNCHANGED, REJECTED = "added", "updated", "unchanged", "rejected"


@dataclass(frozen=True)
class ImportedRule:
    """One entry's outcome: the rule's name (or "entry N" when it has none), the result and the
    detail: the conditions in words, or why it was rejected."""

    rule: str
    result: str  # ADDED | UPDATED | UNCHANGED | REJECTED
    detail: str


@dataclass(frozen=True)
class ImportReport:
    """Every entry's outcome, in the order of the payload."""

    entries: tuple[ImportedRule, ...]

    def names(self, result: str) -> list[str]:
        """The rules (or "entry N") that ended with `result`, in payload order."""
        return [e.rule for e in self.entries if e.result == result]

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """(rule or "entry N", reason) of each rejected entry."""
        return [(e.rule, e.detail) for e in self.entries if e.result == REJECTED]

    @property
    def counts(self) -> dict[str, int]:
        """Entries per result, in the order the results first appear."""
        results = [e.result for e in self.entries]
        return {r: results.count(r) for r in dict.fromkeys(results)}


def _entries(payload: Any, source: str) -> list[Any]:
    """The entries of a payload: JSON text or bytes, a list, {"rules": [...]} or one rule."""
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise InvalidInput(source, f"not JSON ({exc})") from exc
    if isinstance(payload, Mapping):
        payload = payload.get("rules", [payload])
    if isinstance(payload, Rule):
        payload = [payload]
    if not isinstance(payload, list | tuple):
        raise InvalidInput(source, "holds no list of rules")
    return list(payload)


def _same(a: Rule, b: Rule) -> bool:
    """Equal in everything an import can change (who and when are the store's)."""
    return (a.name.strip(), a.description.strip(), a.priority, a.active,
            a.conditions.to_dict()) == (b.name.strip(), b.description.strip(), b.priority,
                                        b.active, b.conditions.to_dict())


def _current(store: Store, rule: Rule) -> Rule | None:
    """The stored rule an entry stands for: the same id; without an id, the same name."""
    if rule.id:
        try:
            return get_rule(store, rule.id)[0]
        except NotFound:
            return None
    name = rule.name.strip().casefold()
    return next((r for r in load_rules(store) if r.name.casefold() == name), None)


def _import_one(store: Store, actor: Actor, entry: Any, number: int,
                columns: Mapping[str, str] | None, now: datetime | None) -> ImportedRule:
    label = f"entry {number}"
    try:
        if isinstance(entry, Mapping):
            label = str(entry.get("name") or label)
            rule = Rule.from_dict(entry)
        elif isinstance(entry, Rule):
            label, rule = entry.name or label, entry
        else:
            raise InvalidInput(label, "not a rule (a JSON object)")
        current = _current(store, rule)
        if current is not None and _same(current, rule):
            return ImportedRule(current.name, UNCHANGED, "the same rule is already here")
        # Without an id an entry is a new rule: save_rule refuses it when another rule has its
        # name, rather than overwriting that rule.
        saved = save_rule(store, actor, rule, columns=columns, now=now)
    except (MarketPulseError, ValueError, TypeError) as exc:
        return ImportedRule(label, REJECTED, str(exc))
    return ImportedRule(saved.name, ADDED if current is None else UPDATED,
                        describe(saved.conditions, {**COLUMN_TYPE, **(columns or {})}))


def import_rules(
    store: Store,
    actor: Actor,
    rules_or_payload: Any,
    *,
    columns: Mapping[str, str] | None = None,
    source: str = "the import",
    now: datetime | None = None,
) -> ImportReport:
    """Import rules one entry at a time: an entry with the id of a stored rule updates it, one equal
    to the stored rule (by id, or by name when it has no id) leaves it unchanged, any other valid
    entry is added (keeping its id), and an invalid one is rejected with the reason while the rest
    go on. rules_or_payload: JSON text or bytes, a list of rule documents or Rules, {"rules": [...]}
    or one rule document. columns: custom columns a rule may test (as save_rule). Raises
    PermissionDenied unless the actor may edit rules, and InvalidInput (naming `source`) when the
    payload is not JSON or holds no list of rules."""
    require(actor, EDIT_RULES)
    entries = _entries(rules_or_payload, source)
    return ImportReport(tuple(_import_one(store, actor, entry, number, columns, now)
                              for number, entry in enumerate(entries, start=1)))
