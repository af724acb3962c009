"""S3Store: the Store protocol on any S3 API (AWS, MinIO, Ceph; tested on moto's server).

Under s3://bucket/prefix, the local store's layout as objects: docs/<key>.json, blobs/<key>,
tables/<table>/<partition>/part-*.parquet (storage.s3_tables). A document's version is its ETag,
and every write is conditional (If-None-Match: * to create, If-Match: <version> to replace or
delete), so compare-and-set holds across processes and hosts with no lock. Each write also stores
a fresh id beside the value, so the same value written twice still gets a new version.
"""

from __future__ import annotations

import builtins
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from storage.base import ANY_VERSION, check_key, check_prefix, encode_document
from storage.blobs import CHUNK, check_file, spool
from storage.errors import ObjectNotFound, StoreUnavailable, WriteConflict, is_valid
from storage.s3_cache import DOWNLOAD_THREADS, DocumentCopies, PartCache, default_folder
from storage.s3_client import (
    CONFLICT,
    NOT_FOUND,
    code_of,
    list_objects,
    make_client,
    parse_url,
    vendor_errors,
)
from storage.s3_tables import S3Tables

MULTIPART_BYTES = 64 * 1024 * 1024  # parts larger than this upload in parallel pieces
# get_many trusts the versions of a listing this recent, and answers from the bodies it holds of
# exactly those versions instead of a GET each (a dashboard lists and reads every run record).
LISTING_FRESH_S = 1.0
KEPT_BODIES = 20_000  # document bodies kept by version (run records: ~1 KB each)


class S3Store(S3Tables):
    """Documents, tables and blobs as objects under one bucket and prefix."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self._location = parse_url(url, options)
        self.url = self._location.url
        self._client = make_client(self._location)
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES,
                                        multipart_chunksize=MULTIPART_BYTES // 4)
        # a big blob (a backup archive) moves a CHUNK at a time, two at once: bounded memory
        self._blob_transfer = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK,
                                             max_concurrency=2)
        where = f"{self._location.options.get('endpoint_url', '')}|{self.url}"
        base = self._location.options.get("cache_dir")
        self._cache = PartCache(default_folder(where, Path(base) if base else None), self._fetch)
        self._copies = DocumentCopies(self._cache.folder / "docs")
        self._settled = {}
        self._settled_lock = threading.Lock()
        self._listed: dict[str, tuple[str, float]] = {}  # document → (version, when listed)
        self._bodies: dict[str, tuple[str, bytes]] = {}  # document → (version, its body)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""
        name = self._doc_key(key)
        with vendor_errors(self._location, key):
            reply = self._client.get_object(Bucket=self._location.bucket, Key=name)
            body = reply["Body"].read()
        version = _version(reply["ETag"])
        value = self._value(name, body)
        with self._lock:
            if len(self._bodies) >= KEPT_BODIES:
                self._bodies.clear()
            self._bodies[name] = (version, body)
        return value, version

    def get_many(self, keys: builtins.list[str]) -> dict[str, tuple[Any, str]]:
        """(value, version) of each key that exists, fetched DOWNLOAD_THREADS at a time (one
        GET waits ~6 ms on the network; 100 run records one by one took 0.6 s). A key this
        store listed within LISTING_FRESH_S is answered from a body held at the listed version:
        in memory, or the node's disk copy of what a get_many read before (so a fresh process
        GETs only the records written since); the values are as of that listing, as if read
        then."""
        now = time.monotonic()
        held: dict[str, tuple[str, str, bytes | None]] = {}  # key → (object, version, body)
        with self._lock:
            for key in keys:
                name = self._doc_key(key)
                listed, kept = self._listed.get(name), self._bodies.get(name)
                if listed and now - listed[1] <= LISTING_FRESH_S:
                    held[key] = (name, listed[0],
                                 kept[1] if kept and kept[0] == listed[0] else None)
        answered: dict[str, tuple[Any, str]] = {}
        for key, (name, version, body) in held.items():
            copied = body is None
            if copied:
                body = self._copies.body(key, version)
            with suppress(StoreUnavailable):  # a copy damaged by hand is read again
                if body is not None:
                    answered[key] = (self._value(name, body), version)
                    if copied:
                        with self._lock:
                            self._bodies[name] = (version, body)

        def one(key: str) -> tuple[str, tuple[Any, str] | None]:
            try:
                got = self.get(key)
            except ObjectNotFound:
                return key, None
            kept = self._bodies.get(self._doc_key(key))
            if kept and kept[0] == got[1]:
                self._copies.keep(key, *kept)
            return key, got

        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
            fetched = pool.map(one, [k for k in keys if k not in answered])
            answered |= {key: got for key, got in fetched if got is not None}
        return {key: answered[key] for key in keys if key in answered}

    def _value(self, name: str, body: bytes) -> Any:
        try:
            return json.loads(body)["value"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"{self.url}: unreadable {name}") from exc

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version (see Store.put)."""
        name = self._doc_key(key)
        text = encode_document(key, value)
        condition = _condition(key, expected_version)
        body = f'{{"write": "{uuid.uuid4().hex}", "value": {text}}}\n'.encode()
        with vendor_errors(self._location):
            try:
                reply = self._client.put_object(Bucket=self._location.bucket, Key=name, Body=body,
                                                ContentType="application/json", **condition)
            except ClientError as exc:
                if condition and code_of(exc) in CONFLICT + NOT_FOUND:
                    raise WriteConflict(key, expected_version, self._current(name)) from None
                raise
        return _version(reply["ETag"])

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""
        name = self._doc_key(key)
        condition = _condition(key, expected_version)
        if expected_version is None:  # "must not exist": a delete can only conflict
            current = self._current(name)
            if current is None:
                raise ObjectNotFound(key)
            raise WriteConflict(key, None, current)
        with vendor_errors(self._location, key):
            if not condition:  # any version: it must exist, though
                self._client.head_object(Bucket=self._location.bucket, Key=name)
            try:
                self._client.delete_object(Bucket=self._location.bucket, Key=name, **condition)
            except ClientError as exc:
                if code_of(exc) in CONFLICT:
                    raise WriteConflict(key, expected_version, self._current(name)) from None
                raise

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Document keys starting with prefix, sorted."""
        check_prefix(prefix)
        objects, _ = list_objects(self._client, self._location, "docs/" + prefix)
        now = time.monotonic()
        under = f"{self._location.prefix}docs/{prefix}"
        with self._lock:  # what this listing did not find is no longer listed
            for name in [n for n in self._listed if n.startswith(under)]:
                del self._listed[name]
            self._listed.update((o["Key"], (_version(o["ETag"]), now)) for o in objects
                                if "ETag" in o)
        skip = len(self._location.prefix) + len("docs/")
        keys = (o["Key"][skip:-len(".json")] for o in objects if o["Key"].endswith(".json"))
        return sorted(k for k in keys if k.startswith(prefix) and is_valid(check_key, k))

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes as one object (readers see the old or the new bytes, never a part)."""
        name = self._blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{key}: blob data must be bytes, got {type(data).__name__}")
        with vendor_errors(self._location):
            self._client.put_object(Bucket=self._location.bucket, Key=name, Body=bytes(data))

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""
        name = self._blob_key(key)
        with vendor_errors(self._location, key):
            data: bytes = self._client.get_object(
                Bucket=self._location.bucket, Key=name)["Body"].read()
        return data

    @contextmanager
    def open_blob(self, key: str) -> Iterator[IO[bytes]]:
        """The object downloaded in parts (ranged GETs) into a temporary file, then read from
        there."""
        name = self._blob_key(key)
        with spool() as file:
            with vendor_errors(self._location, key):
                self._client.download_fileobj(self._location.bucket, name, file,
                                              Config=self._blob_transfer)
            file.seek(0)
            yield file

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """The file uploaded as one object, in parts beyond MULTIPART_BYTES (an object appears
        whole when its upload completes)."""
        name = self._blob_key(key)
        check_file(key, file)
        counted = _Counted(file)
        with vendor_errors(self._location):
            self._client.upload_fileobj(counted, self._location.bucket, name,
                                        Config=self._blob_transfer)
        return counted.bytes

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""
        check_prefix(prefix)
        objects, _ = list_objects(self._client, self._location, "blobs/" + prefix)
        skip = len(self._location.prefix) + len("blobs/")
        return sorted(k for k in (o["Key"][skip:] for o in objects) if is_valid(check_key, k))

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""
        name = self._blob_key(key)
        with vendor_errors(self._location):
            self._client.delete_object(Bucket=self._location.bucket, Key=name)

    # -- internals -------------------------------------------------------------------------
    def _doc_key(self, key: str) -> str:
        return f"{self._location.prefix}docs/{check_key(key)}.json"

    def _blob_key(self, key: str) -> str:
        return f"{self._location.prefix}blobs/{check_key(key)}"

    def _current(self, name: str) -> str | None:
        """The version a document has now (None: absent), to say what a conflict met."""
        try:
            with vendor_errors(self._location, name):
                return _version(self._client.head_object(
                    Bucket=self._location.bucket, Key=name)["ETag"])
        except ObjectNotFound:
            return None

    def _fetch(self, key: str, out: IO[bytes]) -> None:
        """Copy a store-relative object into out (PartCache's fetch); ObjectNotFound if gone."""
        with vendor_errors(self._location, key):
            body = self._client.get_object(Bucket=self._location.bucket,
                                           Key=self._location.prefix + key)["Body"]
            shutil.copyfileobj(body, out, 1024 * 1024)


def _condition(key: str, expected: str | None) -> dict[str, str]:
    """The request's precondition for a write expecting this version (none for ANY_VERSION)."""
    if expected is not None and not isinstance(expected, str):
        raise TypeError(f"{key}: expected_version must be a str or None, got {expected!r}")
    if expected == ANY_VERSION:
        return {}
    if expected is None:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": f'"{expected}"'}


def _version(etag: str) -> str:
    return etag.strip('"')


class _Counted:
    """A readable file that counts the bytes read from it (what an upload sent)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file, self.bytes = file, 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.bytes += len(data)
        return data
