"""CUSIPs as desks see them (DOMAIN.md §1.3): what makes one malformed, and the repair of one
that lost its leading zeros in Excel. Shared by ingest, validation and search."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.schema import cusip_check_digit, is_valid_cusip

CUSIP_FORMAT = re.compile(r"[0-9A-Z*@#]{9}")  # after normalisation (trim, upper case, zeros)


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


def cusip_problems(cusips: list[str]) -> list[tuple[str | None, bool]]:
    """cusip_problem of each normalised CUSIP, the check digits of the well-formed ones computed
    together with numpy (per CUSIP in Python, a million rows' 200k CUSIPs took a second)."""
    verdicts: list[tuple[str | None, bool]] = []
    formed: list[int] = []
    for at, cusip in enumerate(cusips):
        if cusip and CUSIP_FORMAT.fullmatch(cusip):
            formed.append(at)
            verdicts.append((None, False))
        else:
            verdicts.append(cusip_problem(cusip))
    if not formed:
        return verdicts
    codes = np.frombuffer("".join(cusips[at] for at in formed).encode("ascii"),
                          dtype=np.uint8).reshape(-1, 9)
    values = _CHAR_VALUE[codes[:, :8]]
    values[:, 1::2] *= 2  # positions 2, 4, 6 and 8 (1-based)
    expected = (10 - (values // 10 + values % 10).sum(axis=1) % 10) % 10
    wrong = codes[:, 8].astype(np.int64) - 48 != expected
    for at, digit in zip(np.asarray(formed)[wrong].tolist(), expected[wrong].tolist(),
                         strict=True):
        verdicts[at] = (f"fails the CUSIP check digit (expected {digit})", False)
    return verdicts


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
