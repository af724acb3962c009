"""Run Colors ranking (DOMAIN.md §2) and the publish-gate invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import PublishRefused
from core.runs.ranking import _sort_order, check_invariants, rank_colors
from core.schema import (
    CHILDREN_COUNT,
    COLOR_ID,
    CUSIP,
    DATE,
    DATE_1,
    IS_PARENT,
    MESSAGE_ID,
    PARENT_COLOR_ID,
    PARENT_MESSAGE_ID,
    PX,
    RANK,
    RUN_ID,
)
from tests.factories import make_colors

NA = pd.NA


def worked_example() -> pd.DataFrame:
    """DOMAIN.md §2's worked example, in its input order."""
    return make_colors(
        MESSAGE_ID=[str(m) for m in range(101, 109)],
        CUSIP=["AAA111111", "AAA111111", "AAA111111", "BBB222222", " aaa111111 ", "BBB222222",
               "BBB222222", "CCC333333"],
        DATE=["2026-03-12"] + ["2026-03-13"] * 7,
        RANK=[2, 4, 3, 3, 3, 3, 3, 5],
        PX=[99.0, 98.5, 97.0, 95.0, 97.5, 96.0, 0.0, 90.0],
        BIAS=["BWIC COVER", "OFFER", "BID", "BID", "BID", "BID", "BID", "BWIC TALK"],
    )


def messages(ranked: pd.DataFrame) -> list[str]:
    return ranked[MESSAGE_ID].tolist()


def test_worked_example_orders_groups_and_marks_parents():
    ranked = rank_colors(worked_example())

    assert messages(ranked) == ["105", "103", "102", "101", "106", "104", "107", "108"]
    assert ranked[IS_PARENT].tolist() == [True, False, False, False, True, False, False, True]
    assert ranked[CHILDREN_COUNT].tolist() == [3, 0, 0, 0, 2, 0, 0, 0]
    assert ranked[PARENT_MESSAGE_ID].tolist() == [NA, "105", "105", "105", NA, "106", "106", NA]


def test_a_consumed_batch_ranks_the_same_and_is_left_without_its_columns():
    batch = worked_example()
    expected = rank_colors(worked_example(), rows=np.array([0, 1, 2, 4, 5, 7]))
    ranked = rank_colors(batch, rows=np.array([0, 1, 2, 4, 5, 7]), consume=True)
    pd.testing.assert_frame_equal(ranked, expected)
    assert messages(ranked) == ["105", "103", "102", "101", "106", "108"]
    assert list(batch.columns) == []


def test_color_ids_default_to_the_input_ordinal_and_children_point_at_the_parent():
    ranked = rank_colors(worked_example())

    assert ranked[COLOR_ID].tolist() == ["5", "3", "2", "1", "6", "4", "7", "8"]
    assert ranked[PARENT_COLOR_ID].tolist() == [NA, "5", "5", "5", NA, "6", "6", NA]


def test_existing_color_ids_are_kept():
    frame = worked_example()
    frame[COLOR_ID] = [f"9-{i}" for i in range(1, 9)]

    ranked = rank_colors(frame)

    assert ranked[COLOR_ID].tolist() == ["9-5", "9-3", "9-2", "9-1", "9-6", "9-4", "9-7", "9-8"]
    assert ranked[PARENT_COLOR_ID].tolist() == [NA, "9-5", "9-5", "9-5", NA, "9-6", "9-6", NA]


def test_output_has_every_input_column_a_fresh_index_and_typed_flags():
    frame = worked_example()
    frame.index = [10, 11, 12, 13, 14, 15, 16, 17]
    frame["DESK_NOTE"] = list("abcdefgh")

    ranked = rank_colors(frame)

    assert list(ranked.columns) == [*frame.columns, COLOR_ID, IS_PARENT, CHILDREN_COUNT,
                                    PARENT_COLOR_ID, PARENT_MESSAGE_ID]
    assert ranked.index.equals(pd.RangeIndex(8))
    assert ranked["DESK_NOTE"].tolist() == list("ecbafdgh")
    assert str(ranked[IS_PARENT].dtype) == "boolean"
    assert str(ranked[CHILDREN_COUNT].dtype) == "Int64"
    assert frame[MESSAGE_ID].tolist()[0] == "101"  # the input is not reordered in place


def test_stored_cusip_keeps_its_spelling_but_groups_by_trimmed_upper_case():
    ranked = rank_colors(make_colors(CUSIP=["97988rbl5 ", "97988RBL5"], PX=[90.0, 95.0]))

    assert ranked[CUSIP].tolist() == ["97988RBL5", "97988rbl5 "]
    assert ranked[IS_PARENT].tolist() == [True, False]
    assert ranked[CHILDREN_COUNT].tolist() == [1, 0]


def test_groups_appear_in_key_order_each_in_input_order_when_tied():
    ranked = rank_colors(make_colors(CUSIP=["B", "A", "b", "C", "a"]))

    assert ranked[CUSIP].tolist() == ["A", "a", "B", "b", "C"]


def test_newer_date_beats_better_rank():
    ranked = rank_colors(make_colors(
        CUSIP=["A"] * 2, DATE=["2026-03-12", "2026-03-13"], RANK=[1, 6], PX=[100.0, 90.0]))

    assert ranked[RANK].tolist() == [6, 1]


def test_better_rank_beats_higher_price():
    ranked = rank_colors(make_colors(CUSIP=["A"] * 2, RANK=[4, 3], PX=[101.0, 95.0]))

    assert ranked[RANK].tolist() == [3, 4]


def test_zero_px_ranks_after_any_price():
    ranked = rank_colors(make_colors(CUSIP=["A"] * 2, PX=[0.0, 95.0]))

    assert ranked[PX].tolist() == [95.0, 0.0]
    assert ranked[IS_PARENT].tolist() == [True, False]


def test_missing_px_ranks_after_any_price():
    ranked = rank_colors(make_colors(CUSIP=["A"] * 3, PX=[None, 2.5, 95.0]))

    assert ranked[PX].tolist() == [95.0, 2.5, NA]


def test_missing_rank_and_missing_date_rank_last():
    ranked = rank_colors(make_colors(
        CUSIP=["A"] * 4, MESSAGE_ID=["1", "2", "3", "4"],
        DATE=[None, "2026-03-13", "2026-03-13", "2026-03-13"], RANK=[1, None, 6, 3]))

    assert messages(ranked) == ["4", "3", "2", "1"]


def test_receipt_date_breaks_equal_prices():
    ranked = rank_colors(make_colors(
        CUSIP=["A"] * 3, MESSAGE_ID=["1", "2", "3"], PX=[95.0, 95.0, 95.0],
        DATE_1=["2026-03-10", "2026-03-12", None]))

    assert messages(ranked) == ["2", "1", "3"]


def test_input_order_breaks_full_ties():
    ranked = rank_colors(make_colors(
        CUSIP=["A"] * 3, MESSAGE_ID=["1", "2", "3"], PX=[95.0, 95.0, 95.0]))

    assert messages(ranked) == ["1", "2", "3"]


def test_date_column_can_be_the_receipt_date():
    frame = make_colors(
        CUSIP=["A"] * 2, MESSAGE_ID=["1", "2"], RANK=[1, 5],
        DATE=["2026-03-13", "2026-03-13"], DATE_1=["2026-03-11", "2026-03-12"])

    assert messages(rank_colors(frame)) == ["1", "2"]
    assert messages(rank_colors(frame, date_column=DATE_1)) == ["2", "1"]


def test_pinned_row_becomes_the_parent_and_the_rest_keep_their_order():
    frame = worked_example()

    ranked = rank_colors(frame, pinned={"1"})  # 101: the oldest AAA color

    assert messages(ranked) == ["101", "105", "103", "102", "106", "104", "107", "108"]
    assert ranked[PARENT_MESSAGE_ID].tolist()[:4] == [NA, "101", "101", "101"]
    assert ranked[CHILDREN_COUNT].tolist()[:4] == [3, 0, 0, 0]


def test_first_pinned_row_in_input_order_wins_its_group():
    ranked = rank_colors(worked_example(), pinned=["3", "2", "7"])

    assert messages(ranked) == ["102", "105", "103", "101", "107", "106", "104", "108"]


def test_empty_cusip_is_refused():
    with pytest.raises(ValueError, match=r"2 row\(s\) with an empty CUSIP at positions \[1, 2\]"):
        rank_colors(make_colors(CUSIP=["A", "  ", None]))


def test_empty_batch_ranks_to_an_empty_frame():
    ranked = rank_colors(make_colors(CUSIP=["A"]).iloc[:0])

    assert ranked.empty
    assert IS_PARENT in ranked.columns


# -- check_invariants --------------------------------------------------------------------------

def published() -> pd.DataFrame:
    frame = rank_colors(worked_example())
    frame[RUN_ID] = pd.array([7] * len(frame), dtype="Int64")
    return frame


def test_ranked_output_passes_the_invariants():
    check_invariants(published())
    check_invariants(published().drop(columns=[RUN_ID]))


def test_two_runs_each_with_their_own_parents_pass():
    frame = pd.concat([published(), published().assign(
        **{RUN_ID: pd.array([8] * 8, dtype="Int64"),
           COLOR_ID: lambda f: "8-" + f[COLOR_ID],
           PARENT_COLOR_ID: lambda f: "8-" + f[PARENT_COLOR_ID]})], ignore_index=True)

    check_invariants(frame)


def test_two_parents_in_one_group_are_refused():
    frame = published()
    frame.loc[1, IS_PARENT] = True

    with pytest.raises(PublishRefused, match=r"not exactly one parent per \(RUN_ID, CUSIP\): "
                                             r"RUN_ID 7 / CUSIP AAA111111 \(2 parents\)"):
        check_invariants(frame)


def test_group_without_parent_is_refused_and_named_without_run_id():
    frame = published().drop(columns=[RUN_ID])
    frame.loc[7, IS_PARENT] = False

    with pytest.raises(PublishRefused, match=r"CUSIP CCC333333 \(0 parents\)"):
        check_invariants(frame)


def test_children_count_must_match_the_rows_pointing_at_the_parent():
    frame = published()
    frame.loc[4, CHILDREN_COUNT] = 3

    with pytest.raises(PublishRefused, match="CHILDREN_COUNT differs from the rows pointing at the "
                       r"parent: RUN_ID 7 / CUSIP BBB222222 \(COLOR_ID 6: CHILDREN_COUNT 3, 2 "):
        check_invariants(frame)


def test_child_pointing_at_a_missing_color_is_refused():
    frame = published()
    frame.loc[6, PARENT_COLOR_ID] = "99"

    with pytest.raises(PublishRefused, match="child points at a missing or non-parent COLOR_ID: "
                       r"RUN_ID 7 / CUSIP BBB222222 \(COLOR_ID 7 → 99\)"):
        check_invariants(frame)


def test_child_pointing_at_a_child_is_refused():
    frame = published()
    frame.loc[3, PARENT_COLOR_ID] = "3"  # 101 → 103, itself a child

    with pytest.raises(PublishRefused, match=r"non-parent COLOR_ID: .*\(COLOR_ID 1 → 3\)"):
        check_invariants(frame)


def test_child_pointing_at_another_cusips_parent_is_refused():
    frame = published()
    frame.loc[3, PARENT_COLOR_ID] = "6"
    frame.loc[0, CHILDREN_COUNT] = 2
    frame.loc[4, CHILDREN_COUNT] = 3

    with pytest.raises(PublishRefused, match="child points at the parent of another RUN_ID/CUSIP: "
                       r"RUN_ID 7 / CUSIP AAA111111 \(COLOR_ID 1 → 6\)"):
        check_invariants(frame)


def test_duplicate_color_ids_are_refused():
    frame = published()
    frame.loc[2, COLOR_ID] = "5"

    with pytest.raises(PublishRefused, match=r"duplicate COLOR_ID: COLOR_ID 5"):
        check_invariants(frame)


def test_more_offenders_than_shown_are_counted():
    frame = rank_colors(make_colors(CUSIP=[f"C{i}" for i in range(7)]))
    frame[IS_PARENT] = False

    with pytest.raises(PublishRefused, match=r"CUSIP C4 \(0 parents\) \(\+2 more\)$"):
        check_invariants(frame)


def test_missing_ranking_columns_are_named():
    with pytest.raises(ValueError, match="cannot rank without column\\(s\\): DATE_1"):
        rank_colors(make_colors(CUSIP=["A"]).drop(columns=[DATE_1]), date_column=DATE_1)


def reference_order(frame: pd.DataFrame) -> list[int]:
    """The §2 order computed row by row with Python's stable sort, for comparison."""
    def newest(value: object) -> float:
        return float("inf") if pd.isna(value) else -pd.Timestamp(value).value

    def key(i: int) -> tuple[str | float, ...]:
        row = frame.iloc[i]
        px = row[PX]
        return (
            row[CUSIP].strip().upper(),
            newest(row[DATE]),
            float("inf") if pd.isna(row[RANK]) else row[RANK],
            float("inf") if pd.isna(px) or px == 0 else -px,
            newest(row[DATE_1]),
        )

    return sorted(range(len(frame)), key=key)


def test_vectorised_order_matches_a_row_by_row_sort():
    rng = np.random.default_rng(3)
    n = 300
    frame = make_colors(
        CUSIP=rng.choice(["AAA111111", " aaa111111", "BBB222222", "CCC333333 "], n).tolist(),
        DATE=rng.choice(["2026-03-12", "2026-03-13", None], n).tolist(),
        RANK=rng.choice([1, 3, 4, None], n).tolist(),
        PX=rng.choice([0.0, 95.0, 95.5, 101.0, None], n).tolist(),
        DATE_1=rng.choice(["2026-03-10", "2026-03-11", None], n).tolist(),
    )
    frame[COLOR_ID] = [str(i) for i in range(n)]

    ranked = rank_colors(frame)

    assert ranked[COLOR_ID].tolist() == [str(i) for i in reference_order(frame)]
    check_invariants(ranked)


def test_sort_falls_back_to_lexsort_when_keys_do_not_fit_64_bits():
    group = np.array([1, 0, 1, 0])
    price = np.array([5, 7, 3, 7])

    packed = _sort_order([(group, 2), (price, 8)], 4)
    wide = _sort_order([(group, 2**40), (price, 2**30)], 4)

    assert packed.tolist() == wide.tolist() == [1, 3, 2, 0]
