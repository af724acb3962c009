"""Batches of spreadsheet edits to a manual session (core.manual.edits): PX follows BID and ASK
(DOMAIN.md §0), every bad cell is named, a batch is one undo step, the session version and the
role are checked, and nothing changes when a batch is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.access import Actor
from core.config import load_settings
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.manual import actions as session_actions
from core.manual import sessions
from core.manual.edits import PINNED, CellProblem, Edits, InvalidEdits, apply_edits
from core.runs.exports import write_csv
from core.schema import (
    ASK,
    BIAS,
    BID,
    COLOR_ID,
    CONFIDENCE,
    CUSIP,
    DATE,
    INPUT_COLUMNS,
    IS_PARENT,
    PRICE_LEVEL,
    PX,
    RANK,
)
from tests.factories import make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
ANN = Actor("ann", "analyst")
A, B = "97988RBL5", "000840AG3"


@pytest.fixture
def session(memory_store) -> sessions.Session:
    """Rows <token>-1..4: 1 and 2 bids on A (100, 99.75), 3 an offer on A (BID 0, ASK 99.5),
    4 a valuation on B with neither bid nor offer (PX 95)."""
    frame = make_colors(4, CUSIP=[A, A, A, B], BIAS=["BID", "BID", "OFFER", "VALUATION"],
                        PX=[100.0, 99.75, 99.5, 95.0])
    frame[BID] = frame[BID].where(frame[BIAS] != "VALUATION", 0.0)
    frame[ASK] = frame[ASK].where(frame[BIAS] != "VALUATION", 0.0)
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    return sessions.add_files(memory_store, ANN, [("a.csv", write_csv(frame[list(INPUT_COLUMNS)]))],
                              SETTINGS, now=NOW)


def _id(session: sessions.Session, n: int) -> str:
    return f"{session.token}-{n}"


def _rows(store) -> dict[str, dict]:
    session = sessions.load_session(store, ANN)
    rows = sessions.load_frame(store, session.rows_key)
    return {r[COLOR_ID]: r for r in rows.to_dict("records")}


def _apply(store, edits: Edits, **kwargs):
    return apply_edits(store, ANN, edits, settings=SETTINGS, **kwargs)


def test_editing_bid_moves_px_and_the_price_level(memory_store, session):
    _apply(memory_store, Edits(changed={_id(session, 2): {BID: 101.25}}))
    row = _rows(memory_store)[_id(session, 2)]
    assert (row[BID], row[PX], row[PRICE_LEVEL]) == (101.25, 101.25, 101.25)
    ranked = sessions.preview(memory_store, ANN, SETTINGS).ranked
    assert ranked.loc[ranked[IS_PARENT], COLOR_ID].tolist() == [_id(session, 4), _id(session, 2)]


def test_editing_the_ask_of_an_offer_moves_px_and_a_bid_takes_over(memory_store, session):
    offer = _id(session, 3)
    _apply(memory_store, Edits(changed={offer: {ASK: "98.5"}}))
    assert (_rows(memory_store)[offer][PX], _rows(memory_store)[offer][ASK]) == (98.5, 98.5)
    _apply(memory_store, Edits(changed={offer: {BID: 97}}))
    assert _rows(memory_store)[offer][PX] == 97.0


def test_a_px_that_bid_decides_is_refused_with_the_reason(memory_store, session):
    bid = _id(session, 1)
    with pytest.raises(InvalidEdits) as refused:
        _apply(memory_store, Edits(changed={bid: {PX: 101.5}}))
    assert str(refused.value) == (
        f"row {bid}, column PX: 101.5 is refused: PX follows BID (100.0) while BID > 0; "
        "edit BID instead")
    assert refused.value.problems == [CellProblem(bid, PX, (
        "101.5 is refused: PX follows BID (100.0) while BID > 0; edit BID instead"))]
    assert _rows(memory_store)[bid][PX] == 100.0
    assert sessions.load_session(memory_store, ANN).undo == []


def test_a_px_that_ask_decides_is_refused_naming_the_missing_bid(memory_store, session):
    offer = _id(session, 3)
    with pytest.raises(InvalidEdits, match=(
            rf"^row {offer}, column PX: 99.0 is refused: PX follows ASK \(99.5\) while there is "
            r"no bid \(BID 0.0\); edit ASK instead$")):
        _apply(memory_store, Edits(changed={offer: {PX: 99}}))


def test_px_is_typed_freely_when_neither_bid_nor_ask_is_given(memory_store, session):
    valuation = _id(session, 4)
    _apply(memory_store, Edits(changed={valuation: {PX: 96.5}}))
    row = _rows(memory_store)[valuation]
    assert (row[BID], row[ASK], row[PX], row[PRICE_LEVEL]) == (0.0, 0.0, 96.5, 96.5)


def test_a_pasted_row_whose_px_agrees_with_its_new_bid_is_accepted(memory_store, session):
    bid = _id(session, 1)
    _apply(memory_store, Edits(changed={bid: {BID: 102.0, PX: 102.0}}))
    assert _rows(memory_store)[bid][PX] == 102.0
    with pytest.raises(InvalidEdits, match=r"column PX: 101.0 is refused: PX follows BID \(103"):
        _apply(memory_store, Edits(changed={bid: {BID: 103.0, PX: 101.0}}))


def test_every_bad_cell_of_a_batch_is_named_and_nothing_changes(memory_store, session):
    one, two = _id(session, 1), _id(session, 2)
    before = _rows(memory_store)
    with pytest.raises(InvalidEdits) as refused:
        _apply(memory_store, Edits(
            changed={one: {BID: "abc", CUSIP: "123"}, two: {DATE: "soon", RANK: 9}},
            added=[{CUSIP: B, BIAS: "BID", BID: 90.0}], deleted=[_id(session, 4)]))
    assert [(p.row, p.column) for p in refused.value.problems] == [
        (one, CUSIP), (one, BID), (two, DATE), (two, RANK), ("new row 1", "MESSAGE_ID"),
        ("new row 1", "SECTOR"), ("new row 1", DATE), ("new row 1", "SOURCE")]
    assert str(refused.value).startswith(
        f"row {one}, column CUSIP: '123' is not a valid CUSIP: it has 3 characters, not 9; "
        f"row {one}, column BID: 'abc' is not a number; row {two}, column DATE: 'soon' is not "
        "a date")
    assert f"row {two}, column RANK: 9 is outside 1–6; new row 1, column MESSAGE_ID: value is " \
           "missing" in str(refused.value)
    assert _rows(memory_store).keys() == before.keys()
    assert sessions.load_session(memory_store, ANN).undo == []


def test_a_batch_is_one_undo_step(memory_store, session):
    before = _rows(memory_store)
    new = {"MESSAGE_ID": "17734072432755699", "TICKER": "NEW 2026-1A A", "SECTOR": "2.0_Mezz",
           CUSIP: B, DATE: "2026-03-13", "SOURCE": "GS", BIAS: "bid", BID: 96.0, ASK: 0}
    outcome = _apply(memory_store, Edits(changed={_id(session, 2): {BIAS: "TRADE"}},
                                         added=[new], deleted=[_id(session, 3)],
                                         pins={_id(session, 4): True}))
    assert outcome.session.undo[-1]["label"] == "edit 1 cell, 1 new row, 1 deleted row, 1 pin"
    rows = _rows(memory_store)
    assert list(rows) == [_id(session, n) for n in (1, 2, 4, 5)]
    assert (rows[_id(session, 2)][BIAS], rows[_id(session, 2)][RANK]) == ("TRADE", 1)
    assert (rows[_id(session, 5)][PX], rows[_id(session, 5)][RANK]) == (96.0, 3)
    assert outcome.session.pinned == [_id(session, 4)]
    session_actions.undo(memory_store, ANN)
    assert _rows(memory_store).keys() == before.keys()
    assert sessions.load_session(memory_store, ANN).pinned == []


def test_a_pin_replaces_the_pin_of_its_cusip_and_two_in_one_batch_are_refused(memory_store,
                                                                             session):
    _apply(memory_store, Edits(pins={_id(session, 2): True}))
    _apply(memory_store, Edits(pins={_id(session, 3): True, _id(session, 4): True}))
    assert sessions.load_session(memory_store, ANN).pinned == [_id(session, 3), _id(session, 4)]
    with pytest.raises(InvalidEdits, match=(
            rf"^row {_id(session, 2)}, column Pinned: row {_id(session, 1)} of CUSIP {A} is "
            "pinned in the same batch; pin one$")):
        _apply(memory_store, Edits(pins={_id(session, 1): True, _id(session, 2): True}))
    _apply(memory_store, Edits(pins={_id(session, 3): False}, deleted=[_id(session, 4)]))
    assert sessions.load_session(memory_store, ANN).pinned == []


def test_a_new_row_can_be_pinned_in_its_batch(memory_store, session):
    new = {"MESSAGE_ID": "17734072432755699", "SECTOR": "2.0_Mezz", CUSIP: A,
           DATE: "2026-03-13", "SOURCE": "GS", BIAS: "VALUATION", PX: 50.0, PINNED: True}
    outcome = _apply(memory_store, Edits(added=[new]))
    assert outcome.session.pinned == [_id(session, 5)]
    ranked = sessions.preview(memory_store, ANN, SETTINGS).ranked
    parents = ranked.loc[ranked[IS_PARENT], [CUSIP, COLOR_ID]]
    assert parents.values.tolist() == [[B, _id(session, 4)], [A, _id(session, 5)]]


def test_warnings_of_the_edited_cells_come_back_and_the_edit_is_kept(memory_store, session):
    outcome = _apply(memory_store, Edits(changed={_id(session, 1): {CONFIDENCE: 12}}))
    assert outcome.warnings == [CellProblem(_id(session, 1), CONFIDENCE, "12 is outside 0–10")]
    assert _rows(memory_store)[_id(session, 1)][CONFIDENCE] == 12


def test_a_batch_from_a_stale_window_is_refused(memory_store, session):
    shown = session.version
    _apply(memory_store, Edits(changed={_id(session, 1): {BID: 100.5}}), version=shown)
    with pytest.raises(Conflict, match="changed in another window"):
        _apply(memory_store, Edits(changed={_id(session, 2): {BID: 100.5}}), version=shown)
    assert _rows(memory_store)[_id(session, 2)][BID] == 99.75


def test_a_viewer_cannot_edit_and_an_empty_batch_is_refused(memory_store, session):
    with pytest.raises(PermissionDenied):
        apply_edits(memory_store, Actor("vic", "viewer"),
                    Edits(changed={_id(session, 1): {BID: 1}}), settings=SETTINGS)
    with pytest.raises(InvalidInput, match="there are no changes to apply"):
        _apply(memory_store, Edits())
