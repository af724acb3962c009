"""The key that signs the login cookie (DESIGN.md §5): from the environment or the secrets file,
generated into that file (mode 0600) on first run; never in the store, the logs or a backup. A key
an older version kept in the store is deleted on start-up."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import stat
import tomllib
from pathlib import Path

from core import catalog
from core.access import SYSTEM
from core.audit import record_change
from core.clock import utc_now
from core.config import Settings, read_secrets_file
from core.errors import ConfigError
from core.identity.user_records import AREA
from storage import ObjectNotFound, Store

log = logging.getLogger(__name__)

SETTING = "auth.cookie_key"
MIN_COOKIE_KEY = 32
LEGACY_KEY_DOC = catalog.LEGACY_COOKIE_KEY.key  # deleted when found (catalog)
GENERATE_HINT = "generate one: python -c 'import secrets; print(secrets.token_hex(32))'"


def cookie_key(settings: Settings) -> str:
    """The configured key (≥ 32 characters). Never a default: ensure_cookie_key fills it in."""
    key = str(settings[SETTING] or "")
    if not key:
        raise ConfigError(SETTING, "no login cookie key is configured", GENERATE_HINT)
    if len(key) < MIN_COOKIE_KEY:
        raise ConfigError(SETTING, f"must be at least {MIN_COOKIE_KEY} characters, got {len(key)}",
                          GENERATE_HINT)
    return key


def ensure_cookie_key(settings: Settings, path: Path) -> Settings:
    """Settings whose auth.cookie_key is set: the configured key, else the one in the secrets file
    at `path`, else a new one written into that file (mode 0600) for this and every later start.
    Processes starting together agree on one key (the file's directory is locked meanwhile)."""
    if settings[SETTING]:
        cookie_key(settings)
        return settings
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        key = str(read_secrets_file(path).get("auth", {}).get("cookie_key", "") or "")
        if key:
            _warn_if_readable_by_others(path)
        else:
            key = secrets.token_hex(32)
            _add_key_to_file(path, key)
            log.warning("Generated the login cookie key into %s (mode 0600)", path)
    finally:
        os.close(folder)  # closing releases the lock
    return settings.override(auth_cookie_key=cookie_key(settings.override(auth_cookie_key=key)))


def _add_key_to_file(path: Path, key: str) -> None:
    """Add cookie_key to the file's [auth] table (made when missing), keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    line = (f'cookie_key = "{key}"  # signs the login cookie; generated '
            f'{utc_now():%Y-%m-%d}, keep it secret\n')
    lines = text.splitlines(keepends=True)
    header = next((i for i, text_line in enumerate(lines)
                   if text_line.split("#")[0].strip() == "[auth]"), None)
    if header is None:
        if text and not text.endswith("\n"):
            text += "\n"
        updated = f"{text}{chr(10) if text else ''}[auth]\n{line}"
    else:
        if not lines[header].endswith("\n"):
            lines[header] += "\n"
        lines.insert(header + 1, line)
        updated = "".join(lines)
    try:
        written = tomllib.loads(updated).get("auth", {}).get("cookie_key")
    except tomllib.TOMLDecodeError:
        written = None
    if written != key:
        raise ConfigError(str(path), "could not add auth.cookie_key to this file",
                          f"add it under [auth] by hand; {GENERATE_HINT}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(handle, 0o600)
        os.write(handle, updated.encode("utf-8"))
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, path)


def _warn_if_readable_by_others(path: Path) -> None:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s holds the login cookie key but others may read it: chmod 600 %s",
                    path, path)


def forget_stored_cookie_key(store: Store) -> bool:
    """Delete the cookie key an older version kept in the store (anyone reading the store could
    sign a login cookie with it). True when there was one; it is never read again."""
    try:
        store.delete(LEGACY_KEY_DOC)
    except ObjectNotFound:
        return False
    log.warning("Deleted the login cookie key an older version kept in the store (%s)",
                LEGACY_KEY_DOC)
    record_change(store, SYSTEM, AREA, "cookie_key_removed_from_store", LEGACY_KEY_DOC,
                  detail="the login cookie key now lives in the secrets file or the environment")
    return True
