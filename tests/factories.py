"""Tiny canonical color frames for unit tests: make_colors(CUSIP=[...], PX=[...])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.schema import (
    ASK,
    BIAS,
    BIAS_RANK,
    BID,
    COLUMN_TYPE,
    CONFIDENCE,
    COV_PRICE,
    CUSIP,
    DATE,
    DATE_1,
    DIFF_STATUS,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PANDAS_DTYPES,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    RANK,
    SECTOR,
    SOURCE,
    TICKER,
)

# The real 50-row color file (a copy of ../shared/samples/, so every clone has it).
SAMPLE = Path(__file__).resolve().parent / "data" / "colors-2026-01-11.xlsx"
VALID_CUSIPS = ["97988RBL5", "000840AG3", "037833100", "94958LAG3", "04020VAA7", "03665ABA4"]


def make_colors(n: int | None = None, **columns: list[Any]) -> pd.DataFrame:
    """A canonical color frame; unspecified columns get consistent defaults."""
    if n is None:
        n = max((len(v) for v in columns.values()), default=1)
    for name, values in columns.items():
        assert len(values) == n, f"{name} has {len(values)} values, expected {n}"
    bias = columns.get(BIAS, ["BID"] * n)
    px = columns.get(PX, [100.0 - i * 0.25 for i in range(n)])
    defaults: dict[str, list[Any]] = {
        MESSAGE_ID: [str(17734072432755600 + i) for i in range(n)],
        TICKER: [f"DEAL 2024-{i + 1}A A" for i in range(n)],
        SECTOR: ["2.0_Mezz"] * n,
        CUSIP: [VALID_CUSIPS[i % len(VALID_CUSIPS)] for i in range(n)],
        DATE: ["2026-03-13"] * n,
        PRICE_LEVEL: px,
        BID: [p if b != "OFFER" else 0.0 for p, b in zip(px, bias, strict=True)],
        ASK: [0.0 if b != "OFFER" else p for p, b in zip(px, bias, strict=True)],
        PX: px,
        SOURCE: ["JPM"] * n,
        BIAS: bias,
        RANK: [BIAS_RANK.get(b) for b in bias],
        COV_PRICE: [99.0] * n,
        PERCENT_DIFF: [None] * n,
        PRICE_DIFF: [None] * n,
        CONFIDENCE: [10] * n,
        DATE_1: ["2026-03-12"] * n,
        DIFF_STATUS: [None] * n,
    }
    data = {c: columns.get(c, defaults[c]) for c in INPUT_COLUMNS}
    frame = pd.DataFrame(data)
    for c in INPUT_COLUMNS:
        kind = COLUMN_TYPE[c]
        if kind == "date":
            frame[c] = pd.to_datetime(frame[c])
        else:
            frame[c] = frame[c].astype(PANDAS_DTYPES[kind])
    extra = {k: v for k, v in columns.items() if k not in INPUT_COLUMNS}
    for name, values in extra.items():
        frame[name] = values
    return frame
