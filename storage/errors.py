"""Exceptions raised by every store backend.

StoreError
 ├── ObjectNotFound      a document, blob or table partition that does not exist
 ├── WriteConflict       a document changed since the caller read it (optimistic concurrency)
 ├── InvalidKey          a key that could escape the store (.., absolute, bad characters)
 └── StoreUnavailable    the medium cannot be reached (disk, S3, database)
"""

from __future__ import annotations

from collections.abc import Callable


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


def is_valid(check: Callable[[str], object], name: str) -> bool:
    """Whether `check` (check_key, check_table, check_partition) takes name: what a listing finds
    that no key could be (a stray file, a temporary "~" name) is skipped."""
    try:
        check(name)
    except InvalidKey:
        return False
    return True


class StoreUnavailable(StoreError):
    """The backend could not be reached; the message names the location, never a secret."""
