"""What the S3 store needs of boto3: the location an s3:// URL names, a client built from the
standard AWS credential chain (or keys passed in from secrets, never stored), listings, and the
one place where vendor errors become the store's (StoreUnavailable, ObjectNotFound).

Options (open_store's settings s3.*; a URL's query may set endpoint_url and region): endpoint_url
(MinIO, Ceph, moto: any S3 API), region, access_key_id, secret_access_key, cache_dir.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from storage.errors import InvalidKey, ObjectNotFound, StoreUnavailable

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
URL_OPTIONS = ("endpoint_url", "region")  # a URL names where, never who: no credentials in it
OPTIONS = (*URL_OPTIONS, "access_key_id", "secret_access_key", "cache_dir")
NOT_FOUND = ("NoSuchKey", "404", "NotFound")
CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
RETRY_ATTEMPTS = 4  # per request, with botocore's standard backoff (throttling, 5xx, resets)
# One boto3 session for every store of the process: a client from a warm session takes ~4 ms, from
# a new one ~70 ms. Sessions are not thread-safe, so clients are made under a lock (clients are).
_session: Any = None
_session_lock = threading.Lock()


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix ("" or ending in "/") under which the store keeps everything."""

    bucket: str
    prefix: str
    options: Mapping[str, str]

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_url(url: str, options: Mapping[str, Any] | None = None) -> S3Location:
    """s3://bucket[/prefix][?endpoint_url=…&region=…]; the URL's query wins over the s3.* entries
    of `options` (it names one store). Unknown options and credentials in the URL are refused."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not _BUCKET.match(parts.netloc or ""):
        raise InvalidKey(url, "use s3://bucket/prefix (bucket: 3-63 of a-z 0-9 . -)")
    prefix = parts.path.strip("/")
    if prefix and any(seg in ("", ".", "..") or "~" in seg for seg in prefix.split("/")):
        raise InvalidKey(url, "the prefix must be plain folder names")
    merged = {k[len("s3."):]: str(v) for k, v in (options or {}).items()
              if k.startswith("s3.") and v not in (None, "")}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in URL_OPTIONS:
            raise InvalidKey(url, f"unknown option {key!r} (the URL may set "
                                  f"{', '.join(URL_OPTIONS)}; credentials come from secrets)")
        merged[key] = value
    unknown = sorted(set(merged) - set(OPTIONS))
    if unknown:
        raise InvalidKey(url, f"unknown S3 options {unknown}")
    return S3Location(parts.netloc, f"{prefix}/" if prefix else "", merged)


def make_client(location: S3Location) -> Any:
    """A thread-safe boto3 S3 client. Credentials: access_key_id/secret_access_key when given,
    else boto3's standard chain (environment, ~/.aws, instance or task role)."""
    import boto3
    from botocore.config import Config

    options = location.options
    endpoint = options.get("endpoint_url")
    config = Config(
        retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
        connect_timeout=5, read_timeout=60, max_pool_connections=32,
        # MinIO, Ceph and moto serve buckets as paths; AWS itself picks per bucket.
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3", endpoint_url=endpoint, region_name=options.get("region") or None,
            aws_access_key_id=options.get("access_key_id") or None,
            aws_secret_access_key=options.get("secret_access_key") or None, config=config)


def code_of(exc: ClientError) -> str:
    """The S3 error code of a ClientError (e.g. NoSuchKey, PreconditionFailed, or the status)."""
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


@contextmanager
def vendor_errors(location: S3Location, key: str | None = None) -> Iterator[None]:
    """Turn boto errors into the store's: a missing object is ObjectNotFound(key) when `key` is
    given; anything else the bucket or the network did is StoreUnavailable naming the location
    and the S3 error code (never a credential)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = code_of(exc)
        if key is not None and code in NOT_FOUND:
            raise ObjectNotFound(key) from exc
        raise StoreUnavailable(f"{location.url}: {code}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"{location.url}: {exc}") from exc


def list_objects(client: Any, location: S3Location, prefix: str,
                 delimiter: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, common prefixes) under location.prefix + prefix, every page; the common
    prefixes (with a delimiter) are relative to location.prefix + prefix."""
    full = location.prefix + prefix
    kwargs: dict[str, Any] = {"Bucket": location.bucket, "Prefix": full}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    objects: list[dict[str, Any]] = []
    prefixes: list[str] = []
    with vendor_errors(location):
        for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            objects.extend(page.get("Contents", []))
            prefixes.extend(p["Prefix"][len(full):] for p in page.get("CommonPrefixes", []))
    return objects, prefixes
