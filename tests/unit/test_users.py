"""Users, passwords, logins, sessions, reset tokens, sign-up (DESIGN.md §5)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

import core.identity.passwords
from core.access import ADMIN, ANALYST, SYSTEM, VIEWER, Actor
from core.audit import load_changes
from core.config import load_settings
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.identity.column_profiles import (
    delete_column_profile,
    load_column_profiles,
    save_column_profile,
)
from core.identity.login import (
    BAD_PASSWORD,
    DISABLED,
    LOCKED,
    OK,
    PENDING,
    UNKNOWN_USER,
    authenticate,
    change_own_password,
    get_self_registration,
    issue_reset_token,
    record_logout,
    redeem_reset_token,
    register_user,
    session_is_valid,
    set_self_registration,
)
from core.identity.passwords import hash_password, verify_password
from core.identity.users import (
    User,
    approve_user,
    count_users,
    create_first_admin,
    create_user,
    credentials_for_authenticator,
    delete_user,
    get_user,
    list_users,
    reset_password,
    set_disabled,
    unlock,
    update_user,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ADA_PW = "correct horse battery"
BOB_PW = "tangerine submarine"
TOKEN_GONE = "token: this reset link has expired or was already used"


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    """Cost 4 instead of 12: the same code path, a hundredth of the time."""
    monkeypatch.setattr(core.identity.passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def settings():
    return load_settings(secrets={}, environ={})


@pytest.fixture
def store(memory_store):
    return memory_store


@pytest.fixture
def ada(store) -> Actor:
    """The first admin, acting."""
    return create_first_admin(store, "Ada", "Ada Lovelace", "ada@desk.example", ADA_PW,
                              now=NOW).actor()


@pytest.fixture
def bob(store, ada) -> User:
    """An analyst with a known password he need not change."""
    user, _ = create_user(store, ada, "bob", name="Bob Stone", email="bob@desk.example",
                          role=ANALYST, password=BOB_PW, temporary=False, now=NOW)
    return user


@contextmanager
def refused(kind: type[Exception], message: str) -> Iterator[None]:
    """Like pytest.raises, but the whole message must match exactly."""
    with pytest.raises(kind) as info:
        yield
    assert str(info.value) == message


def audit_actions(store) -> list[tuple[str, str, str]]:
    """Changes to accounts (area users) and logins (area auth), oldest first."""
    changes = load_changes(store).iloc[::-1]
    changes = changes[changes["AREA"].isin(["users", "auth"])]
    return list(zip(changes["ACTOR"], changes["ACTION"], changes["DETAIL"], strict=True))


# -- first admin, create, update, delete ----------------------------------------------------
def test_first_admin_is_created_once_and_audited_as_system(store):
    user = create_first_admin(store, "Ada", "Ada Lovelace", "ada@desk.example", ADA_PW, now=NOW)
    assert (user.username, user.role, user.must_change_password) == ("ada", ADMIN, False)
    assert verify_password(ADA_PW, user.password_hash)
    with refused(Conflict, "users already exist: ask an admin to create your account"):
        create_first_admin(store, "eve", "Eve", "eve@desk.example", "another long password")
    assert count_users(store) == 1
    assert audit_actions(store) == [("system", "user_created", "first admin")]


def test_production_hashes_are_the_authenticators_bcrypt_cost_12(monkeypatch):
    stauth = pytest.importorskip("streamlit_authenticator")
    monkeypatch.setattr(core.identity.passwords, "BCRYPT_ROUNDS", 12)
    hashed = hash_password(ADA_PW)
    assert re.fullmatch(r"\$2b\$12\$[./A-Za-z0-9]{53}", hashed)
    assert stauth.Hasher.check_pw(ADA_PW, hashed)
    assert not verify_password(ADA_PW, "not a hash")


def test_create_user_without_password_returns_a_temporary_one_to_change(store, ada):
    user, temp = create_user(store, ada, " Carol.V ", name="Carol Vance", email="", role=VIEWER,
                             sectors=["2.0_Mezz", "2.0_Mezz", "CLO_AAA"], now=NOW)
    assert temp is not None
    assert len(temp) == 16
    assert verify_password(temp, user.password_hash)
    assert (user.username, user.must_change_password, user.sectors) == (
        "carol.v", True, ["2.0_Mezz", "CLO_AAA"])
    assert user.actor() == Actor("carol.v", VIEWER, ("2.0_Mezz", "CLO_AAA"), None)
    assert get_user(store, "CAROL.V") == user


def test_create_user_with_a_password_and_its_refusals(store, ada, bob):
    assert (bob.must_change_password, bob.created_by, bob.sectors) == (False, "ada", None)
    with refused(Conflict, "a user named 'bob' already exists"):
        create_user(store, ada, "BOB", name="B", email="", role=VIEWER)
    with refused(Conflict, "email Bob@Desk.example is already used by bob"):
        create_user(store, ada, "rob", name="R", email="Bob@Desk.example", role=VIEWER)
    with refused(InvalidInput, "role: 'boss' is not a role; choose one of viewer, analyst, admin"):
        create_user(store, ada, "rob", name="R", email="", role="boss")
    for bad in ("x", "..", "has space", "a" * 33, "semi;colon"):
        with refused(
            InvalidInput,
            "username: use 2–32 characters: letters, digits, '.', '_' or '-'",
        ):
            create_user(store, ada, bad, name="R", email="", role=VIEWER)
    with refused(InvalidInput, "column_profile: there is no column profile named 'nope'"):
        create_user(store, ada, "rob", name="R", email="", role=VIEWER, column_profile="nope")
    with pytest.raises(NotFound):
        get_user(store, "nobody")
    assert [u.username for u in list_users(store)] == ["ada", "bob"]


def test_update_user_changes_only_given_fields_and_audits_role_changes(store, ada, bob):
    save_column_profile(store, ada, "Slim", ["CUSIP", "PX", "CUSIP"], now=NOW)
    later = NOW + timedelta(hours=1)
    user = update_user(store, ada, "bob", sectors=["2.0_Mezz"], column_profile="Slim", now=later)
    assert (user.name, user.role, user.sectors, user.updated_at) == (
        "Bob Stone", ANALYST, ["2.0_Mezz"], later)
    assert user.actor(load_column_profiles(store)) == Actor(
        "bob", ANALYST, ("2.0_Mezz",), ("CUSIP", "PX"))
    user = update_user(store, ada, "bob", role=VIEWER, sectors=None, now=later)
    assert (user.role, user.sectors, user.column_profile) == (VIEWER, None, "Slim")
    assert [a for _, a, _ in audit_actions(store)][-2:] == ["user_changed", "role_changed"]
    with refused(
        Conflict,
        "column profile 'Slim' is assigned to bob; assign them another profile first",
    ):
        delete_column_profile(store, ada, "Slim")


def test_a_profile_that_disappeared_shows_no_columns(bob):
    bob.column_profile = "Gone"
    assert bob.actor({}).columns == ()


def test_user_round_trips_through_its_document(store, ada, bob):
    authenticate(store, "bob", "wrong password", settings=load_settings({}, {}), now=NOW)
    user = get_user(store, "bob")
    assert User.from_dict(user.to_dict()) == user
    assert user.recent_logins == [{"at": NOW, "ok": False}]
    assert store.get("users/bob")[0]["recent_logins"] == [{"at": NOW.isoformat(), "ok": False}]


def test_delete_user(store, ada, bob):
    delete_user(store, ada, "bob", now=NOW)
    assert [u.username for u in list_users(store)] == ["ada"]
    with pytest.raises(NotFound):
        delete_user(store, ada, "bob")


MUTATIONS = {
    "create_user": lambda s, a: create_user(s, a, "zed", name="Z", email="", role=VIEWER),
    "update_user": lambda s, a: update_user(s, a, "bob", name="Robert"),
    "set_disabled": lambda s, a: set_disabled(s, a, "bob", True),
    "reset_password": lambda s, a: reset_password(s, a, "bob"),
    "unlock": lambda s, a: unlock(s, a, "bob"),
    "delete_user": lambda s, a: delete_user(s, a, "bob"),
    "approve_user": lambda s, a: approve_user(s, a, "bob"),
    "save_column_profile": lambda s, a: save_column_profile(s, a, "Slim", ["CUSIP"]),
    "delete_column_profile": lambda s, a: delete_column_profile(s, a, "Slim"),
    "set_self_registration": lambda s, a: set_self_registration(s, a, True,
                                                                  expected_version=None),
}


@pytest.mark.parametrize("role", [VIEWER, ANALYST])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_only_admins_manage_users(store, bob, role, mutation):
    before = {key: store.get(key)[0] for key in store.list()}
    with refused(PermissionDenied, "someone is not allowed to manage users"):
        MUTATIONS[mutation](store, Actor("someone", role))
    assert {key: store.get(key)[0] for key in store.list()} == before


# -- admins protect themselves and the last admin -------------------------------------------
LAST_ADMIN = "ada is the last enabled admin: make another user an admin before you {} them"


@pytest.mark.parametrize(("doing", "act"), [
    ("delete", lambda s, a: delete_user(s, a, "ada")),
    ("disable", lambda s, a: set_disabled(s, a, "ada", True)),
    ("demote", lambda s, a: update_user(s, a, "ada", role=ANALYST)),
])
def test_the_last_enabled_admin_cannot_be_removed(store, ada, bob, doing, act):
    with pytest.raises(Conflict) as refused:
        act(store, SYSTEM)  # the CLI acts as the system, so only the last-admin rule applies
    assert str(refused.value) == LAST_ADMIN.format(doing)
    assert get_user(store, "ada").role == ADMIN
    update_user(store, ada, "bob", role=ADMIN)
    act(store, SYSTEM)  # with a second admin it is allowed


@pytest.mark.parametrize(("doing", "act"), [
    ("delete", lambda s, a: delete_user(s, a, "ada")),
    ("disable", lambda s, a: set_disabled(s, a, "ada", True)),
    ("demote", lambda s, a: update_user(s, a, "ada", role=VIEWER)),
])
def test_an_admin_cannot_remove_themselves(store, ada, bob, doing, act):
    update_user(store, ada, "bob", role=ADMIN)
    with pytest.raises(Conflict) as refused:
        act(store, ada)
    assert str(refused.value) == f"you cannot {doing} your own account; ask another admin"


def test_a_disabled_admin_does_not_count_as_an_admin(store, ada, bob):
    update_user(store, ada, "bob", role=ADMIN)
    set_disabled(store, ada, "bob", True)
    with refused(Conflict, LAST_ADMIN.format("disable")):
        set_disabled(store, SYSTEM, "ada", True)
    assert [(u.username, u.disabled) for u in list_users(store)] == [("ada", False), ("bob", True)]


# -- password policy ------------------------------------------------------------------------
@pytest.mark.parametrize(("password", "reason"), [
    ("elevenchars", "must be at least 12 characters"),
    ("x" * 73, "must be at most 72 bytes"),
    ("BOB.Smith-2025!", "must not contain the username"),
    ("bob.smith-2025", "must not contain the username"),
])
def test_password_policy_names_the_rule(store, ada, password, reason):
    with pytest.raises(InvalidInput) as refused:
        create_user(store, ada, "bob.smith-2025", name="B", email="", role=VIEWER,
                    password=password)
    assert (refused.value.field, str(refused.value)) == ("password", f"password: {reason}")


def test_a_password_is_not_one_of_the_last_three(store, ada, bob):
    bob_actor = bob.actor()
    history = [BOB_PW, "second password!", "third password!!"]
    for old, new in pairwise(history):
        change_own_password(store, bob_actor, old, new, now=NOW)
    for reused in history:
        with refused(InvalidInput, "password: must not be one of your last 3 passwords"):
            change_own_password(store, bob_actor, history[-1], reused, now=NOW)
    change_own_password(store, bob_actor, history[-1], "fourth password!", now=NOW)
    change_own_password(store, bob_actor, "fourth password!", BOB_PW, now=NOW)  # 4 ago: allowed
    assert len(get_user(store, "bob").password_history) == 3


# -- logging in -----------------------------------------------------------------------------
def test_five_failures_lock_the_account_for_fifteen_minutes(store, bob, settings):
    for attempt in range(1, 5):
        result = authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
        assert (result.ok, result.reason, result.user.failed_logins) == (False, BAD_PASSWORD,
                                                                          attempt)
    fifth = authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
    until = NOW + timedelta(minutes=15)
    assert (fifth.ok, fifth.reason, fifth.locked_until) == (False, LOCKED, until)
    assert fifth.message == (
        "Too many failed logins: this account is locked until 2025-03-03 09:15 UTC")
    still = authenticate(store, "bob", BOB_PW, settings=settings, now=until - timedelta(seconds=1))
    assert (still.ok, still.reason, still.locked_until) == (False, LOCKED, until)
    after = authenticate(store, "bob", BOB_PW, settings=settings, now=until)
    assert (after.ok, after.reason, after.user.failed_logins, after.user.locked_until) == (
        True, OK, 0, None)
    details = [(a, d) for actor, a, d in audit_actions(store) if actor == "bob"]
    assert details == [("login_failed", f"bad password ({n} of 5)") for n in range(1, 6)] + [
        ("locked_out", "locked until 2025-03-03 09:15 UTC"),
        ("login_failed", "locked until 2025-03-03 09:15 UTC"),
        ("login_ok", ""),
    ]


def test_success_resets_the_counter_and_records_the_login(store, bob, settings):
    for minute in range(3):
        authenticate(store, "bob", "wrong password", settings=settings,
                     now=NOW + timedelta(minutes=minute))
    result = authenticate(store, "BOB", BOB_PW, settings=settings, now=NOW + timedelta(minutes=3))
    user = get_user(store, "bob")
    assert (result.ok, result.user, user.failed_logins) == (True, user, 0)
    assert user.last_login_at == NOW + timedelta(minutes=3)
    assert user.recent_logins == [{"at": NOW + timedelta(minutes=m), "ok": m == 3}
                                  for m in range(4)]


def test_recent_logins_keep_the_last_twenty(store, bob, settings):
    for second in range(25):
        authenticate(store, "bob", BOB_PW, settings=settings, now=NOW + timedelta(seconds=second))
    assert [e["at"] for e in get_user(store, "bob").recent_logins] == [
        NOW + timedelta(seconds=s) for s in range(5, 25)]


def test_unknown_disabled_and_pending_users_cannot_log_in(store, ada, bob, settings):
    unknown = authenticate(store, "nobody", BOB_PW, settings=settings, now=NOW)
    wrong = authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
    assert (unknown.reason, wrong.reason) == (UNKNOWN_USER, BAD_PASSWORD)
    assert unknown.message == wrong.message == "Username or password is incorrect"
    set_disabled(store, ada, "bob", True)
    disabled = authenticate(store, "bob", BOB_PW, settings=settings, now=NOW)
    assert (disabled.ok, disabled.reason, disabled.message) == (
        False, DISABLED, "This account is disabled; ask an admin")
    set_disabled(store, ada, "bob", False)
    assert authenticate(store, "bob", BOB_PW, settings=settings, now=NOW).ok
    assert ("anonymous", "login_failed", "unknown user") in audit_actions(store)


def test_failures_in_two_processes_at_once_both_count(store, bob, settings):
    class OtherProcessFailsMidway:
        """Another process's failed login lands between this process's read and write."""

        def __init__(self, inner):
            self.inner, self.interfered = inner, False

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def put(self, key, value, expected_version):
            if key == "users/bob" and not self.interfered:
                self.interfered = True
                authenticate(self.inner, "bob", "other wrong pw", settings=settings, now=NOW)
            return self.inner.put(key, value, expected_version)

    authenticate(OtherProcessFailsMidway(store), "bob", "wrong password", settings=settings,
                 now=NOW)
    assert get_user(store, "bob").failed_logins == 2


def test_admin_unlock_and_reset_clear_a_lock(store, ada, bob, settings):
    for _ in range(5):
        authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
    assert unlock(store, ada, "bob", now=NOW).locked_until is None
    assert authenticate(store, "bob", BOB_PW, settings=settings, now=NOW).ok
    for _ in range(5):
        authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
    temp = reset_password(store, ada, "bob", now=NOW + timedelta(minutes=1))
    result = authenticate(store, "bob", temp, settings=settings, now=NOW + timedelta(minutes=2))
    assert (result.ok, result.user.must_change_password) == (True, True)
    assert not session_is_valid(result.user, NOW, NOW, settings=settings, now=NOW)


# -- sessions -------------------------------------------------------------------------------
def test_changing_the_password_ends_other_sessions(store, bob, settings):
    login_at = NOW + timedelta(minutes=5)
    authenticate(store, "bob", BOB_PW, settings=settings, now=login_at)
    assert session_is_valid(get_user(store, "bob"), login_at, login_at, settings=settings,
                            now=login_at)
    with refused(InvalidInput, "old_password: the current password is not correct"):
        change_own_password(store, bob.actor(), "not my password", "brand new password")
    changed_at = NOW + timedelta(minutes=10)
    user = change_own_password(store, bob.actor(), BOB_PW, "brand new password", now=changed_at)
    assert (user.sessions_valid_after, user.must_change_password) == (changed_at, False)
    assert not session_is_valid(user, login_at, changed_at, settings=settings, now=changed_at)
    assert session_is_valid(user, changed_at, changed_at, settings=settings, now=changed_at)
    assert authenticate(store, "bob", "brand new password", settings=settings, now=changed_at).ok


def test_the_session_that_changed_the_password_keeps_its_cookie(store, ada, bob, settings):
    login_at, changed_at = NOW + timedelta(minutes=5), NOW + timedelta(minutes=10)
    mine, other = 1_800_000_000.25, 1_800_000_100.5  # two browsers' cookie expiry stamps
    user = change_own_password(store, bob.actor(), BOB_PW, "brand new password", now=changed_at,
                               keep_cookie=mine)
    assert session_is_valid(user, login_at, changed_at, settings=settings, now=changed_at,
                            cookie_expires=mine)  # F5 in the browser that changed it
    assert not session_is_valid(user, login_at, changed_at, settings=settings, now=changed_at,
                                cookie_expires=other)
    assert get_user(store, "bob").kept_cookie_expires == mine
    assert "kept_cookie_expires" not in user.audit_view()
    reset_password(store, ada, "bob", now=changed_at + timedelta(minutes=1))
    reset = get_user(store, "bob")
    assert reset.kept_cookie_expires is None  # an admin's reset ends that session too
    assert not session_is_valid(reset, login_at, changed_at, settings=settings, now=changed_at,
                                cookie_expires=mine)


def test_idle_sessions_expire_after_the_session_hours(bob, settings):
    last_seen = NOW + timedelta(hours=1)
    assert session_is_valid(bob, NOW, last_seen, settings=settings,
                            now=last_seen + timedelta(hours=8))
    assert not session_is_valid(bob, NOW, last_seen, settings=settings,
                                now=last_seen + timedelta(hours=8, seconds=1))
    short = load_settings({"auth": {"session_hours": 0.5}}, {})
    assert not session_is_valid(bob, NOW, NOW, settings=short, now=NOW + timedelta(minutes=31))


def test_disabled_users_lose_their_sessions(store, ada, bob, settings):
    user = set_disabled(store, ada, "bob", True, now=NOW)
    assert not session_is_valid(user, NOW, NOW, settings=settings, now=NOW)


def test_logout_is_audited(store, bob):
    record_logout(store, "Bob", NOW)
    assert audit_actions(store)[-1] == ("bob", "logout", "")


# -- forgot password ------------------------------------------------------------------------
def test_a_reset_token_works_once_and_is_stored_only_as_its_hash(store, bob, settings):
    user, token = issue_reset_token(store, "BOB@desk.example", now=NOW)
    assert user.username == "bob"
    [key] = store.list("reset_tokens/")
    assert token not in key
    assert token not in str(store.get(key)[0])
    assert store.get(key)[0] == {"username": "bob", "created_at": NOW.isoformat(),
                                 "expires_at": (NOW + timedelta(minutes=30)).isoformat()}
    with refused(InvalidInput, "password: must be at least 12 characters"):
        redeem_reset_token(store, token, "short", now=NOW)  # a policy miss keeps the link usable
    redeemed = redeem_reset_token(store, token, "a fresh password", now=NOW + timedelta(minutes=1))
    assert redeemed.sessions_valid_after == NOW + timedelta(minutes=1)
    assert authenticate(store, "bob", "a fresh password", settings=settings,
                        now=NOW + timedelta(minutes=2)).ok
    with pytest.raises(InvalidInput) as again:
        redeem_reset_token(store, token, "another password", now=NOW + timedelta(minutes=2))
    assert str(again.value) == TOKEN_GONE
    assert store.list("reset_tokens/") == []
    assert [a for _, a, _ in audit_actions(store)][-3:] == [
        "reset_token_issued", "password_reset_by_token", "login_ok"]


def test_a_reset_token_expires_after_thirty_minutes(store, bob):
    _, token = issue_reset_token(store, "bob", now=NOW)
    with pytest.raises(InvalidInput) as expired:
        redeem_reset_token(store, token, "a fresh password", now=NOW + timedelta(minutes=31))
    assert str(expired.value) == TOKEN_GONE
    assert verify_password(BOB_PW, get_user(store, "bob").password_hash)


def test_a_new_reset_token_replaces_the_old_one(store, bob):
    _, first = issue_reset_token(store, "bob", now=NOW)
    _, second = issue_reset_token(store, "bob", now=NOW)
    with refused(InvalidInput, TOKEN_GONE):
        redeem_reset_token(store, first, "a fresh password", now=NOW)
    redeem_reset_token(store, second, "a fresh password", now=NOW)


def test_no_reset_token_for_unknown_or_disabled_users(store, ada, bob):
    assert issue_reset_token(store, "nobody@desk.example", now=NOW) is None
    assert issue_reset_token(store, "", now=NOW) is None
    set_disabled(store, ada, "bob", True)
    assert issue_reset_token(store, "bob", now=NOW) is None
    with refused(InvalidInput, TOKEN_GONE):
        redeem_reset_token(store, "made-up", "a fresh password", now=NOW)


# -- audit ----------------------------------------------------------------------------------
def test_the_change_log_never_holds_a_password_hash(store, ada, bob, settings):
    _, temp = create_user(store, ada, "carol", name="C", email="", role=VIEWER, now=NOW)
    update_user(store, ada, "carol", role=ANALYST)
    reset_password(store, ada, "carol")
    change_own_password(store, bob.actor(), BOB_PW, "brand new password", now=NOW)
    _, token = issue_reset_token(store, "bob", now=NOW)
    redeem_reset_token(store, token, "another new password", now=NOW)
    authenticate(store, "bob", "wrong password", settings=settings, now=NOW)
    set_disabled(store, ada, "carol", True)
    delete_user(store, ada, "carol")
    changes = load_changes(store)
    snapshots = [t for t in [*changes["BEFORE"], *changes["AFTER"]] if t is not None]
    assert len(snapshots) == 14
    assert not [t for t in snapshots if "$2b$" in t or "password_hash" in t]
    assert not [t for t in changes["DETAIL"] if "$2b$" in t or token in t or temp in t]


# -- the authenticator's credentials --------------------------------------------------------
def test_credentials_list_enabled_approved_users_in_the_authenticators_format(store, ada, bob):
    create_user(store, ada, "carol", name="Carol", email="", role=VIEWER)
    set_disabled(store, ada, "carol", True)
    assert credentials_for_authenticator(store) == {"usernames": {
        "ada": {"email": "ada@desk.example", "first_name": "Ada", "last_name": "Lovelace",
                "password": get_user(store, "ada").password_hash, "roles": [ADMIN],
                "failed_login_attempts": 0, "logged_in": False},
        "bob": {"email": "bob@desk.example", "first_name": "Bob", "last_name": "Stone",
                "password": bob.password_hash, "roles": [ANALYST],
                "failed_login_attempts": 0, "logged_in": False},
    }}


# -- self-registration ----------------------------------------------------------------------
def test_self_registration_is_off_by_default(store, ada):
    assert get_self_registration(store) is False
    with refused(
        PermissionDenied,
        'newbie is not allowed to register: self-registration is turned off; ask an admin',
    ):
        register_user(store, "newbie", "New Bie", "new@desk.example", "a long password")
    with pytest.raises(PermissionDenied):
        register_user(store, "newbie", "New Bie", "new@desk.example", "a long password",
                      settings_doc_enabled=False, now=NOW)
    assert count_users(store) == 1


def test_registered_users_wait_for_approval_as_viewers(store, ada, settings):
    set_self_registration(store, ada, True, expected_version=None, now=NOW)
    assert get_self_registration(store) is True
    user = register_user(store, "Newbie", "New Bie", "new@desk.example", "a long password",
                         settings_doc_enabled=True, now=NOW)
    assert (user.username, user.role, user.pending_approval, user.created_by) == (
        "newbie", VIEWER, True, "newbie")
    pending = authenticate(store, "newbie", "a long password", settings=settings, now=NOW)
    assert (pending.ok, pending.reason) == (False, PENDING)
    assert "newbie" not in credentials_for_authenticator(store)["usernames"]
    approve_user(store, ada, "newbie", now=NOW)
    assert authenticate(store, "newbie", "a long password", settings=settings, now=NOW).ok
    with refused(Conflict, "newbie is not waiting for approval"):
        approve_user(store, ada, "newbie")
    assert [(actor, a) for actor, a, _ in audit_actions(store)][1:] == [
        ("ada", "self_registration_changed"), ("newbie", "user_registered"),
        ("newbie", "login_failed"), ("ada", "user_approved"), ("newbie", "login_ok")]


def test_a_logged_out_cookie_is_refused_even_if_the_browser_keeps_it(store):
    from core.identity.login import login_cookie_revoked, record_logout

    now = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
    expires = (now + timedelta(hours=8)).timestamp()
    assert login_cookie_revoked(store, "ann", expires) is False
    record_logout(store, "Ann", now, cookie_expires=expires)
    assert login_cookie_revoked(store, "ann", expires) is True
    assert login_cookie_revoked(store, "ann", expires + 1) is False
    later = now + timedelta(hours=9)  # the revoked cookie has expired: it is pruned on next logout
    record_logout(store, "ann", later, cookie_expires=expires + 3600 * 9)
    assert login_cookie_revoked(store, "ann", expires) is False
