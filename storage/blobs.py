"""Blobs, the third part of the Store (DESIGN.md §3): bytes under keys (uploaded files, output
workbooks, snapshots, backup archives), written whole. Keys follow the documents' rules
(check_key).

Most blobs are small and read and written as bytes. A backup archive can be hundreds of MB: it is
read through `open_blob` (a seekable file, filled in pieces where the bytes are remote) and
written through `put_blob_file` (read from a file in pieces), so a process never holds it whole
(DESIGN.md §7: peak RSS ≤ 1.5 GB)."""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from typing import IO, Protocol, runtime_checkable

CHUNK = 8 << 20  # bytes read or sent at a time by the streaming calls (≥ S3's 5 MB part minimum)


@runtime_checkable
class Blobs(Protocol):
    """Bytes under keys; list_blobs("") is every key (a backup's list)."""

    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes atomically (readers see the old or the new bytes, never a part)."""

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""

    def open_blob(self, key: str) -> AbstractContextManager[IO[bytes]]:
        """The blob as a readable, seekable binary file for the block (closed after it), filled
        in pieces: the bytes of one write, whatever is written meanwhile; ObjectNotFound if
        absent (when the block is entered)."""

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """Write the bytes of a readable binary file, from where it stands to its end, read in
        pieces, atomically as put_blob; how many bytes were written."""

    def list_blobs(self, prefix: str = "") -> list[str]:
        """Blob keys starting with prefix, sorted."""

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""


def spool() -> IO[bytes]:
    """A temporary file for a blob's bytes fetched in pieces: in memory up to one CHUNK, on disk
    beyond (deleted when closed)."""
    return tempfile.SpooledTemporaryFile(max_size=CHUNK)


def check_file(key: str, file: object) -> None:
    """put_blob_file's argument must be a readable binary file (TypeError otherwise)."""
    if not callable(getattr(file, "read", None)) or isinstance(file, str | bytes):
        raise TypeError(f"{key}: put_blob_file needs a readable binary file, got "
                        f"{type(file).__name__}")
