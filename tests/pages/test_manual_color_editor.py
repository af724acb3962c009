"""Manual Color's rows table edits like a spreadsheet (issue 14 item 1): cells typed or pasted in
place, rows added and deleted, Pinned ticked; Apply sends the batch through core, which re-ranks
and makes it one undo step; refused cells are listed by row, column and reason and stay in the
table; changes not applied hold Save back."""

from __future__ import annotations

import pytest

from core.manual import actions as session_actions
from core.schema import BIAS, BID, COLOR_ID, CUSIP, DATE, PX, RANK
from tests.factories import SAMPLE
from tests.pages import manual_color_driver as mc


@pytest.fixture
def sample() -> tuple[str, bytes]:
    return SAMPLE.name, SAMPLE.read_bytes()


def _problems(at) -> list[tuple[str, str, str]]:
    """The table of refused cells (Row, Column, Problem)."""
    tables = [d.value for d in at.dataframe if list(d.value.columns) == ["Row", "Column",
                                                                          "Problem"]]
    if not tables:
        return []
    return list(zip(tables[0]["Row"], tables[0]["Column"], tables[0]["Problem"], strict=True))


def test_the_rows_table_is_typed_and_lists_every_row_parents_first(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    table = mc.editor(at)
    assert table.editing_mode == "dynamic"  # rows can be added and deleted
    assert mc.shown_rows(at) == mc.expected_rows(mc.core_view(app_store))
    assert list(mc.rows(at).columns[:5]) == [COLOR_ID, "Role", "Pinned", "MESSAGE_ID", "TICKER"]
    assert str(mc.rows(at)[DATE].dtype).startswith("datetime64")
    assert mc.rows(at)[PX].dtype == "Float64"


def test_a_pasted_block_applies_as_one_batch_that_reranks_and_undoes_at_once(app_as, app_store,
                                                                            sample):
    at = mc.start(app_as, sample)
    ranked = mc.core_view(app_store).ranked
    group = ranked[ranked[CUSIP] == ranked[CUSIP].iloc[0]]
    parent, child = group.iloc[0], group[group[RANK] == group[RANK].iloc[0]].iloc[-1]
    at_child = mc.rows(at).index[mc.rows(at)[COLOR_ID] == child[COLOR_ID]][0]
    higher = float(parent[PX]) + 1
    # A 2×2 block pasted over the child's BID and SOURCE and the next row's.
    mc.edit(at, edited={at_child: {BID: higher, "SOURCE": "GS"},
                        at_child + 1: {BID: 50.0, "SOURCE": "GS"}})
    assert mc.metrics(at) | mc.counts(50, 10) == mc.metrics(at)  # nothing applied yet
    assert "Not applied yet: 4 cells." in at.caption.values
    assert at.button(key="manual_color.save").disabled  # Save waits for the changes

    mc.ok(mc.apply(at))
    assert mc.toasts(at) == ["Applied 4 cells"]
    table = mc.rows(at)
    assert (table[COLOR_ID].iloc[0], table["Role"].iloc[0], table[BID].iloc[0],
            table[PX].iloc[0], table["SOURCE"].iloc[0]) == (
        child[COLOR_ID], "parent", higher, higher, "GS")  # PX followed BID
    assert mc.shown_rows(at) == mc.expected_rows(mc.core_view(app_store))
    assert at.button(key="manual_color.save").disabled is False

    mc.ok(mc.click(at, "manual_color.undo"))
    assert mc.toasts(at) == ["Undo: edit 4 cells"]
    assert mc.rows(at)[COLOR_ID].iloc[0] == parent[COLOR_ID]
    assert mc.shown_rows(at) == mc.expected_rows(mc.core_view(app_store))


def test_refused_cells_are_listed_and_stay_in_the_table(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    table = mc.rows(at)
    bid_row = table.index[table[BID] > 0][0]
    color_id, bid = table[COLOR_ID].iloc[bid_row], table[BID].iloc[bid_row]
    other = table[COLOR_ID].iloc[bid_row + 1]
    mc.edit(at, edited={bid_row: {PX: 101.5}, bid_row + 1: {CUSIP: "123"}})
    at = mc.apply(at)
    assert [e.value for e in at.error] == [
        "2 cell(s) cannot be applied, so nothing changed. Fix them in the table and apply again."]
    assert _problems(at) == [
        (color_id, PX, f"101.5 is refused: PX follows BID ({bid}) while BID > 0; edit BID "
                       "instead"),
        (other, CUSIP, "'123' is not a valid CUSIP: it has 3 characters, not 9")]
    assert mc.core_view(app_store).session.undo == []
    assert "Not applied yet: 2 cells." in at.caption.values  # still there to fix

    mc.edit(at, edited={bid_row: {BID: 101.5}})  # the fix: move BID, and PX follows
    mc.ok(mc.apply(at))
    assert mc.toasts(at) == ["Applied 1 cell"]
    assert mc.rows(at).set_index(COLOR_ID).loc[color_id, [BID, PX]].tolist() == [101.5, 101.5]
    assert _problems(at) == []


def test_a_row_added_at_the_bottom_ranks_with_its_cusip(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    cusip = mc.rows(at)[CUSIP].iloc[0]
    mc.edit(at, added=[{"MESSAGE_ID": "17734072432755618", "TICKER": "WDMNT 2022-9A ER",
                        "SECTOR": "MM-CLO", CUSIP: cusip, DATE: "2026-01-11", BID: 105.5,
                        "SOURCE": "JPM", BIAS: "BID"}, {}])  # a blank row is left out
    mc.ok(mc.apply(at))
    token = mc.core_view(app_store).session.token
    assert mc.toasts(at) == ["Applied 1 new row"]
    assert mc.metrics(at) | mc.counts(51, 10) == mc.metrics(at)
    table = mc.rows(at)
    assert (table[COLOR_ID].iloc[0], table[PX].iloc[0], table[RANK].iloc[0]) == (
        f"{token}-51", 105.5, 3)


def test_deleted_rows_go_and_the_next_best_color_is_promoted(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    ranked = mc.core_view(app_store).ranked
    group = ranked[ranked[CUSIP] == ranked[CUSIP].iloc[0]]
    gone, heir = group[COLOR_ID].iloc[0], group[COLOR_ID].iloc[1]
    mc.ok(mc.apply(mc.edit(at, deleted=[0])))
    assert mc.toasts(at) == ["Applied 1 deleted row"]
    table = mc.rows(at)
    assert (table[COLOR_ID].iloc[0], table["Role"].iloc[0]) == (heir, "parent")
    assert gone not in table[COLOR_ID].tolist()
    assert mc.metrics(at) | mc.counts(49, 10) == mc.metrics(at)


def test_ticking_pinned_makes_a_child_the_parent_until_unticked(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    table = mc.rows(at)
    first = table[COLOR_ID].iloc[0]
    last = table.index[table[CUSIP] == table[CUSIP].iloc[0]][-1]
    pinned = table[COLOR_ID].iloc[last]
    mc.ok(mc.apply(mc.edit(at, edited={last: {"Pinned": True}})))
    assert mc.toasts(at) == ["Applied 1 pin"]
    assert mc.rows(at).iloc[0][[COLOR_ID, "Role", "Pinned"]].tolist() == [
        pinned, "pinned parent", True]
    assert mc.core_view(app_store).session.pinned == [pinned]
    mc.ok(mc.apply(mc.edit(at, edited={0: {"Pinned": False}})))
    assert mc.rows(at).iloc[0][[COLOR_ID, "Role"]].tolist() == [first, "parent"]


def test_discarding_the_changes_restores_the_table(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    key = mc.editor(at).key
    mc.edit(at, deleted=[0, 1])
    mc.ok(mc.click(at, "manual_color.discard_edits"))
    assert mc.editor(at).key != key  # a fresh table, without the deletions
    assert "manual_color.apply_edits" not in [b.key for b in at.button]
    assert mc.core_view(app_store).counts["rows"] == 50


def test_changes_from_a_stale_window_are_refused_until_reload(app_as, app_store, sample):
    at = mc.start(app_as, sample)
    elsewhere = session_actions.delete_rows(app_store, mc.ANA, [mc.rows(at)[COLOR_ID].iloc[5]])
    mc.edit(at, deleted=[0])  # made on the table as it was
    assert at.warning[0].value.startswith("The rows changed after you started editing")
    at = mc.apply(at)
    assert [e.value for e in at.error] == [f"Applying the changes: {mc.STALE}"]
    assert mc.core_view(app_store).session.version == elsewhere.version
    mc.ok(mc.click(at, "manual_color.discard_edits"))  # the current rows, to edit again
    assert len(mc.rows(at)) == 49
    mc.ok(mc.apply(mc.edit(at, deleted=[0])))
    assert mc.core_view(app_store).counts["rows"] == 48


def test_excluded_rows_are_in_the_table_with_the_rule_that_excluded_them(app_as, app_store,
                                                                        sample):
    from core.access import SYSTEM
    from core.rules.conditions import Condition, Group
    from core.rules.exclusion import Rule, save_rule

    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition("SOURCE", "equal_to", "MS")])))
    at = mc.start(app_as, sample)
    table = mc.rows(at)
    assert table["Role"].tolist()[-6:] == ["excluded: No MS"] * 6


def test_a_filter_changed_while_editing_keeps_the_rows_that_were_edited(app_as, app_store,
                                                                        sample):
    at = mc.start(app_as, sample)
    table = mc.rows(at)
    edited = table[COLOR_ID].iloc[3]
    other_cusip = next(c for c in table[CUSIP] if c != table[CUSIP].iloc[3])
    mc.edit(at, edited={3: {"SOURCE": "GS"}})
    at.text_input(key="manual_color.f_cusip").set_value(other_cusip).run()
    assert at.warning[0].value.startswith("The rows changed after you started editing")
    assert mc.rows(at)[COLOR_ID].iloc[3] == edited  # still the table that was edited
    mc.ok(mc.apply(at))
    rows = mc.core_view(app_store).ranked.set_index(COLOR_ID)
    assert rows.loc[edited, "SOURCE"] == "GS"
    assert set(mc.rows(at)[CUSIP]) == {other_cusip}  # applied: the filtered rows now
