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
