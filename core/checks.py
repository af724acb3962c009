"""The row-level checks of DOMAIN.md §1 as vectorised masks over a canonical color frame.

Each check returns Findings (a mask of failing rows, the column, a code, one text per failing row);
validation turns them into Problems and decides what is quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.coercion import describe_value, normalise_bias
from core.config import Settings
from core.schema import (
    BIAS,
    BIAS_RANK,
    CONFIDENCE,
    COV_PRICE,
    CUSIP,
    DATE,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PX,
    RANK,
    RANK_MAX,
    RANK_MIN,
    SECTOR,
    SOURCE,
    cusip_check_digit,
)

# Values a row cannot do without (DOMAIN.md §1.1; TICKER may be blank, RANK/PRICE_LEVEL derive).
REQUIRED_VALUES = (MESSAGE_ID, SECTOR, CUSIP, DATE, PX, SOURCE, BIAS)
CONFIDENCE_MIN, CONFIDENCE_MAX = 0, 10
DUPLICATE_PREFILTER = (MESSAGE_ID, CUSIP, BIAS, PX, COV_PRICE)


@dataclass
class Finding:
    """Rows failing one check: texts has one text per True in mask (in row order), or one str."""

    mask: np.ndarray
    column: str | None
    code: str
    texts: list[str] | str
    blocking: bool


def check_colors(frame: pd.DataFrame, settings: Settings, *, unreadable: dict[str, np.ndarray],
                 rows: np.ndarray) -> list[Finding]:
    """Every check of DOMAIN.md §1 on a canonical frame. `unreadable[column]` marks cells already
    reported as unreadable (not reported again as missing); `rows` are the Excel row numbers
    (0 when unknown)."""
    n = len(frame)

    def readable(column: str) -> np.ndarray:
        return ~unreadable.get(column, np.zeros(n, dtype=bool))

    findings = [
        Finding(_blank(frame[c]) & readable(c), c, "missing_value", "value is missing", True)
        for c in REQUIRED_VALUES
    ]
    findings += _check_bias(frame, readable(RANK))
    findings += [
        _outside(frame[RANK], RANK_MIN, RANK_MAX, RANK, "rank_out_of_range", True),
        _outside(frame[CONFIDENCE], CONFIDENCE_MIN, CONFIDENCE_MAX, CONFIDENCE,
                 "confidence_out_of_range", False),
        _outside(frame[PX], settings["validation.px_min"], settings["validation.px_max"], PX,
                 "px_out_of_range", False),
        _check_cusips(frame[CUSIP], bool(settings["validation.cusip_check_blocking"])),
        _check_duplicates(frame, rows),
    ]
    return [f for f in findings if f.mask.any()]


def _blank(values: pd.Series) -> np.ndarray:
    empty = values.isna()
    if pd.api.types.is_string_dtype(values.dtype):
        empty |= values.str.strip().eq("").fillna(True)
    return empty.to_numpy(dtype=bool)


def _check_bias(frame: pd.DataFrame, rank_readable: np.ndarray) -> list[Finding]:
    """Unknown BIAS: blocking when RANK is blank (nothing to rank by), else a warning."""
    bias = frame[BIAS]
    known = normalise_bias(bias.astype("string")).isin(list(BIAS_RANK)).to_numpy(dtype=bool)
    given = ~_blank(bias)
    rank_blank = frame[RANK].isna().to_numpy() & rank_readable
    unknown_blank = given & ~known & rank_blank
    unknown_ranked = given & ~known & ~frame[RANK].isna().to_numpy()
    return [
        Finding(unknown_blank, BIAS, "unknown_bias",
                [f"{describe_value(v)} is not a known BIAS and RANK is blank"
                 for v in bias[unknown_blank]], True),
        Finding(given & known & rank_blank, RANK, "missing_value", "value is missing", True),
        Finding(unknown_ranked, BIAS, "unknown_bias",
                [f"{describe_value(v)} is not a known BIAS (the given RANK is kept)"
                 for v in bias[unknown_ranked]], False),
    ]


def _outside(values: pd.Series, low: float, high: float, column: str, code: str,
             blocking: bool) -> Finding:
    outside = ((values < low) | (values > high)).fillna(False).to_numpy(dtype=bool)
    return Finding(outside, column, code,
                   [f"{describe_value(v)} is outside {low}–{high}" for v in values[outside]],
                   blocking)


def _check_cusips(cusips: pd.Series, blocking: bool) -> Finding:
    """Check digits per distinct CUSIP (DOMAIN.md §1.3), so a million rows cost a few thousand."""
    codes, uniques = pd.factorize(cusips.astype("string").str.strip().str.upper())
    verdicts = [_cusip_problem(str(u)) for u in uniques]
    bad = np.array([v is not None for v in verdicts] + [False])[codes]  # code -1 = NA: not here
    texts = [f"{describe_value(v)} {verdicts[c]}"
             for v, c in zip(cusips[bad], codes[bad], strict=True)]
    return Finding(bad, CUSIP, "cusip_check_digit", texts, blocking)


def _cusip_problem(cusip: str) -> str | None:
    if not cusip:
        return None  # reported as a missing value
    if len(cusip) != 9:
        return f"is not a valid CUSIP: it has {len(cusip)} characters, not 9"
    expected = cusip_check_digit(cusip[:8])
    if expected is None:
        return "is not a valid CUSIP: only letters, digits, *, @ and # are allowed"
    if cusip[8] != str(expected):
        return f"fails the CUSIP check digit (expected {expected})"
    return None


def _check_duplicates(frame: pd.DataFrame, rows: np.ndarray) -> Finding:
    """Rows equal to an earlier row in all 18 input columns (coverage repeats differ in
    COV_PRICE, so they are not duplicates). A few columns pick candidates cheaply first."""
    duplicate = np.zeros(len(frame), dtype=bool)
    candidates = frame[list(DUPLICATE_PREFILTER)].duplicated(keep=False).to_numpy()
    texts: list[str] = []
    if candidates.any():
        inputs = frame.loc[candidates, list(INPUT_COLUMNS)]
        duplicate[candidates] = inputs.duplicated(keep="first").to_numpy()
        group = inputs.groupby(list(INPUT_COLUMNS), dropna=False, sort=False).ngroup().to_numpy()
        first = pd.Series(np.flatnonzero(candidates)).groupby(group).transform("first")
        first_row = rows[first.to_numpy()][duplicate[candidates]]
        texts = [f"exact duplicate of row {r}" if r > 0 else "exact duplicate of an earlier row"
                 for r in first_row.tolist()]
    return Finding(duplicate, None, "duplicate_row", texts, False)
