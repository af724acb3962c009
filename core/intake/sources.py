"""Inputs of an automated run (DESIGN.md §4): inbox folders, the upload buffer and SQL tables
(core.intake.sql_source), each collected as (name, bytes) files so the pipeline reads and validates
every source the same way.

Inbox files are settled after the run (see `Collected`): success moves them to
`<inbox>/processed/<run_id>-<name>`; a failed run leaves them in the inbox to be retried, except a
file that is itself unusable (the run failed with a FileProblem naming it), which moves to
`<inbox>/failed/<name>` beside a `<name>.error.txt` saying why, so it cannot block every later run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import FileProblem, InvalidInput
from core.ingest.columns import load_column_config
from core.intake import buffer
from core.intake.sql_source import SQL, SourceUnavailable, check_sql_source, collect_sql
from core.runs.duplicates import skipped_files
from core.schema import ColumnSpec, default_column_config
from storage import Store

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INBOX, BUFFER = "inbox", "buffer"
KINDS = (INBOX, BUFFER, SQL)
SUFFIXES = (".xlsx", ".xls", ".csv", ".parquet")
PROCESSED, FAILED = "processed", "failed"

_FILE_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]{1,200}$")


Settle = Callable[[Any], list[str]]


@dataclass
class Collected:
    """What the sources gave for one run, and how to settle them once the run is over.

    on_success(run_id) marks buffer entries processed and moves inbox files to processed/;
    on_failure(error) returns buffer entries to pending and leaves inbox files where they are,
    except the file a FileProblem names, which moves to failed/. Each returns the problems met
    (a file that could not be moved...) instead of raising; only the first call does anything."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # file → where it came from, for the record
    manifest: list[dict[str, Any]] = field(default_factory=list)  # name, source, size, sha256
    _successes: list[Settle] = field(default_factory=list, repr=False)
    _failures: list[Settle] = field(default_factory=list, repr=False)
    _settled: bool = field(default=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.files

    def add(self, name: str, data: bytes, source: str) -> str:
        """Add a file under a name unique in this run (a-2.csv after a.csv); returns the name."""
        taken = {n.casefold() for n, _ in self.files}
        stem, suffix = os.path.splitext(name)
        unique, n = name, 1
        while unique.casefold() in taken:
            n += 1
            unique = f"{stem}-{n}{suffix}"
        self.files.append((unique, data))
        self.manifest.append({"name": unique, "source": source, "size": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()})
        return unique

    def settle_with(self, on_success: Settle, on_failure: Settle | None = None) -> None:
        """Call on_success(run_id) when the run publishes, on_failure(error) when it fails."""
        self._successes.append(on_success)
        if on_failure is not None:
            self._failures.append(on_failure)

    def on_success(self, run_id: int) -> list[str]:
        """Settle after the run published (call after the run record says success)."""
        return self._settle(self._successes, run_id)

    def on_failure(self, error: BaseException | None = None) -> list[str]:
        """Settle after a failed run; pass the exception so an unusable file moves to failed/."""
        return self._settle(self._failures, error)

    def _settle(self, handlers: list[Settle], argument: Any) -> list[str]:
        if self._settled:
            return []
        self._settled = True
        problems: list[str] = []
        for handler in handlers:
            try:
                problems += handler(argument)
            except Exception as exc:  # settle every source even when one fails
                log.exception("settling a source failed")
                problems.append(str(exc) or type(exc).__name__)
        return problems


# -- validation ------------------------------------------------------------------------------------
def resolve_inbox(path: str, *, root: Path = PROJECT_ROOT, field_name: str = "path") -> Path:
    """The inbox folder a job names: an absolute path, or one relative to the project folder that
    stays inside it (links followed). '..' is refused anywhere. The folder need not exist yet."""
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise InvalidInput(field_name, "enter the inbox folder")
    raw = Path(path.strip())
    if ".." in raw.parts:
        raise InvalidInput(field_name, f"{path!r}: '..' is not allowed in an inbox path")
    if raw.is_absolute():
        return raw.resolve()
    folder = (root / raw).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise InvalidInput(field_name, f"{path!r} leads outside the project folder; "
                                       "give an absolute path instead")
    return folder


def check_sources(
    sources: Sequence[Mapping[str, Any]],
    *,
    columns: list[ColumnSpec] | None = None,
    root: Path = PROJECT_ROOT,
) -> list[dict[str, Any]]:
    """Validated, normalised copies of a job's sources; InvalidInput names sources[i].field."""
    columns = columns or default_column_config()
    checked: list[dict[str, Any]] = []
    for i, source in enumerate(sources):
        where = f"sources[{i}]"
        if not isinstance(source, Mapping) or source.get("kind") not in KINDS:
            raise InvalidInput(where, f"kind must be one of {', '.join(KINDS)}")
        kind = source["kind"]
        if kind == INBOX:
            resolve_inbox(source.get("path", ""), root=root, field_name=f"{where}.path")
            min_age = float(source.get("min_age_s", 0) or 0)
            checked.append({"kind": INBOX, "path": source["path"].strip(), "min_age_s": min_age})
        elif kind == BUFFER:
            checked.append({"kind": BUFFER})
        else:
            checked.append(check_sql_source(source, columns, where))
    return checked


# -- collection ------------------------------------------------------------------------------------
def collect_inputs(
    store: Store,
    job_sources: list[dict[str, Any]],
    settings: Settings,
    *,
    job_name: str,
    now: datetime,
    job_id: str = "",
    root: Path = PROJECT_ROOT,
) -> Collected:
    """Read every source of a job into files for the pipeline. job_id: whose SQL watermarks
    apply and move on when the run publishes ("": read from the start, move nothing). A source
    that cannot be read raises SourceUnavailable after releasing what was already claimed."""
    sources = check_sources(job_sources, columns=load_column_config(store), root=root)
    collected = Collected()
    try:
        for source in sources:
            if source["kind"] == INBOX:
                _collect_inbox(collected, source, now, root)
            elif source["kind"] == BUFFER:
                _collect_buffer(store, collected, job_name)
            else:
                collect_sql(store, collected, source, settings, job_id=job_id, now=now)
    except BaseException:
        collected.on_failure()
        raise
    return collected


def _collect_inbox(collected: Collected, source: dict[str, Any], now: datetime, root: Path) -> None:
    folder = resolve_inbox(source["path"], root=root)
    if not folder.is_dir():
        raise SourceUnavailable(f"inbox {folder} does not exist or is not a folder")
    taken: dict[str, tuple[Path, int, int]] = {}  # name in the run → (path, size, mtime_ns)
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.startswith((".", "~$")):
            continue
        if path.is_symlink() or not path.is_file() or not _FILE_NAME.match(path.name):
            collected.warnings.append(f"inbox {folder}: skipped {path.name!r} (not a plain file "
                                      "with a usable name)")
            continue
        stat = path.stat()
        if source["min_age_s"] and now.timestamp() - stat.st_mtime < source["min_age_s"]:
            log.info("inbox %s: %s is still being written; next run", folder, path.name)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"inbox {folder}: cannot read {path.name}: {exc}") from exc
        name = collected.add(path.name, data, f"inbox {folder}")
        taken[name] = (path, stat.st_size, stat.st_mtime_ns)
    listed = f" ({', '.join(p.name for p, _, _ in taken.values())})" if taken else ""
    collected.descriptions.append(f"inbox {folder}: {len(taken)} file(s){listed}")

    def succeeded(run_id: int) -> list[str]:
        problems = []
        for path, size, mtime_ns in taken.values():
            try:
                stat = path.stat()
                if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
                    problems.append(f"{path} changed during run {run_id}: left in the inbox")
                    continue
                _move(path, folder / PROCESSED, f"{run_id}-{path.name}")
            except OSError as exc:
                log.error("could not move %s to processed/: %s", path, exc)
                problems.append(f"{path} could not move to processed/ ({exc}); remove it by "
                                "hand or the next run reads it again")
        return problems

    def failed(error: BaseException | None) -> list[str]:
        if not isinstance(error, FileProblem) or error.file not in taken:
            return []
        path = taken[error.file][0]
        try:
            moved = _move(path, folder / FAILED, path.name)
            moved.with_name(moved.name + ".error.txt").write_text(str(error) + "\n",
                                                                  encoding="utf-8")
        except OSError as exc:
            return [f"{path} is unusable but could not move to failed/ ({exc})"]
        return []

    collected.settle_with(succeeded, failed)


def _move(path: Path, folder: Path, name: str) -> Path:
    """Move path into folder as name (name-2.ext when that exists); returns the new path."""
    folder.mkdir(exist_ok=True)
    target, n = folder / name, 1
    while target.exists():
        n += 1
        stem, suffix = os.path.splitext(name)
        target = folder / f"{stem}-{n}{suffix}"
    path.rename(target)
    return target


def _collect_buffer(store: Store, collected: Collected, job_name: str) -> None:
    owner = f"job:{job_name}"
    entries = buffer.claim_pending(store, owner)
    ids = {entry_id: collected.add(name, data, "buffer") for entry_id, name, data in entries}

    def processed(run_id: int) -> list[str]:
        notes = skipped_files(store, run_id)  # files identical to ones already published
        buffer.mark_processed(store, [i for i in ids if ids[i] not in notes], run_id, owner=owner)
        for entry_id, name in ids.items():
            if name in notes:
                buffer.mark_processed(store, [entry_id], run_id, owner=owner,
                                      note=f"skipped: {notes[name]}")
        return []

    def released(error: BaseException | None) -> list[str]:
        # A file the run could not use at all is marked failed, not queued again forever.
        unusable = error.file if isinstance(error, FileProblem) else None
        bad = [i for i, name in ids.items() if name == unusable]
        if bad:
            buffer.mark_failed(store, bad, str(error), owner=owner)
        buffer.release(store, [i for i in ids if i not in bad], owner=owner)
        return []

    if ids:
        collected.settle_with(processed, released)
    listed = f" ({', '.join(ids.values())})" if ids else ""
    collected.descriptions.append(f"buffer: {len(ids)} file(s){listed}")
