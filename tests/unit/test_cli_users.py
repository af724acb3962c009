"""`python -m core users ...`."""

from __future__ import annotations

import io
import sys

import pytest

from core.__main__ import main
from core.config import load_settings
from core.identity import passwords
from core.identity.login import authenticate
from core.identity.user_records import get_user
from storage import open_store

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "store"))
    return open_store(str(tmp_path / "store"))


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_create_admin_with_password_from_stdin_can_log_in(store, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "create", "Root", "--role", "admin", "--name", "Ro Ot",
                 "--email", "root@desk.test", "--password-stdin"]) == 0
    assert capsys.readouterr().out == "Created admin root\n"
    user = get_user(store, "root")
    assert (user.role, user.name, user.must_change_password) == ("admin", "Ro Ot", False)
    assert authenticate(store, "root", PASSWORD, settings=load_settings({}, {})).ok


def test_create_without_password_prints_a_temporary_one(store, capsys):
    assert main(["users", "create", "ann", "--role", "analyst",
                 "--sectors", "MM-CLO, 2.0_Mezz"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Created analyst ann"
    temporary = out[1].rsplit(": ", 1)[1]
    user = get_user(store, "ann")
    assert user.sectors == ["MM-CLO", "2.0_Mezz"]
    assert user.must_change_password is True
    assert authenticate(store, "ann", temporary, settings=load_settings({}, {})).ok


def test_list_disable_enable_set_role_reset(store, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    main(["users", "create", "root", "--role", "admin", "--password-stdin"])
    main(["users", "create", "vera", "--role", "viewer", "--name", "Vera"])
    capsys.readouterr()
    assert main(["users", "disable", "vera"]) == 0
    assert capsys.readouterr().out == "vera is now disabled\n"
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["USERNAME", "ROLE", "STATUS", "SECTORS", "NAME"]
    assert listing[1].split() == ["root", "admin", "active", "all", "root"]
    assert listing[2].split() == ["vera", "viewer", "disabled", "all", "Vera"]
    assert main(["users", "enable", "vera"]) == 0
    assert main(["users", "set-role", "vera", "analyst"]) == 0
    assert get_user(store, "vera").role == "analyst"
    assert main(["users", "reset-password", "vera"]) == 0
    assert get_user(store, "vera").must_change_password is True


def test_refusals_exit_2_with_the_reason(store, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    main(["users", "create", "root", "--role", "admin", "--password-stdin"])
    capsys.readouterr()
    assert main(["users", "disable", "root"]) == 2
    assert "last enabled admin" in capsys.readouterr().err
    _stdin(monkeypatch, "short\n")
    assert main(["users", "create", "bob", "--role", "viewer", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert main(["users", "enable", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
