"""The validation report as a person reads it: one line per kind of problem, the score in words."""

from __future__ import annotations

from core.ingest.grouped_report import group_problems, row_ranges, score_words
from core.ingest.validation import Problem, ValidationReport


def _warning(row: int, value: str) -> Problem:
    return Problem("a.xlsx", "Sheet1", row, "MESSAGE_ID", "message_id_rounded",
                   f"row {row}, column MESSAGE_ID: {value} was stored as a number", False)


def test_one_warning_on_every_row_is_one_line_with_its_count_and_rows():
    report = ValidationReport([_warning(r, f"1767{r}") for r in range(2, 52)], 50, 0)
    grouped = group_problems(report)
    assert grouped.values.tolist() == [[
        "a.xlsx", "Sheet1", "MESSAGE_ID", "message_id_rounded", False, 50, "2–51",
        "e.g. 17672 was stored as a number"]]


def test_kinds_of_problems_stay_apart_and_a_single_one_keeps_its_message():
    blocking = Problem("a.xlsx", "Sheet1", 7, "CUSIP", "missing", "row 7, column CUSIP: empty",
                       True)
    whole = Problem("a.xlsx", "Sheet1", None, "DATE_1", "unknown_column", "column DATE_1 is new",
                    False)
    report = ValidationReport([_warning(2, "1"), blocking, _warning(4, "2"), whole], 5, 1)
    assert group_problems(report)[["CODE", "COUNT", "ROWS", "MESSAGE"]].values.tolist() == [
        ["message_id_rounded", 2, "2, 4", "e.g. 1 was stored as a number"],
        ["missing", 1, "7", "empty"],
        ["unknown_column", 1, "", "column DATE_1 is new"]]


def test_row_ranges_join_neighbours_and_stop_after_eight():
    assert row_ranges([2, 3, 4, 7, 9, 10]) == "2–4, 7, 9–10"
    assert row_ranges(list(range(2, 40, 2))) == "2, 4, 6, 8, 10, 12, 14, 16, …"


def test_the_score_says_what_each_row_counts():
    report = ValidationReport([_warning(r, "1") for r in range(2, 52)], 50, 0)
    assert report.quality_score == 50.0
    assert score_words(report) == (
        "The quality score is the share of good rows: of 50 rows, 0 clean count fully, 50 with "
        "warnings count half and 0 quarantined count nothing, so 50.0/100. Rows with warnings "
        "are kept and published; quarantined rows are left out.")
