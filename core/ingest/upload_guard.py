"""Inspect untrusted spreadsheet bytes before any reader sees them: a workbook's parts (count,
unpacked sizes, DTDs), a CSV's longest line and a parquet file's declared cells, against the
upload.* limits. Cheap (headers and the first bytes of each part only); raises UnreadableFile."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pyarrow.parquet as pq

from core.config import Settings
from core.errors import UnreadableFile

MAX_PARTS = 1000  # a workbook has tens of parts; thousands means a crafted archive
MAX_LINE_BYTES = 256 * 1024  # a color row is a few hundred bytes
HEAD_BYTES = 64 * 1024  # how much of each XML part is looked at for a DTD
MB = 1024 * 1024
_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)

CORRUPT = ("is not a spreadsheet MarketPulse can read (.xlsx, .xls, .csv or .parquet), or it "
           "is corrupt; open it in Excel, save it as .xlsx and upload again")  # = spreadsheet's


def inspect_zip(data: bytes, filename: str, settings: Settings) -> None:
    """An xlsx/xlsm/xlsb/ods archive: its part count, each part's and the total unpacked size
    (as declared; the reading child's memory limit covers a lying archive) and no XML DTD
    (Excel never writes one; entity expansion is a classic bomb)."""
    limit_mb = settings["upload.max_unpacked_mb"]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
            if len(parts) > MAX_PARTS:
                raise UnreadableFile(filename, f"the workbook has {len(parts)} parts (a real "
                                     f"one has tens, at most {MAX_PARTS} are accepted); it is "
                                     "not a workbook Excel wrote")
            total = sum(p.file_size for p in parts)
            if limit_mb and total > limit_mb * MB:
                biggest = max(parts, key=lambda p: p.file_size)
                raise UnreadableFile(
                    filename, f"it unpacks to {total / MB:,.0f} MB ({biggest.filename}: "
                    f"{biggest.file_size / MB:,.0f} MB from {biggest.compress_size / 1024:,.0f} "
                    f"KB), over the {limit_mb} MB limit (upload.max_unpacked_mb); split the "
                    "file or ask an admin to raise the limit")
            for part in parts:
                if part.filename.endswith((".xml", ".rels")) and part.file_size:
                    with archive.open(part) as stream:
                        head = stream.read(HEAD_BYTES)
                    if _DTD.search(head):
                        raise UnreadableFile(
                            filename, f"its part {part.filename} contains an XML document type "
                            "declaration (<!DOCTYPE/<!ENTITY), which Excel never writes; it is "
                            "refused unread")
    except UnreadableFile:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError) as exc:  # damaged, cut short, unknown compression
        raise UnreadableFile(filename, CORRUPT) from exc


_BLOCK = 1 << 22  # bytes scanned at a time for line ends


def inspect_text(data: bytes, filename: str) -> None:
    """A CSV's longest line (\\n, \\r or \\r\\n endings) is at most MAX_LINE_BYTES."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.concatenate([  # in blocks: no temporaries the size of the file (np.isin: 1.6 s)
        np.flatnonzero((block == 10) | (block == 13)) + start
        for start in range(0, len(raw), _BLOCK) for block in (raw[start:start + _BLOCK],)
    ] or [np.zeros(0, dtype=np.intp)])
    bounds = np.concatenate(([-1], ends, [len(data)]))
    lengths = np.diff(bounds) - 1
    longest = int(lengths.argmax())
    if lengths[longest] > MAX_LINE_BYTES:
        start = int(bounds[longest]) + 1
        line = data.count(b"\n", 0, start) + 1 if b"\n" in data else longest + 1
        raise UnreadableFile(
            filename, f"line {line} is {lengths[longest] / 1024:,.0f} KB long (a color row is a "
            f"few hundred bytes; at most {MAX_LINE_BYTES // 1024} KB are accepted); the line "
            "endings are broken or it is not a color file")


def inspect_parquet(data: bytes, filename: str, settings: Settings) -> None:
    """A parquet file's declared rows × columns within upload.max_cells."""
    try:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise UnreadableFile(filename, CORRUPT) from exc
    check_cells(filename, meta.num_rows, meta.num_columns, settings)


def check_cells(filename: str, rows: int, columns: int, settings: Settings,
                sheet: str | None = None, last: str = "") -> None:
    """rows × columns within upload.max_cells (0 = no limit)."""
    limit = settings["upload.max_cells"]
    if limit and rows * columns > limit:
        where = f" (its last cell is {last})" if last else ""
        raise UnreadableFile(
            filename, f"it has {rows:,} rows × {columns:,} columns{where} = {rows * columns:,} "
            f"cells, over the {limit:,} limit (upload.max_cells); delete the empty rows and "
            "columns after the data (Ctrl+End in Excel shows the last cell) or split the file",
            sheet=sheet)
