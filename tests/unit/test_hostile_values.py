"""Values are stored exactly as read or refused naming the cell, the same in CSV, xlsx and Parquet:
integer overflow, infinite prices, implausible dates, malformed CUSIPs, huge cells, Excel error
cells, and the CUSIPs Excel mangles (52406E472, a lost leading zero)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from core.access import SYSTEM, Actor
from core.config import load_settings
from core.errors import ConfigError, InvalidInput
from core.ingest.color_file import read_colors
from core.ingest.excel_errors import error_cells
from core.ingest.validation import Validated, validate_colors
from core.manual import edits, sessions
from core.runs import pipeline
from core.runs.exports import write_csv
from core.schema import CONFIDENCE, CUSIP, DATE, INPUT_COLUMNS, IS_PARENT, PX, TICKER
from tests.data.hostile.files_values import (
    E_FORM_CUSIP,
    ZERO_LOST,
    csv_file,
    files,
    parquet_file,
    row,
    xlsx_file,
)
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
TODAY = dt.date(2026, 3, 13)  # the plausible dates are 1990-01-01 to 2027-03-13
WINDOW = ("is outside the plausible dates 1990-01-01 to 2027-03-13 "
          "(validation.date_min, validation.date_max_years_ahead)")
TOO_LARGE = "is too large for a whole number (the limit is 9,223,372,036,854,775,807)"


def checked(name: str, data: bytes, settings=SETTINGS) -> Validated:
    return validate_colors(read_colors(data, name, settings=settings), settings, today=TODAY)


def problems(result: Validated, *, blocking_only: bool = False) -> list[tuple]:
    return [(p.row, p.column, p.code, p.message, p.blocking) for p in result.report.problems
            if p.blocking or not blocking_only]


# -- integers --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "data", "shown"), [
    ("overflow.csv", csv_file([row(CONFIDENCE="99999999999999999999"), row()]),
     "'99999999999999999999'"),
    ("overflow.xlsx", xlsx_file([row(CONFIDENCE=1e20), row()]), "100000000000000000000"),
    ("overflow.parquet", parquet_file({CONFIDENCE: pa.array([2**64 - 1, 10], pa.uint64())}),
     "18446744073709551615"),
])
def test_an_integer_too_large_for_its_type_quarantines_the_row_in_every_format(name, data, shown):
    result = checked(name, data)
    assert problems(result) == [
        (2, CONFIDENCE, "bad_number", f"row 2, column CONFIDENCE: {shown} {TOO_LARGE}", True)]
    assert result.valid[CONFIDENCE].tolist() == [10]


@pytest.mark.parametrize(("name", "data"), [
    ("big.csv", csv_file([row(CONFIDENCE="4611686018427387905")])),
    ("big.parquet", parquet_file({CONFIDENCE: pa.array([2**62 + 1], pa.int64())})),
])
def test_a_large_integer_that_fits_keeps_every_digit(name, data):
    result = checked(name, data)
    assert result.valid[CONFIDENCE].tolist() == [4611686018427387905]


# -- prices ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "data", "inf", "minus_inf"), [
    ("prices.csv", csv_file([row(PX=v) for v in ("inf", "-inf", "NaN", "99.5")]),
     "'inf'", "'-inf'"),
    ("prices.parquet", parquet_file({PX: pa.array([float("inf"), float("-inf"), float("nan"),
                                                   99.5])}), "inf", "-inf"),
])
def test_infinite_and_nan_prices_are_refused_in_parquet_as_in_csv(name, data, inf, minus_inf):
    result = checked(name, data)
    assert problems(result, blocking_only=True) == [
        (2, PX, "bad_number", f"row 2, column PX: {inf} is not a number", True),
        (3, PX, "bad_number", f"row 3, column PX: {minus_inf} is not a number", True),
        (4, PX, "missing_value", "row 4, column PX: value is missing", True),
    ]
    assert result.valid[PX].tolist() == [99.5]


# -- dates -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "data", "shown"), [
    ("far.xlsx", xlsx_file([row(DATE=dt.datetime(9999, 12, 31)), row()]), "9999-12-31"),
    ("far.csv", csv_file([row(DATE="1970-01-01"), row()]), "1970-01-01"),
    ("far.parquet", parquet_file({DATE: pa.array([dt.date(9999, 12, 31), dt.date(2026, 3, 13)],
                                                 pa.date32())}), "9999-12-31"),
    ("edge.csv", csv_file([row(DATE="2027-03-14"), row(DATE="2027-03-13")]), "2027-03-14"),
])
def test_a_date_outside_the_plausible_window_quarantines_the_row(name, data, shown):
    result = checked(name, data)
    assert problems(result) == [
        (2, DATE, "date_out_of_range", f"row 2, column DATE: {shown} {WINDOW}", True)]
    assert len(result.valid) == 1


def test_the_plausible_window_is_a_setting():
    wider = load_settings({"validation": {"date_min": "1960-01-01",
                                          "date_max_years_ahead": 10}}, {})
    data = csv_file([row(DATE="1970-01-01"), row(DATE="2036-03-13"), row(DATE="2036-03-14")])
    result = checked("wide.csv", data, wider)
    assert [p.message for p in result.report.problems] == [
        "row 4, column DATE: 2036-03-14 is outside the plausible dates 1960-01-01 to 2036-03-13 "
        "(validation.date_min, validation.date_max_years_ahead)"]


def test_a_date_min_that_is_not_a_date_names_the_setting():
    bad = load_settings({"validation": {"date_min": "01/01/1990"}}, {})
    with pytest.raises(ConfigError, match=r"validation\.date_min.*'01/01/1990' is not a date"):
        checked("a.csv", csv_file([row()]), bad)


def test_a_color_dated_9999_is_not_published_so_cannot_become_the_parent(memory_store):
    data = csv_file([row(DATE="9999-12-31", BIAS="TRADE CONFIRM", PX="101"),
                     row(DATE="2026-03-13", PX="99.5")])
    result = pipeline.process_files(memory_store, SYSTEM, [("far.csv", data)], settings=SETTINGS,
                                    rules=[], now=datetime(2026, 3, 13, 18, tzinfo=UTC))
    published = result.published
    assert published[[DATE, PX, IS_PARENT]].values.tolist() == [
        [pd.Timestamp("2026-03-13"), 99.5, True]]
    assert result.quarantined[DATE].tolist() == [pd.Timestamp("9999-12-31")]


# -- CUSIPs ----------------------------------------------------------------------------------------
MALFORMED = ["=1+1", "97988RBL", "97988RBL55", "9798ÉRBL5", "97988RBL５"]
MALFORMED_MESSAGES = [
    "row 2, column CUSIP: '=1+1' is not a valid CUSIP: it has 4 characters, not 9",
    "row 3, column CUSIP: '97988RBL' is not a valid CUSIP: it has 8 characters, not 9",
    "row 4, column CUSIP: '97988RBL55' is not a valid CUSIP: it has 10 characters, not 9",
    "row 5, column CUSIP: '9798ÉRBL5' is not a valid CUSIP: only letters A–Z, digits, *, @ and "
    "# are allowed",
    "row 6, column CUSIP: '97988RBL５' is not a valid CUSIP: only letters A–Z, digits, *, @ and "
    "# are allowed",
]


@pytest.mark.parametrize(("name", "data"), [
    ("cusips.csv", csv_file([row(CUSIP=c) for c in [*MALFORMED, "97988RBL5"]])),
    ("cusips.xlsx", xlsx_file([row(CUSIP=c) for c in [*MALFORMED, "97988RBL5"]])),
    ("cusips.parquet", parquet_file({CUSIP: pa.array([*MALFORMED, "97988RBL5"])})),
])
def test_a_cusip_not_nine_characters_of_the_cusip_alphabet_is_quarantined(name, data):
    result = checked(name, data)
    assert [(p.code, p.message, p.blocking) for p in result.report.problems] == [
        ("invalid_cusip", m, True) for m in MALFORMED_MESSAGES]
    assert result.valid[CUSIP].tolist() == ["97988RBL5"]
    assert result.quarantined[CUSIP].tolist() == [c.upper() for c in MALFORMED]


@pytest.mark.parametrize(("name", "data"), [
    ("e.csv", csv_file([row(CUSIP=E_FORM_CUSIP), row(CUSIP=" 52406e472 ", PX="98")])),
    ("e.xlsx", xlsx_file([row(CUSIP=E_FORM_CUSIP), row(CUSIP=" 52406e472 ", PX="98")])),
    ("e.parquet", parquet_file({CUSIP: pa.array([E_FORM_CUSIP, " 52406e472 "]),
                                PX: pa.array(["99.5", "98"])})),
])
def test_a_cusip_of_digits_around_an_e_is_kept_as_the_text_read(name, data):
    result = checked(name, data)
    assert result.report.problems == []
    assert result.valid[CUSIP].tolist() == [E_FORM_CUSIP, E_FORM_CUSIP]


@pytest.mark.parametrize(("name", "data"), [
    ("zero.csv", csv_file([row(CUSIP=ZERO_LOST), row(CUSIP="12345678"), row(CUSIP="7833100")])),
    ("zero.xlsx", xlsx_file([row(CUSIP=37833100), row(CUSIP=12345678), row(CUSIP="7833100")])),
    ("zero.parquet", parquet_file({CUSIP: pa.array([ZERO_LOST, "12345678", "7833100"])})),
])
def test_a_cusip_that_lost_its_leading_zero_is_repaired_with_a_warning(name, data):
    result = checked(name, data)
    assert problems(result) == [
        (2, CUSIP, "cusip_leading_zero", "row 2, column CUSIP: CUSIP 37833100 lost its leading "
         "zero (Excel); read as 037833100", False),
        (3, CUSIP, "invalid_cusip", "row 3, column CUSIP: '12345678' is not a valid CUSIP: it has "
         "8 characters, not 9", True),
        (4, CUSIP, "invalid_cusip", "row 4, column CUSIP: '7833100' is not a valid CUSIP: it has "
         "7 characters, not 9", True),
    ]
    assert result.valid[CUSIP].tolist() == ["037833100"]


def test_a_whole_number_cusip_column_in_parquet_gets_its_zeros_back():
    data = parquet_file({CUSIP: pa.array([37833100, 840], pa.int64())})
    result = checked("numbers.parquet", data)
    assert [p.message for p in result.report.problems] == [
        "row 2, column CUSIP: CUSIP 37833100 lost its leading zero (Excel); read as 037833100",
        "row 3, column CUSIP: '840' is not a valid CUSIP: it has 3 characters, not 9"]
    assert result.valid[CUSIP].tolist() == ["037833100"]


# -- cells -----------------------------------------------------------------------------------------
def test_a_cell_over_the_length_limit_is_refused_rather_than_cut_later():
    result = checked("huge.csv", csv_file([row(TICKER="A" * 40_000), row()]))
    assert problems(result) == [
        (2, TICKER, "cell_too_long", "row 2, column TICKER: the cell has 40,000 characters, over "
         "the 32,767 allowed (upload.max_cell_chars)", True)]
    assert result.valid[TICKER].tolist() == ["ARES 2025-78A A2"]


def test_the_cell_length_limit_is_a_setting_and_a_long_bad_number_is_not_quoted_whole():
    short = load_settings({"upload": {"max_cell_chars": 100}}, {})
    data = xlsx_file([row(TICKER="T" * 101), row(TICKER="T" * 100), row(PX="9" * 70 + "x")])
    result = checked("long.xlsx", data, short)
    assert [p.message for p in result.report.problems] == [
        "row 2, column TICKER: the cell has 101 characters, over the 100 allowed "
        "(upload.max_cell_chars)",
        f"row 4, column PX: '{'9' * 60}'… (71 characters) is not a number"]
    assert result.valid[TICKER].tolist() == ["T" * 100]


def test_the_cell_length_limit_counts_characters_not_bytes():
    """A cell of 100 'é' is 200 bytes and within a 100-character limit; 101 are not."""
    short = load_settings({"upload": {"max_cell_chars": 100}}, {})
    result = checked("accents.csv", csv_file([row(TICKER="é" * 101), row(TICKER="é" * 100)]), short)
    assert [p.message for p in result.report.problems] == [
        "row 2, column TICKER: the cell has 101 characters, over the 100 allowed "
        "(upload.max_cell_chars)"]
    assert result.valid[TICKER].tolist() == ["é" * 100]


@pytest.mark.parametrize(("name", "data"), [
    ("errors.xlsx", xlsx_file([row(PX=("=1/0", "#DIV/0!")), row(TICKER=("=NA()", "#N/A"))])),
    ("errors.csv", csv_file([row(PX="#DIV/0!"), row(TICKER="#N/A")])),
])
def test_excel_error_cells_are_blank_with_a_warning_naming_the_cell(name, data):
    result = checked(name, data)
    assert problems(result) == [
        (2, PX, "excel_error", "row 2, column PX: '#DIV/0!' is an Excel error; read as blank",
         False),
        (2, PX, "missing_value", "row 2, column PX: value is missing", True),
        (3, TICKER, "excel_error", "row 3, column TICKER: '#N/A' is an Excel error; read as blank",
         False),
    ]
    assert result.valid[TICKER].isna().tolist() == [True]


def test_the_error_cells_of_an_xlsx_sheet_are_found_in_its_xml():
    data = xlsx_file([row(PX=("=1/0", "#DIV/0!")), row(TICKER=("=NA()", "#N/A"), PX=("=1", 1))])
    assert error_cells(data, "Colors") == {(2, 5): "#DIV/0!", (3, 1): "#N/A"}
    assert error_cells(data, "Other") == {}


def test_every_hostile_value_file_reads_and_reports_its_fragment():
    for name, data, refused, fragment in files():
        assert not refused
        report = checked(name, data).report
        assert fragment in "\n".join(p.message for p in report.problems), name


# -- the Manual Color edit path --------------------------------------------------------------------
ANN = Actor("ann", "analyst")


def test_editing_a_cusip_cell_normalises_and_validates_it_like_ingest(memory_store):
    now = datetime(2026, 3, 13, 9, tzinfo=UTC)
    sessions.open_session(memory_store, ANN, SETTINGS, now)
    frame = make_colors(1, DATE=["2026-03-13"])[list(INPUT_COLUMNS)]
    session = sessions.add_files(memory_store, ANN, [("a.csv", write_csv(frame))], SETTINGS)
    color_id = f"{session.token}-1"
    with pytest.raises(InvalidInput, match=r"'=1\+1' is not a valid CUSIP: it has 4 characters"):
        edits.edit_cell(memory_store, ANN, color_id, CUSIP, "=1+1", settings=SETTINGS)
    for typed, stored in ((f" {ZERO_LOST} ", "037833100"), ("52406e472", E_FORM_CUSIP)):
        edits.edit_cell(memory_store, ANN, color_id, CUSIP, typed, settings=SETTINGS)
        view = sessions.preview(memory_store, ANN, SETTINGS)
        assert view.ranked[CUSIP].tolist() == [stored]
