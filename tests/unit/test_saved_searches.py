"""Saved searches (own, optionally shared) and each user's last 20 searches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.access import Actor
from core.audit import load_changes
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.reads.identifiers import parse_bulk
from core.reads.saved_searches import (
    HISTORY_LIMIT,
    delete_saved_search,
    list_saved_searches,
    load_search_history,
    record_search_history,
    save_search,
)
from core.reads.search import SearchQuery, filters_group

ANA, MIA = Actor("ana", "analyst"), Actor("mia", "viewer", ("MM-CLO",))
NOW = datetime(2026, 3, 13, 9, tzinfo=UTC)
ARES = SearchQuery(text="ares", match="contains", filters=filters_group(sectors=("MM-CLO",)),
                   page=3)


def names(searches) -> list[tuple[str, str, bool]]:
    return [(s.owner, s.name, s.shared) for s in searches]


def test_a_saved_search_comes_back_on_page_one(memory_store):
    saved = save_search(memory_store, ANA, "  ARES   mezz ", ARES, now=NOW)
    assert (saved.name, saved.owner, saved.shared) == ("ARES mezz", "ana", False)
    [again] = list_saved_searches(memory_store, ANA)
    assert again.query == ARES.with_page(1)
    assert (again.created_at, again.updated_at) == (NOW.isoformat(), NOW.isoformat())


def test_shared_searches_are_listed_for_everyone_private_ones_only_for_the_owner(memory_store):
    save_search(memory_store, ANA, "Mine", ARES, now=NOW)
    save_search(memory_store, ANA, "Desk ARES", ARES, shared=True, now=NOW)
    save_search(memory_store, MIA, "B only", SearchQuery(bulk=tuple(parse_bulk("000840AG3"))),
                now=NOW)
    assert names(list_saved_searches(memory_store, MIA)) == [
        ("mia", "B only", False), ("ana", "Desk ARES", True)]
    assert names(list_saved_searches(memory_store, ANA)) == [
        ("ana", "Desk ARES", True), ("ana", "Mine", False)]


def test_saving_the_same_name_replaces_it_and_keeps_when_it_was_created(memory_store):
    save_search(memory_store, ANA, "Mine", ARES, now=NOW)
    later = NOW + timedelta(hours=1)
    save_search(memory_store, ANA, "MINE", SearchQuery(text="97988RBL5"), shared=True, now=later)
    [saved] = list_saved_searches(memory_store, ANA)
    assert (saved.name, saved.query.text, saved.shared) == ("MINE", "97988RBL5", True)
    assert (saved.created_at, saved.updated_at) == (NOW.isoformat(), later.isoformat())


def test_deleting_a_saved_search(memory_store):
    save_search(memory_store, ANA, "Mine", ARES, now=NOW)
    delete_saved_search(memory_store, ANA, "mine", now=NOW)
    assert list_saved_searches(memory_store, ANA) == []
    with pytest.raises(NotFound):
        delete_saved_search(memory_store, ANA, "Mine")
    save_search(memory_store, MIA, "Theirs", ARES, shared=True, now=NOW)
    with pytest.raises(NotFound):  # nobody deletes another user's search
        delete_saved_search(memory_store, ANA, "Theirs")


def test_saving_and_deleting_are_audited(memory_store):
    save_search(memory_store, ANA, "Mine", ARES, now=NOW)
    delete_saved_search(memory_store, ANA, "Mine", now=NOW + timedelta(minutes=1))
    log = load_changes(memory_store, area="searches")
    assert list(zip(log["ACTION"], log["ENTITY"], log["ACTOR"], strict=True)) == [
        ("search_deleted", "ana/Mine", "ana"), ("search_saved", "ana/Mine", "ana")]


def test_a_name_is_required_and_a_role_must_keep_searches(memory_store):
    with pytest.raises(InvalidInput):
        save_search(memory_store, ANA, "   ", ARES)
    with pytest.raises(InvalidInput):
        save_search(memory_store, ANA, "x" * 81, ARES)
    with pytest.raises(PermissionDenied):
        save_search(memory_store, Actor("x", "nobody"), "Mine", ARES)
    with pytest.raises(PermissionDenied):
        record_search_history(memory_store, Actor("x", "nobody"), ARES)


def test_history_keeps_the_last_twenty_newest_first(memory_store):
    for i in range(25):
        record_search_history(memory_store, ANA, SearchQuery(text=f"deal {i}"),
                              now=NOW + timedelta(minutes=i))
    history = load_search_history(memory_store, ANA)
    assert len(history) == HISTORY_LIMIT == 20
    assert [q.text for _, q in history] == [f"deal {i}" for i in range(24, 4, -1)]
    assert history[0][0] == (NOW + timedelta(minutes=24)).isoformat()
    assert load_search_history(memory_store, MIA) == []


def test_a_repeated_search_moves_to_the_top_once_whatever_its_page(memory_store):
    record_search_history(memory_store, ANA, ARES, now=NOW)
    record_search_history(memory_store, ANA, SearchQuery(text="x"), now=NOW)
    record_search_history(memory_store, ANA, ARES.with_page(7), now=NOW + timedelta(minutes=1))
    assert [q for _, q in load_search_history(memory_store, ANA)] == [
        ARES.with_page(1), SearchQuery(text="x")]
