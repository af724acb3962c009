"""Presets on Search: a preset the reader may use (own or shared) narrows the search in DuckDB,
beside the box, the filters and the reader's sectors; who may change which preset."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from core import catalog
from core.access import ADMIN, ANALYST, SYSTEM, VIEWER, Actor
from core.audit import load_changes
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.reads.search import QueryPreset, SearchQuery, export_search, search_colors, search_rows
from core.reads.search_presets import search_preset_columns, with_preset
from core.rules.conditions import Condition, Group
from core.rules.presets import (
    Preset,
    apply_preset,
    delete_preset,
    get_preset,
    list_presets,
    may_change,
    save_preset,
)
from core.runs import pipeline
from core.schema import PX, SECTOR, SOURCE
from storage import open_store
from tests.unit.test_search import RUN1, RUN2, publish

A, B, C, D = "97988RBL5", "000840AG3", "037833100", "94958LAG3"
VERA, BOB, ANN = Actor("vera", VIEWER), Actor("bob", ANALYST), Actor("ann", ADMIN)
MIA = Actor("mia", VIEWER, ("MM-CLO",))
JPM_OR_CHEAP = Group("or", [Condition(SOURCE, "equal_to", "jpm"), Condition(PX, "less_than", 96)])
# every published row the preset keeps, in the search's order (newest run, CUSIP, ranked)
KEPT = [(2, B, 95.5), (2, D, 40.0), (2, A, 99.25), (2, A, 90.0), (1, B, 95.0), (1, B, 96.0),
        (1, A, 99.0)]


@pytest.fixture(scope="module")
def published():
    store = open_store("memory://search-presets")
    publish(store, RUN1, day="2026-03-12", at=datetime(2026, 3, 12, 18, tzinfo=UTC))
    publish(store, RUN2, day="2026-03-13", at=datetime(2026, 3, 13, 18, tzinfo=UTC),
            kind=pipeline.AUTOMATED)
    return store


@pytest.fixture
def store(published):
    """The published store with no presets (each test starts from none)."""
    for key in published.list(catalog.PRESETS.key) + published.list(catalog.CLAIMS.key):
        published.delete(key)
    return published


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame[["RUN_ID", "CUSIP", "PX"]].itertuples(index=False)]


def found(store, actor: Actor, query: SearchQuery) -> list[tuple]:
    return rows(search_colors(store, actor, query).frame)


def test_a_viewers_own_preset_keeps_exactly_the_matching_rows(store):
    mine = save_preset(store, VERA, Preset("JPM or cheap", JPM_OR_CHEAP))
    query = with_preset(store, VERA, SearchQuery(), mine.id)
    assert query.preset == QueryPreset(mine.id, "JPM or cheap", JPM_OR_CHEAP)
    result = search_colors(store, VERA, query)
    assert rows(result.frame) == KEPT
    assert (result.total_parents, result.total_rows) == (5, 7)
    # the SQL keeps what the rules' masks keep on the same rows
    everything = search_rows(store, SYSTEM, SearchQuery())
    assert sorted(rows(apply_preset(everything, mine))) == sorted(KEPT)


def test_a_preset_combines_with_the_box_the_filters_and_the_readers_sectors(store):
    mine = save_preset(store, VERA, Preset("JPM or cheap", JPM_OR_CHEAP))
    ares = with_preset(store, VERA, SearchQuery(text="ares"), mine.id)
    assert found(store, VERA, ares) == [(2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]
    assert found(store, VERA, replace(ares, text=A)) == [(2, A, 99.25), (2, A, 90.0),
                                                         (1, A, 99.0)]
    filtered = replace(ares, text="", filters=Group("and", [Condition(PX, "greater_than", 96)]))
    assert found(store, VERA, filtered) == [(2, A, 99.25), (1, A, 99.0)]
    shared = save_preset(store, BOB, Preset("Desk", JPM_OR_CHEAP, shared=True))
    assert found(store, MIA, with_preset(store, MIA, SearchQuery(), shared.id)) == [
        (2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]


def test_the_whole_result_export_keeps_the_preset(store):
    mine = save_preset(store, BOB, Preset("JPM or cheap", JPM_OR_CHEAP))
    query = with_preset(store, BOB, SearchQuery(), mine.id)
    assert sorted(rows(search_rows(store, BOB, query))) == sorted(KEPT)
    exported = pd.read_csv(io.BytesIO(export_search(store, BOB, query, "csv")))
    assert len(exported) == len(KEPT)


def test_no_preset_changes_nothing_and_old_query_keys_stay_the_same(store):
    query = with_preset(store, VERA, SearchQuery(text="ares"), None)
    assert query == SearchQuery(text="ares")
    assert "preset" not in query.to_dict()
    mine = save_preset(store, VERA, Preset("JPM or cheap", JPM_OR_CHEAP))
    applied = with_preset(store, VERA, query, mine.id)
    assert SearchQuery.from_dict(applied.to_dict()) == applied
    assert applied.key() != query.key()


def test_an_edited_preset_applies_its_new_conditions(store):
    mine = save_preset(store, VERA, Preset("JPM or cheap", JPM_OR_CHEAP))
    save_preset(store, VERA, replace(mine, conditions=Group("and", [
        Condition(SECTOR, "equal_to", "MM-CLO")])))
    query = with_preset(store, VERA, SearchQuery(), mine.id)
    assert found(store, VERA, query) == [(2, B, 95.5), (1, B, 95.0), (1, B, 96.0)]


def test_only_own_and_shared_presets_can_be_applied(store):
    private = save_preset(store, BOB, Preset("bob's", JPM_OR_CHEAP))
    for actor in (VERA, ANN):
        with pytest.raises(NotFound):
            with_preset(store, actor, SearchQuery(), private.id)
    with pytest.raises(NotFound):
        with_preset(store, VERA, SearchQuery(), "no-such-id")


def test_a_preset_on_a_column_the_reader_cannot_see_is_refused_with_its_name(store):
    shared = save_preset(store, BOB, Preset("By dealer", JPM_OR_CHEAP, shared=True))
    cal = Actor("cal", VIEWER, None, ("RUN_ID", "CUSIP", "PX"))
    assert set(search_preset_columns(store, cal)) == {"RUN_ID", "CUSIP", "PX"}
    query = with_preset(store, cal, SearchQuery(), shared.id)
    with pytest.raises(InvalidInput) as exc:
        search_colors(store, cal, query)
    assert str(exc.value) == ("preset 'By dealer': condition 1 (SOURCE equals 'jpm'): "
                              "unknown column SOURCE")


# -- who may change which preset -------------------------------------------------------------------
@pytest.mark.parametrize("actor", [VERA, BOB, ANN], ids=lambda a: a.role)
def test_every_role_creates_edits_and_deletes_its_own_presets_logged(store, actor):
    mine = save_preset(store, actor, Preset("mine", JPM_OR_CHEAP))
    assert may_change(actor, mine)
    _, version = get_preset(store, actor, mine.id)
    edited = save_preset(store, actor, replace(mine, name="mine, renamed"),
                         expected_version=version)
    delete_preset(store, actor, mine.id)
    assert list_presets(store, actor) == []
    log = load_changes(store, area="presets")
    ours = log[log["ENTITY"] == f"presets/{actor.username}/{mine.id}"]
    assert sorted(ours["ACTION"]) == ["create", "delete", "update"]
    assert edited.name == "mine, renamed"


@pytest.mark.parametrize("actor", [VERA, BOB], ids=lambda a: a.role)
def test_only_an_admin_changes_another_users_shared_preset(store, actor):
    shared = save_preset(store, ANN if actor is BOB else BOB, Preset("Desk", JPM_OR_CHEAP,
                                                                     shared=True))
    assert shared in list_presets(store, actor)
    assert not may_change(actor, shared)
    with pytest.raises(PermissionDenied) as exc:
        save_preset(store, actor, replace(shared, name="taken over"))
    assert str(exc.value) == f"{actor.username} is not allowed to edit another user's preset"
    with pytest.raises(PermissionDenied):
        delete_preset(store, actor, shared.id)
    assert get_preset(store, actor, shared.id)[0] == shared
    assert may_change(ANN, shared)  # an admin may change any shared preset


def test_a_viewer_never_changes_another_users_private_preset(store):
    private = save_preset(store, BOB, Preset("bob's", JPM_OR_CHEAP))
    assert not may_change(VERA, private)
    assert not may_change(ANN, private)  # an admin neither: it is not shared
    with pytest.raises(PermissionDenied):
        save_preset(store, VERA, replace(private, name="mine now"))
    with pytest.raises(NotFound):  # a private preset is not even seen
        delete_preset(store, VERA, private.id)
