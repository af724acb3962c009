"""The row-level checks of DOMAIN.md §1 as vectorised masks over a canonical color frame.

Each check returns Findings (a mask of failing rows, the column, a code, one text per failing row);
validation turns them into Problems and decides what is quarantined.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from core.clock import utc_today
from core.config import Settings
from core.errors import ConfigError
from core.ingest.arrow_text import text_offsets
from core.ingest.coercion import describe_value, normalise_bias
from core.ingest.cusips import cusip_problems
from core.schema import (
    BIAS,
    BIAS_RANK,
    CONFIDENCE,
    COV_PRICE,
    CUSIP,
    DATE,
    DATE_1,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PX,
    RANK,
    RANK_MAX,
    RANK_MIN,
    SECTOR,
    SOURCE,
    SOURCE_FILE,
    SOURCE_SHEET,
)

# Values a row cannot do without (DOMAIN.md §1.1; TICKER may be blank, RANK/PRICE_LEVEL derive).
REQUIRED_VALUES = (MESSAGE_ID, SECTOR, CUSIP, DATE, PX, SOURCE, BIAS)
CONFIDENCE_MIN, CONFIDENCE_MAX = 0, 10
DUPLICATE_PREFILTER = (MESSAGE_ID, CUSIP, BIAS, PX, COV_PRICE)
DATED = (DATE, DATE_1)  # the dates that rank colors: checked against the plausible window
EXCEL_MAX_CELL = 32767  # characters the xlsx writer keeps; upload.max_cell_chars cannot exceed it


@dataclass
class Finding:
    """Rows failing one check: texts has one text per True in mask (in row order), or one str."""

    mask: np.ndarray
    column: str | None
    code: str
    texts: list[str] | str
    blocking: bool


def check_colors(frame: pd.DataFrame, settings: Settings, *, unreadable: dict[str, np.ndarray],
                 rows: np.ndarray, today: dt.date | None = None) -> list[Finding]:
    """Every check of DOMAIN.md §1 on a canonical frame. `unreadable[column]` marks cells already
    reported as unreadable (not reported again as missing); `rows` are the Excel row numbers
    (0 when unknown); `today` ends the plausible dates (validation.date_max_years_ahead)."""
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
        *_check_cusips(frame[CUSIP], bool(settings["validation.cusip_check_blocking"])),
        _check_duplicates(frame, rows),
    ]
    findings += _check_dates(frame, settings, today or utc_today())
    findings += _check_lengths(frame, min(int(settings["upload.max_cell_chars"]),
                                          EXCEL_MAX_CELL))
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


def _check_cusips(cusips: pd.Series, check_blocking: bool) -> list[Finding]:
    """Per distinct CUSIP, so a million rows cost a few thousand: anything but 9 characters of
    [0-9A-Z*@#] is quarantined (it would group as a security of its own); a wrong check digit
    (DOMAIN.md §1.3) warns, or blocks when validation.cusip_check_blocking. Only the distinct
    spellings are trimmed and upper-cased, and the verdicts spread to rows with numpy."""
    spelling, spellings = cusips.astype("string").array.factorize()
    codes, uniques = pd.factorize(pd.Series(spellings, dtype="string").str.strip().str.upper())
    codes = np.append(codes, -1)[spelling]  # a missing CUSIP (code -1) stays -1
    texts, malformed = cusip_problems(pa.array(pd.Series(uniques, dtype="string")))
    texts_of = np.append(texts, np.array([None], dtype=object))  # code -1: a missing CUSIP
    malformed = np.append(malformed, False)
    wrong = pd.notna(texts_of)
    findings = []
    for invalid, code, blocking in ((True, "invalid_cusip", True),
                                    (False, "cusip_check_digit", check_blocking)):
        bad = (wrong & (malformed == invalid))[codes]
        said = [f"{describe_value(v)} {texts_of[c]}"
                for v, c in zip(cusips[bad], codes[bad], strict=True)]
        findings.append(Finding(bad, CUSIP, code, said, blocking))
    return findings


def date_window(settings: Settings, today: dt.date) -> tuple[dt.date, dt.date]:
    """The plausible dates: validation.date_min to validation.date_max_years_ahead after today."""
    try:
        first = dt.date.fromisoformat(str(settings["validation.date_min"]).strip())
    except ValueError:
        raise ConfigError("validation.date_min", f"{settings['validation.date_min']!r} is not a "
                          "date", "use YYYY-MM-DD, e.g. 1990-01-01") from None
    years = int(settings["validation.date_max_years_ahead"])
    try:
        last = today.replace(year=today.year + years)
    except ValueError:  # 29 February → 28 February
        last = today.replace(year=today.year + years, day=28)
    return first, last


def _check_dates(frame: pd.DataFrame, settings: Settings, today: dt.date) -> list[Finding]:
    """A date outside the window (year 9999, 1900) would rank first or last: quarantined."""
    first, last = date_window(settings, today)
    findings = []
    for column in DATED:
        dates = frame[column]
        outside = ((dates < pd.Timestamp(first)) | (dates > pd.Timestamp(last))
                   ).fillna(False).to_numpy(dtype=bool)
        findings.append(Finding(outside, column, "date_out_of_range", [
            f"{describe_value(v)} is outside the plausible dates {first} to {last} "
            f"(validation.date_min, validation.date_max_years_ahead)" for v in dates[outside]],
            True))
    return findings


def _check_lengths(frame: pd.DataFrame, limit: int) -> list[Finding]:
    """A text cell longer than upload.max_cell_chars: refused, never cut when written out."""
    findings = []
    for column in frame.columns:
        values = frame[column]
        if column in (SOURCE_FILE, SOURCE_SHEET) or not pd.api.types.is_string_dtype(
                values.dtype) or values.dtype == object:
            continue
        if _bytes_at_most(values, limit):  # no more characters than bytes: none is too long
            continue
        lengths = values.str.len()
        long_ = (lengths > limit).fillna(False).to_numpy(dtype=bool)
        findings.append(Finding(long_, column, "cell_too_long", [
            f"the cell has {n:,} characters, over the {limit:,} allowed (upload.max_cell_chars)"
            for n in lengths[long_].tolist()], True))
    return findings


def _bytes_at_most(values: pd.Series, limit: int) -> bool:
    """Whether every cell of Arrow-backed text has at most `limit` bytes, read from the offsets
    (a character count of every cell of 1M rows is ~0.04 s a column); False when unsure."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return False
    found = pa.array(values.array)  # zero-copy
    chunks = found.chunks if isinstance(found, pa.ChunkedArray) else [found]
    return all(_widest(chunk) <= limit for chunk in chunks)


def _widest(text: pa.Array) -> int:
    """The byte length of the longest cell of an Arrow string array (0 when empty)."""
    return int(np.diff(text_offsets(text)).max()) if len(text) else 0


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
