"""Storage layer: the Store protocol and `open_store(url)`, which picks a backend lazily."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage.base import ANY_VERSION, Store
from storage.documents import get_many
from storage.errors import InvalidKey, ObjectNotFound, StoreError, StoreUnavailable, WriteConflict

__all__ = [
    "ANY_VERSION",
    "InvalidKey",
    "ObjectNotFound",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WriteConflict",
    "get_many",
    "open_store",
]


def open_store(url: str, options: Mapping[str, Any] | None = None) -> Store:
    """Open the store a URL names: a folder path or file://… (local), memory://, s3://bucket/prefix,
    or a SQLAlchemy URL (postgresql+psycopg://…, oracle+oracledb://…, sqlite:///…).
    options: settings by their dotted names (s3.endpoint_url, s3.region, s3.access_key_id,
    s3.secret_access_key, s3.cache_dir; sql.schema); each backend reads its own section, ignores
    the rest."""
    if url.startswith("memory://"):
        from storage.memory import MemoryStore

        return MemoryStore(url)
    if url.startswith("s3://"):
        from storage.s3 import S3Store

        return S3Store(url, options)
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        if scheme.split("+")[0] in ("postgresql", "oracle", "sqlite"):
            from storage.sql import SqlStore

            return SqlStore(url, options)
        raise InvalidKey(url, f"unknown store scheme {scheme!r}")
    from storage.local import LocalStore

    path = url[len("file://"):] if url.startswith("file://") else url
    return LocalStore(Path(path))
