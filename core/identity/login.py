"""Logging in and staying logged in (DESIGN.md §5): login bookkeeping and lockout kept in the store,
session validity, own password change, reset tokens, self-registration and the re-login cookie."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import catalog
from core.access import MANAGE_USERS, VIEWER, Actor, require
from core.audit import record_change
from core.clock import as_utc, parse_stamp, utc_now_or
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.identity.passwords import (
    burn_verification_time,
    check_password,
    hash_password,
    remember_hash,
    verify_password,
)
from core.identity.user_records import (
    AREA,
    RECENT_LOGINS,
    User,
    check_email,
    get_user,
    insert_user,
    list_users,
    modify_user_record,
    new_user,
    normalise_username,
    user_key,
)
from core.settings_docs import read_settings, write_settings
from storage import ObjectNotFound, Store, WriteConflict

# LoginResult.reason values
OK, UNKNOWN_USER, BAD_PASSWORD = "", "unknown user", "bad password"
LOCKED, DISABLED, PENDING = "locked", "disabled", "pending approval"

TOKEN_PREFIX = catalog.RESET_TOKENS.key
TOKEN_MINUTES = 30
TOKEN_UNUSABLE = "this reset link has expired or was already used"
AUTH_CONFIG_KEY = catalog.AUTH_CONFIG.key
REVOKED_PREFIX = catalog.REVOKED_COOKIES.key
PREFIX_FOR_UNKNOWN = "users"  # entity of a failed login for a name that is not a user
# The change log's area of logins, lockouts, logouts, password changes and the sign-up switch:
# events, kept apart from the admins' changes to accounts (area "users", revertible).
AUTH_AREA = "auth"


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one login attempt; reason is "" when ok, else one of the reason constants."""

    ok: bool
    reason: str = OK
    user: User | None = None
    locked_until: datetime | None = None

    @property
    def message(self) -> str:
        """What the login form shows: an unknown user and a wrong password read the same."""
        if self.ok:
            return ""
        if self.reason == LOCKED and self.locked_until is not None:
            return ("Too many failed logins: this account is locked until "
                    f"{self.locked_until:%Y-%m-%d %H:%M} UTC")
        if self.reason == DISABLED:
            return "This account is disabled; ask an admin"
        if self.reason == PENDING:
            return "This account is waiting for an admin's approval"
        return "Username or password is incorrect"


def authenticate(store: Store, username: str, password: str, *, settings: Settings,
                 now: datetime | None = None) -> LoginResult:
    """Check a login and record it in the store: after auth.lockout_attempts consecutive failures
    the account is locked for auth.lockout_minutes (even the right password is then refused);
    success resets the counter. Concurrent attempts from several processes all count."""
    now = utc_now_or(now)
    attempts = int(settings["auth.lockout_attempts"])
    lock_for = timedelta(minutes=int(settings["auth.lockout_minutes"]))
    checked: dict[str, bool] = {}  # hash → matches; bcrypt runs once even when the write retries
    outcome: dict[str, Any] = {}

    def record(user: User) -> None:
        if user.locked_until is not None and not user.is_locked(now):
            user.failed_logins, user.locked_until = 0, None  # the lock has run out
        locked_now = False
        if user.is_locked(now):
            reason = LOCKED
        else:
            if user.password_hash not in checked:
                checked[user.password_hash] = verify_password(password, user.password_hash)
            if not checked[user.password_hash]:
                user.failed_logins += 1
                reason = BAD_PASSWORD
                if user.failed_logins >= attempts:
                    user.locked_until, reason, locked_now = now + lock_for, LOCKED, True
            elif user.disabled:
                reason = DISABLED
            elif user.pending_approval:
                reason = PENDING
            else:
                reason = OK
                user.failed_logins, user.last_login_at = 0, now
        user.recent_logins = [*user.recent_logins, {"at": now, "ok": reason == OK}][-RECENT_LOGINS:]
        outcome.update(reason=reason, locked_now=locked_now, failed=user.failed_logins)

    try:
        name = normalise_username(username)
        _, user = modify_user_record(store, name, record)
    except (InvalidInput, NotFound):
        burn_verification_time(password)
        record_change(store, "anonymous", AUTH_AREA, "login_failed", PREFIX_FOR_UNKNOWN,
                      detail=UNKNOWN_USER, now=now)
        return LoginResult(False, UNKNOWN_USER)
    reason, key = outcome["reason"], user_key(name)
    if reason == OK:
        record_change(store, name, AUTH_AREA, "login_ok", key, now=now)
        return LoginResult(True, OK, user)
    detail = reason
    if reason == BAD_PASSWORD or outcome["locked_now"]:
        detail = f"bad password ({outcome['failed']} of {attempts})"
    elif reason == LOCKED:
        detail = f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC"
    record_change(store, name, AUTH_AREA, "login_failed", key, detail=detail, now=now)
    if outcome["locked_now"]:
        record_change(store, name, AUTH_AREA, "locked_out", key,
                      detail=f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC", now=now)
    return LoginResult(False, reason, user, user.locked_until if reason == LOCKED else None)


def record_logout(store: Store, username: str, now: datetime | None = None, *,
                  cookie_expires: float | None = None) -> None:
    """Audit a logout. The page also deletes the browser's re-login cookie, but that runs in the
    browser and can be lost; revoking the cookie here (by its expiry stamp, unique per login)
    makes the server refuse it even if the browser still sends it."""
    name = normalise_username(username)
    now = utc_now_or(now)
    if cookie_expires is not None:
        key = REVOKED_PREFIX + name
        while True:
            try:
                value, version = store.get(key)
            except ObjectNotFound:
                value, version = {"expires": []}, None
            live = [e for e in value["expires"] if e > now.timestamp()]
            try:
                store.put(key, {"expires": [*live, float(cookie_expires)]}, version)
                break
            except WriteConflict:
                continue
    record_change(store, name, AUTH_AREA, "logout", user_key(name), now=now)


def login_cookie_revoked(store: Store, username: str, cookie_expires: float) -> bool:
    """True when the re-login cookie with this expiry stamp was ended by a logout."""
    try:
        value, _ = store.get(REVOKED_PREFIX + normalise_username(username))
    except ObjectNotFound:
        return False
    return float(cookie_expires) in value["expires"]


def session_is_valid(user: User, login_at: datetime, last_seen: datetime, *, settings: Settings,
                     now: datetime | None = None, cookie_expires: float | None = None) -> bool:
    """False once the session idled longer than auth.session_hours, began before the user's
    sessions were ended (password change or reset), or the account is disabled or unapproved.
    The re-login cookie of the session that changed its own password (cookie_expires, its
    expiry stamp) lives on: F5 after the change keeps the user in."""
    now = utc_now_or(now)
    if user.disabled or user.pending_approval:
        return False
    kept = cookie_expires is not None and cookie_expires == user.kept_cookie_expires
    if as_utc(login_at) < user.sessions_valid_after and not kept:
        return False
    return now - as_utc(last_seen) <= timedelta(hours=float(settings["auth.session_hours"]))


def _set_password(user: User, password_hash: str, now: datetime) -> None:
    user.password_hash = password_hash
    user.password_history = remember_hash(user.password_history, password_hash)
    user.must_change_password = False
    user.sessions_valid_after = now  # every session that logged in before now has ended
    user.kept_cookie_expires = None
    user.failed_logins, user.locked_until = 0, None
    user.updated_at, user.updated_by = now, user.username


def change_own_password(store: Store, actor: Actor, old: str, new: str, *,
                        now: datetime | None = None, keep_cookie: float | None = None) -> User:
    """Change the actor's own password. Ends their sessions that logged in before now: the page
    keeps the current one by stamping its login time with now, and its re-login cookie (by its
    expiry stamp, keep_cookie) stays valid, so F5 does not log the user out."""
    now = utc_now_or(now)
    user = get_user(store, actor.username)
    if not verify_password(old, user.password_hash):
        raise InvalidInput("old_password", "the current password is not correct")
    check_password(new, user.username, user.password_history)
    new_hash = hash_password(new)

    def change(current: User) -> None:
        if current.password_hash != user.password_hash:
            raise Conflict("your password was changed elsewhere meanwhile; try again")
        _set_password(current, new_hash, now)
        current.kept_cookie_expires = keep_cookie

    before, user = modify_user_record(store, user.username, change)
    record_change(store, actor, AUTH_AREA, "password_changed", user_key(user.username),
                  before=before, after=user.audit_view(), detail="other sessions ended", now=now)
    return user


# -- forgot password ------------------------------------------------------------------------
def _token_key(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _drop_tokens(store: Store, username: str, now: datetime) -> None:
    """Forget this user's earlier tokens (only the newest link works) and any expired ones."""
    for key in store.list(TOKEN_PREFIX):
        try:
            data, version = store.get(key)
            if data["username"] == username or parse_stamp(data["expires_at"]) <= now:
                store.delete(key, version)
        except (ObjectNotFound, WriteConflict):
            continue


def issue_reset_token(store: Store, username_or_email: str, *,
                      now: datetime | None = None) -> tuple[User, str] | None:
    """A single-use token valid TOKEN_MINUTES for the user with that name or email, to be mailed;
    None when there is no such enabled user (the page says the same either way). Only the token's
    sha256 is stored."""
    now = utc_now_or(now)
    wanted = str(username_or_email).strip().casefold()
    user = next((u for u in list_users(store) if wanted and wanted in
                 (u.username, u.email.casefold())), None)
    if user is None or user.disabled or user.pending_approval:
        return None
    _drop_tokens(store, user.username, now)
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=TOKEN_MINUTES)
    store.put(_token_key(token), {"username": user.username, "created_at": now.isoformat(),
                                  "expires_at": expires.isoformat()}, None)
    record_change(store, user.username, AUTH_AREA, "reset_token_issued",
                  user_key(user.username), detail=f"expires {expires:%Y-%m-%d %H:%M} UTC", now=now)
    return user, token


def redeem_reset_token(store: Store, token: str, new_password: str, *,
                       now: datetime | None = None) -> User:
    """Set a new password with a reset token. The token is used up only once the password meets
    the policy; an expired, used or unknown token raises InvalidInput("token", …)."""
    now = utc_now_or(now)
    key = _token_key(str(token))
    try:
        data, version = store.get(key)
        if parse_stamp(data["expires_at"]) <= now:
            store.delete(key, version)
            raise InvalidInput("token", TOKEN_UNUSABLE)
        user = get_user(store, data["username"])
    except (ObjectNotFound, WriteConflict, NotFound):
        raise InvalidInput("token", TOKEN_UNUSABLE) from None
    if user.disabled or user.pending_approval:
        raise InvalidInput("token", TOKEN_UNUSABLE)
    check_password(new_password, user.username, user.password_history)
    new_hash = hash_password(new_password)
    try:
        store.delete(key, version)  # claim the token: a second redemption finds it gone
    except (ObjectNotFound, WriteConflict):
        raise InvalidInput("token", TOKEN_UNUSABLE) from None
    before, user = modify_user_record(store, user.username,
                                      lambda current: _set_password(current, new_hash, now))
    record_change(store, user.username, AUTH_AREA, "password_reset_by_token",
                  user_key(user.username), before=before, after=user.audit_view(),
                  detail="other sessions ended", now=now)
    return user


# -- self-registration ----------------------------------------------------------------------
def get_self_registration(store: Store) -> bool:
    """Whether anyone may sign up (off unless an admin turned it on)."""
    return get_self_registration_version(store)[0]


def get_self_registration_version(store: Store) -> tuple[bool, str | None]:
    """(whether anyone may sign up, version of the login settings) for an editor."""
    data, version = read_settings(store, AUTH_CONFIG_KEY)
    return bool((data or {}).get("self_registration", False)), version


def set_self_registration(store: Store, actor: Actor, enabled: bool, *,
                          expected_version: str | None, now: datetime | None = None) -> None:
    """Turn self-registration on or off (admins) over the version of the login settings the
    editor loaded (None: nothing stored); ChangedMeanwhile when another admin changed them."""
    require(actor, MANAGE_USERS)
    data, _ = read_settings(store, AUTH_CONFIG_KEY)
    data = data or {}
    before = bool(data.get("self_registration", False))
    write_settings(store, AUTH_CONFIG_KEY, {**data, "self_registration": bool(enabled)},
                   expected_version, what="the sign-up setting", area=AUTH_AREA,
                   entity=AUTH_CONFIG_KEY)
    record_change(store, actor, AUTH_AREA, "self_registration_changed", AUTH_CONFIG_KEY,
                  before={"self_registration": before},
                  after={"self_registration": bool(enabled)}, now=utc_now_or(now))


def restore_self_registration(store: Store, actor: Actor, before: dict[str, Any],
                              after: dict[str, Any]) -> None:
    """Put the sign-up switch back to `before` in place of `after` with the document's version
    (no change log: the revert logs itself); Conflict when it is no longer `after`."""
    require(actor, MANAGE_USERS)
    data, version = read_settings(store, AUTH_CONFIG_KEY)
    if bool((data or {}).get("self_registration", False)) != bool(after["self_registration"]):
        raise Conflict("the sign-up setting changed while it was being reverted; reload and try "
                       "again")
    write_settings(store, AUTH_CONFIG_KEY,
                   {**(data or {}), "self_registration": bool(before["self_registration"])},
                   version, what="the sign-up setting", area=AUTH_AREA, entity=AUTH_CONFIG_KEY)


def register_user(store: Store, username: str, name: str, email: str, password: str, *,
                  settings_doc_enabled: bool | None = None, now: datetime | None = None) -> User:
    """Sign up: a viewer waiting for an admin's approval. settings_doc_enabled is the flag the page
    read (get_self_registration); None reads it here. PermissionDenied when sign-up is off."""
    enabled = get_self_registration(store) if settings_doc_enabled is None else settings_doc_enabled
    if not enabled:
        raise PermissionDenied(str(username).strip() or "anonymous",
                               "register: self-registration is turned off; ask an admin")
    now = utc_now_or(now)
    username = normalise_username(username)
    email = check_email(store, email, username=username, required=True)
    check_password(password, username, [])
    user = new_user(username, name, email, VIEWER, hash_password(password), by=username, now=now,
                    pending_approval=True)
    insert_user(store, user)
    record_change(store, username, AREA, "user_registered", user_key(username),
                  after=user.audit_view(), detail="waiting for approval", now=now)
    return user


# -- re-login cookie -----------------------------------------------------------------------
COOKIE_CLOCK_SLACK = timedelta(minutes=1)  # servers' clocks may differ a little


def cookie_expiry_trusted(expires: Any, *, settings: Settings, now: datetime | None = None) -> bool:
    """Whether a signed re-login cookie's expiry stamp can be believed: a number no later than now
    plus the session lifetime (the longest the app ever grants). A later one was not issued by
    this server's settings (or was issued under a longer lifetime since cut): refused."""
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return False
    lifetime = timedelta(hours=float(settings["auth.session_hours"]))
    latest = utc_now_or(now) + lifetime + COOKIE_CLOCK_SLACK
    return float(expires) <= latest.timestamp()
