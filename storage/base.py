"""The Store protocol every backend implements (DESIGN.md §3): its three parts, documents
(storage.documents), tables (storage.tables) and blobs (storage.blobs), behind one object. The
rows runs publish are read and written through the run-table port (storage.run_tables).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from storage.blobs import Blobs
from storage.documents import (
    ANY_VERSION,
    Documents,
    check_key,
    check_prefix,
    check_version,
    encode_document,
)
from storage.tables import PartitionedStore, Tables, check_partition, check_table, to_arrow

__all__ = [
    "ANY_VERSION", "Blobs", "Documents", "PartitionedStore", "Store", "Tables", "check_key",
    "check_partition", "check_prefix", "check_table", "check_version", "encode_document",
    "to_arrow",
]


@runtime_checkable
class Store(Documents, Tables, Blobs, Protocol):
    """One object, three kinds of data. Every backend passes tests/contract. (Parquet-backed
    stores are also PartitionedStores, for storage.parquet_layout alone.)"""

    url: str
