"""Shared fixtures: a clean environment for every test and stores to run against."""

from __future__ import annotations

import os

import pytest

from storage import open_store


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No test reads the real data/ or secrets: drop MARKETPULSE_* and AWS_* variables."""
    for name in list(os.environ):
        if name.startswith(("MARKETPULSE_", "AWS_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def memory_store():
    return open_store("memory://test")


@pytest.fixture
def local_store(tmp_path):
    return open_store(str(tmp_path / "store"))
