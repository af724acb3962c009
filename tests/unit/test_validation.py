"""Validation: blocking problems quarantine rows with reasons, warnings only report, the score."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from core.config import load_settings
from core.ingest.color_file import read_colors
from core.ingest.cusips import cusip_problem, cusip_problems
from core.ingest.row_checks import REQUIRED_VALUES
from core.ingest.validation import Problem, ValidationReport, validate_colors
from core.schema import (
    BIAS,
    CONFIDENCE,
    COV_PRICE,
    CUSIP,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PX,
    QUARANTINE_REASON,
    RANK,
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_SHEET,
)
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
HEADER = ["MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "DATE", "PX", "SOURCE", "BIAS"]
ROW = ["17734072432755618", "ARES 2025-78A A2", "2.0_Mezz", "97988RBL5", "2026-03-13", "99.5",
       "JPM", "BID"]


def csv_bytes(tmp_path: Path, rows: list[list[str]]) -> bytes:
    path = tmp_path / "colors.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path.read_bytes()


def messages(frame_or_report) -> list[str]:
    return [p.message for p in frame_or_report.problems]


# -- blocking problems quarantine the row --------------------------------------------------------

def test_a_bad_px_on_the_third_data_row_is_reported_on_excel_row_4(tmp_path):
    rows = [[str(i), *ROW[1:]] for i in range(4)]
    rows[2][5] = "abc"
    batch = read_colors(csv_bytes(tmp_path, [HEADER, *rows]), "colors.csv")
    result = validate_colors(batch, SETTINGS)
    assert result.report.problems == [Problem(
        "colors.csv", None, 4, PX, "bad_number", "row 4, column PX: 'abc' is not a number", True)]
    assert result.quarantined[SOURCE_ROW].tolist() == [4]
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        "row 4, column PX: 'abc' is not a number"]
    assert result.valid[SOURCE_ROW].tolist() == [2, 3, 5]


def test_a_bad_date_quarantines_the_row_once(tmp_path):
    bad = [*ROW[:4], "31/02/2026", *ROW[5:]]
    batch = read_colors(csv_bytes(tmp_path, [HEADER, bad]), "colors.csv")
    result = validate_colors(batch, SETTINGS)
    assert [p.code for p in result.report.problems] == ["bad_date"]  # not also "missing"
    assert len(result.quarantined) == 1


@pytest.mark.parametrize("column", REQUIRED_VALUES)
def test_a_missing_required_value_quarantines_the_row(column):
    frame = make_colors(3)
    frame.loc[1, column] = pd.NA
    result = validate_colors(frame, SETTINGS)
    reason = f"row 3, column {column}: value is missing"
    assert result.quarantined[QUARANTINE_REASON].tolist() == [reason]
    assert result.quarantined[MESSAGE_ID].isna().tolist() == [column == MESSAGE_ID]
    assert len(result.valid) == 2


def test_a_blank_ticker_is_allowed():
    frame = make_colors(TICKER=[None, ""])
    assert validate_colors(frame, SETTINGS).report.problems == []


def test_a_whitespace_cusip_is_empty_and_quarantined():
    result = validate_colors(make_colors(CUSIP=["   ", "97988RBL5"]), SETTINGS)
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        "row 2, column CUSIP: value is missing"]


def test_an_unknown_bias_with_blank_rank_is_quarantined_but_with_a_rank_only_warned():
    frame = make_colors(BIAS=["FOO", "FOO", "BID"], RANK=[None, 3, 3])
    result = validate_colors(frame, SETTINGS)
    assert [(p.row, p.code, p.blocking) for p in result.report.problems] == [
        (2, "unknown_bias", True), (3, "unknown_bias", False)]
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        "row 2, column BIAS: 'FOO' is not a known BIAS and RANK is blank"]
    assert result.valid[BIAS].tolist() == ["FOO", "BID"]


@pytest.mark.parametrize("rank", [0, 7])
def test_a_rank_outside_one_to_six_is_quarantined(rank):
    result = validate_colors(make_colors(RANK=[rank, 3]), SETTINGS)
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        f"row 2, column {RANK}: {rank} is outside 1–6"]


def test_several_reasons_are_joined():
    frame = make_colors(PX=[None], RANK=[9])
    result = validate_colors(frame, SETTINGS)
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        "row 2, column PX: value is missing; row 2, column RANK: 9 is outside 1–6"]


def test_cusip_check_digit_warns_by_default_and_blocks_when_set():
    frame = make_colors(CUSIP=["97988RBL4", "97988RBL5"])
    warned = validate_colors(frame, SETTINGS)
    assert messages(warned.report) == [
        "row 2, column CUSIP: '97988RBL4' fails the CUSIP check digit (expected 5)",
    ]
    assert (len(warned.valid), len(warned.quarantined)) == (2, 0)
    strict = load_settings({"validation": {"cusip_check_blocking": True}}, {})
    blocked = validate_colors(frame, strict)
    assert blocked.quarantined[CUSIP].tolist() == ["97988RBL4"]


def test_a_cusip_of_the_wrong_shape_is_quarantined_whatever_the_check_digit_setting():
    frame = make_colors(CUSIP=["ABC", "97988RBL5"])
    result = validate_colors(frame, SETTINGS)
    assert result.quarantined[QUARANTINE_REASON].tolist() == [
        "row 2, column CUSIP: 'ABC' is not a valid CUSIP: it has 3 characters, not 9"]
    assert result.valid[CUSIP].tolist() == ["97988RBL5"]


# -- warnings keep the row -----------------------------------------------------------------------

def test_warnings_do_not_quarantine():
    frame = make_colors(PX=[150.0, 5.0, 99.0], CONFIDENCE=[10, 11, 10])
    result = validate_colors(frame, SETTINGS)
    assert messages(result.report) == [
        "row 2, column PX: 150.0 is outside 10.0–130.0",
        "row 3, column CONFIDENCE: 11 is outside 0–10",
        "row 3, column PX: 5.0 is outside 10.0–130.0",
    ]
    assert result.report.blocking == []
    assert result.quarantined.empty
    pd.testing.assert_frame_equal(result.valid, frame)


def test_px_range_is_a_setting():
    settings = load_settings({"validation": {"px_min": 1.0, "px_max": 200.0}}, {})
    assert validate_colors(make_colors(PX=[150.0, 5.0]), settings).report.problems == []


def test_exact_duplicates_warn_but_coverage_repeats_do_not():
    frame = make_colors(MESSAGE_ID=["1", "1", "1", "2"], CUSIP=["97988RBL5"] * 4,
                        TICKER=["WDMNT 2022-9A ER"] * 4, PX=[99.0] * 4,
                        COV_PRICE=[98.0, 98.0, 97.5, 98.0])
    result = validate_colors(frame, SETTINGS)
    assert result.report.problems == [Problem(
        "", None, 3, None, "duplicate_row", "row 3: exact duplicate of row 2", False)]
    assert len(result.valid) == 4


def test_a_rounded_message_id_in_a_frame_is_a_warning():
    frame = make_colors(MESSAGE_ID=["1.7734E+16", "17734072432755618"])
    result = validate_colors(frame, SETTINGS)
    assert [(p.row, p.code, p.blocking) for p in result.report.problems] == [
        (2, "message_id_rounded", False)]
    assert result.valid[MESSAGE_ID].tolist() == ["17734000000000000", "17734072432755618"]


# -- frames --------------------------------------------------------------------------------------

def test_valid_rows_of_a_clean_file_are_the_read_frame_untouched(tmp_path):
    batch = read_colors(csv_bytes(tmp_path, [HEADER, ROW, [*ROW[:3], "000840AG3", *ROW[4:]]]),
                        "colors.csv")
    result = validate_colors(batch, SETTINGS)
    pd.testing.assert_frame_equal(result.valid, batch.frame)
    assert list(result.quarantined.columns) == [*batch.frame.columns, QUARANTINE_REASON]


def test_an_edited_frame_with_text_cells_is_coerced_and_checked():
    frame = make_colors(2).astype({PX: object, RANK: object})
    frame.loc[0, PX] = "abc"
    frame.loc[1, RANK] = "4"
    result = validate_colors(frame, SETTINGS, file="session")
    assert result.report.problems == [Problem(
        "session", None, 2, PX, "bad_number", "row 2, column PX: 'abc' is not a number", True)]
    assert str(result.valid[RANK].dtype) == "Int64"
    assert result.valid[RANK].tolist() == [4]


def test_rows_of_several_files_are_reported_with_their_file_and_sheet():
    frame = pd.concat([make_colors(1), make_colors(1, PX=[None])], ignore_index=True)
    frame[SOURCE_FILE] = ["a.xlsx", "b.xlsx"]
    frame[SOURCE_SHEET] = ["Colors", "Sheet1"]
    frame[SOURCE_ROW] = pd.array([7, 9], dtype="Int64")
    result = validate_colors(frame, SETTINGS)
    assert result.report.problems == [Problem(
        "b.xlsx", "Sheet1", 9, PX, "missing_value", "row 9, column PX: value is missing", True)]


def test_missing_input_columns_of_a_frame_count_as_blank():
    frame = make_colors(1).drop(columns=[COV_PRICE, CONFIDENCE])
    result = validate_colors(frame, SETTINGS)
    assert result.report.problems == []
    assert list(result.valid.columns) == [*frame.columns, COV_PRICE, CONFIDENCE]
    assert set(result.valid.columns) == set(INPUT_COLUMNS)


# -- the report ----------------------------------------------------------------------------------

def test_quality_score_counts_warned_rows_half():
    frame = make_colors(PX=[None, 150.0, 99.0, 98.0])  # quarantined, warned, clean, clean
    report = validate_colors(frame, SETTINGS).report
    assert (report.rows_total, report.rows_quarantined, report.rows_warned) == (4, 1, 1)
    assert report.quality_score == 62.5
    assert report.summary() == (
        "4 rows: 3 valid, 1 quarantined; 1 blocking, 1 warnings; quality 62.5")


def test_quality_score_of_clean_and_empty_reports():
    assert validate_colors(make_colors(3), SETTINGS).report.quality_score == 100.0
    assert ValidationReport([], 0, 0).quality_score == 100.0


def test_rows_warned_is_counted_from_problems_when_not_given():
    problems = [Problem("f", None, 2, PX, "px_out_of_range", "w", False),
                Problem("f", None, 2, CONFIDENCE, "confidence_out_of_range", "w", False),
                Problem("f", None, 3, PX, "missing_value", "b", True),
                Problem("f", None, 3, CONFIDENCE, "confidence_out_of_range", "w", False)]
    report = ValidationReport(problems, 4, 1)
    assert report.rows_warned == 1
    assert report.quality_score == 62.5
    assert (len(report.blocking), len(report.warnings)) == (1, 3)


def test_to_frame_lists_every_problem():
    report = ValidationReport([Problem("a.csv", None, 4, PX, "bad_number", "m", True),
                               Problem("a.csv", "S", None, None, "duplicate_column", "n", False)],
                              10, 1)
    expected = pd.DataFrame({
        "FILE": pd.array(["a.csv", "a.csv"], dtype="string"),
        "SHEET": pd.array([None, "S"], dtype="string"),
        "ROW": pd.array([4, None], dtype="Int64"),
        "COLUMN": pd.array([PX, None], dtype="string"),
        "CODE": pd.array(["bad_number", "duplicate_column"], dtype="string"),
        "MESSAGE": pd.array(["m", "n"], dtype="string"),
        "BLOCKING": pd.array([True, False], dtype="boolean"),
    })
    pd.testing.assert_frame_equal(report.to_frame(), expected)
    assert list(ValidationReport([], 0, 0).to_frame().columns) == list(expected.columns)


def test_merge_adds_the_counts_and_problems():
    a = validate_colors(make_colors(PX=[None, 99.0]), SETTINGS, file="a.csv").report
    b = validate_colors(make_colors(PX=[150.0, 99.0, 98.0]), SETTINGS, file="b.csv").report
    merged = a.merge(b)
    assert (merged.rows_total, merged.rows_quarantined, merged.rows_warned) == (5, 1, 1)
    assert [p.file for p in merged.problems] == ["a.csv", "b.csv"]
    assert merged.quality_score == 70.0


def test_cusip_problems_agree_with_the_one_by_one_check():
    cusips = ["037833100", "97988RBL5", "000840AG3", "037833101", "97988RBL4", "", "12345",
              "ABCDEFGH*", "ÄBCDEFGHI", "A@#*12345", "0378331OO", "03783310X"]
    texts, malformed = cusip_problems(cusips)
    assert list(zip(texts.tolist(), malformed.tolist(), strict=True)) == [
        cusip_problem(c) for c in cusips]
    sliced = cusip_problems(pa.array([None, *cusips]).slice(4))  # Arrow, at an offset
    assert [t.tolist() for t in sliced] == [t[3:].tolist() for t in (texts, malformed)]
    assert [t.tolist() for t in cusip_problems([None])] == [[None], [False]]  # missing: empty
    assert cusip_problems(cusips[:5])[0].tolist() == [
        None, None, None, "fails the CUSIP check digit (expected 0)",
        "fails the CUSIP check digit (expected 5)"]
