"""Chart figures are built once per frame content and arguments, and never shared between frames
that differ (a figure only ever shows the frame it was built from)."""

from __future__ import annotations

import pandas as pd

from pages._ui import charts


def runs(*scores: float) -> pd.DataFrame:
    return pd.DataFrame({"RUN_ID": range(1, len(scores) + 1), "QUALITY": list(scores)})


def test_an_equal_frame_reuses_the_built_figure():
    first = charts.quality(runs(99.0, 87.5))
    assert charts.quality(runs(99.0, 87.5)) is first
    assert list(first.data[0].y) == [99.0, 87.5]


def test_a_frame_that_differs_in_any_cell_gets_its_own_figure():
    first = charts.quality(runs(99.0, 87.5))
    other = charts.quality(runs(99.0, 87.0))
    assert other is not first
    assert list(other.data[0].y) == [99.0, 87.0]


def test_the_arguments_are_part_of_the_key():
    frame = pd.DataFrame({"DAY": pd.to_datetime(["2026-03-12", "2026-03-13"]),
                          "SECTOR": ["MM-CLO", "MM-CLO"], "SOURCE": ["JPM", "GS"],
                          "COLORS": [3, 4]})
    by_sector = charts.volume_by_day(frame, "SECTOR")
    by_source = charts.volume_by_day(frame, "SOURCE")
    assert by_sector is not by_source
    assert by_sector.layout.title.text == "Daily volume by sector"
    assert by_source.layout.title.text == "Daily volume by source"


def daily(first: str, last: str) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="D")
    return pd.DataFrame({"DAY": days, "SECTOR": "MM-CLO", "COLORS": 1})


def test_time_axes_pick_ticks_that_fit_the_range():
    def ticks(frame: pd.DataFrame) -> tuple:
        axis = charts.volume_by_day(frame, "SECTOR").layout.xaxis
        return axis.dtick, axis.tickformat

    day = 86_400_000
    assert ticks(daily("2026-03-13", "2026-03-13")) == (day, "%d %b")  # a day, not its hours
    assert ticks(daily("2026-03-01", "2026-03-13")) == (day, "%d %b")
    assert ticks(daily("2026-01-13", "2026-03-13")) == (7 * day, "%d %b")
    assert ticks(daily("2025-03-13", "2026-03-13")) == ("M1", "%b %Y")
    assert ticks(daily("2024-03-13", "2026-03-13")) == ("M3", "%b %Y")
    assert ticks(daily("2020-03-13", "2026-03-13")) == ("M12", "%Y")


def test_the_monthly_chart_labels_quarters_or_years_over_long_ranges():
    def ticks(months: int) -> tuple:
        frame = pd.DataFrame({"MONTH": pd.date_range("2023-01-01", periods=months, freq="MS"),
                              "BIAS": "BID", "COLORS": 1})
        axis = charts.colors_by_month_bias(frame).layout.xaxis
        return axis.dtick, axis.tickformat

    assert [ticks(3), ticks(12), ticks(30), ticks(48)] == [
        ("M1", "%b %Y"), ("M1", "%b %Y"), ("M3", "%b %Y"), ("M12", "%Y")]
