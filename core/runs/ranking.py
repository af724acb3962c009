"""Run Colors: order each CUSIP's colors best first and mark parents and children (DOMAIN.md §2),
and the publish-gate check of the parent/child invariants.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from core.errors import PublishRefused
from core.schema import (
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    DATE,
    DATE_1,
    IS_PARENT,
    MESSAGE_ID,
    PARENT_COLOR_ID,
    PARENT_MESSAGE_ID,
    PX,
    RANK,
    RUN_ID,
)

_INT64_MAX = np.iinfo(np.int64).max
_SHOWN = 5  # offenders named in an error message
_SAMPLE = 50_000  # rows sampled to tell repetitive text from unique ids
_GATHER_THREADS = 2


def _newest_first(values: pd.Series) -> np.ndarray:
    """int64 sort key: newer dates sort first, NaT last."""
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    moments = stamps.to_numpy(dtype="datetime64[us]")
    missing = np.isnat(moments)
    return np.where(missing, _INT64_MAX, -np.where(missing, 0, moments.view(np.int64)))


def _lowest_first(values: pd.Series) -> np.ndarray:
    """float64 sort key: lower first, NA last."""
    return pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.inf)


def _highest_price_first(values: pd.Series) -> np.ndarray:
    """float64 sort key: higher price first; missing or zero price last (DOMAIN.md §2.3)."""
    px = pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(px) | (px == 0), np.inf, -px)


def _dense(key: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ascending rank (0..k-1) of a numeric sort key, and k."""
    codes, uniques = pd.factorize(key)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(uniques, kind="stable")] = np.arange(len(uniques))
    return rank[codes], len(uniques)


def _sort_order(keys: list[tuple[np.ndarray, int]], n: int) -> np.ndarray:
    """Stable ascending order by dense keys, most significant first.

    When the keys and the input ordinal fit in 64 bits they are packed into one uint64 and sorted
    by value (≈10× faster than a 6-key lexsort on 1M rows); otherwise np.lexsort, which is stable.
    """
    widths = [max(1, (size - 1).bit_length()) for _, size in keys]
    ordinal_bits = max(1, (n - 1).bit_length())
    if sum(widths) + ordinal_bits > 64:
        return np.lexsort([key for key, _ in reversed(keys)])
    packed = np.zeros(n, dtype=np.uint64)
    for (key, _), width in zip(keys, widths, strict=True):
        packed = (packed << np.uint64(width)) | key.astype(np.uint64)
    packed = (packed << np.uint64(ordinal_bits)) | np.arange(n, dtype=np.uint64)
    return (np.sort(packed) & np.uint64((1 << ordinal_bits) - 1)).astype(np.intp)


def _gather(values: pd.Series, order: np.ndarray) -> ExtensionArray:
    """values reordered by `order`. Repetitive text goes through its codes: a random-access gather
    of 1M strings is cache-bound (~0.12 s a column) while decoding a small dictionary is not."""
    if isinstance(values.dtype, pd.StringDtype) and len(values) > _SAMPLE:
        sample = values.iloc[:: len(values) // _SAMPLE]
        if sample.nunique(dropna=False) <= len(sample) // 2:
            codes, uniques = pd.factorize(values.array)
            return uniques.take(codes[order], allow_fill=True)
    return values.array.take(order)


def _gather_all(todo: dict[str, pd.Series], at: np.ndarray) -> dict[str, ExtensionArray]:
    """Every column of `todo` gathered at `at`, on two threads; each column is dropped from
    `todo` as soon as it is gathered (nothing else may hold it, for consume)."""
    gathered: dict[str, ExtensionArray] = {}
    with ThreadPoolExecutor(max_workers=_GATHER_THREADS) as pool:
        running = {pool.submit(_gather, values, at): name for name, values in todo.items()}
        for done in as_completed(running):
            name = running.pop(done)
            gathered[name] = done.result()
            del todo[name]
    return gathered


def _pinned_key(ids: pd.Series, codes: np.ndarray, pinned: Collection[str]) -> np.ndarray:
    """0 on the first pinned row of each group (input order), 1 elsewhere."""
    key = np.ones(len(ids), dtype=np.int64)
    if not pinned:
        return key
    hits = np.flatnonzero(ids.isin(list(pinned)).to_numpy(dtype=bool, na_value=False))
    if len(hits):
        _, first = np.unique(codes[hits], return_index=True)
        key[hits[first]] = 0
    return key


@dataclass(frozen=True)
class _Cusips:
    """CUSIPs as codes: `spelling` indexes the distinct stored spellings, `group` the distinct
    keys upper(trim(CUSIP)) (numbered in key order; "" for an empty CUSIP). Only the distinct
    spellings (thousands) are normalised, not every row (a million)."""

    spelling: np.ndarray
    spellings: ExtensionArray
    group: np.ndarray
    keys: pd.Series

    @classmethod
    def of(cls, cusips: pd.Series) -> _Cusips:
        spelling, spellings = cusips.astype("string").array.factorize(use_na_sentinel=False)
        keys = pd.Series(spellings, dtype="string").str.strip().str.upper().fillna("")
        key_codes, key_uniques = pd.factorize(keys, sort=True)
        return cls(spelling, spellings, key_codes[spelling], pd.Series(key_uniques, dtype="string"))


def rank_colors(
    colors: pd.DataFrame,
    *,
    date_column: str = DATE,
    pinned: Collection[str] = (),
    rows: np.ndarray | None = None,
    consume: bool = False,
) -> pd.DataFrame:
    """Order each CUSIP's colors best first and mark parents and children (DOMAIN.md §2).

    Within a group: `date_column` newest first → RANK lowest → PX highest (missing or zero last) →
    DATE_1 newest → input order; a pinned COLOR_ID is its group's parent. Groups come in key order
    (upper(trim(CUSIP))), the order stores keep a run's rows in (storage.run_layout.sort_rows),
    so publishing writes the ranked rows as they are. COLOR_ID is kept when present, else the
    input ordinal (from 1).
    Raises ValueError when a CUSIP is empty (validation quarantines those rows before ranking).
    `rows` (positions) ranks only those rows without first copying them out: the sort keys are
    read from the rows and every column is gathered once, straight into ranked order.
    `consume`: the caller gives `colors` up: its columns are taken out of it and each is let go
    once gathered, so the input and the ranked copy are never both whole (publishing 1M rows).
    """
    missing = [c for c in (CUSIP, MESSAGE_ID, date_column, RANK, PX) if c not in colors.columns]
    if missing:
        raise ValueError(f"cannot rank without column(s): {', '.join(missing)}")
    source = colors
    if rows is not None:
        wanted = dict.fromkeys((CUSIP, COLOR_ID, MESSAGE_ID, date_column, RANK, PX, DATE_1))
        keys = [c for c in wanted if c in colors.columns]
        colors = colors[keys].iloc[rows]
    n = len(colors)
    cusips = _Cusips.of(colors[CUSIP])
    codes = cusips.group
    empty = (cusips.keys == "").to_numpy(dtype=bool)[codes]
    if empty.any():
        where = np.flatnonzero(empty)[:_SHOWN].tolist()
        raise ValueError(f"{int(empty.sum())} row(s) with an empty CUSIP at positions {where}")
    if COLOR_ID in colors.columns:
        ids = colors[COLOR_ID].astype("string")
    else:
        ids = pd.Series(pd.array(np.arange(1, n + 1).astype(str), dtype="string"))
    secondary = (_newest_first(colors[DATE_1]) if DATE_1 in colors.columns
                 else np.zeros(n, dtype=np.int64))
    order = _sort_order([
        (codes, int(codes.max(initial=0)) + 1),
        (_pinned_key(ids, codes, pinned), 2),
        _dense(_newest_first(colors[date_column])),
        _dense(_lowest_first(colors[RANK])),
        _dense(_highest_price_first(colors[PX])),
        _dense(secondary),
    ], n)

    known = {CUSIP: cusips.spellings.take(cusips.spelling[order]), COLOR_ID: ids.array.take(order)}
    at = order if rows is None else np.asarray(rows)[order]
    # Gathering ~20 columns of a million rows is most of the work; pyarrow and numpy release the
    # GIL while they copy, so two threads use both cores.
    names = list(source.columns)
    todo = {c: source[c] for c in names if c not in known}
    if consume:
        for name in names:
            del source[name]
    gathered = _gather_all(todo, at)
    columns = {c: known[c] if c in known else gathered[c] for c in names}
    columns.update(known)  # appends COLOR_ID when the input had none
    # A fresh RangeIndex; the gathered arrays are its own, so not copied again (0.2 s for 1M).
    ranked = pd.DataFrame(columns, copy=False)
    group = codes[order]
    is_parent = np.ones(n, dtype=bool)
    is_parent[1:] = group[1:] != group[:-1]
    sizes = np.bincount(group, minlength=1)
    parent_at = np.maximum.accumulate(np.where(is_parent, np.arange(n), 0))
    pointer = np.where(is_parent, -1, parent_at)  # -1 → NA on parents

    ranked[IS_PARENT] = pd.array(is_parent, dtype="boolean")
    ranked[CHILDREN_COUNT] = pd.array(np.where(is_parent, sizes[group] - 1, 0), dtype="Int64")
    ranked[PARENT_COLOR_ID] = columns[COLOR_ID].take(pointer, allow_fill=True)
    messages = ranked[MESSAGE_ID].astype("string").array
    ranked[PARENT_MESSAGE_ID] = messages.take(pointer, allow_fill=True)
    return ranked


def _refuse(problem: str, labels: list[str]) -> PublishRefused:
    more = f" (+{len(labels) - _SHOWN} more)" if len(labels) > _SHOWN else ""
    return PublishRefused(f"{problem}: {'; '.join(labels[:_SHOWN])}{more}")


def check_invariants(published: pd.DataFrame) -> None:
    """Publish gate (DOMAIN.md §2.6): raise PublishRefused naming the offending RUN_ID/CUSIP when a
    (RUN_ID, CUSIP) group lacks exactly one parent, a parent's CHILDREN_COUNT differs from the rows
    pointing at it, a child points at a missing, non-parent or other-group COLOR_ID, or COLOR_IDs
    repeat. Without a RUN_ID column the frame is treated as one run."""
    n = len(published)
    if n == 0:
        return
    ids = published[COLOR_ID].astype("string")
    parent = published[IS_PARENT].astype("boolean").fillna(False).to_numpy(dtype=bool)
    kids = np.flatnonzero(~parent)
    points_at = published[PARENT_COLOR_ID].astype("string").array[kids]
    # One factorize over ids then pointers: a pointer's code < n is the id it names.
    codes, _ = pd.factorize(pd.concat([ids, pd.Series(points_at, dtype="string")]).array)
    id_codes, pointer_codes = codes[:n], codes[n:]
    named = id_codes >= 0
    repeated = named & (np.bincount(id_codes[named], minlength=1) > 1)[np.maximum(id_codes, 0)]
    if repeated.any():
        names = sorted(ids[repeated].unique().tolist())
        raise _refuse("duplicate COLOR_ID", [f"COLOR_ID {i}" for i in names])

    cusips = _Cusips.of(published[CUSIP])
    key_codes, keys = cusips.group, cusips.keys
    runs = published[RUN_ID] if RUN_ID in published.columns else None
    run_codes = (pd.factorize(runs, use_na_sentinel=False)[0] if runs is not None
                 else np.zeros(n, dtype=np.intp))
    group = pd.factorize(run_codes.astype(np.int64) * (len(keys) + 1) + key_codes)[0]

    def where(rows: np.ndarray) -> list[str]:
        cusips = keys.to_numpy()[key_codes[rows]]
        if runs is None:
            return [f"CUSIP {k}" for k in cusips]
        return [f"RUN_ID {r} / CUSIP {k}" for r, k in zip(runs.iloc[rows], cusips, strict=True)]

    parents = np.bincount(group, weights=parent)
    bad = np.flatnonzero(parents != 1)
    if len(bad):
        first_rows = np.unique(group, return_index=True)[1][bad]
        labels = [f"{w} ({int(parents[g])} parents)"
                  for w, g in zip(where(first_rows), bad, strict=True)]
        raise _refuse("not exactly one parent per (RUN_ID, CUSIP)", labels)

    row_of = np.full(len(codes) + 1, -1)
    row_of[id_codes[named]] = np.flatnonzero(named)
    target = row_of[pointer_codes]  # -1: NA or a COLOR_ID that is not in the frame

    def pointers(rows: np.ndarray) -> list[str]:
        return [f"{w} (COLOR_ID {c} → {p})" for w, c, p in
                zip(where(kids[rows]), ids.array[kids[rows]], points_at[rows], strict=True)]

    dangling = np.flatnonzero((target < 0) | ~parent[np.maximum(target, 0)])
    if len(dangling):
        raise _refuse("child points at a missing or non-parent COLOR_ID", pointers(dangling))
    other = np.flatnonzero(group[target] != group[kids])
    if len(other):
        raise _refuse("child points at the parent of another RUN_ID/CUSIP", pointers(other))

    pointing = np.bincount(target, minlength=n)
    counted = pd.to_numeric(published[CHILDREN_COUNT]).to_numpy(dtype=float, na_value=np.nan)
    wrong = np.flatnonzero(parent & (counted != pointing))
    if len(wrong):
        labels = [f"{w} (COLOR_ID {c}: CHILDREN_COUNT {k:g}, {e} pointing at it)" for w, c, k, e in
                  zip(where(wrong), ids.array[wrong], counted[wrong], pointing[wrong], strict=True)]
        raise _refuse("CHILDREN_COUNT differs from the rows pointing at the parent", labels)
