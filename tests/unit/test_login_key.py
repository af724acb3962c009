"""The login cookie's key lives in the secrets file or the environment, never in the store, and the
server refuses a cookie that outlives any session it grants (DESIGN.md §5, issue 10 item 7)."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.__main__ import main
from core.audit import load_changes
from core.config import load_settings
from core.errors import ConfigError
from core.identity.login import cookie_expiry_trusted
from core.identity.login_key import (
    LEGACY_KEY_DOC,
    cookie_key,
    ensure_cookie_key,
    forget_stored_cookie_key,
)
from storage import open_store

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
EIGHT_HOURS = load_settings({}, {})  # auth.session_hours = 8


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_key_is_generated_into_the_secrets_file_readable_only_by_its_owner(tmp_path):
    path = tmp_path / ".streamlit" / "secrets.toml"
    settings = ensure_cookie_key(load_settings({}, {}), path)
    key = settings["auth.cookie_key"]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert tomllib.loads(path.read_text())["auth"]["cookie_key"] == key
    assert _mode(path) == 0o600
    assert ensure_cookie_key(load_settings({}, {}), path)["auth.cookie_key"] == key  # kept
    assert [p.name for p in path.parent.iterdir()] == ["secrets.toml"]  # no temporary left


def test_the_key_joins_the_files_auth_table_and_keeps_everything_else(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[store]\nurl = "data"\n\n[auth]\nsession_hours = 4.0\n\n[smtp]\n'
                    'password = "p"\n')
    path.chmod(0o644)
    key = ensure_cookie_key(load_settings({}, {}), path)["auth.cookie_key"]
    assert tomllib.loads(path.read_text()) == {
        "store": {"url": "data"}, "auth": {"cookie_key": key, "session_hours": 4.0},
        "smtp": {"password": "p"}}
    assert _mode(path) == 0o600


def test_a_file_without_an_auth_table_gets_one(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[store]\nurl = "data"')  # no newline at the end
    key = ensure_cookie_key(load_settings({}, {}), path)["auth.cookie_key"]
    assert tomllib.loads(path.read_text()) == {"store": {"url": "data"},
                                               "auth": {"cookie_key": key}}


def test_a_file_the_key_cannot_be_added_to_is_named_and_left_alone(tmp_path):
    path = tmp_path / "secrets.toml"
    text = 'auth = { session_hours = 4.0 }\n'  # an inline table cannot take another key later
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        ensure_cookie_key(load_settings({}, {}), path)
    assert str(caught.value) == (
        f"setting {path}: could not add auth.cookie_key to this file (add it under [auth] by "
        "hand; generate one: python -c 'import secrets; print(secrets.token_hex(32))')")
    assert path.read_text() == text


def test_a_configured_key_wins_and_nothing_is_written(tmp_path):
    path = tmp_path / "secrets.toml"
    configured = load_settings({}, {"MARKETPULSE_AUTH_COOKIE_KEY": "k" * 32})
    assert ensure_cookie_key(configured, path)["auth.cookie_key"] == "k" * 32
    assert not path.exists()


def test_a_short_or_missing_key_is_refused_with_a_hint():
    hint = "(generate one: python -c 'import secrets; print(secrets.token_hex(32))')"
    with pytest.raises(ConfigError) as short:
        cookie_key(load_settings({"auth": {"cookie_key": "k" * 31}}, {}))
    assert str(short.value) == ("setting auth.cookie_key: must be at least 32 characters, "
                                f"got 31 {hint}")
    with pytest.raises(ConfigError) as missing:
        cookie_key(load_settings({}, {}))
    assert str(missing.value) == ("setting auth.cookie_key: no login cookie key is configured "
                                  f"{hint}")


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "secrets.toml"
    code = ("import sys; from pathlib import Path; from core.config import load_settings; "
            "from core.identity.login_key import ensure_cookie_key; "
            "print(ensure_cookie_key(load_settings({}, {}), Path(sys.argv[1]))['auth.cookie_key'])")
    root = Path(__file__).resolve().parents[2]
    starting = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=root,
                                 stdout=subprocess.PIPE, text=True) for _ in range(4)]
    keys = {process.communicate(timeout=60)[0].strip() for process in starting}
    assert keys == {tomllib.loads(path.read_text())["auth"]["cookie_key"]}


def test_a_key_an_older_version_stored_is_deleted_once_and_audited(memory_store):
    memory_store.put(LEGACY_KEY_DOC, {"key": "f" * 64}, None)
    assert forget_stored_cookie_key(memory_store) is True
    assert forget_stored_cookie_key(memory_store) is False
    assert memory_store.list("config/") == []
    changes = load_changes(memory_store, area="users")
    assert changes["ACTION"].tolist() == ["cookie_key_removed_from_store"]
    assert changes["ENTITY"].tolist() == [LEGACY_KEY_DOC]


def test_init_generates_the_key_into_the_secrets_file_and_drops_the_stored_one(tmp_path,
                                                                                monkeypatch):
    url, path = str(tmp_path / "store"), tmp_path / "secrets.toml"
    monkeypatch.setenv("MARKETPULSE_STORE_URL", url)
    monkeypatch.setenv("MARKETPULSE_DEMO", "0")
    monkeypatch.setenv("MARKETPULSE_SECRETS_FILE", str(path))
    open_store(url).put(LEGACY_KEY_DOC, {"key": "f" * 64}, None)
    assert main(["init"]) == 0
    assert re.fullmatch(r"[0-9a-f]{64}", tomllib.loads(path.read_text())["auth"]["cookie_key"])
    assert open_store(url).list("config/") == []


@pytest.mark.parametrize(("expires", "trusted"), [
    ((NOW + timedelta(hours=8)).timestamp(), True),  # as issued at login
    ((NOW + timedelta(hours=8, seconds=60)).timestamp(), True),  # another server's clock
    ((NOW + timedelta(hours=8, seconds=61)).timestamp(), False),
    ((NOW + timedelta(days=3650)).timestamp(), False),  # ten years: forged with the key
    (float("inf"), False), (float("nan"), False), ("4102444800", False), (True, False),
    (None, False),
])
def test_a_cookie_expiring_after_the_session_lifetime_is_not_trusted(expires, trusted):
    assert cookie_expiry_trusted(expires, settings=EIGHT_HOURS, now=NOW) is trusted
