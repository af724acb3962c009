"""Exceptions raised by every store backend.

StoreError
 ├── ObjectNotFound      a document, blob or table partition that does not exist
 ├── WriteConflict       a document changed since the caller read it (optimistic concurrency)
 ├── InvalidKey          a key that could escape the store (.., absolute, bad characters)
 └── StoreUnavailable    the medium cannot be reached (disk, S3, database)
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every storage failure; storage cannot import core, so it has its own root."""


class ObjectNotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"not found: {key}")
        self.key = key


class WriteConflict(StoreError):
    def __init__(self, key: str, expected: str | None, actual: str | None) -> None:
        super().__init__(
            f"{key} changed since it was read (expected version {expected!r}, found {actual!r})"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class InvalidKey(StoreError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid key {key!r}: {reason}")
        self.key = key


class StoreUnavailable(StoreError):
    """The backend could not be reached; the message names the location, never a secret."""
