"""What a restore will change: the archive's items of the chosen areas against the store's, by
checksum (core.compliance.store_inventory), each difference in words: a document, blob, table
partition or run's rows "added back" (in the backup, not in the store), "changed" (in both,
different) or "removed" (in the store, not in the backup). The preview shows exactly this plan;
the restore applies it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core import audit_chain, catalog
from core.compliance.backup_archive import BackupArchive, Member
from core.compliance.restore_areas import AREAS, AUDIT, Selection, area_of, entry_of
from core.compliance.store_inventory import DOCUMENT, RUN, Inventory, take_inventory
from storage import ObjectNotFound, Store

ADDED_BACK, CHANGED, REMOVED = "added back", "changed", "removed"
ACTIONS = (ADDED_BACK, CHANGED, REMOVED)
# documents named by the value's "name" ("rule 'No offers'"), or by their key's last part
_NAMED = {catalog.RULES: "rule", catalog.PRESETS: "preset", catalog.JOBS: "job"}
_KEYED = {catalog.USERS: "user", catalog.RUNS: "run record", catalog.BUFFER: "buffer entry",
          catalog.MANUAL_SESSIONS: "Manual Color session of", catalog.WATCHLISTS: "watchlist of",
          catalog.NOTIFICATIONS: "bell of", catalog.SAVED_SEARCHES: "saved searches of",
          catalog.SEARCH_HISTORY: "search history of"}


@dataclass(frozen=True)
class Change:
    """One item a restore changes. current: the store's checksum when planned (None: absent),
    so the restore can tell an item someone changed since."""

    area: str
    action: str
    part: str
    name: str
    what: str
    current: str | None = field(default=None, compare=False)

    def line(self) -> str:
        return f"{self.area}: {self.action}: {self.what}"


@dataclass
class RestorePlan:
    backup_id: str
    selection: Selection
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)  # the audit trail kept, or replaced

    def counts(self) -> dict[str, Counter[str]]:
        """Per area, how many items each action touches."""
        out: dict[str, Counter[str]] = {}
        for change in self.changes:
            out.setdefault(change.area, Counter())[change.action] += 1
        return out

    def summary(self) -> list[str]:
        """One line per area: "rules: 1 added back, 2 changed"; nothing to do says so."""
        lines = [f"{area}: " + ", ".join(f"{n} {action}" for action in ACTIONS
                                         if (n := counted[action]))
                 for area, counted in sorted(self.counts().items())]
        return lines or [f"nothing to change: the store already matches backup {self.backup_id} "
                         f"in {self.selection.describe()}"]


def make_plan(store: Store, archive: BackupArchive, backup_id: str,
              selection: Selection) -> RestorePlan:
    """Compare the archive's items of the selection with the store's. The audit area is left as
    it is in a store whose trail continues the backup's: an append-only log is never rolled
    back."""
    plan = RestorePlan(backup_id, selection)
    theirs = _selected(archive.inventory(), selection)
    ours = take_inventory(store, select=selection)
    if AUDIT in selection.areas and any(area_of(p, n) == AUDIT for p, n in ours.items):
        if _continues(store, archive):
            plan.notes.append(_kept_trail(ours, archive))
            theirs, ours = _without_audit(theirs), _without_audit(ours)
        else:
            plan.notes.append(f"{AUDIT}: the store's audit trail does not continue the backup's: "
                              "it is replaced by the backup's (the pre-restore backup keeps it)")
    members = {(m.item.part, m.item.name): m for m in archive.members}
    for key in sorted(theirs.items.keys() | ours.items.keys()):
        mine, backed = ours.items.get(key), theirs.items.get(key)
        if mine is not None and backed is not None and (mine.size, mine.checksum) == (
                backed.size, backed.checksum):
            plan.unchanged += 1
            continue
        action = ADDED_BACK if mine is None else REMOVED if backed is None else CHANGED
        value = _value(store, archive, members.get(key), *key) if key[0] == DOCUMENT else None
        plan.changes.append(Change(area_of(*key) or "?", action, key[0], key[1],
                                   describe(key[0], key[1], value),
                                   None if mine is None else mine.checksum))
    return plan


def _selected(inventory: Inventory, selection: Selection) -> Inventory:
    kept = Inventory(unknown=inventory.unknown)
    for (part, name), item in inventory.items.items():
        if selection(part, name):
            kept.add(item)
    return kept


def _without_audit(inventory: Inventory) -> Inventory:
    kept = Inventory(unknown=inventory.unknown)
    for (part, name), item in inventory.items.items():
        if area_of(part, name) != AUDIT:
            kept.add(item)
    return kept


def _continues(store: Store, archive: BackupArchive) -> bool:
    """Whether the store's audit trail holds the backup's last entry: it then continues the
    backup's trail (a restore into the same desk) and already holds all of it."""
    seq, digest = int(archive.manifest.get("audit_seq", 0)), archive.manifest.get("audit_hash")
    if seq == 0:
        return True
    for table in audit_chain.TRAIL_TABLES:
        frame = store.scan(table, columns=["SEQ", "HASH"]) if store.partitions(table) else None
        if frame is not None and "SEQ" in frame.columns and (
                (frame["SEQ"] == seq) & (frame["HASH"] == digest)).any():
            return True
    return False


def _kept_trail(ours: Inventory, archive: BackupArchive) -> str:
    held = sum(item.size for (p, n), item in ours.items.items()
               if area_of(p, n) == AUDIT and p != DOCUMENT)
    return (f"{AUDIT}: kept as it is: the store has its own audit trail and email log "
            f"({held:,} entries); they are append-only and never rolled back (the backup's "
            f"trail ends at entry {archive.manifest.get('audit_seq', 0)})")


def _value(store: Store, archive: BackupArchive, member: Member | None, part: str,
           name: str) -> Any:
    """The document as the backup holds it, else as the store does (to name it)."""
    if member is not None:
        return archive.document(member)
    try:
        return store.get(name)[0]
    except ObjectNotFound:
        return None


def describe(part: str, name: str, value: Any = None) -> str:
    """An item in words: "rule 'No offers'", "user ann", "rows of run 3 in table colors"."""
    entry = entry_of(part, name)
    if part == DOCUMENT and entry in _NAMED and isinstance(value, dict) and value.get("name"):
        return f"{_NAMED[entry]} {value['name']!r}"
    if part == DOCUMENT and entry in _KEYED:
        last = name.removeprefix(entry.key).split("/")[0]
        return f"{_KEYED[entry]} {int(last) if last.isdigit() else last}"
    if part == RUN:
        table, run = name.split("/")
        return f"rows of run {run} in table {table}"
    return f"{'table partition' if part == 'table' else part} {name}"


def area_names() -> list[tuple[str, str]]:
    """(area, what it holds) for pages and --help."""
    return [(name, what) for name, (what, _) in AREAS.items()]
