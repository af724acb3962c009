# ruff: noqa: E501  (OOXML boilerplate)
"""Structurally hostile files: xlsx whose declared or real extent is absurd, zip bombs (one huge
sheet, huge shared strings, thousands of members), a DTD in a part, corrupt and truncated zips, a
CSV with one absurd line and a parquet whose few KB decode to tens of millions of cells."""

from __future__ import annotations

import io
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq

HEADER = ("MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "BIAS", "PX", "SOURCE", "DATE")
ROWS = (("M1", "VOYA 2024-42A A1", "MM-CLO", "H14TY8AA6", "OFFER", 101.125, "DB", "2026-03-13"),
        ("M2", "VOYA 2024-42A A1", "MM-CLO", "H14TY8AA6", "BWIC TALK", 150.5, "DB",
         "2026-03-13"))

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    '</Types>')
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>')
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Colors" sheetId="1" r:id="rId1"/></sheets></workbook>')
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    '</Relationships>')
SHEET_OPEN = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
EMPTY_SST = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="0" '
             'uniqueCount="0"></sst>')
BOMB_MB = 600  # over upload.max_unpacked_mb's default (512); ~600 KB on disk


def _col(i: int) -> str:
    name = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(ref: str, value: object) -> str:
    if isinstance(value, float | int):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def _table_rows() -> str:
    rows = [HEADER, *ROWS]
    return "".join(
        f'<row r="{r}">' + "".join(_cell(f"{_col(c)}{r}", v) for c, v in enumerate(row))
        + "</row>" for r, row in enumerate(rows, start=1))


def _sheet(body: str, dimension: str | None = "A1:H3") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f"{SHEET_OPEN}{dim}<sheetData>{body}</sheetData></worksheet>"


def _xlsx(sheet: str | bytes, *, sst: str | bytes = EMPTY_SST,
          extra: list[tuple[str, bytes]] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, part in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS),
                           ("xl/workbook.xml", WORKBOOK), ("xl/_rels/workbook.xml.rels",
                                                            WORKBOOK_RELS),
                           ("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", sst),
                           *extra):
            z.writestr(name, part)
    return out.getvalue()


def _bomb_stream(head: str, filler: bytes, tail: str) -> bytes:
    """A part of BOMB_MB MB (mostly `filler`, which deflates ~1000:1) written in chunks."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, part in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS),
                           ("xl/workbook.xml", WORKBOOK), ("xl/_rels/workbook.xml.rels",
                                                            WORKBOOK_RELS)):
            z.writestr(name, part)
        big = "xl/worksheets/sheet1.xml" if head.startswith(SHEET_OPEN) else "xl/sharedStrings.xml"
        with z.open(big, "w", force_zip64=True) as part:
            part.write(head.encode())
            chunk = filler * (1024 * 1024 // len(filler))
            for _ in range(BOMB_MB):
                part.write(chunk)
            part.write(tail.encode())
        if big.endswith("sharedStrings.xml"):
            z.writestr("xl/worksheets/sheet1.xml", _sheet(_table_rows()))
        else:
            z.writestr("xl/sharedStrings.xml", EMPTY_SST)
    return out.getvalue()


def _many_members() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, part in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS),
                           ("xl/workbook.xml", WORKBOOK), ("xl/_rels/workbook.xml.rels",
                                                            WORKBOOK_RELS),
                           ("xl/worksheets/sheet1.xml", _sheet(_table_rows())),
                           ("xl/sharedStrings.xml", EMPTY_SST)):
            z.writestr(name, part)
        for i in range(1500):
            z.writestr(f"x/{i}", b"")
    return out.getvalue()


def _billion_laughs() -> str:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)]
    return ('<?xml version="1.0"?>\n<!DOCTYPE sst [' + "".join(entities) + ']>'
            '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
            'uniqueCount="1"><si><t>&lol9;</t></si></sst>')


def _parquet_cells() -> bytes:
    rows = 12_000_000  # 3 columns of one repeated value: ~100 KB, 36 million cells
    table = pa.table({name: pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, pa.int8()), pa.array([value])) for name, value in
        (("CUSIP", "H14TY8AA6"), ("BIAS", "OFFER"), ("PX", "101.125"))})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def files() -> list[tuple[str, bytes, bool, str]]:
    valid = _xlsx(_sheet(_table_rows()))
    far = _sheet('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', "XFD1048576")
    return [
        # The 2 KB file: its only cell sits at XFD1048576 (calamine would allocate ~512 GiB).
        ("far-cell.xlsx", _xlsx(far), True, "does not look like a color file"),
        # A good table whose <dimension> claims the whole grid: calamine sizes the sheet by its
        # real cells, so it is read (the two rows reach validation; PX 150.5 is a warning).
        ("huge-dimension.xlsx", _xlsx(_sheet(_table_rows(), "A1:XFD1048576")), False,
         "150.5"),
        # A good table and one stray cell at XFD1048576, no <dimension>: only the child's memory
        # limit (or the real-extent scan) can stop this one.
        ("far-cell-no-dimension.xlsx", _xlsx(_sheet(
            _table_rows() + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', None)),
         True, "upload.read_memory_mb"),
        ("bomb-sheet.xlsx", _bomb_stream(SHEET_OPEN + "<sheetData>", b" ",
                                         "</sheetData></worksheet>"), True, "upload.max_unpacked_mb"),
        ("bomb-shared-strings.xlsx", _bomb_stream(
            EMPTY_SST[:-len("</sst>")].replace('count="0" uniqueCount="0"',
                                               'count="1" uniqueCount="1"') + "<si><t>",
            b"A", "</t></si></sst>"), True, "upload.max_unpacked_mb"),
        ("many-members.xlsx", _many_members(), True, "1506 parts"),
        ("billion-laughs.xlsx", _xlsx(_sheet(_table_rows()), sst=_billion_laughs()), True,
         "document type declaration"),
        ("truncated.xlsx", valid[: len(valid) // 2], True, "corrupt"),
        ("corrupt-sheet.xlsx", _xlsx(b"\x00\xff<worksheet" + bytes(range(256)) * 4), True,
         "corrupt"),
        ("long-line.csv", b"CUSIP,BIAS,PX\n" + b"H14TY8AA6," * 30_000 + b"\n", True,
         "line 2 is"),
        ("cells-bomb.parquet", _parquet_cells(), True, "upload.max_cells"),
    ]
