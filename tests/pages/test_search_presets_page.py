"""Search page presets, for every role: pick one (own or shared) and the results keep its rows, with
the box too; create one with the condition builder, edit and delete your own (delete confirmed);
a shared preset of someone else is listed and usable but not editable."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import catalog
from core.audit import load_changes
from core.identity.user_records import get_user
from core.rules.conditions import Condition, Group
from core.rules.presets import Preset, list_presets, save_preset
from core.schema import BIAS, CUSIP, PX, SECTOR
from tests.pages.conftest import add_user, mounts_at
from tests.pages.test_search_page import (
    MM,
    PAGE,
    build_published,
    form_key,
    groups,
    ok,
    open_page,
    search_for,
    shown_groups,
    totals,
    use_store,
)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return build_published(tmp_path_factory.mktemp("search-presets"))


@pytest.fixture
def shared(published, monkeypatch):
    """The published store, with no presets left by an earlier test."""
    store = use_store(published[0], monkeypatch)
    for key in store.list(catalog.PRESETS.key) + store.list(catalog.CLAIMS.key):
        store.delete(key)
    return store


@pytest.fixture
def rows(published):
    return published[1]


def actor(store, username: str):
    return get_user(store, username).actor()


def builder_key(at: AppTest, name: str) -> str:
    """The key of the preset builder's widget ("0.column", "join"): drawn afresh, under a new key
    generation, each time a preset is loaded or a condition is added or removed."""
    builder = "search.preset_builder"
    return f"{builder}.{at.session_state[f'{builder}_generation_state']}.{name}"


def form_field(at: AppTest, name: str):
    """The preset form's name box or shared checkbox: drawn afresh, under a new key generation,
    each time a preset (or an empty form) is put in the form."""
    generation = at.session_state["search.preset_form_generation_state"]
    key = f"search.preset_form.{generation}.{name}"
    return at.checkbox(key=key) if name == "shared" else at.text_input(key=key)


def create_preset(at: AppTest, name: str, column: str, operator: str, value: str) -> AppTest:
    """Fill the preset form (name, one condition) and save it."""
    form_field(at, "name").input(name)
    at = ok(at.selectbox(key=builder_key(at, "0.column")).set_value(column).run())
    at = ok(at.selectbox(key=builder_key(at, "0.operator")).set_value(operator).run())
    at.text_input(key=builder_key(at, "0.value")).input(value)
    return ok(at.button(key="search.preset_save").click().run())


def active(at: AppTest) -> list[str]:
    return [i.value for i in at.info if "Preset active" in i.value]


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_each_role_creates_applies_edits_and_deletes_its_own_preset(shared, rows, role):
    user = f"{role}_p"
    at = open_page(shared, PAGE, user, role)
    assert at.selectbox(key=form_key(at, "preset")).options == ["(no preset)"]
    at = create_preset(at, "Bids", BIAS, "equal_to", "BID")
    (mine,) = list_presets(shared, actor(shared, user))
    assert (mine.owner, mine.name, mine.conditions) == (
        user, "Bids", Group("and", [Condition(BIAS, "equal_to", "BID")]))
    assert [t.value for t in at.toast] == ["Saved the preset 'Bids': BIAS equals 'BID'"]

    # Saved and picked: the results keep exactly the preset's rows, and say which preset is on.
    assert at.selectbox(key=form_key(at, "preset")).value == mine.id
    assert active(at) == ["**Preset active: Bids** · keeps rows where BIAS equals 'BID'"]
    bids = rows[rows[BIAS] == "BID"]
    assert shown_groups(at) == groups(bids)
    assert totals(at) == (f"{len(groups(bids))} groups (a CUSIP in a run) · {len(bids)} colors "
                          "· page 1 of 1")
    at = search_for(at, "RYZMVCAA8")  # with the box: both apply
    assert shown_groups(at) == groups(bids[bids[CUSIP] == "RYZMVCAA8"])
    at = search_for(at, "")

    # Edit: the form holds the preset; a new condition is saved over it.
    at = ok(at.button(key="search.preset_edit").click().run())
    assert form_field(at, "name").value == "Bids"
    assert at.text_input(key=builder_key(at, "0.value")).value == "BID"
    form_field(at, "name").input("MM bids")
    at = ok(at.button(key=builder_key(at, "add_condition")).click().run())
    at = ok(at.selectbox(key=builder_key(at, "1.column")).set_value(SECTOR).run())
    at.multiselect(key=builder_key(at, "1.picked")).set_value([MM])
    at = ok(at.button(key="search.preset_save").click().run())
    (edited,) = list_presets(shared, actor(shared, user))
    assert (edited.id, edited.name) == (mine.id, "MM bids")
    assert active(at) == ["**Preset active: MM bids** · keeps rows where BIAS equals 'BID' AND "
                          "SECTOR equals 'MM-CLO'"]
    mm_bids = bids[bids[SECTOR] == MM]
    assert 0 < len(mm_bids) < len(bids)
    assert shown_groups(at) == groups(mm_bids)

    # Delete asks first; Cancel keeps it, Yes deletes it and the search runs without it.
    at = ok(at.button(key="search.preset_delete").click().run())
    assert [w.value for w in at.warning] == [
        "Delete the preset 'MM bids'? Searches using it lose it; the deletion is in the saved "
        "filter changes."]
    at = ok(at.button(key="search.preset_delete_cancel").click().run())
    assert [w.value for w in at.warning] == []
    assert len(list_presets(shared, actor(shared, user))) == 1
    at = ok(at.button(key="search.preset_delete").click().run())
    at = ok(at.button(key="search.preset_delete_confirm").click().run())
    assert list_presets(shared, actor(shared, user)) == []
    assert at.selectbox(key=form_key(at, "preset")).options == ["(no preset)"]
    assert active(at) == []
    assert at.info[0].value.startswith("Type a CUSIP, a ticker or a MESSAGE_ID")

    log = load_changes(shared, area="presets")
    log = log[log["ACTOR"] == user]
    assert sorted(log["ACTION"]) == ["create", "delete", "update"]
    assert json.loads(log[log["ACTION"] == "update"]["AFTER"].iloc[0])["name"] == "MM bids"


def test_a_shared_preset_is_listed_and_applied_for_a_viewer_but_not_editable(shared, rows):
    add_user(shared, "ada_p", "admin")
    desk = save_preset(shared, actor(shared, "ada_p"), Preset(
        "Desk MM", Group("and", [Condition(SECTOR, "equal_to", MM)]), shared=True))
    save_preset(shared, actor(shared, "ada_p"), Preset(
        "ada's own", Group("and", [Condition(BIAS, "equal_to", "BID")])))
    at = open_page(shared, PAGE, "vic_p", "viewer")
    assert at.selectbox(key=form_key(at, "preset")).options == ["(no preset)",
                                                         "Desk MM (shared by ada_p)"]
    at = ok(at.selectbox(key=form_key(at, "preset")).set_value(desk.id).run())
    assert active(at) == ["**Preset active: Desk MM** · keeps rows where SECTOR equals 'MM-CLO'"]
    assert shown_groups(at) == groups(rows[rows[SECTOR] == MM])
    assert at.button(key="search.preset_edit").disabled
    assert at.button(key="search.preset_delete").disabled
    assert ("Desk MM is shared by ada_p: you can use it; only its owner or an admin can "
            "change it.") in [c.value for c in at.caption]

    # The admin may change it (core allows an admin any shared preset): the buttons are live.
    admin = open_page(shared, PAGE, "ada_p", "admin")
    admin = ok(admin.selectbox(key=form_key(admin, "preset")).set_value(desk.id).run())
    assert not admin.button(key="search.preset_edit").disabled


def test_a_preset_without_a_name_is_refused_with_the_reason(shared):
    at = open_page(shared, PAGE, "val_p", "viewer")
    at = ok(at.selectbox(key=builder_key(at, "0.column")).set_value(BIAS).run())
    at = at.button(key="search.preset_save").click().run()
    assert [e.value for e in at.error] == [
        "Not saved: name: a preset needs a name of 1–100 characters"]
    assert list_presets(shared, actor(shared, "val_p")) == []


def test_a_browser_that_missed_the_run_that_opened_a_preset_mounts_the_form_at_its_values(shared):
    """Under load the run that puts a preset in the form (Edit) can be superseded before the
    browser gets it, and the browser mounts the form from the next run. Name, shared and every
    condition must come with the preset's values in that run too (they came empty, unshared,
    at the first column and AND, and a save sent those back)."""
    at = open_page(shared, PAGE, "ed_p", "analyst")
    mine = save_preset(shared, actor(shared, "ed_p"), Preset("Cheap MM", Group("or", [
        Condition(SECTOR, "in_list", [MM]), Condition(PX, "less_than", 90)]), shared=True))
    at = ok(at.run())
    at = ok(at.selectbox(key=form_key(at, "preset")).set_value(mine.id).run())
    at = ok(ok(at.button(key="search.preset_edit").click().run()).run())  # and the run after
    assert [mounts_at(form_field(at, f)) for f in ("name", "shared")] == ["Cheap MM", True]
    prefix = builder_key(at, "")
    assert {w.key.removeprefix(prefix): mounts_at(w)
            for kind in (at.radio, at.selectbox, at.multiselect, at.text_input)
            for w in kind if w.key and w.key.startswith(prefix)} == {
        "join": "ANY of these (OR)", "0.column": SECTOR, "0.operator": "in list",
        "0.picked": [MM], "1.column": PX, "1.operator": "less than", "1.value": "90"}
    at = ok(ok(at.button(key="search.preset_save").click().run()).run())  # and the run after
    (saved,) = list_presets(shared, actor(shared, "ed_p"))
    assert (saved.id, saved.name, saved.shared, saved.conditions) == (
        mine.id, "Cheap MM", True, mine.conditions)
    assert mounts_at(at.selectbox(key=form_key(at, "preset"))) == "Cheap MM (yours, shared)"
