"""Hostile values (issue 10, items 2 and 3): one small file per case of a value that must be stored
exactly as read or refused with a message naming the cell. `files()` feeds build.py; run this
module to write them beside it."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

HEADER = ["MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "DATE", "PX", "SOURCE", "BIAS", "CONFIDENCE"]
CREATED = dt.datetime(2026, 1, 1)  # fixed workbook metadata: the same bytes on every build
HUGE_CHARS = 40_000
E_FORM_CUSIP = "52406E472"  # digits around one E, valid check digit: a CUSIP, not 5.2406e476
E_FORM_WRONG = "52406E473"  # the same with a wrong check digit (expected 2)
ZERO_LOST = "37833100"  # 037833100 after Excel dropped its leading zero


def row(**overrides: Any) -> dict[str, Any]:
    """A valid BID color, text as a CSV would hold it, unless overridden."""
    return {"MESSAGE_ID": "17734072432755618", "TICKER": "ARES 2025-78A A2",
            "SECTOR": "2.0_Mezz", "CUSIP": "97988RBL5", "DATE": "2026-03-13", "PX": "99.5",
            "SOURCE": "JPM", "BIAS": "BID", "CONFIDENCE": "10"} | overrides


def csv_file(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(HEADER)] + [",".join(str(r[h]) for h in HEADER) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def xlsx_file(rows: list[dict[str, Any]]) -> bytes:
    """Strings as text cells, numbers as numbers, dates as dates, (formula, error) as errors."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties({"created": CREATED})
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet("Colors")
    sheet.write_row(0, 0, HEADER)
    for r, values in enumerate(rows, start=1):
        for c, name in enumerate(HEADER):
            value = values[name]
            if isinstance(value, tuple):  # (formula, cached error value)
                sheet.write_formula(r, c, value[0], None, value[1])
            elif isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, dates)
            elif isinstance(value, str):
                sheet.write_string(r, c, value)
            else:
                sheet.write_number(r, c, value)
    book.close()
    return out.getvalue()


def parquet_file(columns: dict[str, pa.Array]) -> bytes:
    """Text columns from row(), replaced by the typed `columns` given."""
    n = len(next(iter(columns.values())))
    base = row()
    table = pa.table({h: columns.get(h, pa.array([base[h]] * n)) for h in HEADER})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def integer_overflow_csv() -> bytes:
    return csv_file([row(CONFIDENCE="99999999999999999999"), row()])


def integer_overflow_parquet() -> bytes:
    return parquet_file({"CONFIDENCE": pa.array([2**64 - 1, 10], pa.uint64())})


def inf_prices_parquet() -> bytes:
    return parquet_file({"PX": pa.array([float("inf"), float("-inf"), float("nan"), 99.5])})


def far_dates_xlsx() -> bytes:
    return xlsx_file([row(DATE=dt.datetime(9999, 12, 31)), row(DATE=dt.datetime(2026, 3, 12))])


def far_dates_csv() -> bytes:
    return csv_file([row(DATE="1970-01-01"), row(DATE="2026-03-12")])


def bad_cusips_csv() -> bytes:
    return csv_file([row(CUSIP=c) for c in ("=1+1", "97988RBL", "97988RBL55", "9798ÉRBL5",
                                            "97988RBL5")])


def huge_cell_csv() -> bytes:
    return csv_file([row(TICKER="A" * HUGE_CHARS), row()])


def error_cells_xlsx() -> bytes:
    return xlsx_file([row(PX=("=1/0", "#DIV/0!")), row(TICKER=("=NA()", "#N/A"))])


def e_form_cusips_xlsx() -> bytes:
    return xlsx_file([row(CUSIP=E_FORM_CUSIP), row(CUSIP=E_FORM_WRONG)])


def zero_stripped_cusip_csv() -> bytes:
    return csv_file([row(CUSIP=ZERO_LOST)])


def files() -> list[tuple[str, bytes, bool, str]]:
    """(file name, bytes, refused, fragment): none is refused; the fragment is in the report."""
    return [
        ("values-integer-overflow.csv", integer_overflow_csv(), False,
         "'99999999999999999999' is too large for a whole number"),
        ("values-integer-overflow.parquet", integer_overflow_parquet(), False,
         "18446744073709551615 is too large for a whole number"),
        ("values-inf-prices.parquet", inf_prices_parquet(), False,
         "row 3, column PX: -inf is not a number"),
        ("values-far-dates.xlsx", far_dates_xlsx(), False,
         "row 2, column DATE: 9999-12-31 is outside the plausible dates 1990-01-01 to"),
        ("values-far-dates.csv", far_dates_csv(), False,
         "row 2, column DATE: 1970-01-01 is outside the plausible dates 1990-01-01 to"),
        ("values-bad-cusips.csv", bad_cusips_csv(), False,
         "row 2, column CUSIP: '=1+1' is not a valid CUSIP: it has 4 characters, not 9"),
        ("values-huge-cell.csv", huge_cell_csv(), False,
         "row 2, column TICKER: the cell has 40,000 characters, over the 32,767 allowed"),
        ("values-error-cells.xlsx", error_cells_xlsx(), False,
         "row 2, column PX: '#DIV/0!' is an Excel error; read as blank"),
        ("values-e-form-cusips.xlsx", e_form_cusips_xlsx(), False,
         "row 3, column CUSIP: '52406E473' fails the CUSIP check digit (expected 2)"),
        ("values-zero-stripped-cusip.csv", zero_stripped_cusip_csv(), False,
         "row 2, column CUSIP: CUSIP 37833100 lost its leading zero (Excel); read as 037833100"),
    ]


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for name, data, _, _ in files():
        (here / name).write_bytes(data)
        print(f"wrote {name} ({len(data):,} bytes)")
