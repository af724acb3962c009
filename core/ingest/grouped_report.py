"""A validation report as a person reads it: one line per kind of problem (one warning repeated on
every row is one line with its count and rows), and the quality score in words."""

from __future__ import annotations

import re

import pandas as pd

from core.ingest.validation import WARNING_WEIGHT, Problem, ValidationReport

GROUP_COLUMNS = ("FILE", "SHEET", "COLUMN", "CODE", "BLOCKING", "COUNT", "ROWS", "MESSAGE")
_WHERE = re.compile(r"^row \d+(, column [^:]+)?: ")  # cell_message's prefix, per row
MAX_RANGES = 8  # row ranges listed before "…"


def row_ranges(rows: list[int]) -> str:
    """Row numbers as ranges: [2, 3, 4, 7, 9, 10] → "2–4, 7, 9–10" (the first MAX_RANGES)."""
    spans: list[list[int]] = []
    for row in sorted(set(rows)):
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    text = [f"{a}–{b}" if b > a else str(a) for a, b in spans[:MAX_RANGES]]
    return ", ".join(text) + (", …" if len(spans) > MAX_RANGES else "")


def _example(problem: Problem) -> str:
    """The first message of a group without its own row: it stands for every row of it."""
    return _WHERE.sub("", problem.message) if problem.row is not None else problem.message


def group_problems(report: ValidationReport) -> pd.DataFrame:
    """One row per (file, sheet, column, code, blocking), in the report's order: how many
    problems, on which rows, and the first one's message (as an example)."""
    groups: dict[tuple, list[Problem]] = {}
    for problem in report.problems:
        key = (problem.file, problem.sheet, problem.column, problem.code, problem.blocking)
        groups.setdefault(key, []).append(problem)
    lines = []
    for (file, sheet, column, code, blocking), found in groups.items():
        rows = [p.row for p in found if p.row is not None]
        example = _example(found[0])
        lines.append({"FILE": file, "SHEET": sheet, "COLUMN": column, "CODE": code,
                      "BLOCKING": blocking, "COUNT": len(found), "ROWS": row_ranges(rows),
                      "MESSAGE": example if len(found) == 1 else f"e.g. {example}"})
    frame = pd.DataFrame(lines, columns=list(GROUP_COLUMNS))
    return frame.astype({"FILE": "string", "SHEET": "string", "COLUMN": "string",
                         "CODE": "string", "BLOCKING": "boolean", "COUNT": "Int64",
                         "ROWS": "string", "MESSAGE": "string"})


def score_words(report: ValidationReport) -> str:
    """What the quality score says: each row's share, and that warnings do not stop publishing."""
    warned = report.rows_warned or 0
    clean = report.rows_total - report.rows_quarantined - warned
    if report.rows_total <= 0:
        return "No rows to score: the quality score is 100."
    half = "half" if WARNING_WEIGHT == 0.5 else f"{WARNING_WEIGHT:g}"
    return (f"The quality score is the share of good rows: of {report.rows_total:,} rows, "
            f"{clean:,} clean count fully, {warned:,} with warnings count {half} and "
            f"{report.rows_quarantined:,} quarantined count nothing, so "
            f"{report.quality_score:.1f}/100. Rows with warnings are kept and published; "
            "quarantined rows are left out.")
