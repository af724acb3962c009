"""The `store` fixture: every test in tests/contract runs once against each backend."""

from __future__ import annotations

import pytest

from storage import Store
from tests.conftest import ORACLE_DSN

# One name per backend; `store` resolves it to the fixture `<name>_store` (tests/conftest.py).
# A new backend joins the suite by adding its name here and an `<name>_store` fixture. It ships
# only when every test here passes for it. "s3" is S3Store on moto's server, started on 127.0.0.1
# by the session; "sqlite" and "postgres" are SqlStore (PostgreSQL on 127.0.0.1:5432, a schema per
# test: not reachable fails the tests); "oracle" joins when MARKETPULSE_ORACLE_DSN names a live one.
BACKENDS = ["memory", "local", "s3", "sqlite", "postgres", *(["oracle"] if ORACLE_DSN else [])]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")
