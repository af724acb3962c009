"""Changing a manual session's rows the way a spreadsheet does (DOMAIN.md §0, §5): a batch of
changed cells, added and deleted rows and pins is checked as a whole, refused naming every bad
cell, or applied as one undoable step. PX follows BID and ASK: PX = BID if BID > 0, else ASK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from core.access import Actor
from core.config import Settings
from core.errors import InvalidInput, MarketPulseError, NotFound
from core.ingest.coercion import coerce_column, describe_value
from core.ingest.color_file import derive_fields
from core.ingest.columns import load_column_config
from core.ingest.validation import Problem, cell_message, validate_colors
from core.manual.sessions import Session, changed, commit, current, load_frame, put_frame
from core.schema import (
    ASK,
    BIAS,
    BID,
    COLOR_ID,
    COLUMN_TYPE,
    COV_PRICE,
    CUSIP,
    DIFF_STATUS,
    INPUT_COLUMNS,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    RANK,
    SECTOR,
    SOURCE_FILE,
    SOURCE_ROW,
)
from storage import Store

MANUAL_ROW_FILE = "manual entry"  # SOURCE_FILE of rows added by hand (SOURCE_ROW 0)
PINNED = "PINNED"  # in an added row's values: pin it as its CUSIP's parent
# Editing one of these blanks the derived fields that depend on it (unless the same batch sets
# them), so derive_fields recomputes them. PX itself follows BID/ASK (see _follow_bid_ask).
REDERIVED = {PX: (PERCENT_DIFF, PRICE_DIFF, DIFF_STATUS),
             COV_PRICE: (PERCENT_DIFF, PRICE_DIFF, DIFF_STATUS),
             SECTOR: (DIFF_STATUS,), BIAS: (RANK,)}
AUDITED_CELLS = 100  # cells listed in the change log entry of one batch (a pasted block is big)


@dataclass(frozen=True)
class Edits:
    """One batch from the editor. changed: COLOR_ID → {column: value as typed}; added: new rows
    as {column: value} (PINNED: True pins it); deleted: COLOR_IDs; pins: COLOR_ID → True to pin
    the row as its CUSIP's parent, False to unpin it."""

    changed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    added: Sequence[Mapping[str, Any]] = ()
    deleted: Sequence[str] = ()
    pins: Mapping[str, bool] = field(default_factory=dict)

    @property
    def cells(self) -> int:
        return sum(len(values) for values in self.changed.values())

    @property
    def empty(self) -> bool:
        return not (self.cells or self.added or self.deleted or self.pins)

    def describe(self) -> str:
        """"2 cells, 1 new row, 3 deleted rows, 1 pin": the undo label of the batch."""
        parts = [(self.cells, "cell", "cells"), (len(self.added), "new row", "new rows"),
                 (len(self.deleted), "deleted row", "deleted rows"),
                 (len(self.pins), "pin", "pins")]
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in parts if n) or (
            "nothing")


@dataclass(frozen=True)
class CellProblem:
    """Why one cell (or row) of a batch was refused or warned about; row is a COLOR_ID or
    "new row <n>" (the n-th added row), column None for the whole row."""

    row: str
    column: str | None
    reason: str

    @property
    def message(self) -> str:
        where = self.row if self.row.startswith("new row") else f"row {self.row}"
        return f"{where}, column {self.column}: {self.reason}" if self.column else (
            f"{where}: {self.reason}")


class InvalidEdits(InvalidInput):
    """A batch with cells that cannot be applied; nothing was changed. `problems` names each."""

    def __init__(self, problems: Sequence[CellProblem]) -> None:
        MarketPulseError.__init__(self, "; ".join(p.message for p in problems))
        self.problems = list(problems)
        self.field = "edits"


@dataclass(frozen=True)
class EditOutcome:
    """The session after a batch, and the warnings its edited cells raised (kept, not refused)."""

    session: Session
    warnings: list[CellProblem]


def position(rows: pd.DataFrame, color_id: str) -> int:
    """The frame position of a row; NotFound names an id that is not in the session."""
    hits = (rows[COLOR_ID] == color_id).to_numpy(dtype=bool, na_value=False).nonzero()[0]
    if not len(hits):
        raise NotFound(f"row {color_id} is not in the session")
    return int(hits[0])


def editable_columns(store: Store, rows: pd.DataFrame) -> dict[str, str]:
    """Editable columns → type: the input columns and the custom columns the rows carry."""
    custom = {c.name: c.type for c in load_column_config(store) if c.custom and c.name in rows}
    return {c: COLUMN_TYPE[c] for c in INPUT_COLUMNS} | custom


def replace_rows(store: Store, actor: Actor, session: Session, rows: pd.DataFrame, label: str,
                 action: str, now: datetime | None, change: dict[str, Any],
                 **state: Any) -> Session:
    """Commit new working rows as one undoable step named `label`."""
    after = replace(changed(session, label), **state)
    after.rows_key = put_frame(store, session, "rows", rows.reset_index(drop=True))
    return commit(store, actor, session, after, action=action, now=now, written=[after.rows_key],
                  detail=label, change=change)


# -- checking a batch ---------------------------------------------------------------------------
def _coerce(frame: pd.DataFrame, cells: list[tuple[int, str, str, Any]], types: dict[str, str],
            problems: list[CellProblem]) -> set[tuple[int, str]]:
    """Write the typed values of `cells` (position, row label, column, raw value) into frame,
    one coercion per column; unreadable cells become problems. Returns the cells written."""
    written = set()
    by_column: dict[str, list[tuple[int, str, Any]]] = {}
    for pos, label, column, value in cells:
        by_column.setdefault(column, []).append((pos, label, value))
    for column, entries in by_column.items():
        raw = pd.Series([v for _, _, v in entries], dtype=object)
        typed, bad = coerce_column(raw, column, types[column])
        refused = np.zeros(len(entries), dtype=bool)
        for cells_ in bad:
            if cells_.blocking:
                refused[cells_.positions] = True
                for i, text in zip(cells_.positions.tolist(), cells_.messages(), strict=True):
                    problems.append(CellProblem(entries[i][1], column, text))
        keep = np.flatnonzero(~refused)
        target = frame[column].copy()
        target.iloc[[entries[i][0] for i in keep]] = typed.iloc[keep].astype(target.dtype).array
        frame[column] = target
        written |= {(entries[i][0], column) for i in keep}
    return written


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _follow_bid_ask(frame: pd.DataFrame, before: pd.DataFrame | None, edited: set[str],
                    pos: int, label: str, problems: list[CellProblem]) -> set[str]:
    """Apply DOMAIN.md §0 to one row: a changed BID or ASK moves PX (PX = BID if BID > 0, else
    ASK); a typed PX that BID or ASK decides otherwise is refused with the reason. PRICE_LEVEL
    moves with PX when it equalled it. Returns the columns now changed."""
    bid, ask = _number(frame.at[pos, BID]), _number(frame.at[pos, ASK])
    decided = (BID, bid) if bid is not None and bid > 0 else (
        (ASK, ask) if ask is not None and ask > 0 else None)
    old_px = None if before is None else _number(before.at[pos, PX])
    if PX in edited:
        px = _number(frame.at[pos, PX])
        if decided is not None and (px is None or not np.isclose(px, decided[1])):
            name, value = decided
            why = "BID > 0" if name == BID else f"there is no bid (BID {describe_value(bid)})"
            problems.append(CellProblem(label, PX, (
                f"{describe_value(px)} is refused: PX follows {name} ({describe_value(value)}) "
                f"while {why}; edit {name} instead")))
            return set()
    elif edited & {BID, ASK}:
        px = decided[1] if decided is not None else ask  # no bid, no offer: ASK's 0 or blank
        frame.at[pos, PX] = pd.NA if px is None else px
    else:
        return set()
    moved = {PX}
    if PRICE_LEVEL not in edited and before is not None:
        level = _number(before.at[pos, PRICE_LEVEL])
        if level is None or (old_px is not None and np.isclose(level, old_px)):
            new_px = _number(frame.at[pos, PX])
            frame.at[pos, PRICE_LEVEL] = pd.NA if new_px is None else new_px
            moved.add(PRICE_LEVEL)
    return moved


def _rederive(frame: pd.DataFrame, pos: int, edited: set[str]) -> None:
    for source, derived in REDERIVED.items():
        if source in edited:
            for column in derived:
                if column not in edited:
                    frame.at[pos, column] = pd.NA


def _row_problems(frame: pd.DataFrame, labels: list[str], edited: list[set[str] | None],
                  settings: Settings) -> tuple[list[CellProblem], list[CellProblem]]:
    """(blocking, warnings) of the changed and added rows, by their labels. Warnings are kept to
    the cells the batch set (an added row: every cell), so old warnings are not repeated."""
    checked = frame.assign(**{SOURCE_ROW: pd.array(range(1, len(frame) + 1), dtype="Int64")})
    report = validate_colors(checked, settings).report
    blocking, warnings = [], []
    for problem in report.problems:
        if problem.row is None:
            continue
        at = problem.row - 1
        found = CellProblem(labels[at], problem.column, _reason(problem))
        if problem.blocking:
            blocking.append(found)
        elif edited[at] is None or problem.column in (edited[at] or ()):
            warnings.append(found)
    return blocking, warnings


def _reason(problem: Problem) -> str:
    prefix = cell_message(problem.row, problem.column, "")
    return problem.message[len(prefix):] if problem.message.startswith(prefix) else (
        problem.message)


# -- applying a batch ---------------------------------------------------------------------------
def apply_edits(store: Store, actor: Actor, edits: Edits, *, settings: Settings,
                version: str | None = None, now: datetime | None = None,
                label: str | None = None) -> EditOutcome:
    """Check and apply one batch of edits to the actor's open session as ONE undoable step (the
    next preview re-ranks). Values are read like a file's cells; BIAS, COV_PRICE, SECTOR and PX
    changes re-derive RANK and the differences; BID/ASK move PX. Any bad cell refuses the whole
    batch with InvalidEdits naming every one (row, column, reason); nothing changes then.
    Role and the session version (what the window showed) are checked first."""
    session = current(store, actor, version)
    if edits.empty:
        raise InvalidInput("edits", "there are no changes to apply")
    rows = load_frame(store, session.rows_key)
    types = editable_columns(store, rows)
    for color_id in [*edits.changed, *edits.deleted, *edits.pins]:
        position(rows, color_id)
    problems: list[CellProblem] = []
    gone = set(edits.deleted)

    # Existing rows: the changed ones, edited in a copy.
    ids = [i for i in dict.fromkeys([*edits.changed, *edits.pins]) if i not in gone]
    where = [position(rows, i) for i in ids]
    before = rows.iloc[where].reset_index(drop=True)
    work = before.copy()
    cells = []
    for at, color_id in enumerate(ids):
        for column, value in (edits.changed.get(color_id) or {}).items():
            if column not in types:
                problems.append(CellProblem(color_id, column, "is not an editable column"))
            else:
                cells.append((at, color_id, column, value))
    written = _coerce(work, cells, types, problems)
    edited: list[set[str] | None] = [
        {c for p, c in written if p == at} for at in range(len(ids))]
    for at, color_id in enumerate(ids):
        columns = edited[at] or set()
        columns |= _follow_bid_ask(work, before, columns, at, color_id, problems)
        _rederive(work, at, columns)

    # Added rows: a new COLOR_ID each, derived fields filled where left blank.
    first = session.next_row
    new_ids = [f"{session.token}-{first + i}" for i in range(len(edits.added))]
    added = pd.DataFrame({c: pd.Series(pd.NA, index=range(len(new_ids)), dtype=rows[c].dtype)
                          for c in rows.columns})
    cells = []
    for i, values in enumerate(edits.added):
        label_ = f"new row {i + 1}"
        for column, value in values.items():
            if column == PINNED:
                continue
            if column not in types:
                problems.append(CellProblem(label_, column, "is not an editable column"))
            else:
                cells.append((i, label_, column, value))
    typed_new = _coerce(added, cells, types, problems)
    for i in range(len(new_ids)):
        _follow_bid_ask(added, None, {c for p, c in typed_new if p == i}, i, f"new row {i + 1}",
                        problems)
    added[COLOR_ID] = pd.array(new_ids, dtype="string")
    added[SOURCE_FILE] = pd.array([MANUAL_ROW_FILE] * len(new_ids), dtype="string")
    added[SOURCE_ROW] = pd.array([0] * len(new_ids), dtype="Int64")

    labels = [*ids, *(f"new row {i + 1}" for i in range(len(new_ids)))]
    checked = derive_fields(pd.concat([work, added], ignore_index=True), settings)
    blocking, warnings = _row_problems(checked, labels, [*edited, *[None] * len(new_ids)],
                                       settings)
    problems += [p for p in blocking if p not in problems]
    pins = {**edits.pins, **{new_ids[i]: True for i, v in enumerate(edits.added)
                             if v.get(PINNED)}}
    pinned = _pins(session, rows, checked, pins, gone, problems)
    if problems:  # in reading order: row by row, each left to right
        rank = {label: i for i, label in enumerate(labels)}
        across = {column: i for i, column in enumerate(rows.columns)}
        raise InvalidEdits(sorted(problems, key=lambda p: (
            rank.get(p.row, len(rank)), across.get(p.column or "", len(across)))))

    kept = rows.copy()
    for column in rows.columns:
        target = kept[column].copy()
        target.iloc[where] = checked[column].iloc[:len(ids)].astype(target.dtype).array
        kept[column] = target
    kept = kept[~kept[COLOR_ID].isin(list(gone)).to_numpy(dtype=bool, na_value=False)]
    result = pd.concat([kept, checked.iloc[len(ids):][rows.columns]], ignore_index=True)
    change = {"cells": [{"color_id": ids[p], "column": c,
                         "before": describe_value(before.at[p, c]),
                         "after": describe_value(checked.at[p, c])}
                        for p, c in sorted(written)][:AUDITED_CELLS],
              "added": new_ids, "deleted": sorted(gone), "pins": dict(pins)}
    after = replace_rows(store, actor, session, result, label or f"edit {edits.describe()}",
                         "rows_edited", now, change, pinned=pinned,
                         next_row=first + len(new_ids))
    return EditOutcome(after, warnings)


def _pins(session: Session, rows: pd.DataFrame, checked: pd.DataFrame, pins: Mapping[str, bool],
          gone: set[str], problems: list[CellProblem]) -> list[str]:
    """The pinned rows after the batch: a pin replaces the earlier pin of its CUSIP (as it reads
    after the batch); two pins of one CUSIP in one batch are refused."""
    cusip_of = dict(zip(rows[COLOR_ID], rows[CUSIP].astype("string"), strict=True))
    cusip_of |= dict(zip(checked[COLOR_ID], checked[CUSIP].astype("string"), strict=True))
    key = {i: str(c).strip().upper() for i, c in cusip_of.items()}
    pinned = [p for p in session.pinned if p not in gone and pins.get(p, True)]
    chosen: dict[str, str] = {}
    for color_id, on in pins.items():
        if not on or color_id in gone:
            continue
        cusip = key.get(color_id, "")
        if cusip in chosen:
            problems.append(CellProblem(color_id, "Pinned", (
                f"row {chosen[cusip]} of CUSIP {cusip} is pinned in the same batch; pin one")))
            continue
        chosen[cusip] = color_id
        pinned = [p for p in pinned if key.get(p) != cusip] + [color_id]
    return pinned


def edit_cell(store: Store, actor: Actor, color_id: str, column: str, value: Any, *,
              settings: Settings, version: str | None = None,
              now: datetime | None = None) -> Session:
    """Set one cell (a batch of one, see apply_edits)."""
    return apply_edits(store, actor, Edits(changed={color_id: {column: value}}),
                       settings=settings, version=version, now=now,
                       label=f"edit {column} of {color_id}").session


def add_row(store: Store, actor: Actor, values: Mapping[str, Any], *, settings: Settings,
            version: str | None = None, now: datetime | None = None) -> Session:
    """Add one color typed by the user (canonical column names; a batch of one row)."""
    session = current(store, actor, version)
    return apply_edits(store, actor, Edits(added=[values]), settings=settings,
                       version=session.version, now=now,
                       label=f"add row {session.token}-{session.next_row}").session
