"""Excel error cells (#DIV/0!, #N/A…) of an .xlsx sheet. calamine reads them as empty text, so
they are found in the sheet's XML and put back as their error text, which coercion then reads as
blank with a warning naming the cell (never a silent blank)."""

from __future__ import annotations

import io
import re
import zipfile
from html import unescape
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.ingest.readers import RawTable

CHUNK_BYTES = 4 * 1024 * 1024  # the sheet XML is streamed, never held whole
_SHEET = re.compile(rb"<(?:\w+:)?sheet\s[^>]*?>")
_ATTRIBUTE = r'\b{}="([^"]*)"'
_RELATION = re.compile(rb"<(?:\w+:)?Relationship\s[^>]*?>")
_ERROR_CELL = re.compile(rb'<(?:\w+:)?c\s([^>]*?\bt="e"[^>]*)>(.*?)</(?:\w+:)?c>', re.S)
_REF = re.compile(rb'\br="([A-Z]{1,3})(\d+)"')
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")


def _attribute(tag: bytes, name: str) -> str | None:
    found = re.search(_ATTRIBUTE.format(re.escape(name)).encode(), tag)
    return unescape(found.group(1).decode("utf-8", "replace")) if found else None


def _sheet_part(book: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip path of the worksheet named `sheet` (workbook.xml → its relationship)."""
    names = set(book.namelist())
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        return None
    rel_id = next((_attribute(tag, "r:id") for tag in _SHEET.findall(book.read("xl/workbook.xml"))
                   if _attribute(tag, "name") == sheet), None)
    for tag in _RELATION.findall(book.read("xl/_rels/workbook.xml.rels")):
        if rel_id is not None and _attribute(tag, "Id") == rel_id:
            target = _attribute(tag, "Target") or ""
            part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            return part if part in names else None
    return None


def _column(letters: bytes) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ch - ord("A") + 1
    return index - 1


def error_cells(data: bytes, sheet: str) -> dict[tuple[int, int], str]:
    """(Excel row number, 0-based column) → the error text of each error cell of an .xlsx/.xlsm
    sheet; {} for other workbooks (xls, ods, xlsb are not searched)."""
    found: dict[tuple[int, int], str] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            part = _sheet_part(book, sheet)
            if part is None:
                return found
            with book.open(part) as stream:
                rest = b""
                while chunk := stream.read(CHUNK_BYTES):
                    buffer = rest + chunk
                    cut = buffer.rfind(b"</row>")  # cells never straddle a scanned piece
                    if cut < 0:
                        rest = buffer  # one row longer than a chunk: read on
                        continue
                    _scan(buffer[:cut], found)
                    rest = buffer[cut:]
                _scan(rest, found)
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError):
        return found  # calamine already read the file; a part it skipped has no cells for us
    return found


def _scan(xml: bytes, found: dict[tuple[int, int], str]) -> None:
    if b't="e"' not in xml:
        return
    for attributes, content in _ERROR_CELL.findall(xml):
        ref = _REF.search(attributes)
        value = _VALUE.search(content)
        if ref and value:
            text = unescape(value.group(1).decode("utf-8", "replace")).strip()
            found[(int(ref.group(2)), _column(ref.group(1)))] = text or "#N/A"


def mark_error_cells(table: RawTable, data: bytes) -> None:
    """Write each error cell of the table's sheet back into the body as its error text."""
    if table.sheet is None or table.body.empty:
        return
    for (row, column), text in error_cells(data, table.sheet).items():
        at = int(np.searchsorted(table.rows, row))
        if column < table.body.shape[1] and at < len(table.rows) and table.rows[at] == row:
            table.body.iat[at, column] = text
