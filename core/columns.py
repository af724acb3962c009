"""The column configuration kept in the store: aliases, display names, required, visible."""

from __future__ import annotations

from core.schema import CONFIG_KEY, ColumnSpec, column_config_from_document
from storage import ObjectNotFound, Store


def load_column_config(store: Store) -> list[ColumnSpec]:
    """The stored configuration, or the defaults of core.schema when none is stored."""
    try:
        value, _ = store.get(CONFIG_KEY)
    except ObjectNotFound:
        value = None
    return column_config_from_document(value)
