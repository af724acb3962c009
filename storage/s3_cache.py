"""The S3 store's node-local read copy of its Parquet parts, so DuckDB reads local files (no
extension download, no filesystem registered per connection; STACK.md §6) at local speed.

A part is immutable: its key names a fresh uuid and is never rewritten, only deleted. So a copy
is right for as long as the part is listed, and a listing is what decides which parts a read
uses: the store stays the only truth, this folder is rebuildable and may be deleted at any time.
Copies of parts no longer listed are dropped when their partition or table is listed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

DOWNLOAD_THREADS = 8  # parts fetched at once when a read needs several (GETs wait on the network)


def default_folder(identity: str, base: Path | None = None) -> Path:
    """<base>/<hash of the store's endpoint, bucket and prefix>; base defaults to
    ~/.cache/marketpulse/s3 (XDG_CACHE_HOME honoured). Stores never share a folder."""
    if base is None:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        base = home / "marketpulse" / "s3"
    return base / hashlib.sha256(identity.encode()).hexdigest()[:16]


class PartCache:
    """Local copies of parts under folder, at their store-relative keys (tables/<t>/<p>/<part>).
    fetch(key, file) writes the part's bytes into the open file (raising ObjectNotFound when the
    part is gone)."""

    def __init__(self, folder: Path, fetch: Callable[[str, IO[bytes]], None]) -> None:
        self.folder = Path(folder)
        self._fetch = fetch

    def paths(self, parts: Iterable[tuple[str, int]]) -> list[Path]:
        """Local paths of these (key, size) parts, in order, fetching the missing ones (a copy of
        another size is fetched again: a crash never leaves one, but a hand may)."""
        wanted = list(parts)
        paths = [self.folder / key for key, _ in wanted]
        missing = [(key, path) for (key, size), path in zip(wanted, paths, strict=True)
                   if not _has(path, size)]
        if len(missing) == 1:
            self._download(*missing[0])
        elif missing:
            with ThreadPoolExecutor(min(DOWNLOAD_THREADS, len(missing))) as pool:
                list(pool.map(lambda m: self._download(*m), missing))
        return paths

    def adopt(self, key: str, write: Callable[[IO[bytes]], object]) -> None:
        """Keep a copy of a part this node just wrote (its next read, e.g. compaction's, is local).
        A copy is a courtesy: the part is in the store, and a read fetches it if this fails."""
        with contextlib.suppress(OSError):
            _place(self.folder / key, write)

    def adopt_file(self, key: str, source: Path) -> None:
        """Move a file this node wrote and uploaded into the cache as the copy of `key`."""
        target = self.folder / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        except OSError:
            source.unlink(missing_ok=True)

    def keep_only(self, folder_key: str, names: Iterable[str]) -> None:
        """Drop copies under folder_key (a table's or a partition's) whose name is not in names:
        the store no longer lists them."""
        folder = self.folder / folder_key
        keep = set(names)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name in keep or "~" in entry.name:  # "~": a download in flight
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)

    def drop(self, keys: Iterable[str]) -> None:
        """Drop the copies of these parts (this node deleted them)."""
        for key in keys:
            (self.folder / key).unlink(missing_ok=True)

    def forget(self, folder_key: str) -> None:
        shutil.rmtree(self.folder / folder_key, ignore_errors=True)

    def scratch(self) -> Path:
        """A new temporary file name inside the cache (same filesystem: moved in by rename)."""
        folder = self.folder / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}.tmp"

    def _download(self, key: str, path: Path) -> None:
        _place(path, lambda f: self._fetch(key, f))


class DocumentCopies:
    """Bodies of documents read in bulk (run records), under folder at their keys, each with the
    version it was read at: a fresh process that lists them reads the unchanged ones from here
    instead of a GET each. A copy answers only for the version a listing shows, so the store stays
    the only truth; the folder is rebuildable and may be deleted at any time."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def body(self, key: str, version: str) -> bytes | None:
        """The body kept for key at exactly this version (None: none, or another version)."""
        try:
            data = (self.folder / f"{key}.json").read_bytes()
        except OSError:
            return None
        kept, _, body = data.partition(b"\n")
        return body if kept.decode(errors="replace") == version else None

    def keep(self, key: str, version: str, body: bytes) -> None:
        """Keep body as key's copy at version (a courtesy: failing to write loses nothing)."""
        with contextlib.suppress(OSError):
            _place(self.folder / f"{key}.json", lambda f: f.write(version.encode() + b"\n" + body))


def _place(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write to a temporary name beside path and rename it in: readers never see a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}~{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "wb") as f:
            write(f)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _has(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False
