"""Blobs, the third part of the Store (DESIGN.md §3): bytes under keys (uploaded files, output
workbooks, snapshots), written whole. Keys follow the documents' rules (check_key)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Blobs(Protocol):
    """Bytes under keys; list_blobs("") is every key (a backup's list)."""

    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes atomically (readers see the old or the new bytes, never a part)."""

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""

    def list_blobs(self, prefix: str = "") -> list[str]:
        """Blob keys starting with prefix, sorted."""

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""
