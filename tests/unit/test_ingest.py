"""Reading color files: formats, header detection, coercion, derived fields, whole-file problems."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import xlsxwriter

from core.config import load_settings
from core.errors import MissingColumns, UnreadableFile
from core.ingest.color_file import RawBatch, derive_fields, read_colors, read_many
from core.ingest.readers import ENCRYPTED, NOT_COLORS, NOT_READABLE
from core.ingest.validation import Problem, validate_colors
from core.schema import (
    BIAS,
    CUSIP,
    DATE,
    DATE_1,
    DIFF_STATUS,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    RANK,
    SIGNIFICANT,
    SMALL,
    SOURCE,
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_SHEET,
    ColumnSpec,
    default_column_config,
)
from tests.factories import SAMPLE, make_colors

HEADER = ["MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "DATE", "PX", "SOURCE", "BIAS"]
BOOKKEEPING = [SOURCE_FILE, SOURCE_SHEET, SOURCE_ROW]
MARCH_13 = pd.Timestamp("2026-03-13")


def color_row(**overrides: Any) -> list[Any]:
    """One row under HEADER: a valid BID color unless overridden."""
    values = {"MESSAGE_ID": "17734072432755618", "TICKER": "ARES 2025-78A A2",
              "SECTOR": "2.0_Mezz", "CUSIP": "97988RBL5", "DATE": "2026-03-13", "PX": "99.5",
              "SOURCE": "JPM", "BIAS": "BID"} | overrides
    return [values[h] for h in HEADER]


def write_xlsx(path: Path, rows: list[list[Any]], *, sheet: str = "Colors",
               before: list[tuple[str, list[list[Any]]]] = ()) -> bytes:
    """A workbook whose sheet `sheet` holds rows (from A1); `before` adds sheets in front.
    Python numbers are written as numbers, datetimes as dates, None as an empty cell."""
    book = xlsxwriter.Workbook(str(path))
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    for name, sheet_rows in [*before, (sheet, rows)]:
        ws = book.add_worksheet(name)
        for r, row in enumerate(sheet_rows):
            for c, value in enumerate(row):
                if isinstance(value, dt.datetime):
                    ws.write_datetime(r, c, value, date_format)
                elif isinstance(value, str):
                    ws.write_string(r, c, value)
                elif value is not None:
                    ws.write(r, c, value)
    book.close()
    return path.read_bytes()


def write_csv(path: Path, rows: list[list[Any]], *, delimiter: str = ",",
              encoding: str = "utf-8") -> bytes:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path.read_bytes()


def read(path: Path, data: bytes, **kwargs: Any) -> RawBatch:
    return read_colors(data, path.name, **kwargs)


# -- headers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("message_header", ["Message Id", "msg_id", "message-id", "MESSAGE_ID"])
def test_messy_headers_map_to_canonical_columns(tmp_path, message_header):
    path = tmp_path / "messy.xlsx"
    header = [message_header, "ticker", "Sector", " Cusip ", "date", "Px", "source", "Bias",
              "Date Received", "Trader Notes"]
    data = write_xlsx(path, [header, [*color_row(), "2026-03-12", "call back"]])
    batch = read(path, data)
    assert list(batch.frame.columns) == [*INPUT_COLUMNS, *BOOKKEEPING]
    row = batch.frame.iloc[0]
    assert row[MESSAGE_ID] == "17734072432755618"
    assert row[CUSIP] == "97988RBL5"
    assert row[DATE_1] == pd.Timestamp("2026-03-12")
    assert (row[SOURCE_FILE], row[SOURCE_SHEET], row[SOURCE_ROW]) == ("messy.xlsx", "Colors", 2)
    assert batch.problems == []
    assert (batch.file, batch.sheet) == ("messy.xlsx", "Colors")


def test_dtypes_are_the_canonical_ones(tmp_path):
    path = tmp_path / "c.csv"
    batch = read(path, write_csv(path, [HEADER, color_row()]))
    assert {c: str(t) for c, t in batch.frame.dtypes.items()} == {
        "MESSAGE_ID": "string", "TICKER": "string", "SECTOR": "string", "CUSIP": "string",
        "DATE": "datetime64[us]", "PRICE_LEVEL": "Float64", "BID": "Float64", "ASK": "Float64",
        "PX": "Float64", "SOURCE": "string", "BIAS": "string", "RANK": "Int64",
        "COV_PRICE": "Float64", "PERCENT_DIFF": "Float64", "PRICE_DIFF": "Float64",
        "CONFIDENCE": "Int64", "DATE_1": "datetime64[us]", "DIFF_STATUS": "string",
        "SOURCE_FILE": "string", "SOURCE_SHEET": "string", "SOURCE_ROW": "Int64",
    }


def test_title_rows_above_the_header_are_skipped_and_rows_keep_excel_numbers(tmp_path):
    path = tmp_path / "titled.xlsx"
    rows = [["Daily colors 13-Mar-2026"], [], HEADER, color_row(), [], color_row(PX="abc")]
    batch = read(path, write_xlsx(path, rows))
    assert batch.frame[SOURCE_ROW].tolist() == [4, 6]
    assert batch.problems == [Problem(
        "titled.xlsx", "Colors", 6, PX, "bad_number", "row 6, column PX: 'abc' is not a number",
        True)]


def test_title_row_above_a_csv_header(tmp_path):
    path = tmp_path / "titled.csv"
    data = write_csv(path, [["Colors for 13-Mar"], [], HEADER, color_row(), color_row()])
    batch = read(path, data)
    assert batch.frame[SOURCE_ROW].tolist() == [4, 5]
    assert batch.sheet is None


def test_the_first_sheet_with_a_header_is_read(tmp_path):
    path = tmp_path / "book.xlsx"
    data = write_xlsx(path, [HEADER, color_row()], sheet="Colors",
                      before=[("Notes", [["prepared by the desk"]])])
    batch = read(path, data)
    assert batch.sheet == "Colors"
    assert batch.frame[SOURCE_SHEET].tolist() == ["Colors"]


def test_unknown_columns_are_dropped_and_custom_columns_carried(tmp_path):
    path = tmp_path / "custom.csv"
    data = write_csv(path, [[*HEADER, "Desk Note", "Region"], [*color_row(), "watch", "US"]])
    columns = [*default_column_config(),
               ColumnSpec("DESK_NOTE", custom=True, aliases=["Desk Note"]),
               ColumnSpec("LOT_SIZE", type="number", custom=True)]
    batch = read(path, data, columns=columns)
    assert list(batch.frame.columns) == [*INPUT_COLUMNS, "DESK_NOTE", "LOT_SIZE", *BOOKKEEPING]
    assert batch.frame["DESK_NOTE"].tolist() == ["watch"]
    assert batch.frame["LOT_SIZE"].isna().tolist() == [True]
    assert str(batch.frame["LOT_SIZE"].dtype) == "Float64"


def test_two_headers_naming_one_column_keep_the_first_and_warn(tmp_path):
    path = tmp_path / "twice.csv"
    batch = read(path, write_csv(path, [[*HEADER, "Px Last"], [*color_row(), "12"]]))
    assert batch.frame[PX].tolist() == [99.5]
    assert batch.problems == [Problem(
        "twice.csv", None, None, PX, "duplicate_column",
        "column PX: headers 'PX' and 'Px Last' both name this column; the first one is used",
        False)]


# -- coercion ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["2026-03-13", "03/13/2026", "3/13/2026", "13-Mar-2026",
                                  "13-MAR-26", "2026/03/13", "2026-03-13 00:00:00",
                                  "20260313"])
def test_text_dates_in_each_format(tmp_path, text):
    path = tmp_path / "dates.csv"
    batch = read(path, write_csv(path, [HEADER, color_row(DATE=text)]))
    assert batch.frame[DATE].tolist() == [MARCH_13]
    assert batch.problems == []


def test_excel_dates_serials_and_datetimes_become_midnight_dates(tmp_path):
    path = tmp_path / "dates.xlsx"
    rows = [HEADER, color_row(DATE=dt.datetime(2026, 3, 13, 14, 30)),
            color_row(DATE=46094), color_row(DATE=46094.75), color_row(DATE="13-Mar-2026")]
    batch = read(path, write_xlsx(path, rows))
    assert batch.frame[DATE].tolist() == [MARCH_13] * 4


def test_unparseable_date_is_blank_with_a_blocking_problem(tmp_path):
    path = tmp_path / "dates.csv"
    batch = read(path, write_csv(path, [HEADER, color_row(), color_row(DATE="13/03/2026")]))
    assert batch.frame[DATE].isna().tolist() == [False, True]
    assert batch.problems == [Problem(
        "dates.csv", None, 3, DATE, "bad_date",
        "row 3, column DATE: '13/03/2026' is not a date (use 2026-03-13, 03/13/2026, "
        "13-Mar-2026 or 2026/03/13)", True)]


def test_numbers_accept_thousands_separators_spaces_and_blanks(tmp_path):
    path = tmp_path / "numbers.csv"
    header = [*HEADER, "BID", "ASK", "COV_PRICE"]
    rows = [header, [*color_row(PX="1,234.5"), " 99.5 ", "", "N/A"]]
    frame = read(path, write_csv(path, rows)).frame
    assert frame[PX].tolist() == [1234.5]
    assert frame["BID"].tolist() == [99.5]
    assert frame[["ASK", "COV_PRICE"]].isna().to_numpy().tolist() == [[True, True]]


def test_a_bad_number_stays_blank_and_is_not_derived_from_bid(tmp_path):
    path = tmp_path / "bad.csv"
    data = write_csv(path, [[*HEADER, "BID", "ASK"], [*color_row(PX="abc"), "98", "99"]])
    batch = read(path, data)
    assert batch.frame[PX].isna().tolist() == [True]
    assert [p.message for p in batch.problems] == ["row 2, column PX: 'abc' is not a number"]


def test_text_is_trimmed_and_cusip_and_bias_normalised(tmp_path):
    path = tmp_path / "text.csv"
    rows = [HEADER, color_row(CUSIP=" 97988rbl5 ", SOURCE=" JPM ", BIAS="market"),
            color_row(BIAS="  bwic   talk "), color_row(BIAS="Buyer")]
    frame = read(path, write_csv(path, rows)).frame
    assert frame[CUSIP].tolist() == ["97988RBL5"] * 3
    assert frame[SOURCE].tolist() == ["JPM"] * 3
    assert frame[BIAS].tolist() == ["BID", "BWIC TALK", "BID"]
    assert frame[RANK].tolist() == [3, 5, 3]


def test_a_cusip_stored_as_a_number_gets_its_leading_zero_back(tmp_path):
    path = tmp_path / "cusip.xlsx"
    batch = read(path, write_xlsx(path, [HEADER, color_row(CUSIP=37833100)]))
    assert batch.frame[CUSIP].tolist() == ["037833100"]
    assert [(p.code, p.message, p.blocking) for p in batch.problems] == [
        ("cusip_leading_zero", "row 2, column CUSIP: CUSIP 37833100 lost its leading zero "
         "(Excel); read as 037833100", False)]


# -- MESSAGE_ID ----------------------------------------------------------------------------------

def test_message_id_text_is_kept_exact_and_a_number_is_flagged(tmp_path):
    path = tmp_path / "ids.xlsx"
    rows = [HEADER, color_row(MESSAGE_ID="17734072432755618"),
            color_row(MESSAGE_ID=17734072432755618), color_row(MESSAGE_ID=101)]
    batch = read(path, write_xlsx(path, rows))
    # Like Excel, the writer keeps 16 significant digits: the number comes back rounded.
    assert batch.frame[MESSAGE_ID].tolist() == ["17734072432755618", "17734072432755620", "101"]
    assert batch.problems == [Problem(
        "ids.xlsx", "Colors", 3, MESSAGE_ID, "message_id_rounded",
        "row 3, column MESSAGE_ID: 17734072432755620 was stored as a number, so digits after "
        "the 15th may be wrong; store MESSAGE_ID as text in the source", False)]


def test_message_id_in_scientific_notation_or_float_text_never_stays_float_text(tmp_path):
    path = tmp_path / "ids.csv"
    rows = [HEADER, color_row(MESSAGE_ID="1.7734E+16"), color_row(MESSAGE_ID="123.0"),
            color_row(MESSAGE_ID="17679633591029710.0")]
    batch = read(path, write_csv(path, rows))
    assert batch.frame[MESSAGE_ID].tolist() == ["17734000000000000", "123", "17679633591029710"]
    assert [(p.row, p.code, p.blocking) for p in batch.problems] == [
        (2, "message_id_rounded", False), (4, "message_id_rounded", False)]
    assert batch.problems[0].message == (
        "row 2, column MESSAGE_ID: '1.7734E+16' is in scientific notation, so the original "
        "digits are lost; store MESSAGE_ID as text in the source")


# -- formats -------------------------------------------------------------------------------------

def test_csv_with_semicolons_in_cp1252(tmp_path):
    path = tmp_path / "euro.csv"
    data = write_csv(path, [HEADER, color_row(SOURCE="SOCIÉTÉ GÉNÉRALE", PX="1,099.5")],
                     delimiter=";", encoding="cp1252")
    frame = read(path, data).frame
    assert frame[SOURCE].tolist() == ["SOCIÉTÉ GÉNÉRALE"]
    assert frame[PX].tolist() == [1099.5]


def test_a_decimal_comma_is_not_guessed(tmp_path):
    path = tmp_path / "euro.csv"
    data = write_csv(path, [HEADER, color_row(PX="99,5")], delimiter=";")
    batch = read(path, data)
    assert batch.frame[PX].isna().tolist() == [True]
    assert [p.message for p in batch.problems] == ["row 2, column PX: '99,5' is not a number"]


@pytest.mark.parametrize("delimiter", ["\t", "|", ","])
def test_csv_delimiters_are_sniffed(tmp_path, delimiter):
    path = tmp_path / "colors.csv"
    data = write_csv(path, [HEADER, color_row(TICKER="A, B; C"), color_row()],
                     delimiter=delimiter, encoding="utf-8-sig")
    frame = read(path, data).frame
    assert frame["TICKER"].tolist() == ["A, B; C", "ARES 2025-78A A2"]


def test_ragged_csv_rows_are_read(tmp_path):
    path = tmp_path / "ragged.csv"
    body = ",".join(HEADER) + "\n" + ",".join(color_row()) + ",\n" + ",".join(color_row()[:6])
    batch = read(path, (body + "\n").encode())
    assert batch.frame[SOURCE_ROW].tolist() == [2, 3]
    assert batch.frame[SOURCE].isna().tolist() == [False, True]


def test_a_csv_whose_rows_all_stop_before_the_last_columns_is_read(tmp_path):
    path = tmp_path / "short.csv"
    body = ",".join(HEADER) + "\n" + "\n".join(",".join(color_row()[:6]) for _ in range(2))
    batch = read(path, (body + "\n").encode())
    assert batch.frame[SOURCE_ROW].tolist() == [2, 3]
    assert batch.frame[PX].tolist() == [float(color_row()[5])] * 2
    assert batch.frame[SOURCE].isna().tolist() == [True, True]


def test_parquet_keeps_integer_message_ids_exact(tmp_path):
    path = tmp_path / "colors.parquet"
    frame = pd.DataFrame([color_row()], columns=HEADER)
    frame[MESSAGE_ID] = [17734072432755618]
    frame[DATE] = pd.to_datetime(frame[DATE])
    frame[PX] = frame[PX].astype(float)
    frame.to_parquet(path)
    batch = read(path, path.read_bytes())
    assert batch.frame[MESSAGE_ID].tolist() == ["17734072432755618"]
    assert batch.frame[DATE].tolist() == [MARCH_13]
    assert batch.frame[SOURCE_ROW].tolist() == [2]
    assert batch.problems == []


def test_read_many_reads_each_file(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    files = [("a.csv", write_csv(a, [HEADER, color_row()])),
             ("b.csv", write_csv(b, [HEADER, color_row(), color_row()]))]
    assert [(x.file, len(x.frame)) for x in read_many(files)] == [("a.csv", 1), ("b.csv", 2)]


# -- derived fields ------------------------------------------------------------------------------

def test_blank_px_rank_and_price_level_are_derived(tmp_path):
    path = tmp_path / "derive.csv"
    header = [*HEADER, "BID", "ASK", "RANK", "PRICE_LEVEL"]
    rows = [header,
            [*color_row(PX=""), "98.5", "99.25", "", ""],
            [*color_row(PX="", BIAS="OFFER"), "0", "99.25", "", ""],
            [*color_row(PX="97", BIAS="VALUATION"), "", "", "2", "96"]]
    frame = read(path, write_csv(path, rows)).frame
    assert frame[PX].tolist() == [98.5, 99.25, 97.0]
    assert frame[PRICE_LEVEL].tolist() == [98.5, 99.25, 96.0]
    assert frame[RANK].tolist() == [3, 4, 2]  # a given RANK is kept
    assert frame["BID"].isna().tolist() == [False, False, True]  # blank BID stays blank


def test_percent_diff_and_diff_status_use_both_thresholds():
    frame = make_colors(
        SECTOR=["2.0_Mezz", "2.0_Mezz", "US_Equity_2.0", "US_Equity_2.0", "US_MM_Equity_2.0",
                "2.0_Mezz", "2.0_Mezz"],
        PX=[103.0, 101.0, 104.0, 106.0, 105.5, 99.0, 99.0],
        COV_PRICE=[100.0, 100.0, 100.0, 100.0, 100.0, None, 0.0],
    )
    derived = derive_fields(frame, load_settings({}, {}))
    assert derived[PERCENT_DIFF].tolist()[:5] == [3.0, 1.0, 4.0, 6.0, 5.5]
    assert derived[PERCENT_DIFF].isna().tolist()[5:] == [True, True]
    assert derived[PRICE_DIFF].tolist()[:5] == [3.0, 1.0, 4.0, 6.0, 5.5]
    assert derived[DIFF_STATUS].tolist() == [
        SIGNIFICANT, SMALL, SMALL, SIGNIFICANT, SIGNIFICANT, SMALL, SMALL]


def test_percent_diff_rounds_to_two_places_and_price_diff_has_no_float_noise():
    derived = derive_fields(make_colors(PX=[101.7], COV_PRICE=[102.2]))
    assert derived[PERCENT_DIFF].tolist() == [0.49]
    assert derived[PRICE_DIFF].tolist() == [-0.5]


def test_given_derived_values_are_never_changed_and_thresholds_are_settings():
    frame = make_colors(PX=[103.0, 103.0], COV_PRICE=[100.0, 100.0],
                        PERCENT_DIFF=[None, 1.5], DIFF_STATUS=[None, "Significant Difference"])
    settings = load_settings({"diff": {"threshold_pct": 4.0}}, {})
    derived = derive_fields(frame, settings)
    assert derived[PERCENT_DIFF].tolist() == [3.0, 1.5]
    assert derived[DIFF_STATUS].tolist() == [SMALL, SIGNIFICANT]
    pd.testing.assert_frame_equal(frame, make_colors(
        PX=[103.0, 103.0], COV_PRICE=[100.0, 100.0], PERCENT_DIFF=[None, 1.5],
        DIFF_STATUS=[None, "Significant Difference"]))  # the input frame is not modified


# -- whole-file problems -------------------------------------------------------------------------

def test_random_bytes_named_xlsx_are_unreadable():
    with pytest.raises(UnreadableFile) as caught:
        read_colors(bytes(range(256)) * 4, "junk.xlsx")
    assert str(caught.value) == f"junk.xlsx: {NOT_READABLE}"


def test_a_corrupt_zip_named_xlsx_is_unreadable():
    with pytest.raises(UnreadableFile) as caught:
        read_colors(b"PK\x03\x04" + b"\x00garbage" * 50, "broken.xlsx")
    assert str(caught.value) == f"broken.xlsx: {NOT_READABLE}"


def test_a_password_protected_workbook_says_remove_the_password():
    fake = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504 + "EncryptedPackage".encode(
        "utf-16-le") + b"\x00" * 64
    with pytest.raises(UnreadableFile) as caught:
        read_colors(fake, "locked.xlsx")
    assert str(caught.value) == f"locked.xlsx: {ENCRYPTED}"
    assert "remove the password and upload again" in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"  \r\n\n"])
def test_an_empty_file_is_unreadable(tmp_path, content):
    with pytest.raises(UnreadableFile) as caught:
        read_colors(content, "empty.csv")
    assert str(caught.value) == (
        "empty.csv: the file is empty; export the colors again and upload the new file")


def test_an_empty_workbook_is_unreadable(tmp_path):
    path = tmp_path / "blank.xlsx"
    with pytest.raises(UnreadableFile) as caught:
        read(path, write_xlsx(path, []))
    assert str(caught.value) == (
        "blank.xlsx: the file is empty; export the colors again and upload the new file")


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_header_without_data_rows_is_unreadable(tmp_path, suffix):
    path = tmp_path / f"header-only.{suffix}"
    data = write_csv(path, [HEADER]) if suffix == "csv" else write_xlsx(path, [HEADER, []])
    with pytest.raises(UnreadableFile) as caught:
        read(path, data)
    sheet = ", sheet 'Colors'" if suffix == "xlsx" else ""
    assert str(caught.value) == (
        f"header-only.{suffix}{sheet}: the header is on row 1 but there are no data rows below "
        "it; add the colors and upload again")


def test_a_missing_cusip_column_names_it_and_the_headers_found(tmp_path):
    path = tmp_path / "no-cusip.csv"
    header = [h for h in HEADER if h != "CUSIP"]
    with pytest.raises(MissingColumns) as caught:
        read(path, write_csv(path, [header, color_row()[:len(header)]]))
    assert caught.value.missing == ["CUSIP"]
    assert str(caught.value) == (
        "no-cusip.csv: required column(s) missing: CUSIP. Headers found: MESSAGE_ID, TICKER, "
        "SECTOR, DATE, PX, SOURCE, BIAS. Rename the headers or add an alias under Settings → "
        "Columns.")


def test_px_and_rank_columns_may_be_absent_when_derivable(tmp_path):
    path = tmp_path / "derivable.csv"
    header = [h for h in HEADER if h != "PX"] + ["BID", "ASK"]
    row = [v for h, v in zip(HEADER, color_row(), strict=True) if h != "PX"] + ["0", "99"]
    frame = read(path, write_csv(path, [header, row])).frame
    assert frame[PX].tolist() == [99.0]


def test_px_without_bid_and_ask_is_missing(tmp_path):
    path = tmp_path / "no-px.csv"
    header = [h for h in HEADER if h != "PX"] + ["BID"]
    with pytest.raises(MissingColumns) as caught:
        read(path, write_csv(path, [header, ["x"] * len(header)]))
    assert caught.value.missing == ["PRICE_LEVEL", "PX"]


def test_an_unrelated_table_does_not_look_like_a_color_file(tmp_path):
    path = tmp_path / "contacts.xlsx"
    rows = [["Name", "Address", "City", "Phone"], ["Ann Lee", "1 Main St", "Boston", "555-0100"]]
    with pytest.raises(UnreadableFile) as caught:
        read(path, write_xlsx(path, rows, sheet="People"))
    assert str(caught.value) == f"contacts.xlsx: {NOT_COLORS}"  # no sheet had one
    assert "expected headers such as CUSIP, BIAS, PX" in str(caught.value)


def test_too_few_known_headers_is_no_header_row(tmp_path):
    path = tmp_path / "thin.csv"
    with pytest.raises(UnreadableFile) as caught:
        read(path, write_csv(path, [["Name", "Cusip", "Px"], ["x", "97988RBL5", "99"]]))
    assert str(caught.value) == (
        "thin.csv: no header row found: the best candidate, row 1, names only 2 known column(s) "
        "(CUSIP, PX); put a header row naming at least 3 columns (e.g. CUSIP, BIAS, PX) in the "
        "first 20 rows")


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    settings = load_settings({"upload": {"max_mb": 1}}, {})
    with pytest.raises(UnreadableFile) as caught:
        read_colors(b"x" * (1024 * 1024 + 1), "huge.csv", settings=settings)
    assert str(caught.value) == (
        "huge.csv: the file is 1.0 MB, over the 1 MB limit (upload.max_mb); split it or ask an "
        "admin to raise the limit")


# -- the real sample -----------------------------------------------------------------------------

def test_the_shared_sample_reads_fifty_rows_without_blocking_problems():
    batch = read_colors(SAMPLE.read_bytes(), SAMPLE.name)
    assert len(batch.frame) == 50
    assert batch.frame[CUSIP].nunique() == 10
    assert batch.frame[SOURCE_ROW].tolist() == list(range(2, 52))
    assert {p.code for p in batch.problems} == {"message_id_rounded"}  # stored as Excel numbers
    assert not [p for p in batch.problems if p.blocking]
    assert batch.frame[MESSAGE_ID].str.fullmatch(r"\d{17}").all()
    validated = validate_colors(batch, load_settings({}, {}))
    assert (len(validated.valid), len(validated.quarantined)) == (50, 0)
    assert validated.report.blocking == []
