"""Realistic demo colors: a seeded, vectorised generator shaped like the desk's real extracts
(earlier-system.md §1.3: BIAS mix, two-sided quotes, coverage duplicates, dealers) and demo files.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from core.access import SYSTEM
from core.clock import now_or
from core.config import Settings
from core.runs.exports import write_xlsx
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
    SECTORS_EXAMPLE,
    SIGNIFICANT,
    SMALL,
    SOURCE,
    TICKER,
)
from storage import Store

log = logging.getLogger(__name__)

DEALERS = ("BOA", "JPM", "SOCGEN", "MS", "GS", "BNP", "DB", "CITI", "WFC", "SCOTIA", "PNCAP",
           "PERFORMANCE TRUST", "MITSUBISHI", "NOMURA", "STONEX", "RBC", "SMBC", "BARCAP")
_DEALER_WEIGHTS = (293, 230, 148, 148, 140, 110, 100, 95, 90, 70, 60, 50, 45, 40, 35, 30, 30, 25)
SHELVES = ("ARES", "WDMNT", "OCT", "MAGNE", "CGMS", "BABSN", "DRSLF", "VOYA", "SYMP", "GLM",
           "RRAM", "NEUB", "ELM", "MDPK", "OAKC", "CIFC", "BLUEM", "TICP", "AGL", "KKR", "BSP",
           "ANCHC", "DRYD", "SNDPT")
_CLASSES = np.array(["A1", "A2", "B", "C", "D", "E", "SUB"])
_ISSUES = np.array(["AA", "AC", "AE", "AG", "AJ", "AL", "AN"])  # CUSIP issue number per class
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", dtype=np.uint8)  # no I, O
_SECTORS = np.array([*SECTORS_EXAMPLE])
_EQUITY_SECTORS = ("US_Equity_2.0", "US_MM_Equity_2.0")  # 5% DIFF_STATUS threshold (DOMAIN §1.1)

# Quote kinds: (BIAS, two-sided?, priced on the bid?, weight). A two-sided quote is a BID row
# (BID=b, ASK=a, PX=b) plus an OFFER row (BID=0, ASK=a, PX=a). The weights give the real row mix:
# OFFER ~38%, BWIC TALK ~30%, BID ~26%, BWIC COVER ~4%, VALUATION ~1%, TRADE CONFIRM rare.
_KINDS = (
    ("BID", True, True, 18.0),
    ("BID", False, True, 8.0),
    ("OFFER", False, False, 20.0),
    ("BWIC TALK", False, False, 30.0),
    ("BWIC COVER", False, True, 4.0),
    ("VALUATION", False, False, 1.0),
    ("TRADE CONFIRM", False, True, 0.3),
)
_OFFER_KIND = 2
_BIASES = np.array(sorted({k[0] for k in _KINDS}))
_CONFIDENCE = (np.array([10, 9, 8, 2, 0, 5, 7, 1]), np.array([1507, 150, 94, 26, 22, 16, 12, 4]))


def _weights(values: tuple[float, ...] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array / array.sum()


def _strings(values: np.ndarray | list[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """values[codes] as a string array (NA where codes < 0), decoded from the small table."""
    return pd.array(np.asarray(values, dtype=object), dtype="string").take(codes, allow_fill=True)


def _check_digits(first8: np.ndarray) -> np.ndarray:
    """CUSIP check digits (DOMAIN.md §1.3) of an (n, 8) uint8 array of ASCII digits/letters."""
    values = np.where(first8 <= ord("9"), first8 - ord("0"), first8 - ord("A") + 10).astype(int)
    values[:, 1::2] *= 2
    total = (values // 10 + values % 10).sum(axis=1)
    return (10 - total % 10) % 10


def _securities(count: int, seed: int) -> pd.DataFrame:
    """The CUSIP universe: deals of 1–6 tranches, one TICKER per CUSIP, sector and base price."""
    rng = np.random.default_rng(seed)
    tranches = rng.integers(1, 7, size=count // 2 + 1)  # per deal: ~1.75 × count in all
    tranches[-1] += max(0, count - int(tranches.sum()))  # tiny universes: the last deal tops up
    deal = np.repeat(np.arange(len(tranches)), tranches)[:count]
    start = np.repeat(np.cumsum(tranches) - tranches, tranches)[:count]
    position = np.minimum(np.arange(count) - start, 5)
    equity = rng.random(count) < 0.02
    klass = np.where(equity, 6, position)

    prefixes = rng.choice(_ALPHABET, size=(len(tranches), 6))
    issue = np.frombuffer("".join(_ISSUES).encode(), dtype=np.uint8).reshape(-1, 2)[klass]
    first8 = np.concatenate([prefixes[deal], issue], axis=1)
    digits = (_check_digits(first8) + ord("0")).astype(np.uint8)[:, None]
    cusips = np.concatenate([first8, digits], axis=1).copy().view("S9").ravel().astype(str)

    shelf = rng.choice(np.array(SHELVES), size=len(tranches))
    year = rng.integers(2013, 2026, size=len(tranches)).astype(str)
    series = rng.integers(1, 100, size=len(tranches)).astype(str)
    deal_names = np.char.add(np.char.add(np.char.add(shelf, " "), year), np.char.add("-", series))
    tickers = np.char.add(np.char.add(deal_names[deal], "A "), _CLASSES[klass])

    family = rng.choice(3, size=len(tranches), p=[0.8, 0.12, 0.08])[deal]
    code = {name: i for i, name in enumerate(_SECTORS)}
    senior = np.where(rng.random(count) < 0.5, code["2.0_Senior"], code["2.0_AAA_Mez"])
    sector = np.select(
        [equity, family == 1, family == 2, klass == 0, klass == 1],
        [code["US_Equity_2.0"], code["MM-CLO"], code["A_BSL"], code["2.0_AAA_Senior"], senior],
        code["2.0_Mezz"])
    low = equity | ((sector == code["2.0_Mezz"]) & (klass >= 4) & (rng.random(count) < 0.15))
    price = np.select([low, klass == 0, klass <= 2], [rng.uniform(2, 60, count),
                      rng.uniform(99, 101.5, count), rng.uniform(94, 101.5, count)],
                      rng.uniform(80, 101.5, count))
    return pd.DataFrame({"cusip": cusips, "ticker": tickers, "sector": sector, "price": price})


def _business_days_before(day: np.datetime64, back: np.ndarray) -> np.ndarray:
    earlier = np.busday_offset(day, -np.maximum(back, 1), roll="backward")
    return np.where(back == 0, day, earlier).astype("datetime64[D]")


def generate_colors(n: int, *, seed: int = 7, date: dt.date | str = "2026-03-13",
                    cusips: int | None = None, bad_rows: int = 0) -> pd.DataFrame:
    """Exactly n realistic colors for one extract date, as a canonical typed frame.

    The CUSIP universe (~n/5 unless `cusips`) depends only on `seed`, so files generated for
    several dates quote the same securities; the quotes depend on `seed` and `date`. DATE is
    `date` on every row, DATE_1 the same day or 1–3 business days earlier. `bad_rows` rows get a
    realistic problem each, in turn: blank CUSIP, unknown BIAS with blank RANK, PX missing, wrong
    CUSIP check digit.
    """
    if n < 0 or not 0 <= bad_rows <= n:
        raise ValueError(f"need 0 <= bad_rows ({bad_rows}) <= n ({n})")
    day = np.datetime64(pd.Timestamp(date).date(), "D")
    universe = _securities(max(1, cusips if cusips is not None else round(n / 5)), seed)
    rng = np.random.default_rng([seed, int(day.astype(np.int64)) + 1_000_000])

    # Quotes, grouped into dealer messages of 1–60 CUSIPs; ~2.2 rows a quote once expanded.
    q = int(n / 2.0) + 16
    sides = np.array([2 if k[1] else 1 for k in _KINDS])
    kind = rng.choice(len(_KINDS), size=q, p=_weights(tuple(k[3] for k in _KINDS)))
    copies = np.where(rng.random(q) < 0.4, rng.integers(2, 5, size=q), 1)
    short = n - int((sides[kind] * copies).sum())
    if short > 0:  # rare: top up with single-row offers
        kind = np.append(kind, np.full(short, _OFFER_KIND))
        copies = np.append(copies, np.ones(short, dtype=copies.dtype))
    q = len(kind)
    security = rng.integers(0, len(universe), size=q)
    sizes = np.minimum(1 + rng.geometric(1 / 8, size=q), 60)
    message = np.searchsorted(np.cumsum(sizes), np.arange(q), side="right")
    messages = message.max(initial=0) + 1
    received = _business_days_before(day, rng.choice(4, size=messages, p=[0.6, 0.25, 0.1, 0.05]))
    at_ms = (received.astype("datetime64[ms]").astype(np.int64)
             + rng.integers(12 * 3_600_000, 23 * 3_600_000, size=messages))
    message_ids = (at_ms * 10_000 + rng.integers(0, 10_000, size=messages)).astype(str)
    dealer = rng.choice(len(DEALERS), size=messages, p=_weights(_DEALER_WEIGHTS))
    base = universe["price"].to_numpy()[security]
    noise = rng.normal(0, 0.4, size=q) * np.where(base < 60, 3.0, 1.0)
    price = np.clip(np.round((base + noise) * 8) / 8, 1.0, 120.0)
    spread = rng.choice(np.array([0.25, 0.375, 0.5, 0.75, 1.0]), size=q)
    confidence = rng.choice(_CONFIDENCE[0], size=q, p=_weights(_CONFIDENCE[1]))

    # Rows: each side of a quote, each repeated once per coverage snapshot; then exactly n.
    side_quote = np.repeat(np.arange(q), sides[kind])
    side = np.arange(len(side_quote)) - np.repeat(np.cumsum(sides[kind]) - sides[kind],
                                                  sides[kind])
    row_side = np.repeat(np.arange(len(side_quote)), copies[side_quote])[:n]
    quote, offer_row = side_quote[row_side], side[row_side] == 1
    row_kind = kind[quote]
    kind_bias = np.searchsorted(_BIASES, [k[0] for k in _KINDS])
    bias = np.where(offer_row, np.searchsorted(_BIASES, "OFFER"), kind_bias[row_kind])
    bid_side = np.array([k[2] for k in _KINDS])[row_kind] & ~offer_row
    two_sided = np.array([k[1] for k in _KINDS])[row_kind]
    bid = np.where(bid_side, price[quote], 0.0)
    ask = np.where(two_sided, price[quote] + spread[quote], np.where(bid_side, 0.0, price[quote]))
    px = np.where(bid > 0, bid, ask)

    sector = universe["sector"].to_numpy()[security[quote]]
    equity_sector = np.isin(_SECTORS, _EQUITY_SECTORS)[sector]
    scale = np.where(px < 60, 0.04 * px, 1.5)
    cov = np.round(px + np.clip(rng.normal(0, 1, size=n) * scale, -3, 3), 3)
    cov[rng.random(n) < 0.002] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        percent = np.round(np.abs(px - cov) / cov * 100, 2)
    percent[~(cov > 0)] = np.nan
    threshold = np.where(equity_sector, 5.0, 2.0)
    rank = np.array([BIAS_RANK[b] for b in _BIASES])

    columns = {
        MESSAGE_ID: _strings(message_ids, message[quote]),
        TICKER: _strings(universe["ticker"].to_numpy(), security[quote]),
        SECTOR: _strings(_SECTORS, sector),
        CUSIP: _strings(universe["cusip"].to_numpy(), security[quote]),
        DATE: np.full(n, day),
        PRICE_LEVEL: px,
        BID: bid,
        ASK: ask,
        PX: px,
        SOURCE: _strings(np.array(DEALERS), dealer[message[quote]]),
        BIAS: _strings(_BIASES, bias),
        RANK: rank[bias],
        COV_PRICE: cov,
        PERCENT_DIFF: percent,
        PRICE_DIFF: np.round(px - cov, 3),
        CONFIDENCE: confidence[quote],
        DATE_1: received[message[quote]],
        DIFF_STATUS: _strings([SMALL, SIGNIFICANT], (percent > threshold).astype(int)),
    }
    frame = pd.DataFrame({c: pd.array(v, dtype=PANDAS_DTYPES[COLUMN_TYPE[c]])  # NaN → NA
                          for c, v in columns.items()})
    return _spoil(frame, bad_rows, rng) if bad_rows else frame


def _spoil(frame: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Give `count` distinct rows one realistic problem each (typed, so blank means NA)."""
    rows = np.sort(rng.choice(len(frame), size=count, replace=False))
    problem = np.arange(count) % 4
    index = frame.index
    frame.loc[index[rows[problem == 0]], CUSIP] = pd.NA
    unknown = index[rows[problem == 1]]
    frame.loc[unknown, BIAS] = "AXE"
    frame.loc[unknown, RANK] = pd.NA
    frame.loc[index[rows[problem == 2]], PX] = pd.NA
    wrong = index[rows[problem == 3]]
    frame.loc[wrong, CUSIP] = [c[:8] + str((int(c[8]) + 1) % 10) for c in frame.loc[wrong, CUSIP]]
    return frame


def demo_files(directory: Path, *, days: int = 5, rows_per_day: int = 400, seed: int = 7,
               end: dt.date | str = "2026-03-13") -> list[Path]:
    """One color workbook per business day, the last on or before `end`: the 18 input columns in
    sheet "Colors", named colors_<date>.xlsx, quoting one CUSIP universe. Returns the paths, oldest
    first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    last = np.busday_offset(np.datetime64(pd.Timestamp(end).date(), "D"), 0, roll="backward")
    paths = []
    for back in range(days - 1, -1, -1):
        day = pd.Timestamp(np.busday_offset(last, -back)).date()
        frame = generate_colors(rows_per_day, seed=seed, date=day,
                                cusips=max(1, rows_per_day // 5))
        path = directory / f"colors_{day.isoformat()}.xlsx"
        path.write_bytes(write_xlsx(frame[list(INPUT_COLUMNS)], sheet_name="Colors"))
        paths.append(path)
    return paths


DEMO_RULE = {
    "name": "Low-confidence valuations",
    "description": "Valuations the dealer itself rates below 5 are noise for the desk (demo rule)",
    "priority": 10,
    "conditions": {"join": "and", "items": [
        {"column": "BIAS", "operator": "equal_to", "value": "VALUATION"},
        {"column": "CONFIDENCE", "operator": "less_than", "value": 5},
    ]},
}


def load_demo(store: Store, settings: Settings, *, force: bool = False, days: int = 5,
              rows_per_day: int = 400, now: dt.datetime | None = None) -> int:
    """Fill an empty store with a week of demo runs (one AUTOMATED run per business day, a few bad
    rows each) and one demo rule. Returns the number of runs loaded; 0 when the store has runs."""
    from core.rules import exclusion as rules
    from core.runs import pipeline
    from core.runs import records as runs  # the engine is only needed when demo data is loaded

    if runs.load_runs(store, limit=1) and not force:
        return 0
    if not any(r.name == DEMO_RULE["name"] for r in rules.load_rules(store)):
        rules.save_rule(store, SYSTEM, rules.Rule.from_dict(DEMO_RULE))
    yesterday = now_or(now).date() - dt.timedelta(days=1)
    last = np.busday_offset(np.datetime64(yesterday, "D"), 0, roll="backward")
    for back in range(days - 1, -1, -1):
        day = pd.Timestamp(np.busday_offset(last, -back)).date()
        frame = generate_colors(rows_per_day, date=day, bad_rows=3,
                                cusips=max(1, rows_per_day // 5))
        name = f"colors_{day.isoformat()}.xlsx"
        data = write_xlsx(frame[list(INPUT_COLUMNS)], sheet_name="Colors")
        pipeline.process_files(store, SYSTEM, [(name, data)], settings=settings,
                               kind=pipeline.AUTOMATED, trigger="demo")
        log.info("demo run for %s loaded", day)
    return days
