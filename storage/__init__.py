"""Storage layer: the Store protocol and `open_store(url)`, which picks a backend lazily."""

from __future__ import annotations

from pathlib import Path

from storage.base import ANY_VERSION, Store
from storage.errors import InvalidKey, ObjectNotFound, StoreError, StoreUnavailable, WriteConflict

__all__ = [
    "ANY_VERSION",
    "InvalidKey",
    "ObjectNotFound",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WriteConflict",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open the store a URL names: a folder path or file://… (local), memory://, s3://bucket/prefix,
    or a SQLAlchemy URL (postgresql+psycopg://…, oracle+oracledb://…, sqlite:///…)."""
    if url.startswith("memory://"):
        from storage.memory import MemoryStore

        return MemoryStore(url)
    if url.startswith("s3://"):
        from storage.s3 import S3Store  # type: ignore[import-not-found]  # the S3 issue

        return S3Store(url)
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        if scheme.split("+")[0] in ("postgresql", "oracle", "sqlite"):
            from storage.sql import SqlStore  # type: ignore[import-not-found]  # SQL issue

            return SqlStore(url)
        raise InvalidKey(url, f"unknown store scheme {scheme!r}")
    from storage.local import LocalStore

    path = url[len("file://"):] if url.startswith("file://") else url
    return LocalStore(Path(path))
