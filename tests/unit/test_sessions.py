"""Manual color sessions: load, preview, every action re-ranks and is undoable, save exactly once,
buffer claims, resume after a restart, stale windows and permissions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from pandas.testing import assert_frame_equal

from core.access import SYSTEM, Actor
from core.audit import load_changes
from core.automation.jobs import Job, save_job
from core.config import load_settings
from core.errors import (
    Conflict,
    FileProblem,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PublishRefused,
)
from core.intake import buffer
from core.intake.watermarks import load_watermark, save_watermark
from core.manual import actions as session_actions
from core.manual import edits, sessions
from core.rules.exclusion import Condition, Group, Rule, save_rule
from core.runs import records as runs
from core.runs.exports import write_csv
from core.schema import (
    BIAS,
    BID,
    CHILDREN_COUNT,
    COLOR_ID,
    COV_PRICE,
    CUSIP,
    DATE,
    DIFF_STATUS,
    EXCLUDED_BY,
    INPUT_COLUMNS,
    IS_PARENT,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PROCESSING_TYPE,
    PX,
    RANK,
    SOURCE_FILE,
)
from storage import open_store
from tests.factories import SAMPLE, make_colors

SETTINGS = load_settings({}, {})
NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
ANN = Actor("ann", "analyst")
BOB = Actor("bob", "analyst")
VIEWER = Actor("vic", "viewer")
BIG = "97988RBL5"  # the sample's largest group: 8 colors, all DATE 2026-01-11, PX 101.7



def _csv(n: int = 3, **columns) -> bytes:
    return write_csv(make_colors(n, **columns)[list(INPUT_COLUMNS)])


def _view(store, actor=ANN, **kwargs) -> sessions.SessionView:
    return sessions.preview(store, actor, SETTINGS, **kwargs)


def _group(view: sessions.SessionView, cusip: str = BIG) -> pd.DataFrame:
    return view.ranked[view.ranked[CUSIP] == cusip].reset_index(drop=True)


def _parent(view: sessions.SessionView, cusip: str = BIG) -> pd.Series:
    group = _group(view, cusip)
    return group[group[IS_PARENT]].iloc[0]


@pytest.fixture
def sample_session(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    sessions.add_files(memory_store, ANN, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS,
                       now=NOW)
    return memory_store


def _undo_redo_round_trip(store, before: sessions.SessionView) -> None:
    """Undo restores the preview before the action; redo brings the action back."""
    after = _view(store)
    session_actions.undo(store, ANN)
    assert_frame_equal(_view(store).ranked, before.ranked)
    session_actions.redo(store, ANN)
    assert_frame_equal(_view(store).ranked, after.ranked)


def test_the_sample_previews_ten_parents(sample_session):
    view = _view(sample_session)
    assert view.counts == {"rows": 50, "kept": 50, "parents": 10, "children": 40, "excluded": 0,
                           "quarantined": 0, "shown": 50}
    assert view.report.rows_total == 50
    assert _parent(view)[CHILDREN_COUNT] == 7
    assert view.ranked[COLOR_ID].is_unique
    assert view.session.files == [{"name": SAMPLE.name, "sheet": "Sheet1", "rows": 50,
                                   "quarantined": 0}]


def test_deleting_the_parent_promotes_a_child(sample_session):
    before = _view(sample_session)
    old = _parent(before)
    session_actions.delete_rows(sample_session, ANN, [old[COLOR_ID]])
    view = _view(sample_session)
    new = _parent(view)
    assert new[COLOR_ID] == _group(before)[COLOR_ID].iloc[1]
    assert new[CHILDREN_COUNT] == 6
    assert view.counts["rows"] == 49
    _undo_redo_round_trip(sample_session, before)
    with pytest.raises(NotFound, match="row nope is not in the session"):
        session_actions.delete_rows(sample_session, ANN, [new[COLOR_ID], "nope"])
    with pytest.raises(InvalidInput, match="select the rows to delete"):
        session_actions.delete_rows(sample_session, ANN, [])
    assert _view(sample_session).counts["rows"] == 49


def test_raising_a_childs_bid_above_the_parent_moves_px_and_makes_it_the_parent(sample_session):
    before = _view(sample_session)
    child = _group(before).iloc[3]
    assert (child[BID], child[PX], child[PRICE_LEVEL]) == (101.7, 101.7, 101.7)
    edits.edit_cell(sample_session, ANN, child[COLOR_ID], BID, "102.5", settings=SETTINGS)
    new = _parent(_view(sample_session))
    assert (new[COLOR_ID], new[BID], new[PX], new[PRICE_LEVEL], new[CHILDREN_COUNT]) == (
        child[COLOR_ID], 102.5, 102.5, 102.5, 7)
    assert new[PRICE_DIFF] == round(102.5 - child[COV_PRICE], 6)
    assert new[PERCENT_DIFF] == round(abs(102.5 - child[COV_PRICE]) / child[COV_PRICE] * 100, 2)
    _undo_redo_round_trip(sample_session, before)


def test_a_new_row_with_a_newer_date_becomes_the_parent(sample_session):
    before = _view(sample_session)
    template = _parent(before)
    values = {c: template[c] for c in INPUT_COLUMNS if c not in (RANK, PERCENT_DIFF, PRICE_DIFF,
                                                                 DIFF_STATUS)}
    values[DATE] = "2026-01-12"
    session = edits.add_row(sample_session, ANN, values, settings=SETTINGS)
    view = _view(sample_session)
    new = _parent(view)
    assert new[COLOR_ID] == f"{session.token}-51"
    assert (new[CHILDREN_COUNT], new[RANK], new[SOURCE_FILE]) == (8, 3, "manual entry")
    assert new[DATE] == pd.Timestamp("2026-01-12")
    assert view.counts["rows"] == 51
    _undo_redo_round_trip(sample_session, before)


def test_a_pinned_child_is_the_parent_until_unpinned(sample_session):
    before = _view(sample_session)
    child = _group(before).iloc[-1]
    session_actions.pin_parent(sample_session, ANN, child[COLOR_ID])
    pinned = _view(sample_session)
    assert (_parent(pinned)[COLOR_ID], _parent(pinned)[CHILDREN_COUNT]) == (child[COLOR_ID], 7)
    assert _group(pinned)[COLOR_ID].tolist()[1:] == _group(before)[COLOR_ID].tolist()[:-1]
    _undo_redo_round_trip(sample_session, before)
    other = _group(before).iloc[-2][COLOR_ID]
    session = session_actions.pin_parent(sample_session, ANN, other)
    assert session.pinned == [other]  # one pin per CUSIP: the new one replaces the old
    session_actions.unpin(sample_session, ANN, other)
    assert_frame_equal(_view(sample_session).ranked, before.ranked)
    with pytest.raises(InvalidInput, match="is not pinned"):
        session_actions.unpin(sample_session, ANN, other)


def test_a_selected_rule_excludes_rows_and_ranks_the_rest(sample_session):
    rule = save_rule(sample_session, SYSTEM, Rule(
        "No valuations", Group("and", [Condition(BIAS, "equal_to", "valuation")]), active=False))
    before = _view(sample_session)
    assert before.session.rule_ids == []  # inactive: not pre-selected
    session_actions.select_rules(sample_session, ANN, [rule.id])
    view = _view(sample_session)
    assert view.counts == {"rows": 50, "kept": 42, "parents": 7, "children": 35, "excluded": 8,
                           "quarantined": 0, "shown": 42}
    assert view.excluded[EXCLUDED_BY].tolist() == ["No valuations"] * 8
    assert set(view.excluded[BIAS]) == {"VALUATION"}
    assert (view.per_rule, view.rules) == ({"No valuations": 8}, ["No valuations"])
    assert "VALUATION" not in set(view.ranked[BIAS])
    assert view.ranked.groupby(CUSIP)[IS_PARENT].sum().tolist() == [1] * 7
    _undo_redo_round_trip(sample_session, before)
    with pytest.raises(NotFound, match="no rule with id nope"):
        session_actions.select_rules(sample_session, ANN, ["nope"])


def test_active_rules_are_selected_when_a_session_opens(memory_store):
    rule = save_rule(memory_store, SYSTEM, Rule(
        "No JPM", Group("and", [Condition("SOURCE", "equal_to", "JPM")])))
    assert sessions.open_session(memory_store, ANN, SETTINGS, NOW).rule_ids == [rule.id]


def test_filters_narrow_the_rows_shown_not_the_ranking(sample_session):
    view = _view(sample_session, filters=Group("and", [Condition(CUSIP, "equal_to", BIG)]))
    assert view.counts["shown"] == 8
    assert view.counts["parents"] == 10
    assert_frame_equal(view.ranked, _group(_view(sample_session)))


def test_edit_cell_refuses_a_bad_value_naming_row_column_and_value(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_files(memory_store, ANN, [("a.csv", _csv(2))], SETTINGS)
    color_id = f"{session.token}-1"
    with pytest.raises(InvalidInput, match=rf"^row {color_id}, column PX: 'abc' is not a number"):
        edits.edit_cell(memory_store, ANN, color_id, PX, "abc", settings=SETTINGS)
    with pytest.raises(InvalidInput, match=rf"^row {color_id}, column RANK: 9 is outside 1–6$"):
        edits.edit_cell(memory_store, ANN, color_id, RANK, 9, settings=SETTINGS)
    with pytest.raises(InvalidInput, match="column IS_PARENT: is not an editable column"):
        edits.edit_cell(memory_store, ANN, color_id, IS_PARENT, True, settings=SETTINGS)
    with pytest.raises(NotFound, match="row nope is not in the session"):
        edits.edit_cell(memory_store, ANN, "nope", PX, 1, settings=SETTINGS)
    assert sessions.load_session(memory_store, ANN).undo == []


def test_editing_bias_rederives_rank_and_cov_price_the_differences(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_files(memory_store, ANN, [("a.csv", _csv(1, PX=[100.0]))], SETTINGS)
    color_id = f"{session.token}-1"
    edits.edit_cell(memory_store, ANN, color_id, BIAS, "trade", settings=SETTINGS)
    edits.edit_cell(memory_store, ANN, color_id, COV_PRICE, 95, settings=SETTINGS)
    row = _view(memory_store).ranked.iloc[0]
    assert (row[BIAS], row[RANK]) == ("TRADE", 1)
    assert (row[PERCENT_DIFF], row[PRICE_DIFF], row[DIFF_STATUS]) == (
        5.26, 5.0, "Significant Difference")


def test_add_row_refuses_unknown_columns_and_invalid_rows(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    with pytest.raises(InvalidInput, match=r"; new row 1, column NOPE: is not an editable column$"):
        edits.add_row(memory_store, ANN, {"NOPE": 1}, settings=SETTINGS)
    with pytest.raises(InvalidInput, match=(r"^new row 1, column MESSAGE_ID: value is missing; "
                                            r".*CUSIP: value is missing")):
        edits.add_row(memory_store, ANN, {PX: 99.0, BIAS: "BID"}, settings=SETTINGS)


def test_undo_keeps_twenty_steps_and_drops_the_blobs_that_fall_off(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_files(memory_store, ANN, [("a.csv", _csv(1))], SETTINGS)
    color_id = f"{session.token}-1"
    for i in range(22):
        session = edits.edit_cell(memory_store, ANN, color_id, BID, 90 + i, settings=SETTINGS)
    assert len(session.undo) == 20
    assert set(memory_store.list_blobs("sessions/ann/")) == session.blobs()
    assert len(session.blobs()) == 22  # 20 undo steps + current rows + report
    for _ in range(20):
        session = session_actions.undo(memory_store, ANN)
    assert _view(memory_store).ranked[PX].tolist() == [91.0]
    with pytest.raises(InvalidInput, match="nothing to undo"):
        session_actions.undo(memory_store, ANN)
    edits.edit_cell(memory_store, ANN, color_id, BID, 50, settings=SETTINGS)
    with pytest.raises(InvalidInput, match="nothing to redo"):
        session_actions.redo(memory_store, ANN)
    assert set(memory_store.list_blobs("sessions/ann/")) == sessions.load_session(
        memory_store, ANN).blobs()


def test_save_publishes_one_run_exactly_once(sample_session):
    rule = save_rule(sample_session, SYSTEM, Rule(
        "No valuations", Group("and", [Condition(BIAS, "equal_to", "VALUATION")]), active=False))
    session_actions.select_rules(sample_session, ANN, [rule.id])
    child = _group(_view(sample_session)).iloc[-1][COLOR_ID]
    session_actions.pin_parent(sample_session, ANN, child)
    first = session_actions.save(sample_session, ANN, SETTINGS, idempotency_key="click-1")
    again = session_actions.save(sample_session, ANN, SETTINGS, idempotency_key="click-1")
    other = session_actions.save(sample_session, ANN, SETTINGS, idempotency_key="click-2")
    assert [r.run_id for r in runs.load_runs(sample_session)] == [first.record.run_id]
    assert again.record.run_id == other.record.run_id == first.record.run_id
    assert (first.record.kind, first.record.trigger, first.record.actor) == (
        "MANUAL", "manual_save", "ann")
    assert first.record.counts == {"read": 50, "quarantined": 0, "excluded": 8, "published": 42,
                                   "parents": 7, "children": 35, "cusips": 7}
    assert first.record.rules_applied == ["No valuations"]
    published = first.published
    assert published[(published[CUSIP] == BIG) & published[IS_PARENT]][COLOR_ID].tolist() == [child]
    assert set(published[PROCESSING_TYPE]) == {"MANUAL"}
    assert_frame_equal(again.published.drop(columns=["PROCESSED_AT"]),
                       first.published.drop(columns=["PROCESSED_AT"]), check_dtype=False)
    assert again.workbook == first.workbook
    assert sessions.load_session(sample_session, ANN) is None
    assert sample_session.list_blobs("sessions/ann/") == []
    with pytest.raises(NotFound):
        _view(sample_session)


def test_the_save_summary_says_what_save_will_publish(sample_session):
    rule = save_rule(sample_session, SYSTEM, Rule(
        "No valuations", Group("and", [Condition(BIAS, "equal_to", "VALUATION")]), active=False))
    session_actions.select_rules(sample_session, ANN, [rule.id])
    summary = session_actions.save_summary(sample_session, ANN, SETTINGS)
    assert summary == session_actions.SaveSummary(
        rows=50, published=42, parents=7, excluded=8, per_rule={"No valuations": 8}, already=0,
        already_where="", republish=False, quarantined=0, warnings=50)
    saved = session_actions.save(sample_session, ANN, SETTINGS, idempotency_key="k")
    assert {k: saved.record.counts[k] for k in ("published", "parents", "excluded")} == {
        "published": 42, "parents": 7, "excluded": 8}

    sessions.open_session(sample_session, ANN, SETTINGS, NOW)
    sessions.add_files(sample_session, ANN, [(SAMPLE.name, SAMPLE.read_bytes())], SETTINGS)
    again = session_actions.save_summary(sample_session, ANN, SETTINGS)  # the rule is off now
    assert (again.rows, again.published, again.parents, again.already) == (50, 8, 4, 42)
    assert again.already_where.startswith(f"run {saved.record.run_id} (file {SAMPLE.name}")
    assert session_actions.save_summary(sample_session, ANN, SETTINGS, republish=True
                                        ).published == 50


def test_a_key_saved_earlier_still_returns_its_run_after_a_new_session(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    sessions.add_files(memory_store, ANN, [("a.csv", _csv())], SETTINGS)
    run_id = session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k").record.run_id
    fresh = sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    assert (fresh.status, fresh.rows_key) == ("open", "")
    assert session_actions.save(memory_store, ANN, SETTINGS,
                                idempotency_key="k").record.run_id == run_id
    with pytest.raises(InvalidInput, match="no rows to save"):
        session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k2")
    assert len(runs.load_runs(memory_store)) == 1


def test_save_marks_buffer_files_processed(memory_store):
    [entry] = buffer.add_files(memory_store, ANN, [("q.csv", _csv())], SETTINGS, NOW)
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_from_buffer(memory_store, ANN, None, SETTINGS)
    assert session.buffer_ids == [entry.id]
    assert session.files[0]["buffer_id"] == entry.id
    result = session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k")
    done = buffer.get_entry(memory_store, entry.id)
    assert (done.status, done.run_id) == ("processed", result.record.run_id)
    assert buffer.claim_pending(memory_store, "scheduler") == []


def test_two_sessions_claiming_one_buffer_file_one_gets_it(memory_store):
    [entry] = buffer.add_files(memory_store, ANN, [("q.csv", _csv())], SETTINGS, NOW)
    for actor in (ANN, BOB):
        sessions.open_session(memory_store, actor, SETTINGS, NOW)
    start = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def load(actor: Actor) -> None:
        start.wait()
        try:
            sessions.add_from_buffer(memory_store, actor, [entry.id], SETTINGS)
            outcome[actor.username] = "loaded"
        except Conflict as exc:
            outcome[actor.username] = str(exc)

    threads = [threading.Thread(target=load, args=(a,)) for a in (ANN, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winner = next(name for name, text in outcome.items() if text == "loaded")
    loser = "bob" if winner == "ann" else "ann"
    assert outcome[loser].startswith(f"buffer file(s) not available: {entry.id} (q.csv: claimed "
                                     f"by session:{winner})")
    assert buffer.get_entry(memory_store, entry.id).claimed_by == f"session:{winner}"
    assert _view(memory_store, Actor(winner, "analyst")).counts["rows"] == 3
    assert _view(memory_store, Actor(loser, "analyst")).counts["rows"] == 0
    assert buffer.claim_pending(memory_store, "scheduler") == []  # the run cannot take it either


def test_discard_releases_the_buffer_claims_and_deletes_the_blobs(memory_store):
    [entry] = buffer.add_files(memory_store, ANN, [("q.csv", _csv())], SETTINGS, NOW)
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    sessions.add_from_buffer(memory_store, ANN, [entry.id], SETTINGS)
    assert memory_store.list_blobs("sessions/ann/") != []
    session_actions.discard(memory_store, ANN)
    assert buffer.get_entry(memory_store, entry.id).status == "pending"
    assert memory_store.list_blobs("sessions/ann/") == []
    assert sessions.load_session(memory_store, ANN) is None
    with pytest.raises(NotFound):
        session_actions.discard(memory_store, ANN)
    actions = load_changes(memory_store, area="sessions")["ACTION"].tolist()
    assert actions == ["session_discarded", "files_added", "session_opened"]


def test_a_bad_file_changes_nothing(memory_store):
    session = sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    with pytest.raises(FileProblem):
        sessions.add_files(memory_store, ANN, [("bad.csv", b"FOO,BAR\n1,2\n")], SETTINGS)
    assert sessions.load_session(memory_store, ANN) == session


def test_a_session_resumes_after_a_restart(tmp_path):
    first = open_store(str(tmp_path / "store"))
    sessions.open_session(first, ANN, SETTINGS, NOW)
    session = sessions.add_files(first, ANN, [("a.csv", _csv(3, CUSIP=["97988RBL5"] * 3))],
                                 SETTINGS)
    session = session_actions.pin_parent(first, ANN, f"{session.token}-3")
    before = _view(first)
    restarted = open_store(str(tmp_path / "store"))
    assert sessions.load_session(restarted, ANN) == session
    assert sessions.open_session(restarted, ANN, SETTINGS, NOW) == session  # resumes, no new one
    assert_frame_equal(_view(restarted).ranked, before.ranked)
    assert _parent(_view(restarted), "97988RBL5")[COLOR_ID] == f"{session.token}-3"


def test_a_stale_window_gets_a_conflict(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_files(memory_store, ANN, [("a.csv", _csv())], SETTINGS)
    shown = session.version  # both windows show this version
    session_actions.pin_parent(memory_store, ANN, f"{session.token}-2", version=shown)
    with pytest.raises(Conflict, match="the session changed in another window; reload"):
        session_actions.delete_rows(memory_store, ANN, [f"{session.token}-1"], version=shown)
    with pytest.raises(Conflict, match="another window"):
        session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k", version=shown)
    assert _view(memory_store).counts["rows"] == 3


def test_a_save_that_died_after_publishing_is_finished_not_repeated(memory_store):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    sessions.add_files(memory_store, ANN, [("a.csv", _csv())], SETTINGS)
    result = session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k", now=NOW)
    session = sessions.read_session(memory_store, "ann")
    memory_store.put("sessions/ann", session.to_dict() | {  # as if it died before closing
        "status": "saving", "saves": {}, "saved_run_id": None, "saving_key": "k",
        "saving_at": NOW.isoformat()}, session.version)
    with pytest.raises(Conflict, match="being saved"):
        session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k2", now=NOW)
    later = NOW + timedelta(minutes=11)
    again = session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k2", now=later)
    assert again.record.run_id == result.record.run_id
    assert len(runs.load_runs(memory_store)) == 1


def test_a_failed_publish_leaves_the_session_open_and_its_files_claimed(memory_store,
                                                                         monkeypatch):
    [entry] = buffer.add_files(memory_store, ANN, [("q.csv", _csv())], SETTINGS, NOW)
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    session = sessions.add_from_buffer(memory_store, ANN, None, SETTINGS)

    def refuse(*args, **kwargs):
        raise PublishRefused("not exactly one parent")

    monkeypatch.setattr(session_actions, "publish_run", refuse)
    with pytest.raises(PublishRefused):
        session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k")
    reopened = sessions.load_session(memory_store, ANN)
    assert (reopened.status, reopened.rows_key, reopened.buffer_ids) == (
        "open", session.rows_key, [entry.id])
    assert buffer.get_entry(memory_store, entry.id).claimed_by == "session:ann"
    assert runs.load_runs(memory_store) == []


def test_save_refuses_when_a_buffer_claim_was_lost(memory_store):
    [entry] = buffer.add_files(memory_store, ANN, [("q.csv", _csv())], SETTINGS, NOW)
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    sessions.add_from_buffer(memory_store, ANN, None, SETTINGS)
    buffer.release(memory_store, [entry.id])  # e.g. an admin's clean-up
    with pytest.raises(Conflict, match=f"buffer file.s. {entry.id} are no longer held"):
        session_actions.save(memory_store, ANN, SETTINGS, idempotency_key="k")
    assert runs.load_runs(memory_store) == []
    assert sessions.load_session(memory_store, ANN).status == "open"


MUTATIONS = {
    "open_session": lambda s, a: sessions.open_session(s, a, SETTINGS, NOW),
    "load_session": lambda s, a: sessions.load_session(s, a),
    "preview": lambda s, a: sessions.preview(s, a, SETTINGS),
    "add_files": lambda s, a: sessions.add_files(s, a, [("a.csv", _csv())], SETTINGS),
    "add_from_buffer": lambda s, a: sessions.add_from_buffer(s, a, None, SETTINGS),
    "fetch_from_source": lambda s, a: sessions.fetch_from_source(s, a, [], SETTINGS),
    "delete_rows": lambda s, a: session_actions.delete_rows(s, a, ["x"]),
    "edit_cell": lambda s, a: edits.edit_cell(s, a, "x", PX, 1, settings=SETTINGS),
    "add_row": lambda s, a: edits.add_row(s, a, {}, settings=SETTINGS),
    "pin_parent": lambda s, a: session_actions.pin_parent(s, a, "x"),
    "unpin": lambda s, a: session_actions.unpin(s, a, "x"),
    "select_rules": lambda s, a: session_actions.select_rules(s, a, []),
    "undo": lambda s, a: session_actions.undo(s, a),
    "redo": lambda s, a: session_actions.redo(s, a),
    "save": lambda s, a: session_actions.save(s, a, SETTINGS, idempotency_key="k"),
    "discard": lambda s, a: session_actions.discard(s, a),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_viewer_cannot_work_a_session(memory_store, name):
    with pytest.raises(PermissionDenied, match="vic is not allowed to work manual color sessions"):
        MUTATIONS[name](memory_store, VIEWER)
    assert memory_store.list("sessions/") == []


def test_a_sql_source_is_fetched_into_the_session_past_the_job_s_watermark(memory_store,
                                                                           tmp_path):
    frame = make_colors(4, CUSIP=["97988RBL5"] * 4, PX=[98.0, 99.0, 101.0, 100.0])
    frame[DATE] = frame[DATE].dt.strftime("%Y-%m-%d")
    frame["DATE_1"] = frame["DATE_1"].dt.strftime("%Y-%m-%d")
    frame["SEQ"] = [1, 2, 3, 4]
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = sa.create_engine(url)
    frame[[*INPUT_COLUMNS, "SEQ"]].astype(object).to_sql("colors", engine, index=False)
    engine.dispose()
    settings = load_settings({"sources": {"desk": {"url": url}}}, {})
    job = save_job(memory_store, SYSTEM, Job(name="Desk SQL", schedule="0 7 * * 1-5", sources=[
        {"kind": "sql", "secret": "desk", "table": "colors", "watermark_column": "SEQ",
         "column_map": {c: c for c in INPUT_COLUMNS}}]), now=NOW)
    save_watermark(memory_store, job.id, job.sources[0], 1, run_id=7, at=NOW)
    sessions.open_session(memory_store, ANN, settings, NOW)
    session = sessions.fetch_from_source(memory_store, ANN, job.sources, settings, job_id=job.id,
                                         now=NOW)
    assert [f["name"] for f in session.files] == ["sql-desk-colors.parquet"]
    view = _view(memory_store)
    assert view.ranked[PX].tolist() == [101.0, 100.0, 99.0]  # SEQ 1 is behind the watermark
    assert view.ranked[IS_PARENT].tolist() == [True, False, False]
    assert load_watermark(memory_store, job.id, job.sources[0]).value == 1  # the job's, unmoved


def test_only_sql_sources_can_be_fetched(memory_store, tmp_path):
    sessions.open_session(memory_store, ANN, SETTINGS, NOW)
    with pytest.raises(InvalidInput, match="fetches SQL sources only"):
        sessions.fetch_from_source(memory_store, ANN, [{"kind": "buffer"}], SETTINGS)
