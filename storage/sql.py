"""SqlStore: the Store protocol on a SQL database through SQLAlchemy Core, one code path for
PostgreSQL (psycopg), Oracle (oracledb, thin) and SQLite.

Documents are rows of a key/value table with a version column: every write is one statement that
checks the version it replaces (UPDATE … WHERE key = ? AND version = ?; an INSERT for a new key,
whose unique violation is the conflict). Blobs are rows of a LOB table. Tables are real SQL tables
(storage.sql_tables), and the runs' rows are read through the store's own port
(storage.sql_run_tables) as indexed SQL. The schema is made and versioned on first use
(storage.sql_schema).
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from storage.base import ANY_VERSION, check_key, check_prefix, check_version, encode_document
from storage.blobs import CHUNK, check_file, spool
from storage.errors import ObjectNotFound, WriteConflict
from storage.sql_cache import ReadCopy, default_folder
from storage.sql_catalog import FrameTable
from storage.sql_schema import SchemaKeeper, fixed_tables, make_engine, parse_url
from storage.sql_tables import FrameTables, in_list

if TYPE_CHECKING:
    from storage.run_tables import RunTables


class SqlStore(FrameTables):
    """Documents, tables and blobs in one database (and schema): `postgresql+psycopg://…`,
    `oracle+oracledb://…` or `sqlite:///path`; `?schema=NAME` (or options["sql.schema"]) puts
    the store's tables in that PostgreSQL schema, created if missing. options["sql.cache_dir"]:
    the folder of this node's read copy (storage.sql_cache; default ~/.cache/marketpulse/sql)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        parsed, schema = parse_url(url, options)
        self.url = parsed.render_as_string(hide_password=True) + (
            f"?schema={schema}" if schema else "")
        self.schema = schema
        self._where = self.url
        self._engine = make_engine(parsed)
        self._fixed = fixed_tables(schema)
        self._keeper = SchemaKeeper(self._engine, self._fixed, self._where)
        self._frames: dict[str, FrameTable] = {}
        base = (options or {}).get("sql.cache_dir")
        self.read_copy = ReadCopy(default_folder(self.url, Path(base) if base else None))
        self._port_lock = threading.Lock()
        self._port: RunTables | None = None

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"

    def dispose(self) -> None:
        """Close the pooled connections (tests dropping the schema, processes exiting)."""
        self._engine.dispose()

    def run_tables(self) -> RunTables:
        """The run-table port of this store: the runs' rows as indexed SQL (storage.run_tables
        asks for it once per store)."""
        from storage.sql_run_tables import SqlRunTables

        with self._port_lock:
            if self._port is None:
                self._port = SqlRunTables(self)
            return self._port

    # -- documents -------------------------------------------------------------------------
    def get(self, key: str) -> tuple[Any, str]:
        """Return (value, version); raise ObjectNotFound when the key does not exist."""
        d = self._fixed.documents
        check_key(key)
        with self.reading() as conn:
            row = conn.execute(sa.select(d.c.body, d.c.version).where(d.c.doc_key == key)).first()
        if row is None:
            raise ObjectNotFound(key)
        return json.loads(row.body), str(row.version)

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[Any, str]]:
        """(value, version) of each of these keys that exists, in one statement (per 500 keys)
        rather than one per key (storage.documents.get_many uses it)."""
        d = self._fixed.documents
        wanted = sorted({check_key(k) for k in keys})
        with self.reading() as conn:
            rows = conn.execute(sa.select(d.c.doc_key, d.c.body, d.c.version)
                                .where(in_list(d.c.doc_key, wanted))).all() if wanted else []
        found = {r.doc_key: (json.loads(r.body), str(r.version)) for r in rows}
        return {k: found[k] for k in keys if k in found}

    def put(self, key: str, value: Any, expected_version: str | None) -> str:
        """Write value and return its new version (see Store.put): one conditional statement."""
        check_key(key)
        check_version(key, expected_version, expected_version)  # a version must be a str
        body = encode_document(key, value)
        if expected_version is None:
            return self._create_document(key, body)
        if expected_version == ANY_VERSION:
            return self._overwrite(key, body)
        d = self._fixed.documents
        number = _number(expected_version)
        if number is not None:
            with self.writing() as conn:
                done = conn.execute(sa.update(d).where(d.c.doc_key == key, d.c.version == number)
                                    .values(body=body, version=number + 1))
            if done.rowcount == 1:
                return str(number + 1)
        raise WriteConflict(key, expected_version, self._version(key))

    def delete(self, key: str, expected_version: str = ANY_VERSION) -> None:
        """Delete a document; ObjectNotFound if absent, WriteConflict on a stale version."""
        check_key(key)
        check_version(key, expected_version, expected_version)
        d = self._fixed.documents
        statement = sa.delete(d).where(d.c.doc_key == key)
        if expected_version != ANY_VERSION:
            number = _number(expected_version)
            statement = statement.where(d.c.version == (-1 if number is None else number))
        with self.writing() as conn:
            done = conn.execute(statement)
        if done.rowcount == 1:
            return
        actual = self._version(key)
        if actual is None:
            raise ObjectNotFound(key)
        raise WriteConflict(key, expected_version, actual)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Document keys starting with prefix, sorted (as Python sorts, whatever the collation)."""
        check_prefix(prefix)
        d = self._fixed.documents
        query = sa.select(d.c.doc_key)
        if prefix:
            query = query.where(d.c.doc_key.startswith(prefix, autoescape=True))
        with self.reading() as conn:
            return sorted(conn.execute(query).scalars().all())

    def _create_document(self, key: str, body: str) -> str:
        d = self._fixed.documents
        try:
            with self.writing(conflicts=True) as conn:
                conn.execute(sa.insert(d).values(doc_key=key, version=1, body=body))
        except sa_exc.IntegrityError:
            raise WriteConflict(key, None, self._version(key)) from None
        return "1"

    def _overwrite(self, key: str, body: str) -> str:
        """Write whatever the version: UPDATE, else INSERT; a racing INSERT makes us UPDATE."""
        d = self._fixed.documents
        while True:
            with self.writing() as conn:
                done = conn.execute(sa.update(d).where(d.c.doc_key == key)
                                    .values(body=body, version=d.c.version + 1))
                if done.rowcount == 1:  # the row stays locked until commit: its version is ours
                    return str(conn.execute(sa.select(d.c.version).where(d.c.doc_key == key))
                               .scalar_one())
            try:
                return self._create_document(key, body)
            except WriteConflict:
                continue

    def _version(self, key: str) -> str | None:
        d = self._fixed.documents
        with self.reading() as conn:
            found = conn.execute(sa.select(d.c.version).where(d.c.doc_key == key)).scalar()
        return None if found is None else str(found)

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Write bytes in one transaction (readers see the old or the new bytes)."""
        check_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{key}: blob data must be bytes, got {type(data).__name__}")
        b = self._fixed.blobs
        while True:
            with self.writing() as conn:
                done = conn.execute(sa.update(b).where(b.c.blob_key == key)
                                    .values(data=bytes(data)))
                if done.rowcount == 1:
                    return
            try:
                with self.writing(conflicts=True) as conn:
                    conn.execute(sa.insert(b).values(blob_key=key, data=bytes(data)))
                return
            except sa_exc.IntegrityError:  # written meanwhile: replace it
                continue

    def get_blob(self, key: str) -> bytes:
        """Bytes of the blob; ObjectNotFound if absent."""
        check_key(key)
        b = self._fixed.blobs
        with self.reading() as conn:
            data = conn.execute(sa.select(b.c.data).where(b.c.blob_key == key)).scalar()
        if data is None:
            raise ObjectNotFound(key)
        return bytes(data)

    @contextmanager
    def open_blob(self, key: str) -> Iterator[IO[bytes]]:
        """The value read a CHUNK at a time (substr) into a temporary file, in one transaction
        that keeps writers of the row out meanwhile (PostgreSQL: FOR SHARE; SQLite: a read
        snapshot). Oracle reads it in one piece."""
        check_key(key)
        b = self._fixed.blobs
        with spool() as file:
            with self.writing() as conn:
                found = b.c.blob_key == key
                if conn.dialect.name not in ("postgresql", "sqlite"):
                    data = conn.execute(sa.select(b.c.data).where(found)).scalar()
                    size = -1 if data is None else file.write(data)
                else:
                    if conn.dialect.name == "sqlite":  # pysqlite begins nothing for a SELECT
                        conn.exec_driver_sql("BEGIN")
                    query = sa.select(sa.func.length(b.c.data)).where(found)
                    if conn.dialect.name == "postgresql":
                        query = query.with_for_update(read=True)
                    length = conn.execute(query).scalar()
                    size = -1 if length is None else int(length)
                    for start in range(1, size + 1, CHUNK):
                        piece = conn.execute(sa.select(
                            sa.func.substr(b.c.data, start, CHUNK)).where(found)).scalar()
                        if piece is None:  # deleted meanwhile (SQLite)
                            raise ObjectNotFound(key)
                        file.write(piece)
            if size < 0:
                raise ObjectNotFound(key)
            file.seek(0)
            yield file

    def put_blob_file(self, key: str, file: IO[bytes]) -> int:
        """The file's bytes as put_blob writes them: a blob is one value of one row, sent
        whole (held in memory once, while it is written)."""
        check_key(key)
        check_file(key, file)
        data = file.read()
        self.put_blob(key, data)
        return len(data)

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with prefix, sorted."""
        check_prefix(prefix)
        b = self._fixed.blobs
        query = sa.select(b.c.blob_key)
        if prefix:
            query = query.where(b.c.blob_key.startswith(prefix, autoescape=True))
        with self.reading() as conn:
            return sorted(conn.execute(query).scalars().all())

    def delete_blob(self, key: str) -> None:
        """Delete a blob (no error if absent)."""
        check_key(key)
        b = self._fixed.blobs
        with self.writing() as conn:
            conn.execute(sa.delete(b).where(b.c.blob_key == key))


def _number(version: str) -> int | None:
    """A version as the number the table keeps; None for text no write ever returned."""
    return int(version) if version.isdigit() and len(version) < 19 else None
