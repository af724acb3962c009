"""LocalStore: the Store protocol on one machine's disk (the default backend, `data/`).

Layout under root: docs/<key>.json holding {"version": n, "value": …}; tables/<table>/<partition>/
part-*.parquet, one file per append (storage.local_tables); blobs/<key>. Every write lands under a
temporary name containing "~" (no key can) and is renamed into place, so readers never see half
of it.
"""

from __future__ import annotations

import builtins
import glob
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import filelock

from storage.base import (
    ANY_VERSION,
    check_key,
    check_prefix,
    check_version,
    encode_document,
)
from storage.blobs import CHUNK, check_file
from storage.errors import InvalidKey, ObjectNotFound, StoreUnavailable, is_valid
from storage.local_tables import ABSENT, LocalTables, fsync_dir

LOCK_TIMEOUT = 30.0  # seconds to wait for another process's document write before giving up


class _SourceFailed(Exception):
    """put_blob_file's file failed to read (carried past _guard, which blames the disk)."""


class LocalStore(LocalTables):
    """Documents as JSON files, tables as Parquet files, blobs as files, all under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root.absolute()}"
        # One lock for every document write: compare-and-set must be atomic across processes.
        self._lock = filelock.FileLock(str(self.root / ".lock"), timeout=LOCK_TIMEOUT)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""
        with self._guard():
            found = self._read_document(self._doc_path(key))
        if found is None:
            raise ObjectNotFound(key)
        return found[0], str(found[1])

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version (see Store.put)."""
        path = self._doc_path(key)
        text = encode_document(key, value)
        with self._guard(key), self._locked():
            found = self._read_document(path)
            check_version(key, expected_version, None if found is None else str(found[1]))
            version = 1 if found is None else found[1] + 1
            envelope = f'{{"version": {version}, "value": {text}}}\n'.encode()
            self._write_atomic(path, lambda f: f.write(envelope))
        return str(version)

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""
        path = self._doc_path(key)
        with self._guard(key), self._locked():
            found = self._read_document(path)
            if found is None:
                raise ObjectNotFound(key)
            check_version(key, expected_version, str(found[1]))
            path.unlink()
            fsync_dir(path.parent)

    def list(self, prefix: str = "") -> list[str]:
        """Document keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._guard():
            names = self._walk(self.root / "docs", prefix)
        keys = (n[: -len(".json")] for n in names if n.endswith(".json"))
        return sorted(k for k in keys if k.startswith(prefix))

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes atomically (readers see the old or the new bytes, never a part)."""
        path = self._blob_path(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{key}: blob data must be bytes, got {type(data).__name__}")
        with self._guard(key):
            self._write_atomic(path, lambda f: f.write(data))

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""
        path = self._blob_path(key)
        with self._guard():
            try:
                return path.read_bytes()
            except ABSENT:
                raise ObjectNotFound(key) from None

    @contextmanager
    def open_blob(self, key: str) -> Iterator[IO[bytes]]:
        """The blob's file itself, opened for reading (a later write replaces the file, never
        changes it: this one keeps the bytes it had)."""
        path = self._blob_path(key)
        with self._guard():
            try:
                file = path.open("rb")
            except ABSENT:
                raise ObjectNotFound(key) from None
        with file:
            yield file

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """Copy the file into the blob's temporary file a CHUNK at a time, then rename it. The
        file's own errors are raised as they are (not the store's: it is not the disk's fault)."""
        path = self._blob_path(key)
        check_file(key, file)
        written = 0

        def copy(out: IO[bytes]) -> None:
            nonlocal written
            while True:
                try:
                    piece = file.read(CHUNK)
                except OSError as exc:
                    raise _SourceFailed(exc) from exc
                if not piece:
                    return
                written += out.write(piece)

        try:
            with self._guard(key):
                self._write_atomic(path, copy)
        except _SourceFailed as failed:
            raise failed.args[0] from None
        return written

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""
        check_prefix(prefix)
        with self._guard():
            keys = self._walk(self.root / "blobs", prefix)
        return sorted(k for k in keys if k.startswith(prefix))

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent) and what an interrupted write of it left behind
        (a process killed mid-write leaves its temporary file)."""
        path = self._blob_path(key)
        with self._guard():
            for temp in path.parent.glob(f"{glob.escape(path.name)}~*.tmp"):
                temp.unlink(missing_ok=True)
            try:
                path.unlink()
            except ABSENT:
                return
            fsync_dir(path.parent)

    # -- internals -------------------------------------------------------------------------
    def _doc_path(self, key: str) -> Path:
        return self.root / "docs" / f"{check_key(key)}.json"

    def _blob_path(self, key: str) -> Path:
        return self.root / "blobs" / check_key(key)

    def _read_document(self, path: Path) -> tuple[Any, int] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except ABSENT:
            return None
        try:
            envelope = json.loads(text)
            return envelope["value"], int(envelope["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"{self.root}: unreadable {path}") from exc

    def _walk(self, base: Path, prefix: str) -> builtins.list[str]:
        """Paths of the files under base in the folder prefix names; names no key can have
        (temporary "~" files, strays copied in by hand) are skipped."""
        head = prefix.rpartition("/")[0]
        start = base / head if head else base

        def fail(exc: OSError) -> None:
            if not isinstance(exc, ABSENT):
                raise exc

        keys = []
        for folder, _dirs, files in os.walk(start, onerror=fail):
            rel = Path(folder).relative_to(base).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if is_valid(check_key, key):
                    keys.append(key)
        return keys

    def _write_atomic(self, path: Path, write: Callable[[IO[bytes]], object]) -> None:
        """Write to a temporary file beside path, fsync it, then rename it over path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}~{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    @contextmanager
    def _guard(self, key: str | None = None) -> Iterator[None]:
        """Translate OS errors: a key clashing with another key's folder is InvalidKey, a busy
        lock or any other failure of the disk is StoreUnavailable."""
        try:
            yield
        except filelock.Timeout as exc:
            raise StoreUnavailable(f"{self.root} (document lock busy)") from exc
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            if key is None or not self.root.is_dir():
                raise StoreUnavailable(str(self.root)) from exc
            raise InvalidKey(key, "clashes with the folder of another key") from exc
        except OSError as exc:
            raise StoreUnavailable(str(self.root)) from exc
