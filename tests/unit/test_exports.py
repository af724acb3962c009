"""Exports: workbook, CSV, Parquet, formula escaping and the upload template."""

from __future__ import annotations

import datetime as dt
from io import BytesIO

import openpyxl
import pandas as pd
import pytest
from openpyxl.utils import get_column_letter

from core.errors import InvalidInput
from core.runs.exports import (
    escape_formulas,
    output_columns,
    sheet_parts,
    template_workbook,
    write_csv,
    write_output,
    write_parquet,
    write_xlsx,
)
from core.runs.ranking import rank_colors
from core.schema import (
    BIAS_RANK,
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    DATE,
    DATE_1,
    EXCLUDED_BY,
    INPUT_COLUMNS,
    IS_PARENT,
    MESSAGE_ID,
    OUTPUT_COLUMNS,
    PARENT_COLOR_ID,
    PARENT_MESSAGE_ID,
    PERCENT_DIFF,
    PRICE_DIFF,
    PROCESSED_AT,
    PROCESSING_TYPE,
    PX,
    RANK,
    RUN_ID,
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_SHEET,
    TICKER,
    is_valid_cusip,
)
from tests.factories import make_colors

MSG = "17734072432755618"


def published() -> pd.DataFrame:
    """Three ranked colors as a run publishes them, with bookkeeping and one custom column (the
    groups in CUSIP order, as ranking gives them)."""
    frame = make_colors(
        MESSAGE_ID=[MSG, MSG, "17734072432755619"],
        TICKER=["=1+1", "ARES 2025-78A A2", None],
        CUSIP=["97988RBL5", "97988RBL5", "G0684DAA5"],
        PX=[99.5, 98.25, 101.0],
        PRICE_DIFF=[-5.0, 0.5, None],
        PERCENT_DIFF=[4.81, 0.51, None],
    )
    frame[SOURCE_ROW] = pd.array([2, 3, 4], dtype="Int64")
    frame[SOURCE_SHEET] = "Sheet1"
    frame["DESK"] = ["CLO", "@SUM(A1)", "CLO"]
    frame[COLOR_ID] = ["7-1", "7-2", "7-3"]
    ranked = rank_colors(frame)
    ranked.insert(0, RUN_ID, pd.array([7, 7, 7], dtype="Int64"))
    ranked.insert(1, PROCESSED_AT, pd.Timestamp("2026-03-13 09:30:15", tz="UTC"))
    ranked.insert(2, PROCESSING_TYPE, pd.array(["AUTOMATED"] * 3, dtype="string"))
    ranked[SOURCE_FILE] = pd.array(["colors.xlsx"] * 3, dtype="string")
    return ranked


EXPECTED_COLUMNS = [*OUTPUT_COLUMNS, "DESK"]


def read_sheet(data: bytes, name: str = "Colors") -> openpyxl.worksheet.worksheet.Worksheet:
    return openpyxl.load_workbook(BytesIO(data))[name]


def cell(sheet, column: str, row: int = 2):
    header = [c.value for c in sheet[1]]
    return sheet.cell(row=row, column=header.index(column) + 1)


# -- escaping and column order ------------------------------------------------------------------

def test_formula_looking_text_is_quoted_and_numbers_are_left_alone():
    frame = pd.DataFrame({
        "TEXT": pd.array(["=1+1", "+A1", "-2", "@SUM(A1)", "\tx", "\rx", "ok", None],
                         dtype="string"),
        "NUMBER": pd.array([-5.0, 1.0, -2.0, 0.0, 1.0, 1.0, 1.0, None], dtype="Float64"),
    })

    escaped = escape_formulas(frame)

    assert escaped["TEXT"].tolist() == ["'=1+1", "'+A1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok",
                                        pd.NA]
    assert escaped["NUMBER"].tolist() == frame["NUMBER"].tolist()
    assert frame["TEXT"].tolist()[0] == "=1+1"  # the input is untouched


def test_object_columns_escape_only_their_strings():
    frame = pd.DataFrame({"MIXED": pd.Series(["=A1", -3, None], dtype=object)})

    assert escape_formulas(frame)["MIXED"].tolist() == ["'=A1", -3, None]


def test_output_columns_follow_the_compatible_order_then_extras_without_bookkeeping():
    frame = published()
    frame[EXCLUDED_BY] = "PX rule"

    assert output_columns(frame) == [*EXPECTED_COLUMNS, EXCLUDED_BY]


# -- xlsx ---------------------------------------------------------------------------------------

def test_workbook_header_freeze_and_autofilter():
    sheet = read_sheet(write_xlsx(published()))

    assert [c.value for c in sheet[1]] == EXPECTED_COLUMNS
    assert all(c.font.bold for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{get_column_letter(len(EXPECTED_COLUMNS))}4"
    assert sheet.max_row == 4


def test_workbook_dates_are_real_excel_dates():
    sheet = read_sheet(write_xlsx(published()))

    assert cell(sheet, DATE).value == dt.datetime(2026, 3, 13)
    assert cell(sheet, DATE).number_format == "yyyy-mm-dd"
    assert cell(sheet, DATE_1).value == dt.datetime(2026, 3, 12)
    assert cell(sheet, PROCESSED_AT).value == dt.datetime(2026, 3, 13, 9, 30, 15)
    assert cell(sheet, PROCESSED_AT).number_format == "yyyy-mm-dd hh:mm:ss"


def test_workbook_ids_stay_exact_text():
    sheet = read_sheet(write_xlsx(published()))

    assert cell(sheet, MESSAGE_ID).value == MSG
    assert cell(sheet, MESSAGE_ID).data_type == "s"
    assert cell(sheet, PARENT_MESSAGE_ID, row=3).value == MSG
    assert cell(sheet, PARENT_MESSAGE_ID, row=2).value is None
    assert cell(sheet, COLOR_ID).value == "7-1"


def test_workbook_numbers_booleans_and_blanks_are_typed():
    sheet = read_sheet(write_xlsx(published()))

    assert cell(sheet, PX).value == 99.5
    assert cell(sheet, PX).number_format == "0.000"
    assert cell(sheet, PERCENT_DIFF).number_format == "0.00"
    assert cell(sheet, RANK).value == 3
    assert cell(sheet, RANK).number_format == "0"
    assert [cell(sheet, IS_PARENT, r).value for r in (2, 3, 4)] == [True, False, True]
    assert [cell(sheet, CHILDREN_COUNT, r).value for r in (2, 3, 4)] == [1, 0, 0]
    assert cell(sheet, PRICE_DIFF, row=4).value is None
    assert cell(sheet, TICKER, row=4).value is None
    assert cell(sheet, RUN_ID).value == 7


def test_workbook_escapes_formula_text_but_not_negative_numbers():
    sheet = read_sheet(write_xlsx(published()))

    assert cell(sheet, TICKER).value == "'=1+1"
    assert cell(sheet, PRICE_DIFF).value == -5.0
    assert cell(sheet, "DESK", row=3).value == "'@SUM(A1)"


def test_workbook_keeps_xml_special_characters_and_escapes_control_characters():
    frame = pd.DataFrame({"NOTE": pd.array(["a < b & c > d", "tab\tin", " pad ", "x\x01y"],
                                           dtype="string")})

    sheet = read_sheet(write_xlsx(frame))

    # Excel shows _x0001_ as the character itself; openpyxl reports the escape as stored.
    assert [sheet.cell(row=r, column=1).value for r in (2, 3, 4, 5)] == [
        "a < b & c > d", "tab\tin", " pad ", "x_x0001_y"]


def test_workbook_reads_back_with_calamine():
    frame = published()

    back = pd.read_excel(BytesIO(write_xlsx(frame)), engine="calamine", dtype={MESSAGE_ID: str})

    assert back.columns.tolist() == EXPECTED_COLUMNS
    assert back[MESSAGE_ID].tolist() == frame[MESSAGE_ID].tolist()
    assert back[CUSIP].tolist() == frame[CUSIP].tolist()
    assert back[PX].tolist() == [99.5, 98.25, 101.0]


def test_extra_sheets_are_written_in_order():
    excluded = published().assign(**{EXCLUDED_BY: "PX above 100"})

    data = write_xlsx(published(), extra_sheets={"Excluded": excluded, "Quarantined": excluded[:0]})
    book = openpyxl.load_workbook(BytesIO(data))

    assert book.sheetnames == ["Colors", "Excluded", "Quarantined"]
    assert [c.value for c in book["Excluded"][1]][-1] == EXCLUDED_BY
    assert cell(book["Excluded"], EXCLUDED_BY).value == "PX above 100"
    assert book["Quarantined"].max_row == 1


def test_empty_frame_writes_a_header_only_sheet():
    sheet = read_sheet(write_xlsx(published().iloc[:0]))

    assert [c.value for c in sheet[1]] == EXPECTED_COLUMNS
    assert sheet.max_row == 1


def test_many_rows_are_written_in_blocks(monkeypatch):
    monkeypatch.setattr("core.runs.exports._CHUNK", 2)
    frame = make_colors(CUSIP=["97988RBL5"] * 5, PX=[1.0, 2.0, 3.0, 4.0, 5.0])

    sheet = read_sheet(write_xlsx(frame))

    assert [cell(sheet, PX, r).value for r in range(2, 7)] == [1, 2, 3, 4, 5]
    assert sheet.auto_filter.ref == "A1:R6"


def test_text_held_in_several_arrow_chunks_is_written_whole(monkeypatch):
    """Columns filtered from a CSV read keep its blocks: a sheet block may span two of them."""
    import pyarrow as pa

    monkeypatch.setattr("core.runs.exports._CHUNK", 3)
    frame = make_colors(CUSIP=["97988RBL5"] * 5, PX=[1.0, 2.0, 3.0, 4.0, 5.0])
    chunked = pa.chunked_array([["A1", "A2"], ["A3", "A4"], ["A5"]], type=pa.large_string())
    frame[MESSAGE_ID] = pd.Series(pd.arrays.ArrowStringArray(chunked), index=frame.index)

    sheet = read_sheet(write_xlsx(frame))

    assert [cell(sheet, MESSAGE_ID, r).value for r in range(2, 7)] == [
        "A1", "A2", "A3", "A4", "A5"]


# -- csv and parquet ----------------------------------------------------------------------------

def test_csv_has_a_bom_the_output_columns_iso_dates_and_escaped_formulas():
    data = write_csv(published())

    assert data.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert back.columns.tolist() == EXPECTED_COLUMNS
    first = back.iloc[0]
    assert first[MESSAGE_ID] == MSG
    assert first[DATE] == "2026-03-13"
    assert first[DATE_1] == "2026-03-12"
    assert first[PROCESSED_AT] == "2026-03-13 09:30:15"
    assert first[TICKER] == "'=1+1"
    assert first[PRICE_DIFF] == "-5"
    assert back[PARENT_MESSAGE_ID].tolist() == ["", MSG, ""]
    assert back[PARENT_COLOR_ID].tolist() == ["", "7-1", ""]


def test_csv_round_trip_keeps_values():
    frame = published()

    back = pd.read_csv(BytesIO(write_csv(frame)), encoding="utf-8-sig", dtype={MESSAGE_ID: str})

    assert back[PX].tolist() == [99.5, 98.25, 101.0]
    assert back[CUSIP].tolist() == frame[CUSIP].tolist()
    assert back[IS_PARENT].tolist() == [True, False, True]


def test_parquet_round_trip_keeps_types_and_values():
    frame = published()

    back = pd.read_parquet(BytesIO(write_parquet(frame)))

    pd.testing.assert_frame_equal(back, frame[EXPECTED_COLUMNS].reset_index(drop=True))


def test_write_output_picks_the_format_by_suffix(tmp_path):
    frame = published()

    for name in ("out.xlsx", "out.CSV", "out.parquet"):
        write_output(frame, tmp_path / name)

    assert read_sheet((tmp_path / "out.xlsx").read_bytes())["A1"].value == RUN_ID
    assert (tmp_path / "out.CSV").read_bytes() == write_csv(frame)
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 3


def test_write_output_refuses_an_unknown_suffix(tmp_path):
    with pytest.raises(InvalidInput, match=r"unsupported suffix '\.txt' in out\.txt"):
        write_output(published(), tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


# -- template -----------------------------------------------------------------------------------

def test_template_has_the_input_headers_an_example_and_a_column_guide():
    book = openpyxl.load_workbook(BytesIO(template_workbook()))

    assert book.sheetnames == ["Colors", "Columns"]
    colors = book["Colors"]
    assert [c.value for c in colors[1]] == list(INPUT_COLUMNS)
    example = dict(zip(INPUT_COLUMNS, [c.value for c in colors[2]], strict=True))
    assert example[MESSAGE_ID] == MSG
    assert is_valid_cusip(example[CUSIP])
    assert example[RANK] == BIAS_RANK[example["BIAS"]]
    assert example[DATE] == dt.datetime(2026, 3, 13)

    guide = book["Columns"]
    assert [guide.cell(row=r, column=1).value for r in range(2, 20)] == list(INPUT_COLUMNS)
    table = {guide.cell(row=r, column=7).value: guide.cell(row=r, column=8).value
             for r in range(2, 2 + len(BIAS_RANK))}
    assert table == BIAS_RANK


def test_rows_beyond_a_sheets_limit_continue_on_numbered_sheets_in_order():
    colors = published()
    excluded = colors.iloc[:1].assign(**{EXCLUDED_BY: "No DZ"})
    data = write_xlsx(colors, extra_sheets={"Excluded": excluded}, sheet_rows=2)
    book = openpyxl.load_workbook(BytesIO(data))
    assert book.sheetnames == ["Colors (1 of 2)", "Colors (2 of 2)", "Excluded"]
    rows = {name: [[c.value for c in row] for row in book[name].iter_rows()]
            for name in book.sheetnames}
    header = rows["Colors (1 of 2)"][0]
    assert header == EXPECTED_COLUMNS
    assert rows["Colors (2 of 2)"][0] == header
    ids = header.index(COLOR_ID)
    assert [r[ids] for r in rows["Colors (1 of 2)"][1:]] == ["7-1", "7-2"]
    assert [r[ids] for r in rows["Colors (2 of 2)"][1:]] == ["7-3"]
    assert book["Colors (2 of 2)"].auto_filter.ref == f"A1:{get_column_letter(len(header))}2"
    assert book["Colors (2 of 2)"].freeze_panes == "A2"
    assert [r[ids] for r in rows["Excluded"][1:]] == ["7-1"]


def test_sheet_parts_name_the_sheets_of_a_long_frame():
    assert sheet_parts("Colors", 5, 5) == [("Colors", 0, 5)]
    assert sheet_parts("Colors", 0, 5) == [("Colors", 0, 0)]
    assert sheet_parts("Quarantined", 11, 5) == [
        ("Quarantined (1 of 3)", 0, 5), ("Quarantined (2 of 3)", 5, 10),
        ("Quarantined (3 of 3)", 10, 11)]
    assert sheet_parts("Colors", 2_097_151, 1_048_575)[-1] == ("Colors (3 of 3)", 2_097_150,
                                                                2_097_151)


def test_rows_rendered_ahead_arrive_in_order_and_a_rendering_error_reaches_the_writer():
    from core.runs.exports import _ahead

    def blocks(fail_at: int | None):
        for i in range(10):
            if i == fail_at:
                raise ValueError(f"block {i} cannot be rendered")
            yield memoryview(f"<row {i}/>".encode())

    assert b"".join(_ahead(blocks(None))) == b"".join(f"<row {i}/>".encode() for i in range(10))
    seen = []
    with pytest.raises(ValueError, match="block 7 cannot be rendered"):
        seen.extend(bytes(b) for b in _ahead(blocks(7)))
    assert seen == [f"<row {i}/>".encode() for i in range(7)]
