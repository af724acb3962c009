"""Shared fixtures: a clean environment for every test and stores to run against."""

from __future__ import annotations

import os

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
