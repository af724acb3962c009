"""Uploaded bytes → the raw cells under a recognised header row. Detects the format by content
(xlsx/xls via calamine, csv with sniffed delimiter and encoding, parquet) and raises one
FileProblem for anything that makes the whole file unusable."""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from python_calamine import CalamineWorkbook

from core.config import Settings, load_settings
from core.errors import UnreadableFile
from core.ingest import upload_guard
from core.ingest.excel_errors import mark_error_cells
from core.ingest.safe_read import run_isolated
from core.schema import normalise_header

log = logging.getLogger(__name__)

HEADER_SCAN_ROWS = 20  # the header must be within the first 20 rows
MIN_HEADER_MATCHES = 3  # …and name at least 3 known columns
ZIP_MAGIC = b"PK\x03\x04"  # xlsx, xlsm, xlsb, ods
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # xls, and password-protected xlsx
PARQUET_MAGIC = b"PAR1"
ENCRYPTED_MARKERS = (b"EncryptedPackage", "EncryptedPackage".encode("utf-16-le"))
BINARY_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods", ".parquet")
DELIMITERS = ",;\t|"
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")

EMPTY = "the file is empty; export the colors again and upload the new file"
ENCRYPTED = ("the workbook is password-protected (encrypted); remove the password and upload "
             "again (in Excel: File → Info → Protect Workbook → Encrypt with Password, clear it)")
NOT_READABLE = ("is not a spreadsheet MarketPulse can read (.xlsx, .xls, .csv or .parquet), or it "
                "is corrupt; open it in Excel, save it as .xlsx and upload again")
NOT_COLORS = ("this does not look like a color file; expected headers such as CUSIP, BIAS, PX "
              f"in one of the first {HEADER_SCAN_ROWS} rows")


@dataclass
class RawTable:
    """The cells under the header row, as read (no types applied yet). It crosses from the reading
    child to the parent pickled: a body of text columns (CSV, Parquet) travels as one Arrow table
    (pandas pickles each Arrow-backed column by first copying it whole: 5× slower for 1M rows)."""

    header: list[str]  # header cells as text, one per body column
    body: pd.DataFrame  # data rows, columns 0..len(header)-1, blank rows removed
    rows: np.ndarray  # the Excel row number of each body row
    sheet: str | None
    header_row: int  # Excel row number of the header

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if len(self.body.columns) and all(_arrow_text(t) for t in self.body.dtypes):
            state["body"] = pa.table({str(i): self.body[c].array
                                      for i, c in enumerate(self.body.columns)})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        body = state["body"]
        if isinstance(body, pa.Table):
            frame = body.to_pandas(types_mapper=_as_text)
            state["body"] = frame.set_axis(range(len(frame.columns)), axis=1)
        vars(self).update(state)


def _as_text(kind: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    """types_mapper of Arrow text columns to pandas' string dtype (kept Arrow-backed)."""
    return pd.StringDtype() if kind in (pa.string(), pa.large_string()) else None


def _arrow_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


@dataclass
class _Header:
    index: int | None = None  # 0-based row of the header, None when not found
    matches: int = 0  # known columns on the best row seen
    names: tuple[str, ...] = ()
    best_row: int = 0  # 0-based row with the most matches
    sheet: str | None = None


def read_table(data: bytes, filename: str, lookup: dict[str, str], *, max_mb: float,
               settings: Settings | None = None) -> RawTable:
    """The raw table of a color file; `lookup` maps normalised headers to canonical names.
    Untrusted bytes: inspected first (core.ingest.upload_guard), then read in a child process with
    the
    upload.read_memory_mb and upload.read_seconds limits (core.ingest.safe_read)."""
    settings = settings or load_settings({}, {})
    if max_mb and len(data) > max_mb * 1024 * 1024:  # 0 = no limit (the CLI's local files)
        raise UnreadableFile(filename, f"the file is {len(data) / 1024 / 1024:.1f} MB, over the "
                             f"{max_mb} MB limit (upload.max_mb); split it or ask an admin to "
                             "raise the limit")
    if re.search(rb"\S", data) is None:  # stops at the first non-blank byte
        raise UnreadableFile(filename, EMPTY)
    if data.startswith(OLE_MAGIC) and any(m in data for m in ENCRYPTED_MARKERS):
        raise UnreadableFile(filename, ENCRYPTED)
    if data.startswith(ZIP_MAGIC):
        upload_guard.inspect_zip(data, filename, settings)
    if data.startswith(PARQUET_MAGIC):
        upload_guard.inspect_parquet(data, filename, settings)
    text = not data.startswith((ZIP_MAGIC, OLE_MAGIC, PARQUET_MAGIC))
    suffix = Path(filename).suffix.lower()
    looks_binary = b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff"))
    if text and (suffix in BINARY_SUFFIXES or looks_binary):
        raise UnreadableFile(filename, NOT_READABLE)
    if text:
        upload_guard.inspect_text(data, filename)
    return run_isolated(read_untrusted, (data, filename, lookup, settings["upload.max_cells"]),
                        filename, memory_mb=settings["upload.read_memory_mb"],
                        seconds=settings["upload.read_seconds"], unreadable=NOT_READABLE)


def read_untrusted(data: bytes, filename: str, lookup: dict[str, str], max_cells: int
                   ) -> RawTable:
    """The reading itself, run in the limited child (inspection has passed)."""
    if data.startswith((ZIP_MAGIC, OLE_MAGIC)):
        table = _read_workbook(data, filename, lookup, max_cells)
        if data.startswith(ZIP_MAGIC):
            mark_error_cells(table, data)  # calamine reads an error cell (#N/A…) as blank
        return table
    if data.startswith(PARQUET_MAGIC):
        return _read_parquet(data, filename, lookup)
    return _read_csv(data, filename, lookup)


def _find_header(rows: list[list[Any]], lookup: dict[str, str], found: _Header,
                 sheet: str | None = None) -> _Header:
    """The first of the first rows naming ≥ MIN_HEADER_MATCHES known columns; updates `found`
    with the best candidate otherwise (for the error message)."""
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        names = {lookup[k] for k in (normalise_header(c) for c in row if _filled(c))
                 if k in lookup}
        if len(names) > found.matches:
            found = _Header(None, len(names), tuple(sorted(names)), i, sheet)
        if len(names) >= MIN_HEADER_MATCHES:
            found.index = i
            return found
    return found


def _filled(cell: Any) -> bool:
    if cell is None or cell is pd.NA or (isinstance(cell, float) and np.isnan(cell)):
        return False
    return str(cell).strip() != ""


def _no_header(filename: str, found: _Header) -> UnreadableFile:
    if not found.matches:
        return UnreadableFile(filename, NOT_COLORS, sheet=found.sheet)
    return UnreadableFile(
        filename,
        f"no header row found: the best candidate, row {found.best_row + 1}, names only "
        f"{found.matches} known column(s) ({', '.join(found.names)}); put a header row naming at "
        f"least {MIN_HEADER_MATCHES} columns (e.g. CUSIP, BIAS, PX) in the first "
        f"{HEADER_SCAN_ROWS} rows",
        sheet=found.sheet,
    )


def _table(header_cells: list[Any], body: pd.DataFrame, first_row: int, sheet: str | None,
           header_row: int) -> RawTable:
    """Trim the body to the header's width, drop blank rows, number rows as Excel does."""
    width = len(header_cells)
    while width and not _filled(header_cells[width - 1]):
        width -= 1
    body = body.iloc[:, :width] if body.shape[1] >= width else body.reindex(columns=range(width))
    body.columns = pd.RangeIndex(width)
    blank = _blank_rows(body)
    rows = np.arange(first_row, first_row + len(body))[~blank]
    header = ["" if not _filled(c) else str(c).strip() for c in header_cells[:width]]
    return RawTable(header, body[~blank].reset_index(drop=True), rows, sheet, header_row)


def _blank_rows(body: pd.DataFrame) -> np.ndarray:
    """Rows whose every cell is empty; each column narrows the candidates, so a full first
    column makes this one comparison."""
    blank = np.ones(len(body), dtype=bool)
    for column in body.columns:
        if not blank.any():
            break
        cells = body[column][blank]
        empty = cells.isna() | cells.eq("")
        if pd.api.types.is_string_dtype(cells.dtype) and cells.dtype != object:
            empty |= cells.str.strip().eq("")
        blank[blank] = empty.fillna(True).to_numpy(dtype=bool)
    return blank


def _read_workbook(data: bytes, filename: str, lookup: dict[str, str], max_cells: int
                   ) -> RawTable:
    """The first sheet with a recognisable header (calamine reads xlsx, xlsm, xlsb, xls, ods).
    The declared <dimension> is not trusted (calamine sizes a sheet by its real cells); the real
    extent must stay within max_cells, and the empty area above and left of the first cell is not
    materialised (a lone cell at XFD1048576 is one cell, not 17 billion)."""
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = [m.name for m in book.sheets_metadata if "WorkSheet" in str(m.typ)]
    except Exception as exc:  # calamine raises its own and zip/IO errors for corrupt files
        raise UnreadableFile(filename, NOT_READABLE) from exc
    found, cells_seen = _Header(), False
    for name in sheets:
        try:
            sheet = book.get_sheet_by_name(name)
            top = sheet.start[0] if sheet.start else 0  # rows above the first cell are skipped
            if max_cells and sheet.height * sheet.width > max_cells:
                raise UnreadableFile(filename, _too_many_cells(sheet, max_cells), sheet=name)
            rows = sheet.to_python(skip_empty_area=True)
        except UnreadableFile:
            raise
        except Exception as exc:  # a corrupt sheet part
            raise UnreadableFile(filename, NOT_READABLE, sheet=name) from exc
        cells_seen = cells_seen or any(_filled(c) for row in rows[:HEADER_SCAN_ROWS] for c in row)
        found = _find_header(rows, lookup, found, name)
        if found.index is not None:
            h = found.index
            body = pd.DataFrame(rows[h + 1:], dtype=object)
            log.debug("%s: header on row %d of sheet %s", filename, top + h + 1, name)
            return _table(rows[h], body, top + h + 2, name, top + h + 1)
    if not cells_seen:
        raise UnreadableFile(filename, EMPTY)
    raise _no_header(filename, found)


def _too_many_cells(sheet: Any, max_cells: int) -> str:
    (top, left), (bottom, right) = sheet.start, sheet.end
    return (f"its cells span {_ref(top, left)}:{_ref(bottom, right)} = {sheet.height:,} rows × "
            f"{sheet.width:,} columns, over the {max_cells:,} cell limit (upload.max_cells); "
            "delete the stray cells after the data (Ctrl+End in Excel shows the last one) or "
            "split the file")


def _ref(row: int, column: int) -> str:
    """Excel's A1 name of a 0-based (row, column)."""
    letters, column = "", column + 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row + 1}"


def _read_parquet(data: bytes, filename: str, lookup: dict[str, str]) -> RawTable:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UnreadableFile(filename, NOT_READABLE) from exc
    header = [str(c) for c in frame.columns]
    found = _find_header([header], lookup, _Header())
    if found.index is None:
        raise _no_header(filename, found)
    return _table(header, frame.set_axis(range(len(header)), axis=1), 2, None, 1)


def _decode(data: bytes) -> tuple[str, str]:
    """(encoding, text): UTF-16 with a BOM, else UTF-8 (with or without BOM), else cp1252,
    else latin-1 (which accepts any byte)."""
    encodings = ("utf-16",) if data.startswith((b"\xff\xfe", b"\xfe\xff")) else TEXT_ENCODINGS
    for encoding in encodings:
        try:
            return encoding, data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return "latin-1", data.decode("latin-1")


def _delimiters(sample: str) -> list[str]:
    """The sniffed delimiter first, then the others (a header decides between them)."""
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = max(DELIMITERS, key=sample.count)
    return [sniffed, *(d for d in DELIMITERS if d != sniffed)]


def _read_csv(data: bytes, filename: str, lookup: dict[str, str]) -> RawTable:
    encoding, text = _decode(data)
    if not text.strip():
        raise UnreadableFile(filename, EMPTY)
    sample = "\n".join(text[:65536].splitlines()[:HEADER_SCAN_ROWS])
    found = _Header()
    for delimiter in _delimiters(sample):
        grid = list(csv.reader(io.StringIO(sample), delimiter=delimiter))
        found = _find_header(grid, lookup, found)
        if found.index is not None:
            break
    else:
        raise _no_header(filename, found)
    h, header = found.index, grid[found.index]
    del text
    try:
        body = _read_csv_body(data, encoding, delimiter, h + 1, len(header))
    except (pd.errors.ParserError, ValueError) as exc:
        raise UnreadableFile(filename, f"cannot be read as CSV ({exc}); check the quoting and "
                             "delimiters, or save it as .xlsx and upload again") from exc
    log.debug("%s: %s, delimiter %r, header on row %d", filename, encoding, delimiter, h + 1)
    return _table(header, body, h + 2, None, h + 1)


def _read_csv_body(data: bytes, encoding: str, delimiter: str, skip: int, width: int
                   ) -> pd.DataFrame:
    """Every cell as text below the header. Arrow's parallel reader when the file is
    rectangular; pandas' C reader (tolerates short and long rows) otherwise. Both keep blank
    lines as rows, so positions map to Excel row numbers."""
    names = [str(i) for i in range(width)]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(
                skip_rows=skip, column_names=names,
                encoding="utf8" if encoding == "utf-8-sig" else encoding),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                # large_string is what pandas keeps: read as pa.string() each column was cast
                # (copied) again, 1–2 s for 1M rows
                column_types=dict.fromkeys(names, pa.large_string()), strings_can_be_null=False),
        )
        body = table.to_pandas(types_mapper=_as_text)  # Arrow-backed text, not copied
        return body.set_axis(range(width), axis=1)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, LookupError):
        log.debug("arrow could not read the CSV; using pandas' C reader")
    columns = list(range(width))  # names + usecols: short and long rows are tolerated
    try:
        return pd.read_csv(
            io.BytesIO(data), sep=delimiter, header=None, skiprows=skip, names=columns,
            usecols=columns, dtype=str, na_filter=False, skip_blank_lines=False,
            encoding=encoding, engine="c",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns, dtype=object)
    except pd.errors.ParserError:  # every row shorter than the header: usecols names absent ones
        body = pd.read_csv(
            io.BytesIO(data), sep=delimiter, header=None, skiprows=skip, dtype=str,
            na_filter=False, skip_blank_lines=False, encoding=encoding, engine="c",
        )
        return body.reindex(columns=columns, fill_value="")
