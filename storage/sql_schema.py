"""The SQL store's fixed schema, its engine and its vendor errors (storage.sql): the tables every
SqlStore holds (a version table, documents, blobs, and the catalog of its frame tables), created
and migrated on first use; the store URL's own options (`?schema=`); and the one place where
SQLAlchemy's errors become storage.errors."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from storage.errors import InvalidKey, StoreUnavailable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Upgrades, by the version they lead to: each takes a connection inside the upgrade's transaction.
# Version 1 is the first; a version 2 adds `2: upgrade_to_2` here and says what it changes.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}

KEY_LENGTH = 512  # check_key's limit
NAME_LENGTH = 128  # table, partition and column names of the catalog
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Text that may be long (JSON documents, strings of frames): CLOB on Oracle, which has no JSON type
# before 21c and caps VARCHAR2 at 4000 bytes.
LONG_TEXT = sa.Text()
# Text that is compared or indexed (keys, CUSIPs, message ids): Oracle cannot index a CLOB.
KEY_TEXT = sa.Text().with_variant(sa.String(1000), "oracle")
TIMESTAMP_UTC = sa.TIMESTAMP(timezone=True)  # Oracle: TIMESTAMP WITH TIME ZONE, never DATE

metadata = sa.MetaData()

schema_versions = sa.Table(
    "mp_schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", TIMESTAMP_UTC, nullable=False),
)
documents = sa.Table(
    "mp_documents", metadata,
    sa.Column("doc_key", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("body", LONG_TEXT, nullable=False),  # the value as JSON text
)
blobs = sa.Table(
    "mp_blobs", metadata,
    sa.Column("blob_key", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),  # BYTEA, BLOB
)
# The catalog of frame tables (storage.sql_tables). mp_tables: one row per table, its SQL name,
# the appends made (the next append's number) and a generation bumped by every column added (so
# a process's cached copy of the catalog knows when to read it again).
frame_tables = sa.Table(
    "mp_tables", metadata,
    sa.Column("table_name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("sql_name", sa.String(30), nullable=False, unique=True),
    sa.Column("appends", sa.BigInteger, nullable=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)
# Its columns in the order they appeared: the frame's name, the SQL column (None while every value
# was missing, so its type is not known yet), the Arrow type and the pandas dtype metadata.
frame_columns = sa.Table(
    "mp_columns", metadata,
    sa.Column("table_name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(1000), nullable=False),
    sa.Column("sql_name", sa.String(30)),
    sa.Column("arrow_type", LONG_TEXT, nullable=False),
    sa.Column("pandas", LONG_TEXT, nullable=False),
)
# The partitions holding rows, how many, and the number of the last write to them (a node's read
# copy of a partition is named by both), kept with every write: listing them never scans rows.
frame_partitions = sa.Table(
    "mp_partitions", metadata,
    sa.Column("table_name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("part_name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("last_write", sa.BigInteger, nullable=False),
)


@contextmanager
def vendor_errors(where: str, *, conflicts: bool = False) -> Iterator[None]:
    """SQLAlchemy's and the driver's errors as StoreUnavailable naming `where` (the URL without
    its password); DataError (a value the column cannot hold) as ValueError. conflicts: an
    IntegrityError (a key that exists) is the caller's to handle, raised as it is."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if conflicts:
            raise
        raise _unavailable(where, exc) from exc
    except sa_exc.DataError as exc:
        raise ValueError(f"{where}: a value cannot be stored: {exc.orig}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise _unavailable(where, exc) from exc


def _unavailable(where: str, exc: BaseException | None) -> StoreUnavailable:
    reason = getattr(exc, "orig", None) or exc
    return StoreUnavailable(f"{where}: {type(reason).__name__}: {reason}")


def parse_url(url: str, options: Mapping[str, Any] | None) -> tuple[sa.URL, str | None]:
    """The SQLAlchemy URL without the store's own query options, and the schema to use:
    `?schema=NAME` in the URL, else options["sql.schema"], else the connection's default."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError as exc:
        raise InvalidKey(url, f"not a SQLAlchemy URL: {exc}") from exc
    schema = parsed.query.get("schema") or (options or {}).get("sql.schema") or None
    if isinstance(schema, tuple):
        raise InvalidKey(url, "give one schema")
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise InvalidKey(str(schema), "schema names are lower-case letters, digits and _")
        if parsed.get_backend_name() == "sqlite":
            raise InvalidKey(str(schema), "a SQLite store has no schemas: use another file")
    return parsed.difference_update_query(["schema"]), schema


def make_engine(url: sa.URL) -> sa.Engine:
    """A pooled engine (connections checked before use). SQLite runs in WAL mode (readers never
    wait for the writer) and waits up to 30 s for another writer."""
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    return engine


@dataclass(frozen=True)
class FixedTables:
    """The fixed tables of one store, in its schema (None: the connection's default)."""

    metadata: sa.MetaData
    versions: sa.Table
    documents: sa.Table
    blobs: sa.Table
    tables: sa.Table
    columns: sa.Table
    partitions: sa.Table


def fixed_tables(schema: str | None) -> FixedTables:
    """Copies of the fixed tables in `schema`; frame tables join their metadata."""
    meta = sa.MetaData(schema=schema)
    copy = {t.name: t.to_metadata(meta, schema=schema) if schema else t.to_metadata(meta)
            for t in metadata.sorted_tables}
    return FixedTables(meta, copy["mp_schema_version"], copy["mp_documents"], copy["mp_blobs"],
                       copy["mp_tables"], copy["mp_columns"], copy["mp_partitions"])


class SchemaKeeper:
    """Creates the fixed tables on first use and checks (or upgrades) the schema's version, once
    per process and store."""

    def __init__(self, engine: sa.Engine, fixed: FixedTables, where: str) -> None:
        self.engine = engine
        self.fixed = fixed
        self.schema = fixed.metadata.schema
        self.where = where
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with vendor_errors(self.where, conflicts=True):
                if self._current() != SCHEMA_VERSION:
                    self._create()
                    self._migrate()
            self._ready = True

    def _current(self) -> int | None:
        """The schema's version when its version table can be read (one statement: a process
        opening a made store skips the CREATE checks); None when it cannot (not made yet)."""
        try:
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(sa.func.max(self.fixed.versions.c.version)))
                return found.scalar()
        except sa_exc.DBAPIError:
            return None

    def _create(self) -> None:
        """CREATE SCHEMA (PostgreSQL) and the fixed tables that are missing. Two processes
        creating them at once: the loser's CREATE fails, and it finds them made."""
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    if self.schema and conn.dialect.name == "postgresql":
                        conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                    self.fixed.metadata.create_all(conn, checkfirst=True)
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
                if attempt:
                    raise

    def _migrate(self) -> None:
        """Record version 1 in a new store; refuse a store newer than this code; upgrade an older
        one step by step, logging each."""
        with self.engine.begin() as conn:
            versions = self.fixed.versions.c.version
            found = conn.execute(sa.select(sa.func.max(versions))).scalar()
            if found is None:
                self._record(conn, SCHEMA_VERSION)
                log.info("%s: created the store's tables (schema version %s)", self.where,
                         SCHEMA_VERSION)
                return
            if found > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self.where}: the store's schema is version {found}, newer than this "
                    f"MarketPulse knows ({SCHEMA_VERSION}): upgrade MarketPulse")
            for version in range(found + 1, SCHEMA_VERSION + 1):
                log.info("%s: upgrading the store's schema from version %s to %s", self.where,
                         version - 1, version)
                MIGRATIONS[version](conn)
                self._record(conn, version)

    def _record(self, conn: sa.Connection, version: int) -> None:
        # applied when the database says: its clock, in the statement, not this host's
        conn.execute(sa.insert(self.fixed.versions).values(
            version=version, applied_at=sa.func.current_timestamp()))
