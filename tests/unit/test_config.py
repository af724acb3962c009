from __future__ import annotations

from pathlib import Path

import pytest

from core.config import SETTINGS, load_settings, read_secrets_file
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in readme or s.env not in readme]
    assert missing == []


def test_defaults_apply_without_secrets_or_environment():
    settings = load_settings({}, {})
    assert settings["store.url"] == "data"
    assert settings["ranking.date_column"] == "DATE"
    assert settings["auth.lockout_attempts"] == 5


def test_environment_wins_over_secrets_over_defaults():
    secrets = {"store": {"url": "from-secrets"}, "diff": {"threshold_pct": 3}}
    settings = load_settings(secrets, {"MARKETPULSE_STORE_URL": "from-env"})
    assert settings["store.url"] == "from-env"
    assert settings["diff.threshold_pct"] == 3.0


def test_bad_number_names_the_key():
    with pytest.raises(ConfigError, match=r"setting upload\.max_mb: 'lots' is not a int"):
        load_settings({}, {"MARKETPULSE_UPLOAD_MAX_MB": "lots"})


def test_value_outside_choices_lists_them():
    with pytest.raises(ConfigError, match="choose one of DATE, DATE_1"):
        load_settings({"ranking": {"date_column": "DATE_2"}}, {})


def test_unknown_secret_key_fails_with_a_hint():
    with pytest.raises(ConfigError, match=r"setting store\.uri: unknown setting"):
        load_settings({"store": {"uri": "x"}}, {})


def test_booleans_accept_words():
    assert load_settings({}, {"MARKETPULSE_DEMO": "0"})["demo"] is False
    with pytest.raises(ConfigError, match="is not a yes/no value"):
        load_settings({}, {"MARKETPULSE_DEMO": "maybe"})


def test_secrets_are_masked_in_repr_and_public_view():
    settings = load_settings({"smtp": {"password": "hunter2hunter2"}}, {})
    assert "hunter2" not in repr(settings)
    assert settings.public()["smtp.password"] == "••••••"


def test_override_validates_like_loading():
    settings = load_settings({}, {}).override(ranking_date_column="DATE_1")
    assert settings["ranking.date_column"] == "DATE_1"
    with pytest.raises(ConfigError):
        settings.override(ranking_date_column="NOPE")


def test_secrets_file_with_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text("[store\nurl=1")
    with pytest.raises(ConfigError, match=r"secrets\.toml: not valid TOML"):
        read_secrets_file(path)
