"""Backups (DOMAIN.md §6): one archive (core.compliance.backup_archive) of every state document,
blob, table partition and run's rows the catalog names, derived data and secrets left out, kept in
the store's backup area ("backups/<id>.zip", with its summary in the document "backups/<id>")
and downloadable; verified by re-reading every member. Each backup, import and deletion is in the
change log (area "backups"); a download is in the access log. Only admins (MANAGE_BACKUPS).

An archive is never held whole (it reaches hundreds of MB at 10M rows; DESIGN.md §7): it is built
in a temporary file, written with the store's put_blob_file and read through open_blob, a member
at a time.

The audit trail in an archive ends at the chain head it holds: entries appended while the backup
was being read are left out, so a restored trail always verifies."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import IO, Any

import pandas as pd

from core import __version__, audit_chain, catalog
from core.access import MANAGE_BACKUPS, Actor, require
from core.audit import record_change
from core.clock import now_or
from core.compliance.access_log import log_export
from core.compliance.backup_archive import FORMAT, ArchiveWriter, BackupArchive
from core.compliance.state_carry import EVERY, Progress, RunRows, carry_state
from core.compliance.store_copy import shown_url
from core.compliance.store_inventory import TABLE, Inventory, Item, rows_item
from core.errors import BackupRefused, NotFound
from storage import InvalidKey, ObjectNotFound, Store
from storage.base import check_key

AREA = "backups"
BLOB_PREFIX = catalog.BACKUPS.key
INDEX_PREFIX = catalog.BACKUP_INDEX.key
MANUAL, SCHEDULED, PRE_RESTORE, UPLOADED = "manual", "scheduled", "pre-restore", "uploaded"
SPOOL_BYTES = 16 << 20  # an archive is built in memory up to this, then in a temporary file
PIECE = 8 << 20  # bytes hashed at a time


@dataclass
class BackupSummary:
    """What the Backups page lists: the manifest's header and the archive's size and time."""

    id: str
    created_at: str
    created_by: str
    why: str = ""
    kind: str = MANUAL
    source: str = ""
    marketpulse: str = ""
    format: int = 0
    schema: int = 0
    documents: int = 0
    blobs: int = 0
    tables: int = 0
    partitions: int = 0
    runs: int = 0
    rows: int = 0
    content_bytes: int = 0  # documents (canonical JSON) and blobs, unpacked
    bytes: int = 0  # the archive
    seconds: float = 0.0  # reading the store and writing the archive
    audit_seq: int = 0
    audit_hash: str = ""
    sha256: str = ""  # the archive's
    origin: str = ""  # an uploaded archive: its file name and who uploaded it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def items(self) -> str:
        return (f"{self.documents} documents, {self.blobs} blobs, {self.partitions} table "
                f"partitions, {self.runs} runs, {self.rows:,} rows")


def archive_key(backup_id: str) -> str:
    return f"{BLOB_PREFIX}{backup_id}.zip"


def index_key(backup_id: str) -> str:
    return f"{INDEX_PREFIX}{backup_id}"


def new_backup_id(at: datetime) -> str:
    """Sortable by time, unique: 20260316-090000-1a2b3c."""
    return f"{pd.Timestamp(at).tz_convert('UTC'):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


# -- making one ------------------------------------------------------------------------------------
def create_backup(store: Store, actor: Actor, why: str = "", *, kind: str = MANUAL,
                  now: datetime | None = None, progress: Progress | None = None,
                  record: bool = True) -> BackupSummary:
    """Back the store's state up into the backup area; its summary. record=False leaves the
    change log to the caller (a restore logs its pre-restore backup with itself)."""
    require(actor, MANAGE_BACKUPS)
    say = progress or (lambda line: None)
    started, at = time.monotonic(), now_or(now)
    backup_id = new_backup_id(at)
    summary = BackupSummary(backup_id, at.isoformat(), actor.username, why.strip(), kind,
                            shown_url(store.url))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as file:
        writer = ArchiveWriter(file)
        packed = _pack(store, writer, summary, say)
        summary.seconds = round(time.monotonic() - started, 3)
        header = {k: v for k, v in summary.to_dict().items()
                  if k not in ("bytes", "sha256", "origin", "format", "schema", "marketpulse")}
        writer.finish({**header, "unknown": packed.unknown})
        summary.bytes, summary.sha256 = _digest(file)
        summary.format, summary.schema, summary.marketpulse = _versions()
        store.put_blob_file(archive_key(backup_id), file)
    summary.seconds = round(time.monotonic() - started, 3)
    store.put(index_key(backup_id), summary.to_dict(), expected_version=None)
    say(f"backup {backup_id}: {summary.items()}, {summary.bytes:,} bytes, in "
        f"{summary.seconds:.1f} s")
    if record:
        record_change(store, actor, AREA, "backup", backup_id, after=summary.to_dict(),
                      detail=summary.why, now=at)
    return summary


def _versions() -> tuple[int, int, str]:
    return FORMAT, catalog.SCHEMA_VERSION, __version__


def _digest(file: IO[bytes]) -> tuple[int, str]:
    """The file's size and SHA-256, read a PIECE at a time from its start; left at its start."""
    file.seek(0)
    digest, size = hashlib.sha256(), 0
    while piece := file.read(PIECE):
        digest.update(piece)
        size += len(piece)
    file.seek(0)
    return size, digest.hexdigest()


class _ArchiveSink:
    """A backup's sink: each item into the archive; the audit trail's tables end at the chain
    head the archive holds (entries appended while the backup was read are left out)."""

    def __init__(self, writer: ArchiveWriter, summary: BackupSummary) -> None:
        self.writer, self.summary = writer, summary

    def document(self, item: Item, value: Any) -> Item:
        self.writer.add_document(item, value)
        if item.name == audit_chain.HEAD_KEY:
            self.summary.audit_seq, self.summary.audit_hash = int(value["seq"]), str(
                value["hash"])
        return item

    def blob(self, item: Item, data: bytes) -> Item:
        self.writer.add_blob(item, data)
        return item

    def rows(self, item: Item, frame: pd.DataFrame) -> Item:
        if item.name.split("/")[0] in audit_chain.TRAIL_TABLES and "SEQ" in frame.columns:
            frame = frame[frame["SEQ"].isna() | (frame["SEQ"] <= self.summary.audit_seq)]
            item = rows_item(TABLE, item.name, frame)
        self.writer.add_rows(item, frame)
        return item

    def run(self, run: int, rows: RunRows) -> list[Item]:
        for item, frame in rows.values():
            self.writer.add_rows(item, frame)
        return [item for item, _ in rows.values()]


def _pack(store: Store, writer: ArchiveWriter, summary: BackupSummary,
          say: Progress) -> Inventory:
    """Every state item into the archive; what was packed (the counts go into the summary)."""
    packed = carry_state(store, _ArchiveSink(writer, summary), "packed", say)
    counts = packed.counts()
    summary.content_bytes = counts.pop("bytes")
    for name, value in counts.items():
        setattr(summary, name, value)
    return packed


# -- the backup area -------------------------------------------------------------------------------
def list_backups(store: Store, actor: Actor) -> list[BackupSummary]:
    """Every backup in the store's backup area, newest first. An archive without its summary (a
    backup stopped between the two writes) is listed from its own manifest."""
    require(actor, MANAGE_BACKUPS)
    found = {}
    for key in store.list(INDEX_PREFIX):
        try:
            found[key[len(INDEX_PREFIX):]] = BackupSummary.from_dict(store.get(key)[0])
        except ObjectNotFound:  # deleted meanwhile
            continue
    for key in store.list_blobs(BLOB_PREFIX):
        backup_id = key[len(BLOB_PREFIX):].removesuffix(".zip")
        if backup_id not in found:
            try:
                with store.open_blob(key) as file:
                    found[backup_id] = _from_archive(backup_id, file)
            except (ObjectNotFound, BackupRefused):
                continue
    return sorted(found.values(), key=lambda s: (s.created_at, s.id), reverse=True)


def _from_archive(backup_id: str, file: IO[bytes], origin: str = "",
                  archive: BackupArchive | None = None) -> BackupSummary:
    """A backup's summary from its archive's manifest (opened here unless given)."""
    archive = archive or BackupArchive(file, f"backup {backup_id}")
    summary = BackupSummary.from_dict({**archive.manifest, "id": backup_id, "origin": origin})
    summary.bytes, summary.sha256 = _digest(file)
    return summary


def get_backup(store: Store, actor: Actor, backup_id: str) -> BackupSummary:
    """One backup's summary; NotFound names it."""
    for summary in list_backups(store, actor):
        if summary.id == backup_id:
            return summary
    raise NotFound(f"no backup {backup_id!r} in {shown_url(store.url)} (see the list of backups)")


def archive_bytes(store: Store, actor: Actor, backup_id: str) -> bytes:
    """The archive whole, for a download (a browser download is bytes); restore and verify read
    it through archive_file."""
    require(actor, MANAGE_BACKUPS)
    try:
        return store.get_blob(archive_key(_checked_id(backup_id)))
    except ObjectNotFound:
        raise NotFound(f"no backup {backup_id!r} in {shown_url(store.url)}") from None


@contextlib.contextmanager
def archive_file(store: Store, actor: Actor, backup_id: str) -> Iterator[IO[bytes]]:
    """The archive as a seekable file, read from the store in pieces (never whole)."""
    require(actor, MANAGE_BACKUPS)
    key = archive_key(_checked_id(backup_id))
    with contextlib.ExitStack() as stack:
        try:
            file = stack.enter_context(store.open_blob(key))
        except ObjectNotFound:  # only the archive's absence: the block's own errors pass
            raise NotFound(f"no backup {backup_id!r} in {shown_url(store.url)}") from None
        yield file


def _checked_id(backup_id: str) -> str:
    try:
        check_key(backup_id)
    except InvalidKey:
        raise NotFound(f"no backup {backup_id!r}") from None
    if "/" in backup_id:
        raise NotFound(f"no backup {backup_id!r}")
    return backup_id


def _free(store: Store, backup_id: str) -> bool:
    """Whether an id is a valid one no backup in the store has."""
    try:
        key = archive_key(_checked_id(backup_id))
        store.get(index_key(backup_id))
    except NotFound:
        return False
    except ObjectNotFound:
        return key not in store.list_blobs(key)
    return False


@contextlib.contextmanager
def open_backup(store: Store, actor: Actor, backup_id: str) -> Iterator[BackupArchive]:
    """A backup's archive for the block, its directory and manifest checked (BackupRefused if
    they fail); members are read from the store's file one at a time."""
    with archive_file(store, actor, backup_id) as file:
        archive = BackupArchive(file, f"backup {backup_id}")
        try:
            yield archive
        finally:
            archive.close()


def download_backup(store: Store, actor: Actor, backup_id: str, *,
                    now: datetime | None = None) -> bytes:
    """The archive's bytes for a download, logged in the access log as an export."""
    summary = get_backup(store, actor, backup_id)
    data = archive_bytes(store, actor, backup_id)
    log_export(store, actor, f"backup {backup_id}", "zip", summary.rows, now=now)
    return data


def verify_backup(store: Store, actor: Actor, backup_id: str, *,
                  progress: Progress | None = None) -> str:
    """Re-read every member and re-check every checksum; BackupRefused names the first item that
    fails. Returns what was checked, in words."""
    summary = get_backup(store, actor, backup_id)
    with archive_file(store, actor, backup_id) as file:
        changed = bool(summary.sha256) and _digest(file)[1] != summary.sha256
        archive = BackupArchive(file, f"backup {backup_id}")
        checked = 0
        try:
            for checked, _ in enumerate(archive.verify(), 1):  # names a damaged member, if any
                if progress is not None and checked % EVERY == 0:
                    progress(f"{checked} of {len(archive.members)} members checked")
        finally:
            archive.close()
    if changed:  # else the archive changed as a whole
        raise BackupRefused(f"backup {backup_id}", f"the archive differs from the one written "
                            f"({checked} members read fine, the file's SHA-256 does not match)")
    return (f"backup {backup_id} verified: {checked} items ({summary.items()}) match their "
            "checksums")


def import_backup(store: Store, actor: Actor, data: bytes | IO[bytes], filename: str, *,
                  now: datetime | None = None) -> BackupSummary:
    """Put an uploaded archive (its bytes, or a seekable file: read a member at a time) in the
    backup area once every member checks out (hostile input: see
    core.compliance.backup_archive), under its own id (a new one if that id is taken); an archive
    already there (the same bytes) is not added twice."""
    require(actor, MANAGE_BACKUPS)
    file = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    file.seek(0)
    archive = BackupArchive(file, filename)
    for _ in archive.verify():
        pass
    digest = _digest(file)[1]
    same = [s for s in list_backups(store, actor) if s.sha256 == digest]
    if same:  # this very archive is here already
        return same[0]
    at = now_or(now)
    backup_id = str(archive.manifest.get("id", ""))
    if not _free(store, backup_id):
        backup_id = new_backup_id(at)
    summary = _from_archive(backup_id, file, origin=f"{filename}, uploaded by {actor.username} "
                                                    f"at {at.isoformat()}", archive=archive)
    archive.close()
    store.put_blob_file(archive_key(backup_id), file)
    store.put(index_key(backup_id), summary.to_dict(), expected_version=None)
    record_change(store, actor, AREA, "import", backup_id, after=summary.to_dict(),
                  detail=filename, now=at)
    return summary


def delete_backup(store: Store, actor: Actor, backup_id: str, *,
                  now: datetime | None = None) -> None:
    """Remove a backup (its archive and summary), logged with the summary as before."""
    summary = get_backup(store, actor, backup_id)
    store.delete_blob(archive_key(backup_id))
    with contextlib.suppress(ObjectNotFound):  # an archive listed from its own manifest
        store.delete(index_key(backup_id))
    record_change(store, actor, AREA, "delete", backup_id, before=summary.to_dict(),
                  now=now_or(now))
