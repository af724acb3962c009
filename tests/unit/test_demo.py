"""Demo colors: realistic, typed, valid and deterministic."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pytest

from core.cli.demo import DEALERS, demo_files, generate_colors
from core.schema import (
    ASK,
    BIAS,
    BIAS_RANK,
    BID,
    COLUMN_TYPE,
    COV_PRICE,
    CUSIP,
    DATE,
    DATE_1,
    DIFF_STATUS,
    INPUT_COLUMNS,
    MESSAGE_ID,
    PANDAS_DTYPES,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    RANK,
    SECTOR,
    SECTORS_EXAMPLE,
    SIGNIFICANT,
    SMALL,
    SOURCE,
    TICKER,
    is_valid_cusip,
)


@pytest.fixture(scope="module")
def colors() -> pd.DataFrame:
    return generate_colors(1000)


def test_exactly_n_rows_of_the_canonical_columns_and_dtypes(colors):
    assert len(colors) == 1000
    assert len(generate_colors(7)) == 7
    assert list(colors.columns) == list(INPUT_COLUMNS)
    assert {c: str(colors[c].dtype) for c in INPUT_COLUMNS} == {
        c: PANDAS_DTYPES[COLUMN_TYPE[c]] for c in INPUT_COLUMNS}


def test_every_cusip_is_valid_and_has_one_ticker(colors):
    assert all(is_valid_cusip(c) for c in colors[CUSIP])
    assert colors.groupby(CUSIP)[TICKER].nunique().eq(1).all()
    assert colors[TICKER].str.fullmatch(r"[A-Z]+ 20\d\d-\d{1,2}A (A1|A2|B|C|D|E|SUB)").all()


def test_about_one_cusip_per_five_rows_unless_told(colors):
    assert 120 <= colors[CUSIP].nunique() <= 200
    assert generate_colors(1000, cusips=20)[CUSIP].nunique() <= 20


def test_rank_follows_bias_and_the_mix_looks_like_real_files(colors):
    assert (colors[RANK] == colors[BIAS].map(BIAS_RANK).astype("Int64")).all()
    share = colors[BIAS].value_counts(normalize=True)
    assert 0.30 < share["OFFER"] < 0.46
    assert 0.22 < share["BWIC TALK"] < 0.38
    assert 0.18 < share["BID"] < 0.34
    assert share.index.isin(list(BIAS_RANK)).all()


def test_px_is_the_bid_when_there_is_one_else_the_ask(colors):
    expected = colors[BID].where(colors[BID] > 0, colors[ASK])

    assert (colors[PX] == expected).all()
    assert (colors[PRICE_LEVEL] == colors[PX]).all()


def test_two_sided_quotes_are_a_bid_row_and_an_offer_row(colors):
    two_sided = colors[(colors[BID] > 0) & (colors[ASK] > 0)]

    assert len(two_sided) > 0
    assert (two_sided[BIAS] == "BID").all()
    offers = colors[colors[BIAS] == "OFFER"]
    assert (offers[BID] == 0).all()


def test_coverage_fields_follow_the_domain_formula(colors):
    px, cov = colors[PX], colors[COV_PRICE]
    expected = ((px - cov).abs() / cov * 100).round(2)

    assert ((colors[PERCENT_DIFF] - expected).abs() < 1e-9).all()
    assert ((colors[PRICE_DIFF] - (px - cov)).abs() < 1e-9).all()
    threshold = colors[SECTOR].map({"US_Equity_2.0": 5.0}).fillna(2.0)
    significant = colors[PERCENT_DIFF].fillna(0) > threshold
    assert colors[DIFF_STATUS].tolist() == [SIGNIFICANT if s else SMALL for s in significant]


def test_quotes_repeat_with_different_coverage_prices(colors):
    quote = [MESSAGE_ID, CUSIP, BIAS, BID, ASK]
    repeated = colors.groupby(quote)[COV_PRICE].nunique()

    assert (repeated >= 2).mean() > 0.2


def test_messages_are_17_digit_strings_quoting_several_cusips(colors):
    assert colors[MESSAGE_ID].str.fullmatch(r"\d{17}").all()
    assert colors.groupby(MESSAGE_ID)[CUSIP].nunique().max() > 3
    assert set(colors[SOURCE]) <= set(DEALERS)
    assert set(colors[SECTOR]) <= set(SECTORS_EXAMPLE)


def test_dates_are_one_extract_day_and_receipt_up_to_three_business_days_before():
    colors = generate_colors(500, date="2026-03-16")  # a Monday

    assert set(colors[DATE]) == {pd.Timestamp("2026-03-16")}
    assert set(colors[DATE_1]) <= {pd.Timestamp(d) for d in
                                   ("2026-03-16", "2026-03-13", "2026-03-12", "2026-03-11")}
    assert colors[MESSAGE_ID].str.startswith("1773").all()  # epoch ms of the receipt time


def test_prices_are_mostly_par_like_with_some_distressed_tranches():
    px = generate_colors(5000)[PX]

    assert px.between(80, 103).mean() > 0.85
    assert px.between(2, 60).any()
    assert px.min() >= 1


def test_same_seed_gives_the_same_frame_and_another_seed_does_not():
    pd.testing.assert_frame_equal(generate_colors(300, seed=3), generate_colors(300, seed=3))
    assert not generate_colors(300, seed=3).equals(generate_colors(300, seed=4))


def test_other_dates_quote_the_same_cusip_universe():
    monday = set(generate_colors(400, date="2026-03-16", cusips=80)[CUSIP])
    friday = set(generate_colors(400, date="2026-03-13", cusips=80)[CUSIP])

    assert len(monday & friday) > 40


def test_bad_rows_each_carry_one_problem():
    colors = generate_colors(200, bad_rows=8)

    blank = colors[CUSIP].isna()
    wrong_digit = colors[CUSIP].notna() & ~colors[CUSIP].fillna("").map(is_valid_cusip)
    unknown = colors[RANK].isna()
    no_px = colors[PX].isna()
    assert [int(blank.sum()), int(unknown.sum()), int(no_px.sum()), int(wrong_digit.sum())] == [
        2, 2, 2, 2]
    assert int((blank | wrong_digit | unknown | no_px).sum()) == 8
    assert set(colors.loc[unknown, BIAS]) == {"AXE"}
    assert len(colors) == 200


def test_bad_rows_cannot_exceed_rows():
    with pytest.raises(ValueError, match="bad_rows"):
        generate_colors(3, bad_rows=4)


def test_demo_files_write_one_workbook_per_business_day(tmp_path):
    paths = demo_files(tmp_path / "demo", days=3, rows_per_day=25, end="2026-03-16")

    assert [p.name for p in paths] == ["colors_2026-03-12.xlsx", "colors_2026-03-13.xlsx",
                                       "colors_2026-03-16.xlsx"]
    sheet = openpyxl.load_workbook(paths[-1])["Colors"]
    assert [c.value for c in sheet[1]] == list(INPUT_COLUMNS)
    assert sheet.max_row == 26
    assert sheet["E2"].value == dt.datetime(2026, 3, 16)
    assert isinstance(sheet["A2"].value, str)
    assert len(sheet["A2"].value) == 17
