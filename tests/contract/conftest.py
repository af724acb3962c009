"""The `store` fixture: every test in tests/contract runs once against each backend."""

from __future__ import annotations

import pytest

from storage import Store

# One name per backend; `store` resolves it to the fixture `<name>_store` (tests/conftest.py).
# A new backend joins the suite by adding its name here and an `<name>_store` fixture, e.g.
# "s3" (S3Store on moto's server at 127.0.0.1), "sqlite" and "postgres" (SqlStore). It ships only
# when every test here passes for it.
BACKENDS = ["memory", "local"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")
