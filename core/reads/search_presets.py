"""Presets on Search (DOMAIN.md §3 and §6): a preset the reader may use (their own, or a shared
one) narrows a search to the rows matching its conditions, compiled into the search's DuckDB WHERE
(core.reads.search_sql) beside the box, the bulk ids and the filters."""

from __future__ import annotations

from dataclasses import replace

from core.access import Actor
from core.reads.search import QueryPreset, SearchQuery
from core.rules.presets import get_preset, preset_columns
from core.schema import COLUMN_TYPE, OUTPUT_COLUMNS
from storage import Store


def search_preset_columns(store: Store, actor: Actor) -> dict[str, str]:
    """Columns a preset made on Search may test (name → type): the published ones and the custom
    columns (core.rules.presets.preset_columns, less the pipeline's working columns a search never
    holds), within the actor's column profile (a reader never names a column kept from them)."""
    columns = preset_columns(store)
    internal = set(COLUMN_TYPE) - set(OUTPUT_COLUMNS)
    allowed = None if actor.columns is None else set(actor.columns)
    return {name: kind for name, kind in columns.items()
            if name not in internal and (allowed is None or name in allowed)}


def with_preset(store: Store, actor: Actor, query: SearchQuery, preset_id: str | None
                ) -> SearchQuery:
    """The query narrowed by the preset `preset_id` (None: no preset), read now, so the search
    applies its current conditions. NotFound unless it is the actor's own or a shared one."""
    if not preset_id:
        return replace(query, preset=None)
    preset, _ = get_preset(store, actor, preset_id)
    return replace(query, preset=QueryPreset(preset.id, preset.name, preset.conditions))
