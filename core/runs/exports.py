"""Exports: the output workbook (.xlsx), CSV and Parquet downloads, and the upload template.

Text a spreadsheet would run as a formula is escaped (OWASP CSV injection); ids stay text.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import xlsxwriter
from pandas.api import types as ptypes
from xlsxwriter.utility import xl_col_to_name

from core.errors import InvalidInput
from core.schema import (
    ASK,
    BIAS_RANK,
    BID,
    BOOLEAN,
    COLOR_KEY,
    COLUMN_TYPE,
    COV_PRICE,
    DATE_TYPE,
    INPUT_COLUMNS,
    INTEGER,
    NUMBER,
    OUTPUT_COLUMNS,
    PERCENT_DIFF,
    POSITION,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    REQUIRED_COLUMNS,
    SOURCE_ROW,
    SOURCE_SHEET,
    TEXT,
    TIMESTAMP,
    default_column_config,
)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
INTERNAL_COLUMNS = (SOURCE_ROW, SOURCE_SHEET, POSITION, COLOR_KEY)  # bookkeeping, never exported
_PRICES = {PRICE_LEVEL, BID, ASK, PX, COV_PRICE, PRICE_DIFF}
_WORKBOOK_OPTIONS = {  # only the header goes through xlsxwriter's cell writer
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
}
_EXCEL_EPOCH = np.datetime64("1899-12-30", "us")  # serial 0 in Excel's 1900 date system
_US_PER_DAY = 86_400_000_000
_CHUNK = 25_000  # rows rendered per block
_ZIP_LEVEL = 1  # deflate level: 3× faster than the default for ~15% larger files
_MAX_CELL_TEXT = 32_767  # Excel's limits
MAX_SHEET_ROWS = 1_048_575  # data rows under the header of one sheet
_CONTROL = r"[\x00-\x08\x0b-\x1f]"  # not allowed in XML 1.0, or (CR) not kept by parsers
_NUM_FORMATS = {DATE_TYPE: "yyyy-mm-dd", TIMESTAMP: "yyyy-mm-dd hh:mm:ss", INTEGER: "0", TEXT: "@"}


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting with = + - @ tab or CR are prefixed with a single quote.
    Only text columns change: a negative number is a number, not a formula."""
    out = frame.copy(deep=False)
    for name in out.columns:
        values = out[name]
        if isinstance(values.dtype, pd.StringDtype):
            risky = values.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
            if risky.any():
                out[name] = values.mask(risky, "'" + values)
        elif values.dtype == object:  # mixed values: only the strings can be formulas
            out[name] = values.map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    return out


def output_columns(frame: pd.DataFrame) -> list[str]:
    """OUTPUT_COLUMNS present, in the compatible order, then extra columns (custom ones,
    EXCLUDED_BY, QUARANTINE_REASON) in frame order; internal bookkeeping is left out."""
    present = [c for c in OUTPUT_COLUMNS if c in frame.columns]
    extras = [c for c in frame.columns if c not in OUTPUT_COLUMNS and c not in INTERNAL_COLUMNS]
    return present + extras


# -- typing cells -------------------------------------------------------------------------------

def _as(values: pd.Series, kind: str) -> pd.Series | None:
    """values converted to the declared kind, or None when any non-empty value would be lost."""
    converted: pd.Series
    try:
        if kind in (DATE_TYPE, TIMESTAMP):
            converted = pd.to_datetime(values, errors="coerce")
        elif kind == BOOLEAN:
            converted = values.astype("boolean")
        else:
            converted = pd.to_numeric(values, errors="coerce")
    except (TypeError, ValueError):
        return None
    return converted if converted.notna().sum() == values.notna().sum() else None


def _kind(name: str, values: pd.Series) -> tuple[str, pd.Series]:
    """Cell kind of a column (its declared type when the values fit it) and the values to write."""
    declared = COLUMN_TYPE.get(name)
    if declared == TEXT:
        return TEXT, values
    if ptypes.is_bool_dtype(values.dtype):
        return BOOLEAN, values
    if ptypes.is_datetime64_any_dtype(values.dtype):
        if declared in (DATE_TYPE, TIMESTAMP):
            return declared, values
        stamps = _naive_utc(values)
        timed = (stamps.dropna() != stamps.dropna().dt.normalize()).any()
        return (TIMESTAMP if timed or isinstance(values.dtype, pd.DatetimeTZDtype)
                else DATE_TYPE), values
    if ptypes.is_numeric_dtype(values.dtype):
        if declared in (NUMBER, INTEGER):
            return declared, values
        return (INTEGER if ptypes.is_integer_dtype(values.dtype) else NUMBER), values
    if declared in (NUMBER, INTEGER, DATE_TYPE, TIMESTAMP, BOOLEAN):
        converted = _as(values, declared)
        if converted is not None:
            return declared, converted
    return TEXT, values


def _naive_utc(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps


def _number_format(name: str, kind: str) -> str | None:
    if name in _PRICES:
        return "0.000"
    if name == PERCENT_DIFF:
        return "0.00"
    return _NUM_FORMATS.get(kind)


def _width(name: str, kind: str, values: pd.Series) -> float:
    if kind == TEXT:
        longest = values.iloc[:500].astype("string").str.len().max()
        longest = 0 if pd.isna(longest) else int(longest)
    else:
        longest = {DATE_TYPE: 10, TIMESTAMP: 19, BOOLEAN: 5}.get(kind, 10)
    return float(min(max(len(name) + 3, longest + 2), 60))


# -- cell XML -----------------------------------------------------------------------------------
# xlsxwriter serialises ~6 µs a cell in Python (20 s for 100k × 30). It still builds the workbook
# (styles, header, widths, frozen pane, autofilter); the data rows are rendered here a column
# at a time with Arrow kernels, as the inline-string cells xlsxwriter's constant_memory mode writes.

def _xml_text(values: pd.Series) -> pa.Array:
    # pyarrow converts pandas arrays through __arrow_array__, which pyarrow-stubs do not type.
    text = pa.array(values.astype("string").array).cast(  # type: ignore[call-overload]
        pa.string())
    text = pc.utf8_slice_codeunits(text, 0, _MAX_CELL_TEXT)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = pc.replace_substring(text, char, entity)
    if pc.any(pc.match_substring_regex(text, _CONTROL)).as_py():  # as Excel escapes them
        for code in [*range(0, 9), *range(11, 32)]:
            text = pc.replace_substring(text, chr(code), f"_x{code:04X}_")
    return text


def _xml_number(values: pd.Series, kind: str) -> pa.Array:
    if kind in (DATE_TYPE, TIMESTAMP):
        ticks = _naive_utc(values).to_numpy(dtype="datetime64[us]")
        numbers = (ticks - _EXCEL_EPOCH).astype(np.float64) / _US_PER_DAY
        numbers[np.isnat(ticks)] = np.nan
    else:
        numbers = pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
    return pa.array(numbers, mask=~np.isfinite(numbers)).cast(pa.string())


def _xml_cells(kind: str, values: pd.Series, letter: str, style: str,
               rows: pa.Array) -> pa.Array:
    """One '<c …>…</c>' per row ("" for NA: no cell)."""
    if kind == TEXT:
        value = _xml_text(values)
        head, tail = ' t="inlineStr"><is><t xml:space="preserve">', "</t></is></c>"
    elif kind == BOOLEAN:
        flags = values.astype("boolean").array
        value = pc.cast(pa.array(flags.to_numpy(dtype=bool, na_value=False), mask=flags.isna()),
                        pa.int8()).cast(pa.string())
        head, tail = ' t="b"><v>', "</v></c>"
    else:
        value, head, tail = _xml_number(values, kind), "><v>", "</v></c>"
    # pyarrow joins arrays and scalars alike; pyarrow-stubs want all of one kind.
    cells = pc.binary_join_element_wise(  # type: ignore[call-overload]
        f'<c r="{letter}', rows, f'"{style}{head}', value, tail, "")
    return pc.fill_null(cells, "")


def _sheet_rows(frame: pd.DataFrame, kinds: list[str], styles: dict[int, str]
                ) -> Iterator[memoryview]:
    """The worksheet's data rows as XML, _CHUNK rows at a time (bounded memory)."""
    letters = [xl_col_to_name(i) for i in range(len(frame.columns))]
    for start in range(0, len(frame), _CHUNK):
        part = frame.iloc[start:start + _CHUNK]
        rows = pa.array(np.arange(start + 2, start + 2 + len(part)).astype(str))
        cells = [_xml_cells(kinds[i], part.iloc[:, i], letters[i], styles.get(i, ""), rows)
                 for i in range(len(letters))]
        xml = pc.binary_join_element_wise('<row r="', rows, '">', *cells, "</row>", "")
        yield _joined(xml)


def _joined(text: pa.Array | pa.ChunkedArray) -> memoryview:
    """A string array's values one after another, as they lie in its data buffer (no Python
    string per row: joining them cost as much as rendering them). Its values are never null.
    Cells from columns held in several chunks come in several: they are joined into one."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    offsets, data = text.buffers()[1:3]
    if offsets is None or data is None:  # no rows, or only empty strings
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    ends = np.frombuffer(memoryview(offsets), dtype=width)[text.offset:text.offset + len(text) + 1]
    return memoryview(data)[int(ends[0]):int(ends[-1])]


def _ahead(blocks: Iterator[memoryview], depth: int = 2) -> Iterator[memoryview]:
    """The blocks, made on a second thread while the caller compresses the ones before (Arrow's
    kernels and zlib both release the GIL, so rendering and compressing use both cores)."""
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
            put(end)
        except BaseException as exc:  # raised again in the caller's thread
            put(exc)

    worker = threading.Thread(target=work, name="xlsx-rows", daemon=True)
    worker.start()
    try:
        while (item := box.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # the worker puts blocks, an error or the end
    finally:
        stop.set()
        worker.join()


def _column_styles(sheet_xml: str) -> dict[int, str]:
    """Column index → ' s="N"' from the <cols> element xlsxwriter wrote (a cell needs its style
    itself: Excel applies the column's style only to cells that do not exist)."""
    styles: dict[int, str] = {}
    for col in re.findall(r"<col [^>]*>", sheet_xml):
        first, last = re.search(r'min="(\d+)"', col), re.search(r'max="(\d+)"', col)
        if first is None or last is None:
            continue  # not a column range (xlsxwriter writes both on every <col>)
        style = re.search(r'style="(\d+)"', col)
        for i in range(int(first.group(1)) - 1, int(last.group(1))):
            styles[i] = f' s="{style.group(1)}"' if style else ""
    return styles


def _add_rows(workbook: bytes, sheets: list[tuple[pd.DataFrame, list[str]]]) -> bytes:
    """Copy of the xlsxwriter workbook with each sheet's data rows streamed into <sheetData>."""
    out = BytesIO()
    with ZipFile(BytesIO(workbook)) as zin, \
            ZipFile(out, "w", ZIP_DEFLATED, compresslevel=_ZIP_LEVEL) as zout:
        parts = {f"xl/worksheets/sheet{i}.xml": sheet for i, sheet in enumerate(sheets, start=1)}
        for info in zin.infolist():
            data = zin.read(info)
            frame, kinds = parts.get(info.filename, (None, []))
            if frame is None or frame.empty or not kinds:
                zout.writestr(info, data, compress_type=ZIP_DEFLATED)
                continue
            xml = data.decode()
            cut = xml.index("</sheetData>")
            last = f"{xl_col_to_name(len(kinds) - 1)}{len(frame) + 1}"
            head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>', xml[:cut])
            with zout.open(info.filename, "w", force_zip64=True) as stream:
                stream.write(head.encode())
                for block in _ahead(_sheet_rows(frame, kinds, _column_styles(head))):
                    stream.write(block)
                stream.write(xml[cut:].encode())
    return out.getvalue()


# -- writers ------------------------------------------------------------------------------------

def sheet_parts(name: str, rows: int, limit: int) -> list[tuple[str, int, int]]:
    """(sheet name, first row, end row) of each sheet a frame of `rows` rows needs when one sheet
    holds `limit`: the name alone when it fits, else "Colors (1 of 3)", "Colors (2 of 3)", …"""
    count = max(1, -(-rows // limit))
    if count == 1:
        return [(name, 0, rows)]
    return [(f"{name} ({i + 1} of {count})", i * limit, min(rows, (i + 1) * limit))
            for i in range(count)]


def _prepare_sheet(book: xlsxwriter.Workbook, name: str, frame: pd.DataFrame,
                   header: Any) -> tuple[pd.DataFrame, list[str]]:
    """Worksheet with header, widths, formats, frozen pane and autofilter; returns the typed
    frame and cell kinds its rows are written from."""
    sheet = book.add_worksheet(name)
    frame = frame[output_columns(frame)]
    names = [str(c) for c in frame.columns]
    typed, kinds = {}, []
    for i, column in enumerate(names):
        kind, values = _kind(column, frame.iloc[:, i])
        number_format = _number_format(column, kind)
        cell_format = book.add_format({"num_format": number_format}) if number_format else None
        sheet.set_column(i, i, _width(column, kind, values), cell_format)
        typed[i] = values.reset_index(drop=True)
        kinds.append(kind)
    if names:
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(frame), len(names) - 1)
        sheet.write_row(0, 0, names, header)
    return escape_formulas(pd.DataFrame(typed, index=pd.RangeIndex(len(frame)))), kinds


def write_xlsx(frame: pd.DataFrame, *, sheet_name: str = "Colors",
               extra_sheets: dict[str, pd.DataFrame] | None = None,
               sheet_rows: int | None = None) -> bytes:
    """The output workbook: bold frozen header, autofilter, typed cells (real dates, prices 0.000,
    booleans, ids as text), NA as blank, formula-looking text escaped; one sheet per extra frame.
    A frame longer than a sheet holds (sheet_rows, default Excel's MAX_SHEET_ROWS) continues on
    the next sheets (sheet_parts names them), so the workbook still holds every row."""
    limit = sheet_rows or MAX_SHEET_ROWS
    buffer = BytesIO()
    book = xlsxwriter.Workbook(buffer, _WORKBOOK_OPTIONS)
    header = book.add_format({"bold": True, "bottom": 1, "bg_color": "#DDEBF7"})
    sheets = [_prepare_sheet(book, part, sheet_frame.iloc[first:end], header)
              for name, sheet_frame in {sheet_name: frame, **(extra_sheets or {})}.items()
              for part, first, end in sheet_parts(name, len(sheet_frame), limit)]
    book.close()
    return _add_rows(buffer.getvalue(), sheets)


def write_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a byte-order mark (so Excel reads it as UTF-8): output columns and order,
    ISO dates (timestamps as naive UTC), formula-looking text escaped, NA as empty."""
    out = escape_formulas(frame[output_columns(frame)])
    for column in out.columns:
        kind, values = _kind(str(column), out[column])
        if kind in (DATE_TYPE, TIMESTAMP):
            pattern = "%Y-%m-%d" if kind == DATE_TYPE else "%Y-%m-%d %H:%M:%S"
            out[column] = _naive_utc(values).dt.strftime(pattern).astype("string")
    table = pa.Table.from_pandas(out, preserve_index=False)
    buffer = BytesIO()
    buffer.write("\ufeff".encode())
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(quoting_style="needed"))  # 5× to_csv
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame) -> bytes:
    """Parquet with the output columns and their types. Not escaped: it is data, not a sheet."""
    buffer = BytesIO()
    frame[output_columns(frame)].to_parquet(buffer, index=False)
    return buffer.getvalue()


_WRITERS = {".xlsx": write_xlsx, ".csv": write_csv, ".parquet": write_parquet}


def write_output(frame: pd.DataFrame, path: Path | str) -> None:
    """Write frame to path in the format its suffix names (.xlsx, .csv or .parquet)."""
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise InvalidInput("output file", f"unsupported suffix {path.suffix or '(none)'!r} in "
                                          f"{path.name}; use .xlsx, .csv or .parquet")
    path.write_bytes(writer(frame))


# -- the upload template ------------------------------------------------------------------------

_MEANING = {
    "MESSAGE_ID": "Id of the dealer message (17 digits, keep as text); not unique",
    "TICKER": "Deal and tranche, e.g. ARES 2025-78A A2; may be blank",
    "SECTOR": "Asset class, e.g. 2.0_AAA_Senior, 2.0_Mezz, MM-CLO, US_Equity_2.0",
    "CUSIP": "9-character security id with a valid check digit; groups the ranking",
    "DATE": "Business / extraction date",
    "PRICE_LEVEL": "Price level; equals PX in practice",
    "BID": "Bid price; 0 = no bid",
    "ASK": "Ask (offer) price; 0 = no offer",
    "PX": "Ranking price: BID if BID > 0, else ASK",
    "SOURCE": "Dealer, e.g. JPM, BOA, MS, GS",
    "BIAS": "Kind of color; sets RANK (table on the right)",
    "RANK": "Quality tier 1 (best) … 6; derived from BIAS when blank",
    "COV_PRICE": "Coverage (house / evaluated) price",
    "PERCENT_DIFF": "round(|PX − COV_PRICE| / COV_PRICE × 100, 2)",
    "PRICE_DIFF": "PX − COV_PRICE",
    "CONFIDENCE": "Confidence 0–10 (mostly 10)",
    "DATE_1": "Date the quote was received",
    "DIFF_STATUS": "Significant Difference above the threshold (2%; 5% equity), else Small",
}
_EXAMPLE = (
    "17734072432755618", "ARES 2025-78A A2", "2.0_AAA_Senior", "97988RBL5",
    dt.datetime(2026, 3, 13), 99.5, 99.5, 99.875, 99.5, "JPM", "BID", 3, 99.25, 0.25, 0.25, 10,
    dt.datetime(2026, 3, 12), "Small Difference",
)


def template_workbook() -> bytes:
    """Upload template: sheet "Colors" with the 18 input headers and one example row, and sheet
    "Columns" explaining each column beside the BIAS → RANK table."""
    buffer = BytesIO()
    book = xlsxwriter.Workbook(buffer, {"strings_to_numbers": False, "strings_to_formulas": False})
    bold = book.add_format({"bold": True, "bottom": 1, "bg_color": "#DDEBF7"})
    formats = {c: book.add_format({"num_format": f}) for c in INPUT_COLUMNS
               if (f := _number_format(c, COLUMN_TYPE[c])) is not None}
    colors = book.add_worksheet("Colors")
    colors.freeze_panes(1, 0)
    for i, (column, value) in enumerate(zip(INPUT_COLUMNS, _EXAMPLE, strict=True)):
        colors.set_column(i, i, max(len(column) + 3, 12), formats.get(column))
        colors.write(0, i, column, bold)
        colors.write(1, i, value, formats.get(column))

    guide = book.add_worksheet("Columns")
    aliases = {spec.name: ", ".join(spec.aliases) for spec in default_column_config()}
    for i, title in enumerate(("Column", "Type", "Required", "Meaning", "Also accepted as")):
        guide.write(0, i, title, bold)
    for row, column in enumerate(INPUT_COLUMNS, start=1):
        guide.write_row(row, 0, (column, COLUMN_TYPE[column],
                                 "yes" if column in REQUIRED_COLUMNS else "no",
                                 _MEANING[column], aliases.get(column, "")))
    guide.write_row(0, 6, ("BIAS", "RANK"), bold)
    for row, (bias, rank) in enumerate(BIAS_RANK.items(), start=1):
        guide.write_row(row, 6, (bias, rank))
    for i, width in enumerate((16, 10, 10, 70, 40, 2, 16, 8)):
        guide.set_column(i, i, width)
    guide.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()
