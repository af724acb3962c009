"""Canonical columns, their types, BIAS→RANK, and the column configuration (DOMAIN.md §1).

Column names exist once, here; everything else imports the constants.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core import catalog

# -- the 18 input columns, in the order of DOMAIN.md §1.1 ---------------------------------------
MESSAGE_ID = "MESSAGE_ID"
TICKER = "TICKER"
SECTOR = "SECTOR"
CUSIP = "CUSIP"
DATE = "DATE"
PRICE_LEVEL = "PRICE_LEVEL"
BID = "BID"
ASK = "ASK"
PX = "PX"
SOURCE = "SOURCE"
BIAS = "BIAS"
RANK = "RANK"
COV_PRICE = "COV_PRICE"
PERCENT_DIFF = "PERCENT_DIFF"
PRICE_DIFF = "PRICE_DIFF"
CONFIDENCE = "CONFIDENCE"
DATE_1 = "DATE_1"
DIFF_STATUS = "DIFF_STATUS"

INPUT_COLUMNS: tuple[str, ...] = (
    MESSAGE_ID, TICKER, SECTOR, CUSIP, DATE, PRICE_LEVEL, BID, ASK, PX, SOURCE, BIAS, RANK,
    COV_PRICE, PERCENT_DIFF, PRICE_DIFF, CONFIDENCE, DATE_1, DIFF_STATUS,
)

# -- columns added by processing (DOMAIN.md §1.4) -----------------------------------------------
COLOR_ID = "COLOR_ID"
RUN_ID = "RUN_ID"
PROCESSED_AT = "PROCESSED_AT"
PROCESSING_TYPE = "PROCESSING_TYPE"
IS_PARENT = "IS_PARENT"
PARENT_COLOR_ID = "PARENT_COLOR_ID"
PARENT_MESSAGE_ID = "PARENT_MESSAGE_ID"
CHILDREN_COUNT = "CHILDREN_COUNT"
SOURCE_FILE = "SOURCE_FILE"

# Bookkeeping columns that travel with a batch before publishing.
SOURCE_ROW = "SOURCE_ROW"  # row number as Excel shows it (header = 1), or 0 for manual rows
SOURCE_SHEET = "SOURCE_SHEET"
EXCLUDED_BY = "EXCLUDED_BY"  # name of the first matching rule, on excluded rows
QUARANTINE_REASON = "QUARANTINE_REASON"  # blocking problems, on quarantined rows
POSITION = "POSITION"  # ranked order within the run (stores sort by CUSIP; this restores the order)
COLOR_KEY = "COLOR_KEY"  # a published color's identity (core.runs.duplicates, DOMAIN.md §1.5)

# Order of the Excel output, kept for compatibility with the earlier system's workbook.
OUTPUT_COLUMNS: tuple[str, ...] = (
    RUN_ID, PROCESSED_AT, PROCESSING_TYPE, *INPUT_COLUMNS, IS_PARENT, PARENT_MESSAGE_ID,
    CHILDREN_COUNT, COLOR_ID, PARENT_COLOR_ID, SOURCE_FILE,
)

PROCESSING_TYPES = ("AUTOMATED", "MANUAL", "OVERRIDE")

# -- types ----------------------------------------------------------------------------------------
TEXT, NUMBER, INTEGER, DATE_TYPE, BOOLEAN, TIMESTAMP = (
    "text", "number", "integer", "date", "boolean", "timestamp",
)
COLUMN_TYPES = (TEXT, NUMBER, INTEGER, DATE_TYPE, BOOLEAN, TIMESTAMP)

# pandas dtype per logical type. Dates are datetime64 at midnight (naive); integers are nullable.
# Typed as literals so pandas' stubs pick the matching astype/array overload.
PandasDtype = Literal[
    "string", "Float64", "Int64", "datetime64[us]", "boolean", "datetime64[us, UTC]"
]
PANDAS_DTYPES: dict[str, PandasDtype] = {
    TEXT: "string",
    NUMBER: "Float64",
    INTEGER: "Int64",
    DATE_TYPE: "datetime64[us]",
    BOOLEAN: "boolean",
    TIMESTAMP: "datetime64[us, UTC]",
}

COLUMN_TYPE: dict[str, str] = {
    MESSAGE_ID: TEXT, TICKER: TEXT, SECTOR: TEXT, CUSIP: TEXT, DATE: DATE_TYPE,
    PRICE_LEVEL: NUMBER, BID: NUMBER, ASK: NUMBER, PX: NUMBER, SOURCE: TEXT, BIAS: TEXT,
    RANK: INTEGER, COV_PRICE: NUMBER, PERCENT_DIFF: NUMBER, PRICE_DIFF: NUMBER,
    CONFIDENCE: INTEGER, DATE_1: DATE_TYPE, DIFF_STATUS: TEXT,
    COLOR_ID: TEXT, RUN_ID: INTEGER, PROCESSED_AT: TIMESTAMP, PROCESSING_TYPE: TEXT,
    IS_PARENT: BOOLEAN, PARENT_COLOR_ID: TEXT, PARENT_MESSAGE_ID: TEXT, CHILDREN_COUNT: INTEGER,
    SOURCE_FILE: TEXT, SOURCE_ROW: INTEGER, POSITION: INTEGER, SOURCE_SHEET: TEXT,
    EXCLUDED_BY: TEXT, QUARANTINE_REASON: TEXT, COLOR_KEY: TEXT,
}

# Required per DOMAIN.md §1.1. RANK and PX are required but derivable (from BIAS, from BID/ASK),
# and PRICE_LEVEL defaults to PX, so a file may omit those columns if it has what derives them.
REQUIRED_COLUMNS = (MESSAGE_ID, TICKER, SECTOR, CUSIP, DATE, PRICE_LEVEL, PX, SOURCE, BIAS, RANK)
DERIVABLE = {RANK: (BIAS,), PX: (BID, ASK), PRICE_LEVEL: (PX,)}

# -- BIAS → RANK (DOMAIN.md §1.2) ---------------------------------------------------------------
BIAS_RANK: dict[str, int] = {
    "TRADE CONFIRM": 1, "TRADE": 1,
    "BWIC COVER": 2,
    "BID": 3, "BWIC REO": 3, "MARKET": 3, "BUYER": 3, "COLOR": 3, "DNT": 3, "DNT BEST": 3,
    "OFFER": 4,
    "BWIC TALK": 5,
    "VALUATION": 6,
}
BIAS_ALIASES = {"MARKET": "BID", "BUYER": "BID"}  # normalised on ingest
RANK_MIN, RANK_MAX = 1, 6

SIGNIFICANT = "Significant Difference"
SMALL = "Small Difference"

SECTORS_EXAMPLE = (
    "2.0_AAA_Senior", "2.0_Mezz", "MM-CLO", "2.0_Senior", "A_BSL", "2.0_AAA_Mez", "US_Equity_2.0",
)


def normalise_header(name: Any) -> str:
    """Key for matching headers and aliases: upper-case, without spaces, underscores or dashes."""
    return re.sub(r"[\s_\-]+", "", str(name)).upper()


def cusip_check_digit(first8: str) -> int | None:
    """Check digit of the first 8 CUSIP characters (DOMAIN.md §1.3); None for an invalid one."""
    total = 0
    for i, ch in enumerate(first8.upper(), start=1):
        if ch.isdigit():
            v = int(ch)
        elif "A" <= ch <= "Z":
            v = ord(ch) - ord("A") + 10
        elif ch in "*@#":
            v = 36 + "*@#".index(ch)
        else:
            return None
        if i % 2 == 0:
            v *= 2
        total += v // 10 + v % 10
    return (10 - total % 10) % 10


def is_valid_cusip(cusip: str) -> bool:
    cusip = cusip.strip().upper()
    if len(cusip) != 9 or not cusip[8].isdigit():
        return False
    return cusip_check_digit(cusip[:8]) == int(cusip[8])


# -- column configuration (kept in the store under CONFIG_KEY) -----------------------------------
CONFIG_KEY = catalog.COLUMNS_CONFIG.key


@dataclass
class ColumnSpec:
    """How one column is recognised in files and shown: aliases, display name, type, flags."""

    name: str
    type: str = TEXT
    display_name: str = ""
    aliases: list[str] = field(default_factory=list)
    required: bool = False
    visible: bool = True
    custom: bool = False  # an extra column an admin added; carried through ingest/publish/exports

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.name.replace("_", " ").title()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


_DEFAULT_ALIASES: dict[str, list[str]] = {
    MESSAGE_ID: ["MSG_ID", "MESSAGEID", "MESSAGE"],
    TICKER: ["SECURITY", "SECURITY NAME", "DEAL"],
    SECTOR: ["ASSET CLASS", "ASSET_CLASS"],
    CUSIP: ["CUSIP ID", "SECURITY ID"],
    DATE: ["AS OF DATE", "BUSINESS DATE", "EXTRACT DATE"],
    PRICE_LEVEL: ["PRICE"],
    BID: ["BID PRICE", "BID PX"],
    ASK: ["ASK PRICE", "OFFER PRICE", "OFFER PX", "ASK PX"],
    PX: ["PX LAST", "RANKING PRICE"],
    SOURCE: ["DEALER", "CONTRIBUTOR", "BROKER"],
    BIAS: ["COLOR TYPE", "TYPE"],
    RANK: ["TIER"],
    COV_PRICE: ["COVERAGE PRICE", "COV PX"],
    PERCENT_DIFF: ["PCT DIFF", "PERCENT DIFFERENCE"],
    PRICE_DIFF: ["PRICE DIFFERENCE"],
    CONFIDENCE: ["CONF"],
    DATE_1: ["RECEIVED DATE", "DATE RECEIVED", "RECEIVED"],
    DIFF_STATUS: ["DIFFERENCE STATUS"],
}


def default_column_config() -> list[ColumnSpec]:
    """The 18 input columns with their default aliases, all visible."""
    return [
        ColumnSpec(
            name=c,
            type=COLUMN_TYPE[c],
            aliases=list(_DEFAULT_ALIASES.get(c, [])),
            required=c in REQUIRED_COLUMNS,
            display_name="Date received" if c == DATE_1 else "",
        )
        for c in INPUT_COLUMNS
    ]


def column_config_from_document(value: list[dict[str, Any]] | None) -> list[ColumnSpec]:
    """Column specs from the stored document; defaults when nothing is stored."""
    if not value:
        return default_column_config()
    return [ColumnSpec.from_dict(v) for v in value]


def header_lookup(config: list[ColumnSpec]) -> dict[str, str]:
    """normalised header or alias → canonical column name."""
    lookup: dict[str, str] = {}
    for spec in config:
        for candidate in (spec.name, spec.display_name, *spec.aliases):
            lookup.setdefault(normalise_header(candidate), spec.name)
    return lookup
