"""The audit trail's hash chain (SEC 17a-4 audit-trail alternative): every entry of the change log
(core.audit, auth events included) and of the access log (core.compliance.access_log) carries its
place in one chain, SEQ, the hash of the entry before it, PREV_HASH, and its own HASH over its
content and both of those. Editing, deleting or reordering any entry breaks the chain at that
entry, and `verify` names the first one broken.

The chain's head (the last entry's SEQ and HASH, and the entry itself) is one document, written
with its version: two writers can never both take the same SEQ. The head is written before the
row, so a writer stopped between the two leaves its entry in the head, and verify says so.

What a chain cannot show: someone who can rewrite the whole log and the head alike can forge a
new chain. The head's hash goes into each backup's manifest and the compliance report, so a
chain can be checked against what was recorded outside it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from core import catalog
from storage import ObjectNotFound, Store, WriteConflict

HEAD_KEY = catalog.AUDIT_CHAIN_HEAD.key
CHAIN_COLUMNS = ["SEQ", "PREV_HASH", "HASH"]
TRAIL_TABLES = (catalog.AUDIT.key, catalog.ACCESS_LOG.key)  # the change log and the access log
GENESIS = "0" * 64  # the PREV_HASH of the first entry
_ATTEMPTS = 200  # compare-and-set tries before giving up (each loses only to another writer)


def _plain(value: Any) -> Any:
    """A cell as JSON: timestamps as UTC ISO text, missing values as null, numbers as numbers."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def entry_hash(table: str, seq: int, prev_hash: str, row: Mapping[str, Any]) -> str:
    """sha256 over the entry's table, place, previous hash and content (canonical JSON)."""
    content = {k: _plain(v) for k, v in row.items() if k not in CHAIN_COLUMNS}
    text = json.dumps({"table": table, "seq": seq, "prev": prev_hash, "row": content},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def head(store: Store) -> tuple[int, str]:
    """(SEQ, HASH) of the chain's last entry; (0, GENESIS) before the first."""
    try:
        value, _ = store.get(HEAD_KEY)
    except ObjectNotFound:
        return 0, GENESIS
    return int(value["seq"]), str(value["hash"])


def append(store: Store, table: str, row: Mapping[str, Any], partition: str,
           dtypes: Mapping[str, str] | None = None) -> int:
    """Add one entry to `table` as the chain's next: take the next SEQ in the head (compare and
    set), then append the row with its SEQ, PREV_HASH and HASH. Returns its SEQ."""
    for _ in range(_ATTEMPTS):
        try:
            value, version = store.get(HEAD_KEY)
            seq, prev = int(value["seq"]) + 1, str(value["hash"])
        except ObjectNotFound:
            version, seq, prev = None, 1, GENESIS
        digest = entry_hash(table, seq, prev, row)
        entry = {"table": table, "partition": partition,
                 "row": {k: _plain(v) for k, v in row.items()}}
        try:
            store.put(HEAD_KEY, {"seq": seq, "hash": digest, "entry": entry}, version)
        except WriteConflict:
            continue  # another writer took this SEQ: take the next
        chained = {**row, "SEQ": seq, "PREV_HASH": prev, "HASH": digest}
        frame = pd.DataFrame([chained])
        if dtypes:
            frame = frame.astype(dict(dtypes))
        store.append(table, frame.astype({"SEQ": "Int64", "PREV_HASH": "string",
                                          "HASH": "string"}), partition=partition)
        return seq
    raise WriteConflict(HEAD_KEY, "the chain head", "changed by other writers on every try")


@dataclass
class Verdict:
    """What verify found: entries checked, the first broken one (None: the chain holds)."""

    entries: int = 0
    unchained: int = 0  # entries written before the chain began (not covered by it)
    head_seq: int = 0
    head_hash: str = GENESIS
    broken_seq: int | None = None
    problem: str = ""
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and not self.problem

    def summary(self) -> str:
        covered = f"{self.entries:,} entries" + "".join(
            f", {n:,} in {t}" for t, n in sorted(self.tables.items()))
        before = f"; {self.unchained:,} written before the chain began" if self.unchained else ""
        if self.ok:
            return (f"Audit chain intact: {covered}, head {self.head_seq} "
                    f"{self.head_hash[:16]}…{before}.")
        return f"Audit chain BROKEN at entry {self.broken_seq}: {self.problem} ({covered}{before})."


def _describe(table: str, row: Mapping[str, Any]) -> str:
    at = _plain(row.get("AT"))
    return (f"{table} entry {row.get('EVENT_ID')} by {row.get('ACTOR')} at {at}, "
            f"{row.get('ACTION')}")


def verify(store: Store, tables: tuple[str, ...] = TRAIL_TABLES) -> Verdict:
    """Walk the chain over `tables` in SEQ order: each entry's HASH must be its content's, its
    PREV_HASH the HASH before it, SEQ must run 1, 2, 3… with no gap or repeat, and the last must
    be the head's. Names the first entry where any of that fails."""
    rows: list[tuple[int, str, Mapping[Any, Any]]] = []
    verdict = Verdict()
    for table in tables:
        frame = store.scan(table)
        if frame.empty:
            continue
        if "SEQ" not in frame.columns:
            verdict.unchained += len(frame)
            continue
        chained = frame[frame["SEQ"].notna()]
        verdict.unchained += len(frame) - len(chained)
        verdict.tables[table] = len(chained)
        rows += [(int(r["SEQ"]), table, r) for r in chained.to_dict("records")]
    rows.sort(key=lambda item: item[0])
    verdict.entries = len(rows)
    verdict.head_seq, verdict.head_hash = head(store)
    expected_seq, prev = 1, GENESIS
    for seq, table, row in rows:
        what = _describe(table, row)
        if seq < expected_seq:
            return _broken(verdict, seq, f"{what} repeats the place of an earlier entry")
        if seq > expected_seq:
            return _broken(verdict, expected_seq,
                           f"missing (deleted or moved): the next entry found is {seq}, {what}")
        if row["PREV_HASH"] != prev:
            return _broken(verdict, seq, f"{what} does not follow the entry before it "
                                         "(an entry before it was changed, removed or moved)")
        if entry_hash(table, seq, str(row["PREV_HASH"]), row) != row["HASH"]:
            return _broken(verdict, seq, f"{what} was changed after it was written")
        expected_seq, prev = seq + 1, str(row["HASH"])
    if verdict.head_seq >= expected_seq:
        return _broken(verdict, expected_seq,
                       f"missing from the log, though the chain head records entry "
                       f"{verdict.head_seq} (deleted, or its writer stopped before writing it)")
    if verdict.head_seq != expected_seq - 1 or (rows and verdict.head_hash != prev):
        return _broken(verdict, expected_seq - 1,
                       "the chain head does not match the last entry (the head or the log's end "
                       "was rewritten)")
    return verdict


def _broken(verdict: Verdict, seq: int, problem: str) -> Verdict:
    verdict.broken_seq, verdict.problem = seq, problem
    return verdict
