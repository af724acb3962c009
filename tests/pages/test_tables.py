"""Tables read the same everywhere (issue 14 item 5): one header per column (its own name), prices
with three decimals, "no bid" / "no offer" for a BID / ASK of 0, CUSIP first and pinned, and a
filtered search showing each row's role as published."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.schema import ASK, BIAS, BID, CUSIP, DATE, DATE_1, IS_PARENT, PX, RUN_ID
from tests.factories import SAMPLE
from tests.pages import manual_color_driver as mc
from tests.pages.test_search_page import (
    build_published,
    form_key,
    ok,
    open_page,
    search_for,
    use_store,
)

AC0 = "V4BS8NAC0"  # 8 colors: 1 in run 1, 7 in run 2
AG1 = "V4BS8NAG1"  # 16 colors, 9 without a bid and 4 without an offer


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return build_published(tmp_path_factory.mktemp("tables"))


@pytest.fixture
def shared(published, monkeypatch):
    return use_store(published[0], monkeypatch)


@pytest.fixture
def rows(published) -> pd.DataFrame:
    return published[1]


def config(table) -> dict:
    """A shown table's column_config as Streamlit sends it."""
    return json.loads(table.proto.columns)


def words(prices: pd.Series, none: str) -> list:
    return [None if pd.isna(v) else none if v == 0 else f"{v:.3f}" for v in prices]


def test_a_search_result_has_cusip_first_pinned_and_prices_in_three_decimals(shared, rows):
    at = search_for(open_page(shared, "pages/search.py", "ana"), AC0)
    table = at.dataframe(key="search.results")
    shown = table.value
    assert list(shown.columns[:3]) == [CUSIP, "ROLE", RUN_ID]
    columns = config(table)
    assert columns[CUSIP]["pinned"] is True
    assert columns[PX]["type_config"] == {"type": "number", "format": "%.3f"}
    assert [columns[c]["label"] for c in (DATE, DATE_1, BID, ASK)] == [DATE, DATE_1, BID, ASK]
    heads = rows[(rows[CUSIP] == AC0) & rows[IS_PARENT]].sort_values(RUN_ID, ascending=False)
    assert shown[BID].tolist() == words(heads[BID], "no bid")
    assert shown[ASK].tolist() == words(heads[ASK], "no offer")
    assert shown[PX].tolist() == heads[PX].tolist()


def test_no_bid_and_no_offer_replace_zero_prices_on_the_security_page(shared, rows):
    at = open_page(shared, "pages/security.py", "ana", query_params={"cusip": AG1})
    every = next(d for d in at.dataframe if "PROCESSED_AT" in d.value.columns)
    mine = rows[rows[CUSIP] == AG1]
    assert (mine[BID] == 0).any()
    assert (mine[ASK] == 0).any()
    assert sorted(every.value[BID].dropna()) == sorted(words(mine[BID], "no bid"))
    assert sorted(every.value[ASK].dropna()) == sorted(words(mine[ASK], "no offer"))
    assert every.value.columns[0] == CUSIP
    assert config(every)[CUSIP]["pinned"] is True
    assert config(every)[DATE_1]["label"] == DATE_1


def test_the_dashboards_latest_parents_use_the_same_headers_and_formats(shared):
    at = open_page(shared, "pages/dashboard.py", "ana")
    at.selectbox(key="dashboard.window").set_value("All dates")
    at = ok(at.run())
    dashboard = config(at.dataframe(key="dashboard.parents"))
    search = config(search_for(open_page(shared, "pages/search.py", "ana"), AC0)
                    .dataframe(key="search.results"))
    common = [c for c in dashboard if c != "_index"]
    assert common[0] == CUSIP
    assert {c: dashboard[c] for c in common} == {c: search[c] for c in common}


def test_a_filtered_search_shows_each_rows_role_as_published(shared, rows):
    at = open_page(shared, "pages/search.py", "ana")
    at.multiselect(key=form_key(at, "biases")).set_value(["OFFER"])
    at = ok(at.run())
    shown = at.dataframe(key="search.results").value
    offers = rows[rows[BIAS] == "OFFER"]
    # each group's head is its best-ranked matching color; its role is what was published
    best = (offers.assign(_TAKE=~offers[IS_PARENT]).sort_values([RUN_ID, CUSIP, "_TAKE"])
            .drop_duplicates([RUN_ID, CUSIP]))
    expected = {(int(r), c): "parent" if p else "child"
                for r, c, p in best[[RUN_ID, CUSIP, IS_PARENT]].itertuples(index=False)}
    assert set(expected.values()) == {"parent", "child"}  # the filter leaves some parents out
    assert {(int(r), c): role for r, c, role in shown[[RUN_ID, CUSIP, "ROLE"]].itertuples(
        index=False)} == expected
    assert "A group whose parent does not match the search shows its best matching color, " \
           "a child (ROLE)." in [c.value for c in at.caption]


def test_the_manual_color_editor_keeps_cusip_on_screen(app_as):
    at = mc.start(app_as, (SAMPLE.name, SAMPLE.read_bytes()))
    columns = json.loads(mc.editor(at).proto.columns)
    assert {c for c, v in columns.items() if v.get("pinned")} == {"COLOR_ID", "Role", CUSIP}
    assert columns[PX]["type_config"]["format"] == "%.3f"
