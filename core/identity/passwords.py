"""Password hashing (bcrypt, the format streamlit-authenticator checks) and the password policy
(DESIGN.md §5): at least 12 characters, not the username, not one of the last 3."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import bcrypt

from core.errors import InvalidInput

# Cost 12 gives "$2b$12$…" like streamlit-authenticator's Hasher; tests lower it (read per call).
BCRYPT_ROUNDS = 12
MIN_LENGTH = 12
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5 refuses) anything longer
HISTORY_SIZE = 3

TOO_SHORT = f"must be at least {MIN_LENGTH} characters"
TOO_LONG = f"must be at most {MAX_BYTES} bytes"
CONTAINS_USERNAME = "must not contain the username"
RECENTLY_USED = f"must not be one of your last {HISTORY_SIZE} passwords"

_dummy_hashes: dict[int, str] = {}


def hash_password(password: str) -> str:
    """A bcrypt hash of the password at BCRYPT_ROUNDS ("$2b$12$…" in production)."""
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise InvalidInput("password", TOO_LONG)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """True when the password matches the hash; False for a wrong password or an unusable hash."""
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("utf-8"))
    except ValueError:  # too long for bcrypt, or not a bcrypt hash at all
        return False


def burn_verification_time(password: str) -> None:
    """Spend about as long as a real check, so an unknown username is not told apart by timing."""
    rounds = BCRYPT_ROUNDS
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b"unknown user", bcrypt.gensalt(rounds)).decode()
    verify_password(password, _dummy_hashes[rounds])


def check_password(password: str, username: str, history_hashes: Sequence[str]) -> None:
    """Raise InvalidInput("password", reason) unless the password meets the policy."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", TOO_SHORT)
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise InvalidInput("password", TOO_LONG)
    if username and username.casefold() in password.casefold():
        raise InvalidInput("password", CONTAINS_USERNAME)
    if any(verify_password(password, old) for old in history_hashes[-HISTORY_SIZE:]):
        raise InvalidInput("password", RECENTLY_USED)


def remember_hash(history: Sequence[str], password_hash: str) -> list[str]:
    """The history with the new hash appended, keeping the last HISTORY_SIZE."""
    return [*history, password_hash][-HISTORY_SIZE:]


def generate_temporary_password(username: str) -> str:
    """A random 16-character password (never containing the username) for a first or reset login."""
    while True:
        candidate = secrets.token_urlsafe(12)
        if username.casefold() not in candidate.casefold():
            return candidate
