"""The row order of a run's partition (storage.run_layout.sort_rows): CUSIP, then the ranked
POSITION where there is one, else DATE; a frame already in that order (ranking gives the colors in
it) is kept as it is."""

from __future__ import annotations

from fractions import Fraction

import pandas as pd

from core.runs.ranking import rank_colors
from storage.run_layout import sort_rows
from tests.factories import make_colors


def frame(cusips: list[str | None], positions: list[int] | None = None,
          dates: list[str] | None = None) -> pd.DataFrame:
    data: dict[str, object] = {"CUSIP": pd.array(cusips, dtype="string"),
                               "ID": list(range(len(cusips)))}
    if positions is not None:
        data["POSITION"] = pd.array(positions, dtype="Int64")
    if dates is not None:
        data["DATE"] = pd.to_datetime(dates)
    return pd.DataFrame(data)


def test_colors_are_ordered_by_cusip_then_ranked_position():
    rows = frame(["B", "A", "B", "A"], positions=[4, 2, 3, 1])
    assert sort_rows(rows)["ID"].tolist() == [3, 1, 2, 0]


def test_rows_without_a_position_are_ordered_by_cusip_then_date_missing_last():
    rows = frame(["B", "A", "A", None], dates=["2026-03-12", "2026-03-14", "2026-03-13", None])
    assert sort_rows(rows)["ID"].tolist() == [2, 1, 0, 3]


def test_rows_equal_in_every_sort_column_keep_their_order():
    rows = frame(["A", "A", "A"], dates=["2026-03-13"] * 3)
    assert sort_rows(rows)["ID"].tolist() == [0, 1, 2]


def test_ranked_colors_are_already_in_partition_order():
    ranked = rank_colors(make_colors(CUSIP=["97988RBL5", "000840AG3", "97988RBL5", "037833100"]))
    ranked["POSITION"] = pd.array(range(1, len(ranked) + 1), dtype="Int64")
    ranked["ID"] = range(len(ranked))
    assert sort_rows(ranked)["ID"].tolist() == [0, 1, 2, 3]
    assert ranked["CUSIP"].tolist() == ["000840AG3", "037833100", "97988RBL5", "97988RBL5"]


def test_a_column_arrow_cannot_compare_is_sorted_as_pandas_sorts_it():
    rows = pd.DataFrame({"CUSIP": ["A", "A"], "DATE": pd.Series([Fraction(3, 2), 1], dtype=object),
                         "ID": [0, 1]})
    assert sort_rows(rows)["ID"].tolist() == [1, 0]
