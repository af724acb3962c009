"""Inputs of an automated run (DESIGN.md §4): inbox folders, the upload buffer and SQL queries, each
collected as (name, bytes) files so the pipeline reads and validates every source the same way.

Inbox files are settled after the run (see `Collected`): success moves them to
`<inbox>/processed/<run_id>-<name>`; a failed run leaves them in the inbox to be retried, except a
file that is itself unusable (the run failed with a FileProblem naming it), which moves to
`<inbox>/failed/<name>` beside a `<name>.error.txt` saying why, so it cannot block every later run.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.columns import load_column_config
from core.config import ENV_PREFIX, Settings
from core.errors import FileProblem, InvalidInput, MarketPulseError
from core.schema import TEXT, ColumnSpec, default_column_config, header_lookup
from core.schema import normalise_header as _header
from storage import Store

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INBOX, BUFFER, SQL = "inbox", "buffer", "sql"
KINDS = (INBOX, BUFFER, SQL)
SUFFIXES = (".xlsx", ".xls", ".csv", ".parquet")
PROCESSED, FAILED = "processed", "failed"
URL_SETTING = "sources.sql_url"  # default place of a SQL source's URL (secrets or environment)
PASSWORD_SETTING = "sources.sql_password"  # env MARKETPULSE_SOURCES_SQL_PASSWORD
MAX_ROWS = 1_000_000
LOOKBACK_HOURS = 24.0  # :since when the caller does not pass the previous run's time

_FILE_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]{1,200}$")
_URL_SETTING = re.compile(r"^sources\.[a-z0-9_]*url$")
_FIRST_WORD = re.compile(r"^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*([A-Za-z]+)", re.S)


class SourceUnavailable(MarketPulseError):
    """A source could not be read: folder missing, database unreachable, query failed."""


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


def check_sql_query(query: str, *, field_name: str = "query") -> str:
    """One SELECT (or WITH … SELECT) statement, trailing ';' dropped; only :since may be bound."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(field_name, "enter a SELECT statement")
    text = query.strip().rstrip(";").rstrip()
    first = _FIRST_WORD.match(text)
    if first is None or first.group(1).upper() not in ("SELECT", "WITH"):
        raise InvalidInput(field_name, "only a SELECT (or WITH … SELECT) statement may be used")
    if ";" in text:
        raise InvalidInput(field_name, "one statement only: remove the ';' inside the query")
    unknown = sorted(bind_names(text) - {"since"})
    if unknown:
        raise InvalidInput(field_name, f"unknown parameter(s) {', '.join(':' + u for u in unknown)}"
                                       "; only :since is supplied")
    return text


def bind_names(query: str) -> set[str]:
    """Names of the :parameters in a query, as SQLAlchemy's text() sees them (:: casts are not)."""
    import sqlalchemy as sa

    return set(sa.text(query).compile().params)


def check_sources(
    sources: Sequence[Mapping[str, Any]],
    *,
    columns: list[ColumnSpec] | None = None,
    root: Path = PROJECT_ROOT,
) -> list[dict[str, Any]]:
    """Validated, normalised copies of a job's sources; InvalidInput names sources[i].field."""
    canonical = {spec.name for spec in (columns or default_column_config())}
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
            checked.append(_check_sql_source(source, canonical, where))
    return checked


def _check_sql_source(source: Mapping[str, Any], canonical: set[str], where: str) -> dict[str, Any]:
    import sqlalchemy as sa

    out: dict[str, Any] = {"kind": SQL,
                           "query": check_sql_query(source.get("query", ""),
                                                    field_name=f"{where}.query")}
    if source.get("url"):
        try:
            url = sa.engine.make_url(str(source["url"]))
        except sa.exc.ArgumentError:
            raise InvalidInput(f"{where}.url", "not a database URL such as oracle+oracledb://"
                                               "user@host:1521/?service_name=X") from None
        if url.password:
            raise InvalidInput(f"{where}.url", "leave the password out: set "
                                               f"{ENV_PREFIX}SOURCES_SQL_PASSWORD instead")
        out["url"] = str(source["url"])
    else:
        key = source.get("url_setting") or URL_SETTING
        if not _URL_SETTING.match(key):
            raise InvalidInput(f"{where}.url_setting", "must be a sources.*url setting")
        out["url_setting"] = key
    column_map = source.get("column_map") or {}
    if not isinstance(column_map, Mapping):
        raise InvalidInput(f"{where}.column_map", "map database columns to column names")
    targets: dict[str, str] = {}
    for db_column, target in column_map.items():
        if not isinstance(db_column, str) or not db_column.strip() or target not in canonical:
            raise InvalidInput(f"{where}.column_map",
                               f"{db_column!r} → {target!r}: the target must be one of "
                               f"{', '.join(sorted(canonical))}")
        if target in targets:
            raise InvalidInput(f"{where}.column_map",
                               f"{targets[target]!r} and {db_column!r} both map to {target}")
        targets[target] = db_column
    out["column_map"] = {str(k): str(v) for k, v in column_map.items()}
    out["max_rows"] = int(source.get("max_rows") or MAX_ROWS)
    out["lookback_hours"] = float(source.get("lookback_hours") or LOOKBACK_HOURS)
    return out


# -- collection ------------------------------------------------------------------------------------
def collect_inputs(
    store: Store,
    job_sources: list[dict[str, Any]],
    settings: Settings,
    *,
    job_name: str,
    now: datetime,
    since: datetime | None = None,
    root: Path = PROJECT_ROOT,
) -> Collected:
    """Read every source of a job into files for the pipeline. since binds :since in SQL queries
    (pass the previous successful run's start; default now − lookback_hours). A source that cannot
    be read raises SourceUnavailable after releasing what was already claimed."""
    sources = check_sources(job_sources, columns=load_column_config(store), root=root)
    collected = Collected()
    try:
        for source in sources:
            if source["kind"] == INBOX:
                _collect_inbox(collected, source, now, root)
            elif source["kind"] == BUFFER:
                _collect_buffer(store, collected, job_name)
            else:
                _collect_sql(store, collected, source, settings, job_name, now, since)
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

    collected._successes.append(succeeded)
    collected._failures.append(failed)


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
    try:
        buffer = importlib.import_module("core.buffer")
    except ModuleNotFoundError as exc:
        if exc.name != "core.buffer":
            raise
        message = "buffer source skipped: the upload buffer (core.buffer) is not installed yet"
        log.warning(message)
        collected.warnings.append(message)
        collected.descriptions.append(message)
        return
    owner = f"job:{job_name}"
    entries = buffer.claim_pending(store, owner)
    ids = {entry_id: collected.add(name, data, "buffer") for entry_id, name, data in entries}

    def processed(run_id: int) -> list[str]:
        buffer.mark_processed(store, list(ids), run_id, owner=owner)
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
        collected._successes.append(processed)
        collected._failures.append(released)
    listed = f" ({', '.join(ids.values())})" if ids else ""
    collected.descriptions.append(f"buffer: {len(ids)} file(s){listed}")


# -- SQL -------------------------------------------------------------------------------------------
def _setting(settings: Settings, key: str) -> Any:
    """A setting's value (environment or secrets.toml; core.config declares the keys)."""
    return settings[key]


def source_url(source: Mapping[str, Any], settings: Settings) -> sa.URL:
    """The SQL source's URL with the password from secrets/environment when the URL has none."""
    import sqlalchemy as sa

    key = source.get("url_setting") or URL_SETTING
    text = source.get("url") or _setting(settings, key)
    if not text:
        raise SourceUnavailable(f"SQL source: {key} is not set (environment "
                                f"{ENV_PREFIX}{key.replace('.', '_').upper()} or secrets.toml)")
    try:
        url = sa.engine.make_url(str(text))
    except sa.exc.ArgumentError:
        raise SourceUnavailable(f"SQL source: {key} is not a database URL") from None
    password = _setting(settings, PASSWORD_SETTING)
    if url.password is None and password:
        url = url.set(password=str(password))
    return url


def _collect_sql(store: Store, collected: Collected, source: dict[str, Any], settings: Settings,
                 job_name: str, now: datetime, since: datetime | None) -> None:
    import sqlalchemy as sa

    url = source_url(source, settings)
    shown = url.render_as_string(hide_password=True)
    # Stream (a server-side cursor where the driver has one) so max_rows caps the memory too.
    statement = sa.text(source["query"]).execution_options(stream_results=True)
    params = {}
    if "since" in bind_names(source["query"]):
        params["since"] = since or now - timedelta(hours=source["lookback_hours"])
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if connection.dialect.name in ("postgresql", "oracle"):
                # Defence in depth beside a read-only account: the query cannot change data.
                connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            result = connection.execute(statement, params)
            names = list(result.keys())
            rows = result.fetchmany(source["max_rows"] + 1)
            connection.rollback()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SourceUnavailable(f"SQL source {shown}: {reason}") from exc
    finally:
        engine.dispose()
    if len(rows) > source["max_rows"]:
        raise SourceUnavailable(f"SQL source {shown}: more than {source['max_rows']} rows; "
                                "narrow the query (WHERE … >= :since) or raise max_rows")
    if not rows:
        collected.descriptions.append(f"sql {shown}: 0 rows")
        return
    frame = rows_to_frame(names, rows, source["column_map"], load_column_config(store),
                          collected.warnings)
    buffer = BytesIO()
    frame.to_parquet(buffer, index=False)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", job_name).strip("-.") or "job"
    name = collected.add(f"sql-{slug}.parquet", buffer.getvalue(), f"sql {shown}")
    collected.descriptions.append(f"sql {shown}: {len(rows)} rows as {name}")


def rows_to_frame(names: list[str], rows: Sequence[Sequence[Any]], column_map: Mapping[str, str],
                  columns: list[ColumnSpec] | None = None,
                  warnings: list[str] | None = None) -> pd.DataFrame:
    """Query rows as a frame with mapped column names. Text columns (MESSAGE_ID, CUSIP…) become
    exact text (17-digit ids never pass through float); Decimal numbers become int or float."""
    wanted = {k.casefold(): v for k, v in column_map.items()}
    returned = {n.casefold() for n in names}
    missing = [k for k in column_map if k.casefold() not in returned]
    if missing:
        raise SourceUnavailable(f"SQL source: the query returns no column {', '.join(missing)}; "
                                f"it returns {', '.join(names)}")
    renamed = [wanted.get(n.casefold(), n) for n in names]
    seen: set[str] = set()
    for name in renamed:
        if name.casefold() in seen:
            raise SourceUnavailable(f"SQL source: two columns are called {name}; map or alias one")
        seen.add(name.casefold())
    config = columns or default_column_config()
    lookup = header_lookup(config)
    types = {spec.name: spec.type for spec in config}
    data: dict[str, Any] = {}
    for position, name in enumerate(renamed):
        values = [row[position] for row in rows]
        if types.get(lookup.get(_header(name), ""), TEXT) == TEXT:
            if warnings is not None and any(isinstance(v, float) and abs(v) >= 2**53
                                            for v in values):
                warnings.append(f"SQL source: {name} came back as floating point and may have "
                                "lost digits; select it as text (TO_CHAR)")
            data[name] = pd.array([None if v is None else _as_text(v) for v in values],
                                  dtype="string")
        else:
            numbers = [_as_number(v) for v in values]
            kinds = {type(v) for v in numbers if v is not None}
            if len(kinds) > 1 and not kinds <= {int, float}:  # mixed: let ingest coerce the text
                numbers = [None if v is None else str(v) for v in numbers]
            data[name] = numbers
    return pd.DataFrame(data)


def _as_text(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        whole = value.to_integral_value()
        return format(whole if value == whole else value, "f")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    return value
