"""The areas a restore can bring back on their own, defined once over the catalog's state entries:
every state entry belongs to exactly one area (tests/unit/test_backups.py checks it), and the
name-claims (claims/<kind>/...) go with the area of the names they guard. One run can be chosen
alone as "run:<id>": its record, rows, output workbook and markers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import catalog
from core.automation.jobs import AREA as JOBS_CLAIMS
from core.catalog import Entry
from core.compliance.store_inventory import BLOB, DOCUMENT, RUN, TABLE
from core.errors import InvalidInput
from core.identity.users import FIRST_ADMIN_GATE
from core.rules.exclusion import AREA as RULES_CLAIMS
from core.rules.presets import AREA as PRESETS_CLAIMS

AUDIT = "audit"
AREAS: dict[str, tuple[str, tuple[Entry, ...]]] = {
    "rules": ("exclusion rules and condition presets", (catalog.RULES, catalog.PRESETS)),
    "users": ("users and roles, column profiles, sign-up switch, reset links, ended logins",
              (catalog.USERS, catalog.COLUMN_PROFILES, catalog.AUTH_CONFIG,
               catalog.RESET_TOKENS, catalog.REVOKED_COOKIES)),
    "jobs": ("automation jobs, queued Run now requests, each job's last handled slot",
             (catalog.JOBS, catalog.TRIGGERS, catalog.SCHEDULE_STATE)),
    "settings": ("column configuration, SMTP server, run emails, webhooks, backup and "
                 "compliance report schedules",
                 (catalog.COLUMNS_CONFIG, catalog.SMTP_CONFIG, catalog.EMAIL_CONFIG,
                  catalog.WEBHOOKS_CONFIG, catalog.BACKUP_SCHEDULE, catalog.REPORT_SCHEDULE)),
    # A SQL source's watermark says which of its rows are published: it goes with the runs.
    "runs": ("run records, published, excluded and quarantined rows, output workbooks, the SQL "
             "sources' watermarks",
             (catalog.RUNS, catalog.RUN_SEQUENCE, catalog.PENDING_WORKBOOKS,
              catalog.WATCHLIST_CHECKS, catalog.COLORS, catalog.EXCLUDED, catalog.QUARANTINED,
              catalog.OUTPUTS, catalog.SOURCE_WATERMARKS)),
    "buffer": ("the upload buffer: entries and files",
               (catalog.BUFFER, catalog.BUFFER_SEQUENCE, catalog.BUFFER_FILES)),
    "sessions": ("Manual Color sessions", (catalog.MANUAL_SESSIONS, catalog.SESSION_FRAMES)),
    "searches": ("saved searches and search history",
                 (catalog.SAVED_SEARCHES, catalog.SEARCH_HISTORY)),
    "alerts": ("watchlists and the in-app bell", (catalog.WATCHLISTS, catalog.NOTIFICATIONS)),
    AUDIT: ("the audit trail (change log, access log, chain head) and the email log: "
            "append-only, so kept as they are where the store's trail continues the backup's",
            (catalog.AUDIT_CHAIN_HEAD, catalog.AUDIT, catalog.ACCESS_LOG, catalog.EMAIL_LOG,
             catalog.COMPLIANCE_REPORTS)),
}
# claims/<kind>/...: the area of the names a kind of claim guards
CLAIM_AREAS = {RULES_CLAIMS: "rules", PRESETS_CLAIMS: "rules", JOBS_CLAIMS: "jobs",
               FIRST_ADMIN_GATE[len(catalog.CLAIMS.key):]: "users"}
RUN_ENTRIES = (catalog.RUNS, catalog.PENDING_WORKBOOKS, catalog.WATCHLIST_CHECKS, catalog.OUTPUTS,
               catalog.COLORS, catalog.EXCLUDED, catalog.QUARANTINED)
_RUN_ID = re.compile(r"(\d{8})")
_BY_ENTRY = {entry: area for area, (_, held) in AREAS.items() for entry in held}
_CATALOG_PART = {DOCUMENT: catalog.DOCUMENTS, BLOB: catalog.BLOBS, TABLE: catalog.TABLES,
                 RUN: catalog.TABLES}


def entry_of(part: str, name: str) -> Entry | None:
    """The catalog entry of an inventory item (a document, blob, table partition or run's rows)."""
    key = name.split("/")[0] if part in (TABLE, RUN) else name
    return catalog.entry_for(key, _CATALOG_PART[part])


def area_of(part: str, name: str) -> str | None:
    """The area an inventory item belongs to; None for one no area holds (not a state item)."""
    entry = entry_of(part, name)
    if entry is catalog.CLAIMS:
        return CLAIM_AREAS.get(name[len(catalog.CLAIMS.key):].split("/")[0])
    return _BY_ENTRY.get(entry) if entry is not None else None


def run_of(part: str, name: str) -> int | None:
    """The run an item belongs to (its record, rows, workbook, markers), else None."""
    if entry_of(part, name) not in RUN_ENTRIES:
        return None
    if part == RUN:
        return int(name.split("/")[1])
    found = _RUN_ID.search(name)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Selection:
    """What a restore brings back: whole areas, and/or single runs."""

    areas: frozenset[str]
    runs: frozenset[int] = frozenset()

    def __call__(self, part: str, name: str) -> bool:
        if area_of(part, name) in self.areas:
            return True
        return bool(self.runs) and run_of(part, name) in self.runs

    def describe(self) -> str:
        words = sorted(self.areas) + [f"run {r}" for r in sorted(self.runs)]
        return "everything" if set(self.areas) == set(AREAS) else ", ".join(words)


def select(names: list[str] | None) -> Selection:
    """A selection from area names and "run:<id>" words (None or []: every area); InvalidInput
    names an unknown one."""
    if not names:
        return Selection(frozenset(AREAS))
    areas, runs = set(), set()
    for word in names:
        word = word.strip().lower()
        if word.startswith("run:") and word[4:].isdigit():
            runs.add(int(word[4:]))
        elif word in AREAS:
            areas.add(word)
        else:
            raise InvalidInput("areas", f"{word!r} is not an area; choose from "
                               f"{', '.join(AREAS)} or run:<id>")
    return Selection(frozenset(areas), frozenset(runs))
