"""The column configuration kept in the store (DOMAIN.md §6): aliases accepted in files, display
names, required and visible flags, and an admin's custom columns; validated, audited (area
"columns", before/after = the whole configuration) and previewed on an uploaded file."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pandas as pd

from core.access import EDIT_COLUMNS, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.config import Settings, load_settings
from core.errors import Conflict, InvalidInput, NotFound
from core.ingest.color_file import _map_header, _present  # ingest's own header rules, not a copy
from core.ingest.readers import read_table
from core.schema import (
    COLOR_KEY,
    COLUMN_TYPE,
    COLUMN_TYPES,
    CONFIG_KEY,
    EXCLUDED_BY,
    INPUT_COLUMNS,
    OUTPUT_COLUMNS,
    POSITION,
    QUARANTINE_REASON,
    REQUIRED_COLUMNS,
    SOURCE_ROW,
    SOURCE_SHEET,
    TEXT,
    TICKER,
    ColumnSpec,
    column_config_from_document,
    header_lookup,
    normalise_header,
)
from storage import ObjectNotFound, Store, WriteConflict

AREA = "columns"
ENTITY = "column configuration"  # the audit ENTITY of every change: the configuration is one thing
IGNORED = "ignored"
# Columns MarketPulse adds itself; a custom column may not take their names.
SYSTEM_COLUMNS = frozenset(OUTPUT_COLUMNS) - frozenset(INPUT_COLUMNS) | {
    SOURCE_ROW, SOURCE_SHEET, EXCLUDED_BY, QUARANTINE_REASON, POSITION, COLOR_KEY}
# The engine needs the required columns (ranking, validation, entitlements), so they stay
# required; TICKER alone may be made optional: DOMAIN §1.1 lets it be blank, so a file without it
# loses nothing the engine uses. Optional canonical columns may be made required.
MAY_BE_OPTIONAL = frozenset({TICKER})
CUSTOM_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,40}$")
_ATTEMPTS = 20
_ROLE = {"name": "the name", "display name": "the display name", "alias": "an alias"}


# -- reading --------------------------------------------------------------------------------------
def get_column_config(store: Store) -> tuple[list[ColumnSpec], str | None]:
    """(configuration, version); the defaults of core.schema and None when nothing is stored."""
    try:
        value, version = store.get(CONFIG_KEY)
    except ObjectNotFound:
        return column_config_from_document(None), None
    return column_config_from_document(value), version


def load_column_config(store: Store) -> list[ColumnSpec]:
    """The stored configuration, or the defaults of core.schema when none is stored."""
    return get_column_config(store)[0]


def visible_columns(specs: Sequence[ColumnSpec]) -> list[str]:
    """Names of the visible columns, in configuration order."""
    return [s.name for s in specs if s.visible]


def custom_column_types(specs: Sequence[ColumnSpec]) -> dict[str, str]:
    """name → type of the custom columns (what rules, presets and search may also test)."""
    return {s.name: s.type for s in specs if s.custom}


# -- validation -----------------------------------------------------------------------------------
def _clean(spec: ColumnSpec) -> ColumnSpec:
    """A stripped copy. The display name is set after construction, where ColumnSpec would
    replace a blank one by the default: a blank display name is an error here, not a reset."""
    clean = replace(spec, name=str(spec.name).strip(),
                    aliases=[str(a).strip() for a in spec.aliases])
    clean.display_name = str(spec.display_name).strip()
    return clean


def _spec_problems(spec: ColumnSpec) -> list[str]:
    name = spec.name
    problems = []
    if name in INPUT_COLUMNS:
        if spec.custom:
            problems.append(f"column {name} is a canonical column and cannot be marked custom")
        if spec.type != COLUMN_TYPE[name]:
            problems.append(f"column {name}: the type of a canonical column is fixed "
                            f"({COLUMN_TYPE[name]})")
        if name in REQUIRED_COLUMNS and not spec.required and name not in MAY_BE_OPTIONAL:
            problems.append(f"column {name} must stay required: the engine needs it (of the "
                            "required columns only TICKER can be made optional)")
    elif not spec.custom:
        problems.append(f"column {name} is not a canonical column; add it as a custom column")
    elif not CUSTOM_NAME.match(name):
        problems.append(f"custom column {name!r}: a name is 2–41 upper-case letters, digits or _, "
                        "starting with a letter")
    elif name in SYSTEM_COLUMNS:
        problems.append(f"custom column {name}: the name is used by MarketPulse for its own column")
    if spec.custom and spec.type not in COLUMN_TYPES:
        problems.append(f"custom column {name}: type {spec.type!r} is not one of "
                        f"{', '.join(COLUMN_TYPES)}")
    if not spec.display_name:
        problems.append(f"column {name}: the display name cannot be empty")
    if any(not normalise_header(a) for a in spec.aliases):
        problems.append(f"column {name}: an alias cannot be empty")
    return problems


def _headers(specs: Sequence[ColumnSpec]) -> list[tuple[str, str, str]]:
    """(column, what, text) of every text a file header may use to name a column."""
    return [(s.name, what, text) for what in _ROLE for s in specs
            for text in ([s.name] if what == "name" else [s.display_name] if what ==
                         "display name" else s.aliases)]


def column_config_problems(specs: Sequence[ColumnSpec],
                           previous: Sequence[ColumnSpec] | None = None) -> list[str]:
    """Every reason the configuration cannot be saved, each naming its column; [] when it can.

    Each canonical column once, with its fixed type; required ones stay required (but TICKER);
    custom columns have an upper-case identifier that is not a system column and a known type;
    display names are not empty; a header (name, display name or alias, compared as
    normalise_header does) maps to one column only. When two collide, the message names the one
    that is new since `previous` (the stored configuration), else the alias over the display name
    over the name, else the later column."""
    specs = [_clean(s) for s in specs]
    names = [s.name for s in specs]
    problems = [f"column {c} cannot be removed: it is one of the 18 canonical columns"
                for c in INPUT_COLUMNS if c not in names]
    problems += [f"column {n} is listed twice" for n in dict.fromkeys(names) if names.count(n) > 1]
    for spec in specs:
        problems += _spec_problems(spec)
    established = {(c, w, normalise_header(t)) for c, w, t in _headers(previous or [])}
    headers = _headers(specs)
    headers.sort(key=lambda h: previous is not None
                 and (h[0], h[1], normalise_header(h[2])) not in established)
    seen: dict[str, tuple[str, str]] = {}
    for column, what, text in headers:
        key = normalise_header(text)
        owner = seen.setdefault(key, (column, _ROLE[what])) if key else None
        if owner and owner[0] != column:
            problems.append(f"{what} {text!r} of column {column} is also {owner[1]} of column "
                            f"{owner[0]}; each header must map to one column")
    return problems


# -- saving ---------------------------------------------------------------------------------------
def _document(specs: Sequence[ColumnSpec]) -> dict[str, Any]:
    return {"columns": [s.to_dict() for s in specs]}


def _summary(before: Sequence[ColumnSpec], after: Sequence[ColumnSpec]) -> str:
    """"changed CUSIP, PX; added DESK_NOTE; removed LOT_SIZE" (the change log's summary)."""
    old, new = {s.name: s for s in before}, {s.name: s for s in after}
    parts = [(verb, [n for n in names if keep(n)]) for verb, names, keep in (
        ("changed", new, lambda n: n in old and old[n] != new[n]),
        ("added", new, lambda n: n not in old),
        ("removed", old, lambda n: n not in new))]
    return "; ".join(f"{verb} {', '.join(names)}" for verb, names in parts if names)


def _write(store: Store, actor: Actor, specs: list[ColumnSpec], version: str | None,
           detail: str, before: list[ColumnSpec], now: datetime | None) -> list[ColumnSpec]:
    """Validate, write over `version` and log; no change, no write."""
    if specs == before:
        return specs
    problems = column_config_problems(specs, before)
    if problems:
        raise InvalidInput(ENTITY, "; ".join(problems))
    store.put(CONFIG_KEY, [s.to_dict() for s in specs], version)  # WriteConflict: caller's
    record_change(store, actor, AREA, "update", ENTITY, before=_document(before),
                  after=_document(specs), detail=detail, now=now_or(now))
    return specs


def save_column_config(
    store: Store,
    actor: Actor,
    specs: Sequence[ColumnSpec],
    *,
    expected_version: str | None = None,
    now: datetime | None = None,
) -> list[ColumnSpec]:
    """Replace the whole configuration (the Settings → Columns editor) and log it.

    expected_version: the version the editor read (get_column_config); a stale one raises
    Conflict; None writes over whatever is stored now. InvalidInput lists every problem."""
    require(actor, EDIT_COLUMNS)
    before, version = get_column_config(store)
    specs = [_clean(s) for s in specs]
    try:
        return _write(store, actor, specs, expected_version or version, _summary(before, specs),
                      before, now)
    except WriteConflict as exc:
        raise Conflict("the column configuration was changed by someone else since it was "
                       "opened; reload it and try again") from exc


def _edit(store: Store, actor: Actor, change: Callable[[list[ColumnSpec]], str],
          now: datetime | None) -> list[ColumnSpec]:
    """Apply one edit to the current configuration; `change` edits the list in place and returns
    the change log's summary. Retried when another writer got there first."""
    require(actor, EDIT_COLUMNS)
    for _ in range(_ATTEMPTS):
        before, version = get_column_config(store)
        specs = [replace(s, aliases=list(s.aliases)) for s in before]
        detail = change(specs)
        try:
            return _write(store, actor, specs, version, detail, before, now)
        except WriteConflict:
            continue
    raise Conflict("the column configuration kept changing while saving; try again")


def _find(specs: list[ColumnSpec], column: str) -> int:
    wanted = str(column).strip().upper()
    for i, spec in enumerate(specs):
        if spec.name.upper() == wanted:
            return i
    raise NotFound(f"there is no column {column!r} in the column configuration")


def add_alias(store: Store, actor: Actor, column: str, alias: str, *,
              now: datetime | None = None) -> list[ColumnSpec]:
    """Accept `alias` as a header for `column` in files from now on."""
    alias = str(alias).strip()

    def change(specs: list[ColumnSpec]) -> str:
        spec = specs[_find(specs, column)]
        if not normalise_header(alias):
            raise InvalidInput("alias", f"column {spec.name}: an alias cannot be empty")
        own = header_lookup([spec])
        if normalise_header(alias) in own:
            raise InvalidInput("alias", f"column {spec.name} already accepts {alias!r}")
        spec.aliases.append(alias)
        return f"added alias {alias!r} to {spec.name}"

    return _edit(store, actor, change, now)


def remove_alias(store: Store, actor: Actor, column: str, alias: str, *,
                 now: datetime | None = None) -> list[ColumnSpec]:
    """Stop accepting `alias` (matched as headers are: case, spaces, _ and - ignored)."""
    def change(specs: list[ColumnSpec]) -> str:
        spec = specs[_find(specs, column)]
        key = normalise_header(alias)
        kept = [a for a in spec.aliases if normalise_header(a) != key]
        if len(kept) == len(spec.aliases):
            raise InvalidInput("alias", f"column {spec.name} has no alias {str(alias).strip()!r}")
        spec.aliases = kept
        return f"removed alias {str(alias).strip()!r} from {spec.name}"

    return _edit(store, actor, change, now)


def add_custom_column(store: Store, actor: Actor, name: str, type: str = TEXT,
                      display_name: str = "", *, required: bool = False,
                      now: datetime | None = None) -> list[ColumnSpec]:
    """Add an extra column carried through ingest, publish, search and exports."""
    name = str(name).strip().upper()

    def change(specs: list[ColumnSpec]) -> str:
        if any(s.name == name for s in specs):
            raise InvalidInput("column", f"there is already a column {name}")
        specs.append(ColumnSpec(name=name, type=type, display_name=str(display_name).strip(),
                                required=required, custom=True))
        return f"added custom column {name} ({type})"

    return _edit(store, actor, change, now)


def remove_custom_column(store: Store, actor: Actor, name: str, *,
                         now: datetime | None = None) -> list[ColumnSpec]:
    """Remove a custom column (rows published before keep their values)."""
    def change(specs: list[ColumnSpec]) -> str:
        spec = specs.pop(_find(specs, name))
        if not spec.custom:
            raise InvalidInput("column", f"column {spec.name} cannot be removed: it is one of "
                               "the 18 canonical columns")
        return f"removed custom column {spec.name}"

    return _edit(store, actor, change, now)


def _set(store: Store, actor: Actor, column: str, now: datetime | None, field: str, value: Any,
         words: str) -> list[ColumnSpec]:
    def change(specs: list[ColumnSpec]) -> str:
        i = _find(specs, column)
        specs[i] = replace(specs[i], **{field: value})
        return f"{specs[i].name}: {words}"

    return _edit(store, actor, change, now)


def set_visible(store: Store, actor: Actor, column: str, visible: bool, *,
                now: datetime | None = None) -> list[ColumnSpec]:
    """Show or hide a column in tables, search fields and the default export."""
    return _set(store, actor, column, now, "visible", bool(visible),
                "shown" if visible else "hidden")


def set_display_name(store: Store, actor: Actor, column: str, display_name: str, *,
                     now: datetime | None = None) -> list[ColumnSpec]:
    """Rename a column on screen (the display name is also accepted as a header in files)."""
    text = str(display_name).strip()
    if not text:
        raise InvalidInput("display name", f"column {str(column).strip().upper()}: the display "
                           "name cannot be empty")
    return _set(store, actor, column, now, "display_name", text, f"display name {text!r}")


def set_required(store: Store, actor: Actor, column: str, required: bool, *,
                 now: datetime | None = None) -> list[ColumnSpec]:
    """Make files fail (MissingColumns) without this column, or accept them without it."""
    return _set(store, actor, column, now, "required", bool(required),
                "required" if required else "optional")


# -- preview --------------------------------------------------------------------------------------
def preview_mapping(data: bytes, filename: str, specs: Sequence[ColumnSpec], *,
                    settings: Settings | None = None) -> pd.DataFrame:
    """How ingest would read this file's header under `specs`: one row per header cell found
    (HEADER, COLUMN = the column it maps to or "ignored", NOTE), then one row per required
    column the file lacks (HEADER <NA>, NOTE "required, not found"). Header detection and mapping
    are ingest's own; a whole-file problem raises FileProblem as ingest does."""
    specs = list(specs)
    settings = settings or load_settings({}, {})
    table = read_table(data, filename, header_lookup(specs), max_mb=settings["upload.max_mb"],
                       settings=settings)
    mapping, _ = _map_header(table, specs, filename)
    lookup = header_lookup(specs)
    rows: list[tuple[Any, str, str]] = []
    for i, cell in enumerate(table.header):
        if not cell:
            continue
        name = lookup.get(normalise_header(cell))
        if name is not None and mapping.get(name) == i:
            rows.append((cell, name, ""))
        elif name in mapping:
            rows.append((cell, IGNORED, f"{table.header[mapping[name]]!r} already maps to {name}"))
        else:
            rows.append((cell, IGNORED, "not a configured column or alias"))
    rows += [(pd.NA, s.name, "required, not found") for s in specs
             if s.required and not _present(s.name, mapping)]
    frame = pd.DataFrame(rows, columns=["HEADER", "COLUMN", "NOTE"])
    return frame.astype("string")
