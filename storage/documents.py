"""Documents, the first part of the Store (DESIGN.md §3): JSON values under keys, each write
checked against the version the writer read (optimistic concurrency)."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from storage.errors import InvalidKey, ObjectNotFound, WriteConflict

# Pass as expected_version to write whatever the current version is (heartbeats, caches).
ANY_VERSION = "*"

_KEY = re.compile(r"^[A-Za-z0-9_.=@+-]+(/[A-Za-z0-9_.=@+-]+)*$")


@runtime_checkable
class Documents(Protocol):
    """JSON-able values with opaque string versions."""

    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version.

        expected_version: None = the key must not exist yet; ANY_VERSION = unconditional;
        otherwise the version the caller read. A mismatch raises WriteConflict and writes nothing.
        """

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Document keys starting with prefix, sorted (list("") is every key: a backup's list)."""


def check_key(key: str) -> str:
    """Return the key if it is a safe relative path of simple segments, else raise InvalidKey
    (document and blob keys alike)."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(str(key), "empty")
    if len(key) > 512:
        raise InvalidKey(key, "longer than 512 characters")
    if not _KEY.match(key):
        raise InvalidKey(key, "use letters, digits and _ . = @ + - separated by /")
    if any(part in (".", "..") for part in key.split("/")):
        raise InvalidKey(key, "'.' and '..' segments are not allowed")
    return key


def check_prefix(prefix: str) -> str:
    """A list prefix: empty, or a key optionally ending in '/'."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/"))
    return prefix


def encode_document(key: str, value: Any) -> str:
    """The value as strict JSON text (no NaN/Infinity); TypeError/ValueError if it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{key}: value is not JSON: {exc}") from exc


def check_version(key: str, expected: str | None, actual: str | None) -> None:
    """Raise WriteConflict unless a write expecting `expected` may replace version `actual`."""
    if expected is not None and not isinstance(expected, str):
        raise TypeError(f"{key}: expected_version must be a str or None, got {expected!r}")
    if expected == ANY_VERSION:
        return
    if expected != actual:
        raise WriteConflict(key, expected, actual)


def get_many(store: Documents, keys: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """(value, version) of each of these keys that exists, absent ones left out. A backend with a
    faster way has its own `get_many` (S3: the GETs in parallel); else one get per key."""
    own = getattr(store, "get_many", None)
    if own is not None:
        found: dict[str, tuple[Any, str]] = own(keys)
        return found
    found = {}
    for key in keys:
        try:
            found[key] = store.get(key)
        except ObjectNotFound:  # removed between a listing and this read
            continue
    return found
