"""Shared fixtures: a clean environment for every test and stores to run against."""

from __future__ import annotations

import os
import uuid

import pytest

from storage import open_store


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    """No test reads the real data/ or secrets: drop MARKETPULSE_* and AWS_* variables, and point
    the secrets file (where a missing cookie key is generated) into the test's folder."""
    for name in list(os.environ):
        if name.startswith(("MARKETPULSE_", "AWS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MARKETPULSE_SECRETS_FILE", str(tmp_path / "secrets.toml"))


@pytest.fixture
def memory_store():
    return open_store("memory://test")


@pytest.fixture
def local_store(tmp_path):
    return open_store(str(tmp_path / "store"))


# The PostgreSQL server CI starts (trust auth): each test's store lives in a schema of its own.
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_store(tmp_path):
    """A SqlStore on a SQLite file in the test's folder."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}",
                       {"sql.cache_dir": str(tmp_path / "sql-cache")})
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def _postgres():
    """An engine on the test database, and the prefix of this session's schemas; schemas left
    behind by this session are dropped at its end. No server: every test using it fails."""
    import secrets

    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (start it: CI does): {exc}",
                    pytrace=False)
    prefix = f"mp_{os.getpid()}_{secrets.token_hex(3)}_"
    yield engine, prefix
    with engine.begin() as conn:
        left = conn.execute(sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                            {"p": prefix.replace("_", r"\_") + "%"}).scalars().all()
        for name in left:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture
def postgres_schema(_postgres):
    """A new schema's name (the store creates it on first use; dropped after the test)."""
    import sqlalchemy as sa

    engine, prefix = _postgres
    name = f"{prefix}{next(_schemas)}"
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


_schemas = iter(range(1, 10**9))


@pytest.fixture
def postgres_store(postgres_schema, tmp_path):
    """A SqlStore on PostgreSQL in a schema of its own (its read copy in the test's folder)."""
    store = open_store(f"{POSTGRES_URL}?schema={postgres_schema}",
                       {"sql.cache_dir": str(tmp_path / "sql-cache")})
    yield store
    store.dispose()


# A live Oracle to run the contract on (a SQLAlchemy URL, oracle+oracledb://user:password@host:
# 1521/?service_name=X); read at import, before the autouse fixture clears MARKETPULSE_*.
ORACLE_DSN = os.environ.get("MARKETPULSE_ORACLE_DSN", "")


def _drop_store_tables(url: str) -> None:
    """Drop every table a SqlStore made in the user's schema (Oracle: a schema is a user)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.lower().startswith("mp_"):
                conn.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData())))
    engine.dispose()


@pytest.fixture
def oracle_store(tmp_path):
    """A SqlStore on the live Oracle of MARKETPULSE_ORACLE_DSN, emptied before and after."""
    if not ORACLE_DSN:
        pytest.skip("MARKETPULSE_ORACLE_DSN is not set: no live Oracle")
    _drop_store_tables(ORACLE_DSN)
    store = open_store(ORACLE_DSN, {"sql.cache_dir": str(tmp_path / "sql-cache")})
    yield store
    store.dispose()
    _drop_store_tables(ORACLE_DSN)


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 API served on 127.0.0.1 (a free port) for the whole session; yields its URL."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def _bucket_maker(moto_server):
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=moto_server, aws_access_key_id="test", aws_secret_access_key="test",
        region_name="us-east-1")


# moto accepts any credentials; they reach the store as secrets would (s3.*), never in the URL.
S3_TEST_CREDENTIALS = {"s3.access_key_id": "test", "s3.secret_access_key": "test",
                       "s3.region": "us-east-1"}


@pytest.fixture
def s3_bucket(_bucket_maker) -> str:
    """A new, empty bucket on the moto server (each test gets its own): its name."""
    name = f"mp-{uuid.uuid4().hex[:16]}"
    _bucket_maker.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_options(moto_server, tmp_path):
    """open_store options for moto: endpoint, test credentials, a cache in the test's folder."""
    return {**S3_TEST_CREDENTIALS, "s3.endpoint_url": moto_server,
            "s3.cache_dir": str(tmp_path / "s3-cache")}


@pytest.fixture
def s3_store(s3_bucket, s3_options):
    """An S3Store on moto under a prefix of a bucket of its own."""
    return open_store(f"s3://{s3_bucket}/desk", s3_options)


class _Inbox:
    """Messages received by the loopback SMTP server: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        from email import message_from_bytes, policy

        self.messages.append((list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1; yields (port, inbox)."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()
