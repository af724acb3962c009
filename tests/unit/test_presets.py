"""Presets: saved filters in the shared condition model, per owner, shared or private."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from core.access import Actor
from core.audit import load_changes
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.ingest.columns import add_custom_column
from core.rules.conditions import Condition, Group
from core.rules.presets import (
    Preset,
    apply_preset,
    delete_preset,
    get_preset,
    list_presets,
    save_preset,
)
from core.schema import BIAS, CUSIP, PX, SECTOR, SOURCE
from tests.factories import make_colors

ANN = Actor("ann", "admin")
BOB = Actor("bob", "analyst")
VERA = Actor("vera", "viewer")
NOW = datetime(2026, 3, 13, 10, 0, tzinfo=UTC)
MEZZ = Group("and", [Condition(SECTOR, "equal to", "2.0_mezz")])


@pytest.fixture
def store(memory_store):
    return memory_store


def names(presets: list[Preset]) -> list[tuple[str, str]]:
    return [(p.owner, p.name) for p in presets]


def test_a_viewer_saves_a_preset_under_their_own_name(store):
    saved = save_preset(store, VERA, Preset("Mezz only", MEZZ, owner="ann"), now=NOW)
    assert (saved.owner, saved.shared, saved.created_at, saved.updated_by) == (
        "vera", False, NOW, "vera")
    assert store.list("presets/") == [f"presets/vera/{saved.id}"]
    assert get_preset(store, VERA, saved.id) == (saved, "1")
    change = load_changes(store, area="presets").iloc[0]
    assert (change["ACTOR"], change["ACTION"], change["ENTITY"]) == (
        "vera", "create", f"presets/vera/{saved.id}")
    assert json.loads(change["AFTER"]) == saved.to_dict()


def test_each_user_lists_their_own_and_everyones_shared_presets(store):
    save_preset(store, ANN, Preset("Desk view", MEZZ, shared=True))
    save_preset(store, ANN, Preset("ann's private", MEZZ))
    save_preset(store, BOB, Preset("bids", MEZZ))
    save_preset(store, VERA, Preset("Bids", MEZZ))  # names are unique per owner only
    assert names(list_presets(store, BOB)) == [("bob", "bids"), ("ann", "Desk view")]
    assert names(list_presets(store, VERA)) == [("vera", "Bids"), ("ann", "Desk view")]
    assert names(list_presets(store, ANN)) == [("ann", "ann's private"), ("ann", "Desk view")]
    private = next(p for p in list_presets(store, ANN) if not p.shared)
    with pytest.raises(NotFound) as exc:
        get_preset(store, BOB, private.id)
    assert str(exc.value) == f"preset {private.id!r} not found"


def test_an_owner_updates_their_preset_keeping_id_owner_and_creation(store):
    saved = save_preset(store, BOB, Preset("bids", MEZZ), now=NOW)
    later = datetime(2026, 3, 13, 11, 0, tzinfo=UTC)
    bids = Group("and", [Condition(BIAS, "equal to", "BID")])
    updated = save_preset(store, BOB, replace(saved, conditions=bids, shared=True), now=later)
    assert (updated.id, updated.owner, updated.created_at, updated.updated_at) == (
        saved.id, "bob", NOW, later)
    assert get_preset(store, ANN, saved.id)[0] == updated
    assert load_changes(store, area="presets")["ACTION"].tolist() == ["update", "create"]


@pytest.mark.parametrize(("preset", "text"), [
    (Preset("  ", MEZZ), "name: a preset needs a name of 1–100 characters"),
    (Preset("x" * 101, MEZZ), "name: a preset needs a name of 1–100 characters"),
    (Preset("Nothing"), "preset 'Nothing': add at least one condition"),
    (Preset("Cheap", Group("and", [Condition(PX, "greater than", "abc")])),
     "preset 'Cheap': condition 1 (PX greater than 'abc'): 'abc' is not a number"),
    (Preset("Typo", Group("and", [Condition("Px", "less than", 90)])),
     "preset 'Typo': condition 1 (Px less than 90): unknown column Px (did you mean PX?)"),
    (Preset("Odd", Group("and", [Condition(SOURCE, "less than", "JPM")])),
     "preset 'Odd': condition 1 (SOURCE less than 'JPM'): 'less than' does not apply to text "
     "column SOURCE (use one of: equals, does not equal, contains, does not contain, starts "
     "with, ends with, in list, not in list, is empty, is not empty)"),
    (Preset("MEZZ ONLY", MEZZ), "name: bob already has a preset named 'Mezz only'"),
])
def test_an_invalid_preset_is_refused_with_a_message(store, preset, text):
    save_preset(store, BOB, Preset("Mezz only", MEZZ))
    with pytest.raises(InvalidInput) as exc:
        save_preset(store, BOB, preset)
    assert str(exc.value) == text
    assert names(list_presets(store, BOB)) == [("bob", "Mezz only")]


def test_presets_may_test_published_and_custom_columns(store):
    add_custom_column(store, ANN, "DESK_NOTE", "text")
    group = Group("and", [Condition("IS_PARENT", "equal to", True),
                          Condition("DESK_NOTE", "contains", "watch")])
    assert save_preset(store, BOB, Preset("watched parents", group)).conditions == group


def test_only_the_owner_edits_a_private_preset(store):
    private = save_preset(store, BOB, Preset("bids", MEZZ))
    for actor in (ANN, VERA):
        with pytest.raises(PermissionDenied) as exc:
            save_preset(store, actor, replace(private, name="mine now"))
        assert str(exc.value) == f"{actor.username} is not allowed to edit another user's preset"
        with pytest.raises(NotFound):
            delete_preset(store, actor, private.id)
    assert get_preset(store, BOB, private.id)[0] == private


def test_an_admin_edits_and_deletes_a_shared_preset_others_only_use_it(store):
    shared = save_preset(store, BOB, Preset("Desk view", MEZZ, shared=True))
    with pytest.raises(PermissionDenied) as exc:
        save_preset(store, VERA, replace(shared, name="vera's"))
    assert str(exc.value) == "vera is not allowed to edit another user's preset"
    with pytest.raises(PermissionDenied) as exc:
        delete_preset(store, VERA, shared.id)
    assert str(exc.value) == "vera is not allowed to delete another user's preset"
    renamed = save_preset(store, ANN, replace(shared, name="Desk view (mezz)"))
    assert (renamed.owner, renamed.updated_by) == ("bob", "ann")
    delete_preset(store, ANN, shared.id)
    assert list_presets(store, BOB) == []
    change = load_changes(store, area="presets").iloc[0]
    assert (change["ACTOR"], change["ACTION"], json.loads(change["BEFORE"])["name"]) == (
        "ann", "delete", "Desk view (mezz)")


def test_an_owner_deletes_their_preset(store):
    saved = save_preset(store, VERA, Preset("Mezz only", MEZZ))
    delete_preset(store, VERA, saved.id)
    assert store.list("presets/") == []
    with pytest.raises(NotFound):
        delete_preset(store, VERA, saved.id)


def test_saving_over_a_stale_version_is_a_conflict(store):
    saved = save_preset(store, BOB, Preset("bids", MEZZ))
    _, version = get_preset(store, BOB, saved.id)
    save_preset(store, BOB, replace(saved, description="first edit"))
    with pytest.raises(Conflict) as exc:
        save_preset(store, BOB, replace(saved, description="second"), expected_version=version)
    assert str(exc.value) == ("preset 'bids' was changed since it was opened; reload it and try "
                              "again")
    delete_preset(store, BOB, saved.id)
    with pytest.raises(Conflict) as exc:
        save_preset(store, BOB, saved, expected_version="2")
    assert str(exc.value) == "preset 'bids' was deleted since it was opened"


def test_apply_preset_keeps_the_matching_rows():
    frame = make_colors(SECTOR=["2.0_Mezz", "MM-CLO", "2.0_Mezz", "A_BSL"],
                        PX=[99.0, 80.0, 85.0, 101.0], SOURCE=["JPM", "GS", "DZ BANK", "MS"])
    cheap_mezz = Preset("cheap mezz or MS", Group("or", [
        Group("and", [Condition(SECTOR, "equal to", "2.0_MEZZ"), Condition(PX, "less than", 90)]),
        Condition(SOURCE, "in list", ["ms"]),
    ]))
    kept = apply_preset(frame, cheap_mezz)
    assert kept[CUSIP].tolist() == frame[CUSIP].iloc[[2, 3]].tolist()
    pd.testing.assert_frame_equal(apply_preset(frame, Preset("all")), frame)


def test_an_earlier_system_preset_loads_as_an_and_group():
    legacy = {"id": 7, "name": "Mezz bids", "created_by": "admin",
              "conditions": [{"column": SECTOR, "operator": "is equal to", "value": "2.0_Mezz"},
                             {"column": BIAS, "operator": "equals", "value": "BID"}]}
    preset = Preset.from_dict(legacy)
    assert (preset.id, preset.owner, preset.conditions) == ("7", "admin", Group("and", [
        Condition(SECTOR, "equal_to", "2.0_Mezz"), Condition(BIAS, "equal_to", "BID")]))
