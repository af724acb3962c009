"""The User record and its store round-trips (documents "users/<username>"): load, list, save with
optimistic concurrency, and the checks every writer shares. Who may change a user:
core.identity.users."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core import catalog
from core.access import Actor
from core.clock import as_utc, now_or, parse_stamp
from core.errors import Conflict, InvalidInput, NotFound
from core.identity.column_profiles import resolve_columns
from storage import ObjectNotFound, Store, WriteConflict

AREA = "users"
PREFIX = catalog.USERS.key
RECENT_LOGINS = 20
WRITE_ATTEMPTS = 20  # optimistic-concurrency retries before giving up with Conflict

_USERNAME = re.compile(r"^[a-z0-9._-]{2,32}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else as_utc(parse_stamp(value))


@dataclass
class User:
    """One account. password_hash and password_history leave core only in the credentials dict."""

    username: str
    name: str
    email: str
    role: str
    password_hash: str = field(repr=False)
    sectors: list[str] | None = None  # None = every sector
    column_profile: str | None = None  # None = every column
    must_change_password: bool = False
    disabled: bool = False
    pending_approval: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = None
    password_history: list[str] = field(default_factory=list, repr=False)  # last 3, newest last
    sessions_valid_after: datetime = _EPOCH  # sessions that logged in before this have ended
    # ...except the one that changed the password: its re-login cookie, by its expiry stamp
    kept_cookie_expires: float | None = None
    created_at: datetime = _EPOCH
    created_by: str = ""
    updated_at: datetime = _EPOCH
    updated_by: str = ""
    last_login_at: datetime | None = None
    recent_logins: list[dict[str, Any]] = field(default_factory=list)  # [{"at", "ok"}], newest last

    def is_locked(self, now: datetime) -> bool:
        """Whether a lockout is still running at now."""
        return self.locked_until is not None and now_or(now) < self.locked_until

    def actor(self, profiles: Mapping[str, Sequence[str]] | None = None) -> Actor:
        """The Actor core acts for; pass load_column_profiles(store) when the user has a profile
        (a profile that cannot be resolved shows no columns rather than all)."""
        sectors = None if self.sectors is None else tuple(self.sectors)
        return Actor(self.username, self.role, sectors,
                     resolve_columns(self.column_profile, profiles or {}))

    def to_dict(self) -> dict[str, Any]:
        """The stored document: JSON types only, datetimes as ISO text."""
        return {
            "username": self.username, "name": self.name, "email": self.email, "role": self.role,
            "password_hash": self.password_hash,
            "sectors": None if self.sectors is None else list(self.sectors),
            "column_profile": self.column_profile,
            "must_change_password": self.must_change_password, "disabled": self.disabled,
            "pending_approval": self.pending_approval, "failed_logins": self.failed_logins,
            "locked_until": _iso(self.locked_until),
            "password_history": list(self.password_history),
            "sessions_valid_after": _iso(self.sessions_valid_after),
            "kept_cookie_expires": self.kept_cookie_expires,
            "created_at": _iso(self.created_at), "created_by": self.created_by,
            "updated_at": _iso(self.updated_at), "updated_by": self.updated_by,
            "last_login_at": _iso(self.last_login_at),
            "recent_logins": [{"at": _iso(e["at"]), "ok": e["ok"]} for e in self.recent_logins],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> User:
        def when(key: str) -> datetime:
            return _parse(data.get(key)) or _EPOCH

        return cls(
            username=data["username"], name=data.get("name", ""), email=data.get("email", ""),
            role=data["role"], password_hash=data["password_hash"],
            sectors=None if data.get("sectors") is None else list(data["sectors"]),
            column_profile=data.get("column_profile"),
            must_change_password=bool(data.get("must_change_password", False)),
            disabled=bool(data.get("disabled", False)),
            pending_approval=bool(data.get("pending_approval", False)),
            failed_logins=int(data.get("failed_logins", 0)),
            locked_until=_parse(data.get("locked_until")),
            password_history=list(data.get("password_history", [])),
            sessions_valid_after=when("sessions_valid_after"),
            kept_cookie_expires=(None if data.get("kept_cookie_expires") is None
                                 else float(data["kept_cookie_expires"])),
            created_at=when("created_at"), created_by=data.get("created_by", ""),
            updated_at=when("updated_at"), updated_by=data.get("updated_by", ""),
            last_login_at=_parse(data.get("last_login_at")),
            recent_logins=[{"at": when_, "ok": bool(e["ok"])} for e in data.get("recent_logins", [])
                           if (when_ := _parse(e.get("at"))) is not None],
        )

    def audit_view(self) -> dict[str, Any]:
        """The snapshot written to the change log: no hashes, no login trail."""
        view = self.to_dict()
        for secret_or_noise in ("password_hash", "password_history", "recent_logins",
                                "kept_cookie_expires"):
            view.pop(secret_or_noise)
        return view


# -- store round-trips -----------------------------------------------------------------------
def normalise_username(username: str) -> str:
    """Lower-cased and checked: 2–32 of a-z 0-9 . _ - (and not only dots)."""
    name = str(username).strip().lower()
    if not _USERNAME.match(name) or set(name) == {"."}:
        raise InvalidInput("username", "use 2–32 characters: letters, digits, '.', '_' or '-'")
    return name


def user_key(username: str) -> str:
    """The document key of a (normalised) username."""
    return PREFIX + username


def load_user(store: Store, username: str) -> tuple[User, str]:
    """(user, version); NotFound for an unknown or malformed username."""
    try:
        name = normalise_username(username)
        data, version = store.get(user_key(name))
    except (InvalidInput, ObjectNotFound):
        raise NotFound(f"no user named {username!r}") from None
    return User.from_dict(data), version


def get_user(store: Store, username: str) -> User:
    """The user; NotFound when there is none of that name."""
    return load_user(store, username)[0]


def count_users(store: Store) -> int:
    """How many accounts exist (0 means the app shows "create the first admin")."""
    return len(store.list(PREFIX))


def list_users(store: Store) -> list[User]:
    """Every user, sorted by username."""
    users = []
    for key in store.list(PREFIX):
        try:
            users.append(User.from_dict(store.get(key)[0]))
        except ObjectNotFound:  # deleted between list and get
            continue
    return users


def modify_user_record(
    store: Store, username: str, change: Callable[[User], None]
) -> tuple[dict[str, Any], User]:
    """Core-internal (no permission check): apply change to a fresh copy and save it, retrying on
    WriteConflict so concurrent writers (two processes counting failed logins) both land.
    Returns (audit view before, user after)."""
    for _ in range(WRITE_ATTEMPTS):
        user, version = load_user(store, username)
        before = user.audit_view()
        change(user)
        try:
            store.put(user_key(user.username), user.to_dict(), version)
        except WriteConflict:
            continue
        return before, user
    raise Conflict(f"user {username!r} kept changing while it was being saved; try again")


def insert_user(store: Store, user: User) -> None:
    """Core-internal: save a new user; Conflict when the username is taken."""
    try:
        store.put(user_key(user.username), user.to_dict(), None)
    except WriteConflict:
        raise Conflict(f"a user named {user.username!r} already exists") from None


# -- checks ---------------------------------------------------------------------------------
def check_email(store: Store, email: str, *, username: str, required: bool = False) -> str:
    """The stripped email: empty (unless required) or name@domain, not used by another user."""
    email = (email or "").strip()
    if not email:
        if required:
            raise InvalidInput("email", "an email address is required")
        return ""
    if not _EMAIL.match(email):
        raise InvalidInput("email", f"{email!r} is not an email address")
    taken = [u.username for u in list_users(store)
             if u.username != username and u.email.casefold() == email.casefold()]
    if taken:
        raise Conflict(f"email {email} is already used by {taken[0]}")
    return email


def new_user(username: str, name: str, email: str, role: str, password_hash: str, *,
             by: str, now: datetime, **flags: Any) -> User:
    """Core-internal: a fresh User record (username already normalised, values checked)."""
    return User(username=username, name=name.strip() or username, email=email, role=role,
                password_hash=password_hash, password_history=[password_hash],
                sessions_valid_after=now, created_at=now, created_by=by, updated_at=now,
                updated_by=by, **flags)
