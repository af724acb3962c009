"""What a search box or a pasted or uploaded list of identifiers means (DOMAIN.md §6): CUSIPs,
MESSAGE_IDs, tickers, and ids Excel has mangled beyond matching (reported with the reason)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import pandas as pd

from core.config import Settings, load_settings
from core.errors import InvalidInput
from core.ingest.cusips import lost_zeros
from core.ingest.safe_read import run_isolated
from core.ingest.upload_guard import inspect_text, inspect_zip
from core.schema import CUSIP, MESSAGE_ID, TICKER, is_valid_cusip, normalise_header

CUSIP_ID, MESSAGE_ID_ID, TICKER_ID, MANGLED = "cusip", "message_id", "ticker", "mangled"
KINDS = (CUSIP_ID, MESSAGE_ID_ID, TICKER_ID, MANGLED)

_CUSIP = re.compile(r"^[A-Z0-9*@#]{8}[0-9]$")
_DIGITS = re.compile(r"^\d+$")
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+$")
_FLOAT_TAIL = re.compile(r"^(\d+)\.0+$")
_SPLIT_CELLS = re.compile(r"[,;\t]")
EXCEL_DIGITS = 15  # Excel keeps 15 significant digits of a number

SCIENTIFIC_REASON = ("Excel stored the id as a number in scientific notation, so its digits are "
                     "lost; format the column as Text and copy the ids again")
ROUNDED_REASON = ("digits after the 15th are zeros: Excel may have rounded this id (it keeps 15 "
                  "digits); format the column as Text and copy the ids again")
DIGITS_REASON = ("digits only, but neither a 9-character CUSIP nor a 15–20 digit MESSAGE_ID "
                 "(Excel may have dropped leading zeros or digits)")


@dataclass(frozen=True)
class Identifier:
    """One token: as given, its kind, the value searched (CUSIP upper-case, ticker with single
    spaces), and a reason (why a mangled id cannot match, or a note on a repaired one)."""

    text: str
    kind: str
    value: str
    reason: str = ""

    @property
    def suspect(self) -> bool:
        """A MESSAGE_ID that may be Excel-rounded: reported as mangled when nothing matches it."""
        return self.kind == MESSAGE_ID_ID and self.reason == ROUNDED_REASON

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "kind": self.kind, "value": self.value, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identifier:
        return cls(str(data["text"]), str(data["kind"]), str(data["value"]),
                   str(data.get("reason", "")))


def _message_id(text: str, digits: str) -> Identifier:
    rounded = len(digits) > EXCEL_DIGITS and set(digits[EXCEL_DIGITS:]) == {"0"}
    return Identifier(text, MESSAGE_ID_ID, digits, ROUNDED_REASON if rounded else "")


def classify(token: str, kind: str | None = None, *, partial: bool = False) -> Identifier:
    """What one token is. A 9-character token of letters/digits ending in a digit is a CUSIP
    (52406E472, digits around an E, too when its check digit is valid, or when `kind` says
    CUSIP); 15–20 digits a MESSAGE_ID; other scientific notation (1.7734E+16) is mangled;
    anything else is ticker text. 6–8 digits that make a valid CUSIP with leading zeros put back
    are that CUSIP (8 digits even in a `partial` search). `kind` forces CUSIP/MESSAGE_ID/TICKER
    (a column named so in a file); `partial` (a search box matching by prefix or contains) reads
    other digit strings as MESSAGE_ID parts."""
    text = " ".join(str(token).split())
    upper = text.upper()
    e_cusip = bool(_CUSIP.match(upper)) and (kind == CUSIP_ID or (
        kind is None and is_valid_cusip(upper)))  # 52406E472 is a CUSIP, not 5.2406e476
    if _SCIENTIFIC.match(text) and not e_cusip:
        return Identifier(text, MANGLED, "", SCIENTIFIC_REASON)
    tail = _FLOAT_TAIL.match(text)  # 17734072432755618.0: a number written back as text
    digits = tail.group(1) if tail else (text if _DIGITS.match(text) else None)
    if kind == TICKER_ID or (kind is None and digits is None and not _CUSIP.match(upper)):
        return Identifier(text, TICKER_ID, text)
    if kind == MESSAGE_ID_ID:
        return (_message_id(text, digits) if digits
                else Identifier(text, MANGLED, "", "a MESSAGE_ID has only digits"))
    if _CUSIP.match(upper) and (kind == CUSIP_ID or digits is None or len(digits) == 9):
        note = "" if is_valid_cusip(upper) else "check digit does not match"
        return Identifier(text, CUSIP_ID, upper, note)
    if (digits and 6 <= len(digits) < 9 and (not partial or len(digits) == 8)
            and is_valid_cusip(digits.zfill(9))):
        padded = digits.zfill(9)
        return Identifier(text, CUSIP_ID, padded, lost_zeros(digits, padded, "searched"))
    if digits and kind != CUSIP_ID and (15 <= len(digits) <= 20 or (partial and len(digits) >= 4)):
        return _message_id(text, digits)
    return Identifier(text, MANGLED, "", DIGITS_REASON if digits else "not a 9-character CUSIP")


def _id_like(token: str) -> bool:
    return classify(token).kind != TICKER_ID


def _unique(ids: Iterable[Identifier]) -> list[Identifier]:
    seen: set[tuple[str, str]] = set()
    out = []
    for ident in ids:
        key = (ident.kind, ident.value.lower() if ident.kind != MANGLED else ident.text)
        if key not in seen:
            seen.add(key)
            out.append(ident)
    return out


def parse_bulk(text: str) -> list[Identifier]:
    """Identifiers in pasted text, in order, without repeats. Lines, commas, semicolons and tabs
    separate cells; a cell whose space-separated words are all ids is split into them, otherwise
    it is one ticker (tickers contain spaces, so a ticker takes its own line or cell)."""
    found: list[Identifier] = []
    for line in str(text).splitlines():
        for cell in _SPLIT_CELLS.split(line):
            words = cell.split()
            if not words:
                continue
            if len(words) > 1 and all(_id_like(w) for w in words):
                found.extend(classify(w) for w in words)
            else:
                found.append(classify(cell))
    return _unique(found)


_NAMED = {normalise_header(CUSIP): CUSIP_ID, normalise_header(MESSAGE_ID): MESSAGE_ID_ID,
          normalise_header(TICKER): TICKER_ID, "MESSAGEID": MESSAGE_ID_ID}


def _cells(values: Iterable[Any]) -> list[str]:
    return [str(v).strip() for v in values if v is not None and not pd.isna(v) and str(v).strip()]


def read_id_file(name: str, data: bytes, settings: Settings | None = None) -> list[Identifier]:
    """Identifiers in an uploaded .xlsx/.xls/.csv/.txt: the columns named CUSIP, MESSAGE_ID or
    TICKER (each read as that kind), else the first column (a header cell that is not an id is
    skipped). Numbers Excel stored as numbers come out as they would paste, so mangled ids are
    reported as such. A spreadsheet is untrusted: inspected, then read in a child process with
    the upload.read_memory_mb and upload.read_seconds limits, like a color file."""
    suffix = PurePath(name).suffix.lower()
    if suffix == ".txt":
        return parse_bulk(data.decode("utf-8-sig", errors="replace"))
    if suffix not in (".xlsx", ".xls", ".xlsm", ".csv"):
        raise InvalidInput("file", f"{name}: use .xlsx, .xls, .csv or .txt")
    settings = settings or load_settings({}, {})
    if data.startswith(b"PK"):
        inspect_zip(data, name, settings)
    elif suffix == ".csv":
        inspect_text(data, name)
    outcome = run_isolated(_read_id_table, (name, data), name,
                           memory_mb=settings["upload.read_memory_mb"],
                           seconds=settings["upload.read_seconds"],
                           unreadable="save it as .xlsx or .csv and upload again")
    if isinstance(outcome, str):
        raise InvalidInput("file", outcome)
    return _identifiers_in(outcome)


def _read_id_table(name: str, data: bytes) -> pd.DataFrame | str:
    """The raw cells of an id file (run in the limited child), or why it cannot be read."""
    try:
        if PurePath(name).suffix.lower() == ".csv":
            text = data.decode("utf-8-sig", errors="replace")
            return pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False,
                               skip_blank_lines=True)
        return pd.read_excel(io.BytesIO(data), header=None, dtype=str, engine="calamine")
    except (ValueError, UnicodeError, pd.errors.ParserError) as exc:
        return f"{name} cannot be read: {exc}"


def _identifiers_in(table: pd.DataFrame) -> list[Identifier]:
    if table.empty:
        return []
    header = [normalise_header(v) if isinstance(v, str) else "" for v in table.iloc[0]]
    named = [(i, _NAMED[h]) for i, h in enumerate(header) if h in _NAMED]
    if named:
        body = table.iloc[1:]
        return _unique(classify(v, kind) for i, kind in named for v in _cells(body.iloc[:, i]))
    values = _cells(table.iloc[:, 0])
    if len(values) > 1 and not _id_like(values[0]) and sum(map(_id_like, values[1:])) > (
            len(values) - 1) / 2:
        values = values[1:]  # a header such as "Securities" above a column of ids
    return _unique(classify(v) for v in values)
