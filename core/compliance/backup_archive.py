"""The backup archive: one zip, self-describing. Members: manifest.json (what it holds: each item's
part, name, size and checksum as core.compliance.store_inventory computes them, and the SHA-256 of
the member's bytes; counts, sizes, versions, who, when, why), each document as its canonical JSON,
each blob as its bytes, each table partition and each run's rows of each run table as Parquet.

Reading treats the archive as hostile (an uploaded one may be): the zip directory is checked
before any member is read (member count, each member's and the total unpacked size, the packing
ratio), every member must be one the manifest names by a valid key, and each member read is held to
its declared size and checksum. Problems raise BackupRefused naming the member."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import __version__, catalog
from core.compliance.store_inventory import (
    BLOB,
    DOCUMENT,
    RUN,
    TABLE,
    Inventory,
    Item,
    blob_item,
    canonical_json,
    document_item,
    rows_item,
)
from core.errors import BackupRefused
from storage import InvalidKey
from storage.base import check_key, check_partition, check_table, to_arrow

FORMAT = 1  # the archive's layout; an archive of a newer format is refused, not misread
MANIFEST = "manifest.json"
MAX_MEMBERS = 1_000_000  # a desk's documents, blobs, partitions and runs: tens of thousands
MAX_MEMBER_BYTES = 4 << 30  # one member unpacked (a run's rows, an uploaded file)
MAX_TOTAL_BYTES = 256 << 30  # the whole archive unpacked
MAX_MANIFEST_BYTES = 512 << 20
MAX_RATIO = 200  # unpacked / packed for a member over 1 MB: JSON packs ~10:1, a bomb 1000:1
_RATIO_FROM = 1 << 20
_FOLDERS = {DOCUMENT: "documents", BLOB: "blobs", TABLE: "tables", RUN: "runs"}


def member_name(part: str, name: str) -> str:
    """Where an item lives in the archive: documents/<key>.json, blobs/<key>,
    tables/<table>/<partition>.parquet, runs/<table>/<run>.parquet."""
    suffix = {DOCUMENT: ".json", BLOB: ""}.get(part, ".parquet")
    return f"{_FOLDERS[part]}/{name}{suffix}"


def _check_name(part: str, name: str) -> None:
    """An item's name as a store would accept it (InvalidKey otherwise): no path tricks."""
    if part in (DOCUMENT, BLOB):
        check_key(name)
        return
    table, _, rest = name.partition("/")
    check_table(table)
    if part == TABLE:
        check_partition(rest)
    elif not rest.isdigit() or len(rest) > 12:
        raise InvalidKey(name, "a run's rows are named <table>/<run id>")


def _parquet(name: str, frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(to_arrow(name, frame), sink, compression="zstd")
    return sink.getvalue()


@dataclass(frozen=True)
class Member:
    """An item of the archive and its member: the item's checksum (comparable with a store's
    inventory) and the member's bytes and their SHA-256 (checked whenever it is read)."""

    item: Item
    member: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        i = self.item
        return {"part": i.part, "name": i.name, "size": i.size, "checksum": i.checksum,
                "member": self.member, "bytes": self.bytes, "sha256": self.sha256}


class ArchiveWriter:
    """Writes the members one at a time into a file object; `finish` adds the manifest."""

    def __init__(self, file: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(file, "w", allowZip64=True)
        self.members: list[Member] = []

    def _add(self, item: Item, data: bytes, packed: bool) -> None:
        name = member_name(item.part, item.name)
        self._zip.writestr(name, data, zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED,
                           compresslevel=6 if packed else None)
        self.members.append(Member(item, name, len(data), hashlib.sha256(data).hexdigest()))

    def add_document(self, item: Item, value: Any) -> None:
        self._add(item, canonical_json(value), packed=True)

    def add_blob(self, item: Item, data: bytes) -> None:
        self._add(item, data, packed=True)

    def add_rows(self, item: Item, frame: pd.DataFrame) -> None:
        self._add(item, _parquet(item.name.split("/")[0], frame), packed=False)  # zstd inside

    def finish(self, manifest: dict[str, Any]) -> None:
        manifest = {**manifest, "format": FORMAT, "schema": catalog.SCHEMA_VERSION,
                    "marketpulse": __version__,
                    "items": [m.to_dict() for m in self.members]}
        self._zip.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False),
                           zipfile.ZIP_DEFLATED)
        self._zip.close()


class BackupArchive:
    """An archive opened for reading: its directory and manifest checked, nothing else read yet.
    `label` names it in messages (a backup id or an uploaded file's name)."""

    def __init__(self, data: bytes | IO[bytes], label: str) -> None:
        self.label = label
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise BackupRefused(label, f"it is not a MarketPulse backup (not a readable zip: "
                                f"{exc})") from exc
        self._infos = self._check_directory()
        self.manifest = self._read_manifest()
        self.members = self._check_members()

    # -- what is checked before anything is read --------------------------------------------------
    def _refuse(self, message: str) -> BackupRefused:
        return BackupRefused(self.label, message)

    def _check_directory(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._refuse(f"it has {len(infos):,} members, over the {MAX_MEMBERS:,} a "
                               "backup may have")
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            raise self._refuse(f"it unpacks to {total:,} bytes, over the {MAX_TOTAL_BYTES:,} "
                               "a backup may have")
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in by_name:
                raise self._refuse(f"member {info.filename} appears twice")
            if info.file_size > MAX_MEMBER_BYTES:
                raise self._refuse(f"member {info.filename} unpacks to {info.file_size:,} bytes, "
                                   f"over the {MAX_MEMBER_BYTES:,} a member may have")
            if info.file_size > _RATIO_FROM and info.file_size > MAX_RATIO * max(
                    info.compress_size, 1):
                raise self._refuse(f"member {info.filename} unpacks {info.file_size:,} bytes out "
                                   f"of {info.compress_size:,}: a zip bomb, not a backup")
            by_name[info.filename] = info
        return by_name

    def _read_manifest(self) -> dict[str, Any]:
        info = self._infos.get(MANIFEST)
        if info is None:
            raise self._refuse("it has no manifest.json: it is not a MarketPulse backup")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise self._refuse(f"its manifest is {info.file_size:,} bytes, over the "
                               f"{MAX_MANIFEST_BYTES:,} allowed")
        try:
            manifest = json.loads(self._read(info, info.file_size))
            items = manifest["items"]
            fmt, schema = int(manifest["format"]), int(manifest["schema"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self._refuse(f"its manifest cannot be read ({exc})") from exc
        if fmt > FORMAT or schema > catalog.SCHEMA_VERSION:
            raise self._refuse(
                f"it was made by MarketPulse {manifest.get('marketpulse', '?')} (archive format "
                f"{fmt}, store schema {schema}); this MarketPulse {__version__} reads format "
                f"{FORMAT} and schema {catalog.SCHEMA_VERSION} at most: upgrade MarketPulse, "
                "then restore")
        if not isinstance(items, list):
            raise self._refuse("its manifest lists no items")
        return dict(manifest)

    def _check_members(self) -> list[Member]:
        members, seen = [], {MANIFEST}
        for raw in self.manifest["items"]:
            try:
                item = Item(str(raw["part"]), str(raw["name"]), int(raw["size"]),
                            str(raw["checksum"]))
                _check_name(item.part, item.name)
                member = Member(item, member_name(item.part, item.name), int(raw["bytes"]),
                                str(raw["sha256"]))
            except (KeyError, TypeError, ValueError, InvalidKey) as exc:
                raise self._refuse(f"its manifest names an item that cannot be restored "
                                   f"({raw!r:.200}: {exc})") from exc
            info = self._infos.get(member.member)
            if info is None or member.member != raw.get("member"):
                raise self._refuse(f"member {member.member} ({item.label}) is missing")
            if info.file_size != member.bytes:
                raise self._refuse(f"member {member.member} is {info.file_size:,} bytes, the "
                                   f"manifest says {member.bytes:,}")
            seen.add(member.member)
            members.append(member)
        extra = sorted(set(self._infos) - seen)
        if extra:
            raise self._refuse(f"member {extra[0]} is not in the manifest"
                               + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        return members

    # -- reading members --------------------------------------------------------------------------
    def _read(self, info: zipfile.ZipInfo, size: int) -> bytes:
        try:
            with self._zip.open(info) as stream:
                data = stream.read(size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise self._refuse(f"member {info.filename} is damaged ({exc})") from exc
        if len(data) != size:
            raise self._refuse(f"member {info.filename} is {len(data):,} bytes, not {size:,}")
        return data

    def member_bytes(self, member: Member) -> bytes:
        """The member's bytes, held to its declared size and SHA-256."""
        data = self._read(self._infos[member.member], member.bytes)
        if hashlib.sha256(data).hexdigest() != member.sha256:
            raise self._refuse(f"member {member.member} ({member.item.label}) fails its checksum: "
                               "the archive was changed or damaged")
        return data

    def document(self, member: Member) -> Any:
        try:
            return json.loads(self.member_bytes(member))
        except ValueError as exc:
            raise self._refuse(f"member {member.member} is not JSON ({exc})") from exc

    def blob(self, member: Member) -> bytes:
        return self.member_bytes(member)

    def rows(self, member: Member) -> pd.DataFrame:
        data = self.member_bytes(member)
        try:
            parquet = pq.ParquetFile(io.BytesIO(data))
            if parquet.metadata.num_rows != member.item.size:
                raise self._refuse(f"member {member.member} holds {parquet.metadata.num_rows:,} "
                                   f"rows, the manifest says {member.item.size:,}")
            return parquet.read().to_pandas()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._refuse(f"member {member.member} is not readable Parquet ({exc})") from exc

    def checked_item(self, member: Member) -> tuple[Item, Any]:
        """The member read and its item computed again from what was read, with the value."""
        part, name = member.item.part, member.item.name
        if part == DOCUMENT:
            value = self.document(member)
            return document_item(name, value), value
        if part == BLOB:
            data = self.blob(member)
            return blob_item(name, data), data
        frame = self.rows(member)
        return rows_item(part, name, frame), frame

    def verify(self, *, deep: bool = True) -> Iterator[Member]:
        """Re-read every member and re-check its checksums (bytes, then the item's: a document's
        canonical JSON, a blob's bytes, the rows); BackupRefused names the first that fails.
        Yields each member once it passed. deep=False checks the bytes only (any changed byte
        fails; the rows are not decoded): what a restore checks before it writes anything."""
        for member in self.members:
            if not deep:
                self.member_bytes(member)
                yield member
                continue
            item, _ = self.checked_item(member)
            if (item.size, item.checksum) != (member.item.size, member.item.checksum):
                raise self._refuse(f"{member.item.label} (member {member.member}) fails its "
                                   "checksum: the archive was changed or damaged")
            yield member

    def inventory(self) -> Inventory:
        """What the archive holds, as store_inventory's Inventory (compare it with a store's)."""
        held = Inventory()
        for member in self.members:
            held.add(member.item)
        held.unknown = list(self.manifest.get("unknown", []))
        return held

    def close(self) -> None:
        self._zip.close()
