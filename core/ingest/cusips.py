"""CUSIPs as desks see them (DOMAIN.md §1.3): what makes one malformed, and the repair of one
that lost its leading zeros in Excel. Shared by ingest, validation and search."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.ingest.arrow_text import text_offsets
from core.schema import cusip_check_digit, is_valid_cusip

CUSIP_FORMAT = re.compile(r"[0-9A-Z*@#]{9}")  # after normalisation (trim, upper case, zeros)
CUSIP_FORMAT_ANCHORED = f"^{CUSIP_FORMAT.pattern}$"


def cusip_problem(cusip: str) -> tuple[str | None, bool]:
    """(what is wrong with a normalised CUSIP, whether it is malformed rather than only failing
    its check digit); (None, False) for a valid or empty one (empty is a missing value)."""
    if not cusip:
        return None, False
    if len(cusip) != 9:
        return f"is not a valid CUSIP: it has {len(cusip)} characters, not 9", True
    if not CUSIP_FORMAT.fullmatch(cusip):
        return "is not a valid CUSIP: only letters A–Z, digits, *, @ and # are allowed", True
    expected = cusip_check_digit(cusip[:8])
    if cusip[8] != str(expected):
        return f"fails the CUSIP check digit (expected {expected})", False
    return None, False


_CHAR_VALUE = np.full(128, 0, dtype=np.int64)  # DOMAIN.md §1.3: digit, A–Z 10–35, * @ # 36–38
_CHAR_VALUE[48:58] = np.arange(10)
_CHAR_VALUE[65:91] = np.arange(10, 36)
_CHAR_VALUE[[ord("*"), ord("@"), ord("#")]] = [36, 37, 38]


def cusip_problems(cusips: Sequence[str | None] | pa.Array
                   ) -> tuple[np.ndarray, np.ndarray]:
    """cusip_problem of each normalised CUSIP, at once: (what is wrong, or None, for each; whether
    it is malformed). Arrow finds the well-formed ones and numpy computes their check digits from
    the text's bytes; only the malformed few are described one by one (a million rows' 180k
    CUSIPs: ~0.4 s one by one). A missing CUSIP is as an empty one."""
    array = (cusips.cast(pa.string()) if isinstance(cusips, pa.Array)
             else pa.array(cusips, type=pa.string()))
    data = array.buffers()[2]  # a string array always has one (perhaps empty)
    assert data is not None
    texts = np.full(len(array), None, dtype=object)
    malformed = np.zeros(len(array), dtype=bool)
    starts = text_offsets(array)
    formed = pc.match_substring_regex(array, CUSIP_FORMAT_ANCHORED).fill_null(False).to_numpy(
        zero_copy_only=False)
    for at in np.flatnonzero(~formed & (np.diff(starts) > 0)).tolist():
        texts[at], malformed[at] = cusip_problem(array[at].as_py())
    well = np.flatnonzero(formed)
    if not len(well):
        return texts, malformed
    text = np.frombuffer(memoryview(data), dtype=np.uint8)
    codes = text[starts[well][:, None] + np.arange(9)]  # 9 ASCII characters each
    values = _CHAR_VALUE[codes[:, :8]]
    values[:, 1::2] *= 2  # positions 2, 4, 6 and 8 (1-based)
    expected = (10 - (values // 10 + values % 10).sum(axis=1) % 10) % 10
    wrong = codes[:, 8].astype(np.int64) - 48 != expected
    texts[well[wrong]] = [f"fails the CUSIP check digit (expected {digit})"
                          for digit in expected[wrong].tolist()]
    return texts, malformed


def lost_zeros(digits: str, padded: str, verb: str = "read") -> str:
    """"CUSIP 37833100 lost its leading zero (Excel); read as 037833100"."""
    zeros = "zero" if len(padded) - len(digits) == 1 else "zeros"
    return f"CUSIP {digits} lost its leading {zeros} (Excel); {verb} as {padded}"


def restore_zeros(cusips: pd.Series, was_number: np.ndarray
                  ) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Upper-case CUSIPs with Excel's dropped zeros put back: an 8-digit text, or a number cell,
    whose zero-padded form has a valid check digit is that CUSIP. Returns the CUSIPs, the
    positions repaired and one warning text each."""
    short = (cusips.str.len() < 9).fillna(False).to_numpy(dtype=bool)
    eight = cusips.str.fullmatch(r"\d{8}").fillna(False).to_numpy(dtype=bool)
    candidates = (was_number & short) | eight
    valid = np.zeros(len(cusips), dtype=bool)
    if candidates.any():
        valid[candidates] = [is_valid_cusip(str(c)) for c in cusips[candidates].str.zfill(9)]
    if not valid.any():
        return cusips, np.flatnonzero(valid), []
    given = cusips[valid].tolist()
    cusips = cusips.copy()
    cusips[valid] = cusips[valid].str.zfill(9)
    return cusips, np.flatnonzero(valid), [lost_zeros(g, g.zfill(9)) for g in given]
