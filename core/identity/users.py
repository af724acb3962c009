"""What admins do to user accounts (DESIGN.md §5): create, edit, disable, reset, unlock, approve and
delete, each audited; plus the credentials dict streamlit-authenticator is handed. The record is
core.identity.user_records (re-exported here); logins, sessions and sign-up are
core.identity.login."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from core.access import ADMIN, MANAGE_USERS, ROLES, SYSTEM, Actor, require
from core.audit import record_change
from core.claims import PREFIX as CLAIMS
from core.claims import claim, release
from core.clock import utc_now_or
from core.errors import Conflict, InvalidInput, NotFound
from core.identity.column_profiles import (
    delete_column_profile,
    load_column_profiles,
    resolve_columns,
    save_column_profile,
)
from core.identity.passwords import (
    check_password,
    generate_temporary_password,
    hash_password,
    remember_hash,
)
from core.identity.user_records import (
    AREA,
    WRITE_ATTEMPTS,
    User,
    check_email,
    count_users,
    get_user,
    insert_user,
    list_users,
    load_user,
    modify_user_record,
    new_user,
    normalise_username,
    user_key,
)
from storage import ObjectNotFound, Store, WriteConflict

__all__ = [
    "UNCHANGED",
    "Unchanged",
    "User",
    "approve_user",
    "count_users",
    "create_first_admin",
    "create_user",
    "credentials_for_authenticator",
    "delete_column_profile",
    "delete_user",
    "get_user",
    "list_users",
    "load_column_profiles",
    "reset_password",
    "resolve_columns",
    "restore_user",
    "save_column_profile",
    "set_disabled",
    "unlock",
    "update_user",
    "user_state",
]


class Unchanged(Enum):
    """Marks an update_user argument that was not given (None is a real value for sectors)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED
FIRST_ADMIN_GATE = CLAIMS + "first-admin"  # created once: by whoever creates the first admin


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput("role", f"{role!r} is not a role; choose one of {', '.join(ROLES)}")
    return role


def _check_sectors(sectors: Sequence[str] | None) -> list[str] | None:
    if sectors is None:
        return None
    if isinstance(sectors, str):
        raise InvalidInput("sectors", "give a list of sectors, not one string")
    cleaned = [str(s).strip() for s in sectors]
    if not all(cleaned):
        raise InvalidInput("sectors", "sector names cannot be empty")
    return list(dict.fromkeys(cleaned))


def _check_profile(store: Store, profile: str | None) -> str | None:
    if profile is None:
        return None
    if profile not in load_column_profiles(store):
        raise InvalidInput("column_profile", f"there is no column profile named {profile!r}")
    return profile


def _is_enabled_admin(user: User) -> bool:
    return user.role == ADMIN and not user.disabled and not user.pending_approval


def _refuse_last_admin(store: Store, user: User, doing: str) -> None:
    if not _is_enabled_admin(user):
        return
    admins = [u.username for u in list_users(store) if _is_enabled_admin(u)]
    if admins == [user.username]:
        raise Conflict(f"{user.username} is the last enabled admin: make another user an admin "
                       f"before you {doing} them")


def _refuse_self(actor: Actor, username: str, doing: str) -> None:
    if actor.username == username:
        raise Conflict(f"you cannot {doing} your own account; ask another admin")


# -- what admins do -------------------------------------------------------------------------
def create_first_admin(store: Store, username: str, name: str, email: str, password: str, *,
                       now: datetime | None = None) -> User:
    """The first account, an admin; Conflict once any user exists (no actor: nobody is yet).
    Processes racing here pass one at a time through a create-only gate (core.claims), so
    exactly one first admin is created; a gate left by a crash opens again after a while."""
    now = utc_now_or(now)
    exists = Conflict("users already exist: ask an admin to create your account")
    if count_users(store):
        raise exists
    username = normalise_username(username)
    email = check_email(store, email, username=username)
    check_password(password, username, [])
    user = new_user(username, name, email, ADMIN, hash_password(password), by=SYSTEM.username,
                    now=now)
    if claim(store, FIRST_ADMIN_GATE, username, holds=lambda _: count_users(store) > 0) \
            or count_users(store):
        raise exists
    try:
        insert_user(store, user)
    except BaseException:
        release(store, FIRST_ADMIN_GATE, username)
        raise
    record_change(store, SYSTEM, AREA, "user_created", user_key(username),
                  after=user.audit_view(), detail="first admin", now=now)
    return user


def create_user(store: Store, actor: Actor, username: str, *, name: str, email: str, role: str,
                sectors: Sequence[str] | None = None, column_profile: str | None = None,
                password: str | None = None, temporary: bool = True,
                now: datetime | None = None) -> tuple[User, str | None]:
    """Create an account. Without a password a temporary one is generated and returned (to be
    changed at first login); with one, temporary says whether it must be changed."""
    require(actor, MANAGE_USERS)
    now = utc_now_or(now)
    username = normalise_username(username)
    role = _check_role(role)
    email = check_email(store, email, username=username)
    sectors = _check_sectors(sectors)
    column_profile = _check_profile(store, column_profile)
    temp = None
    if password is None:
        password = temp = generate_temporary_password(username)
    else:
        check_password(password, username, [])
    user = new_user(username, name, email, role, hash_password(password), by=actor.username,
                    now=now, sectors=sectors, column_profile=column_profile,
                    must_change_password=temp is not None or temporary)
    insert_user(store, user)
    record_change(store, actor, AREA, "user_created", user_key(username),
                  after=user.audit_view(), now=now)
    return user, temp


def update_user(store: Store, actor: Actor, username: str, *,
                name: str | Unchanged = UNCHANGED, email: str | Unchanged = UNCHANGED,
                role: str | Unchanged = UNCHANGED,
                sectors: Sequence[str] | None | Unchanged = UNCHANGED,
                column_profile: str | None | Unchanged = UNCHANGED,
                now: datetime | None = None) -> User:
    """Change the given fields (others stay). Demoting yourself or the last admin is refused."""
    require(actor, MANAGE_USERS)
    now = utc_now_or(now)
    username = get_user(store, username).username
    new_email = email if isinstance(email, Unchanged) else check_email(store, email,
                                                                       username=username)
    new_role = role if isinstance(role, Unchanged) else _check_role(role)
    new_sectors = sectors if isinstance(sectors, Unchanged) else _check_sectors(sectors)
    new_profile = (column_profile if isinstance(column_profile, Unchanged)
                   else _check_profile(store, column_profile))

    def change(user: User) -> None:
        if not isinstance(new_role, Unchanged) and new_role != ADMIN and user.role == ADMIN:
            _refuse_self(actor, user.username, "demote")
            _refuse_last_admin(store, user, "demote")
        if not isinstance(name, Unchanged):
            user.name = name.strip() or user.username
        if not isinstance(new_email, Unchanged):
            user.email = new_email
        if not isinstance(new_role, Unchanged):
            user.role = new_role
        if not isinstance(new_sectors, Unchanged):
            user.sectors = new_sectors
        if not isinstance(new_profile, Unchanged):
            user.column_profile = new_profile
        user.updated_at, user.updated_by = now, actor.username

    before, user = modify_user_record(store, username, change)
    action = "role_changed" if before["role"] != user.role else "user_changed"
    record_change(store, actor, AREA, action, user_key(username), before=before,
                  after=user.audit_view(), now=now)
    return user


def _admin_change(store: Store, actor: Actor, username: str, action: str, now: datetime,
                  change: Callable[[User], None]) -> User:
    require(actor, MANAGE_USERS)

    def stamped(user: User) -> None:
        change(user)
        user.updated_at, user.updated_by = now, actor.username

    before, user = modify_user_record(store, username, stamped)
    record_change(store, actor, AREA, action, user_key(user.username), before=before,
                  after=user.audit_view(), now=now)
    return user


def set_disabled(store: Store, actor: Actor, username: str, disabled: bool, *,
                 now: datetime | None = None) -> User:
    """Disable (ends their sessions, refuses logins) or enable an account."""
    def change(user: User) -> None:
        if disabled:
            _refuse_self(actor, user.username, "disable")
            _refuse_last_admin(store, user, "disable")
        user.disabled = disabled

    action = "user_disabled" if disabled else "user_enabled"
    return _admin_change(store, actor, username, action, utc_now_or(now), change)


def reset_password(store: Store, actor: Actor, username: str, *,
                   now: datetime | None = None) -> str:
    """Give the user a new temporary password (returned), end their sessions and unlock them."""
    now = utc_now_or(now)
    temp = generate_temporary_password(get_user(store, username).username)
    password_hash = hash_password(temp)

    def change(user: User) -> None:
        user.password_hash = password_hash
        user.password_history = remember_hash(user.password_history, password_hash)
        user.must_change_password = True
        user.sessions_valid_after = now
        user.kept_cookie_expires = None  # the session that last changed it ends as well
        user.failed_logins, user.locked_until = 0, None

    _admin_change(store, actor, username, "password_reset", now, change)
    return temp


def unlock(store: Store, actor: Actor, username: str, *, now: datetime | None = None) -> User:
    """Clear a lockout and the failed-login counter."""
    def change(user: User) -> None:
        user.failed_logins, user.locked_until = 0, None

    return _admin_change(store, actor, username, "user_unlocked", utc_now_or(now), change)


def approve_user(store: Store, actor: Actor, username: str, *,
                 now: datetime | None = None) -> User:
    """Let a self-registered account log in; Conflict when it is not waiting for approval."""
    def change(user: User) -> None:
        if not user.pending_approval:
            raise Conflict(f"{user.username} is not waiting for approval")
        user.pending_approval = False

    return _admin_change(store, actor, username, "user_approved", utc_now_or(now), change)


def delete_user(store: Store, actor: Actor, username: str, *, now: datetime | None = None) -> None:
    """Remove an account for good (never yourself, never the last enabled admin)."""
    require(actor, MANAGE_USERS)
    now = utc_now_or(now)
    for _ in range(WRITE_ATTEMPTS):
        user, version = load_user(store, username)
        _refuse_self(actor, user.username, "delete")
        _refuse_last_admin(store, user, "delete")
        try:
            store.delete(user_key(user.username), version)
        except WriteConflict:
            continue
        except ObjectNotFound:
            raise NotFound(f"no user named {username!r}") from None
        record_change(store, actor, AREA, "user_deleted", user_key(user.username),
                      before=user.audit_view(), now=now)
        return
    raise Conflict(f"user {username!r} kept changing while it was being deleted; try again")


# -- revert (core.compliance.revert) ----------------------------------------------------------
# What a revert of a user change puts back; the rest of the record (password, login trail,
# lockout, who updated it last) is the account's own history and stays as it is.
REVERTED_FIELDS = ("username", "name", "email", "role", "sectors", "column_profile", "disabled",
                   "pending_approval")


def user_state(store: Store, username: str) -> dict[str, Any] | None:
    """The user as the change log snapshots it (User.audit_view), None when there is none."""
    try:
        return load_user(store, username)[0].audit_view()
    except NotFound:
        return None


def reverted_fields(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of a user snapshot a revert restores, so only a change to it blocks a revert."""
    return None if state is None else {k: state.get(k) for k in REVERTED_FIELDS}


def restore_user(store: Store, actor: Actor, username: str, before: dict[str, Any] | None,
                 after: dict[str, Any] | None) -> None:
    """Put back the REVERTED_FIELDS of `before` in place of `after`, stamped as updated by the
    actor (no change log: the revert logs itself). before None undoes a creation by deleting
    the account, only while nobody has logged in with it; after None (a deletion) cannot be
    undone: the log keeps no password. Conflict when the account changed since, or for your own
    account / the last enabled admin."""
    require(actor, MANAGE_USERS)
    if after is None:
        raise InvalidInput("revert", f"the deleted account {username} cannot be brought back: "
                           "the change log keeps no password; create it again")
    try:
        user, version = load_user(store, username)
    except NotFound:
        user, version = None, ""
    if user is None or reverted_fields(user.audit_view()) != reverted_fields(after):
        raise Conflict(f"user {username} changed while it was being reverted; reload and try "
                       "again")
    if before is None:
        _undo_creation(store, actor, user, version)
        return
    wanted = reverted_fields(before) or {}
    if user.role == ADMIN and (wanted["role"] != ADMIN or wanted["disabled"]
                               or wanted["pending_approval"]):
        _refuse_self(actor, user.username, "demote or disable")
        _refuse_last_admin(store, user, "demote or disable")
    user.name, user.role = wanted["name"], _check_role(wanted["role"])
    user.email = check_email(store, wanted["email"] or "", username=user.username)
    user.sectors = _check_sectors(wanted["sectors"])
    user.column_profile = _check_profile(store, wanted["column_profile"])
    user.disabled, user.pending_approval = bool(wanted["disabled"]), bool(
        wanted["pending_approval"])
    user.updated_at, user.updated_by = utc_now_or(None), actor.username
    try:
        store.put(user_key(user.username), user.to_dict(), version)
    except WriteConflict:
        raise Conflict(f"user {username} changed while it was being reverted; reload and try "
                       "again") from None


def _undo_creation(store: Store, actor: Actor, user: User, version: str) -> None:
    if user.last_login_at is not None:
        raise Conflict(f"{user.username} has logged in since the account was created; disable "
                       "the account instead")
    _refuse_self(actor, user.username, "delete")
    _refuse_last_admin(store, user, "delete")
    try:
        store.delete(user_key(user.username), version)
    except (WriteConflict, ObjectNotFound):
        raise Conflict(f"user {user.username} changed while it was being reverted; reload and "
                       "try again") from None


def credentials_for_authenticator(store: Store) -> dict[str, Any]:
    """Enabled, approved users in streamlit-authenticator's format (pre-hashed: auto_hash=False).
    Our authenticate() decides lockout and disabled; the library only handles the cookie."""
    usernames: dict[str, Any] = {}
    for user in list_users(store):
        if user.disabled or user.pending_approval:
            continue
        first, _, last = user.name.partition(" ")
        usernames[user.username] = {
            "email": user.email, "first_name": first, "last_name": last,
            "password": user.password_hash, "roles": [user.role],
            "failed_login_attempts": user.failed_logins, "logged_in": False,
        }
    return {"usernames": usernames}
