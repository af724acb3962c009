"""The `store` fixture: every test in tests/contract runs once against each backend."""

from __future__ import annotations

import pytest

from storage import Store

# One name per backend; `store` resolves it to the fixture `<name>_store` (tests/conftest.py).
# A new backend joins the suite by adding its name here and an `<name>_store` fixture, e.g.
# "sqlite" and "postgres" (SqlStore). It ships only when every test here passes for it.
# "s3" is S3Store on moto's server, started on 127.0.0.1 by the session (tests/conftest.py).
BACKENDS = ["memory", "local", "s3", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")
