"""Revert in every area beyond rules, columns, jobs and runs: users and column profiles, presets,
notification settings, sign-up and the buffer. Each change then its revert restores the exact
before-state; a change followed by another refuses the first's revert naming who changed it since;
the area's own permission is checked in core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pandas as pd
import pytest

import core.identity.passwords
from core.access import ADMIN, ANALYST, VIEWER, Actor
from core.alerts.email import SmtpConfig, get_smtp_config, restore_smtp_config, save_smtp_config
from core.alerts.templates import (
    EmailSettings,
    load_email_settings,
    restore_email_settings,
    save_email_settings,
)
from core.alerts.webhooks import (
    WebhookSettings,
    get_webhook_settings,
    load_webhook_settings,
    restore_webhook_settings,
    save_webhook_settings,
)
from core.audit import load_changes
from core.compliance.revert import recent_changes, revert_change
from core.config import load_settings
from core.errors import Conflict, PermissionDenied
from core.identity.column_profiles import (
    delete_column_profile,
    load_column_profiles,
    restore_column_profile,
    save_column_profile,
)
from core.identity.login import (
    authenticate,
    get_self_registration,
    get_self_registration_version,
    register_user,
    restore_self_registration,
    set_self_registration,
)
from core.identity.users import (
    approve_user,
    create_first_admin,
    create_user,
    delete_user,
    get_user,
    restore_user,
    set_disabled,
    update_user,
    user_state,
)
from core.intake import buffer
from core.rules.conditions import Condition, Group
from core.rules.presets import (
    Preset,
    delete_preset,
    preset_state,
    restore_preset,
    save_preset,
)
from core.runs.exports import write_csv
from core.schema import INPUT_COLUMNS, SECTOR
from tests.factories import make_colors

ADA_PW, ZOE_PW, BOB_PW = "correct horse battery", "zebra crossing lights", "tangerine submarine"
SETTINGS = load_settings({}, {})
MEZZ = Group("and", [Condition(SECTOR, "equal to", "2.0_mezz")])
SLACK_1 = "https://hooks.slack.com/services/T0/B0/aaaa1111"
SLACK_2 = "https://hooks.slack.com/services/T0/B0/bbbb2222"
TEAMS = "https://example.webhook.office.com/webhookb2/cccc3333"
VIEWER_ACTOR = Actor("vic", VIEWER)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    """Cost 4 instead of 12: the same code path, a hundredth of the time."""
    monkeypatch.setattr(core.identity.passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def store(memory_store):
    return memory_store


@pytest.fixture
def ada(store) -> Actor:
    return create_first_admin(store, "ada", "Ada Lovelace", "ada@desk.example", ADA_PW).actor()


@pytest.fixture
def zoe(store, ada) -> Actor:
    user, _ = create_user(store, ada, "zoe", name="Zoe", email="zoe@desk.example", role=ADMIN,
                          password=ZOE_PW, temporary=False)
    return user.actor()


@pytest.fixture
def bob(store, ada) -> Actor:
    user, _ = create_user(store, ada, "bob", name="Bob Stone", email="bob@desk.example",
                          role=ANALYST, password=BOB_PW, temporary=False)
    return user.actor()


def newest(store, area: str) -> str:
    return str(load_changes(store, area=area, limit=1)["EVENT_ID"].iloc[0])


def stamp(store, area: str) -> str:
    """When the area's newest change was made, as revert messages say it."""
    at = load_changes(store, area=area, limit=1)["AT"].iloc[0]
    return pd.Timestamp(at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def listing(store, area: str, **only) -> list[tuple[str, str, bool, str]]:
    return [(c.action, c.summary, c.revertible, c.reason)
            for c in recent_changes(store, area, **only)]


@contextmanager
def refused(kind: type[Exception], message: str) -> Iterator[None]:
    """Like pytest.raises, but the whole message must match exactly."""
    with pytest.raises(kind) as info:
        yield
    assert str(info.value) == message


def without_stamps(state: dict | None) -> dict | None:
    return None if state is None else {k: v for k, v in state.items()
                                       if k not in ("updated_at", "updated_by")}


# -- users --------------------------------------------------------------------------------------
def test_reverting_a_user_change_restores_every_field_but_the_password(store, ada, zoe, bob):
    save_column_profile(store, ada, "Credit", ["CUSIP", "PX"])
    before, password = user_state(store, "bob"), get_user(store, "bob").password_hash
    update_user(store, ada, "bob", name="Robert", email="robert@desk.example", role=ADMIN,
                sectors=["CLO"], column_profile="Credit")
    assert listing(store, "users")[0][:3] == (
        "role_changed", "changed user bob (column_profile, email, name, role, sectors)", True)
    revert_change(store, zoe, newest(store, "users"))
    assert without_stamps(user_state(store, "bob")) == without_stamps(before)
    assert (get_user(store, "bob").password_hash, get_user(store, "bob").updated_by) == (
        password, "zoe")


def test_reverting_a_disable_enables_the_account_again(store, ada, zoe, bob):
    set_disabled(store, ada, "bob", True)
    revert_change(store, zoe, newest(store, "users"))
    assert get_user(store, "bob").disabled is False


def test_a_user_changed_since_cannot_be_reverted_until_that_change_is(store, ada, zoe, bob):
    update_user(store, ada, "bob", role=VIEWER)
    first = newest(store, "users")
    update_user(store, zoe, "bob", sectors=["CLO"])
    with refused(Conflict, "cannot revert this change to user bob: user bob was changed by zoe "
                 f"at {stamp(store, 'users')} after this change; revert that change first"):
        revert_change(store, ada, first)
    revert_change(store, ada, newest(store, "users"))
    revert_change(store, ada, first)
    assert (get_user(store, "bob").role, get_user(store, "bob").sectors) == (ANALYST, None)


def test_a_login_since_does_not_block_reverting_a_role_change(store, ada, zoe, bob):
    update_user(store, ada, "bob", role=VIEWER)
    assert authenticate(store, "bob", BOB_PW, settings=SETTINGS).ok
    assert listing(store, "users")[0][2:] == (True, "")
    revert_change(store, zoe, newest(store, "users"))
    assert get_user(store, "bob").role == ANALYST


def test_reverting_a_creation_deletes_the_account_until_someone_logs_in_with_it(store, ada, zoe):
    create_user(store, ada, "carol", name="Carol", email="", role=VIEWER, password=BOB_PW,
                temporary=False)
    created = newest(store, "users")
    create_user(store, ada, "dan", name="Dan", email="", role=VIEWER, password=BOB_PW,
                temporary=False)
    assert authenticate(store, "dan", BOB_PW, settings=SETTINGS).ok
    assert listing(store, "users")[0] == (
        "user_created", "created user dan", False,
        "dan has logged in since the account was created; disable it instead")
    revert_change(store, zoe, created)
    assert user_state(store, "carol") is None


def test_reverting_an_approval_puts_a_sign_up_back_in_the_waiting_list(store, ada, zoe):
    set_self_registration(store, ada, True, expected_version=None)
    register_user(store, "newbie", "New Bie", "newbie@desk.example", BOB_PW)
    approve_user(store, ada, "newbie")
    assert [c[1] for c in listing(store, "users")[:2]] == ["approved user newbie",
                                                          "user newbie signed up"]
    revert_change(store, zoe, newest(store, "users"))
    assert get_user(store, "newbie").pending_approval is True
    [signed_up] = [c for c in recent_changes(store, "users") if c.action == "user_registered"]
    revert_change(store, zoe, signed_up.event_id)
    assert user_state(store, "newbie") is None


def test_a_deleted_account_cannot_be_brought_back(store, ada, bob):
    delete_user(store, ada, "bob")
    assert listing(store, "users")[0] == (
        "user_deleted", "deleted user bob", False, "'user deleted' changes cannot be reverted")


def test_an_admin_cannot_revert_their_own_promotion(store, ada, bob):
    update_user(store, ada, "bob", role=ADMIN)
    with refused(Conflict, "you cannot demote or disable your own account; ask another admin"):
        revert_change(store, Actor("bob", ADMIN), newest(store, "users"))


# -- column profiles (area users) -----------------------------------------------------------------
def test_reverting_column_profile_changes_restores_each_exactly(store, ada, zoe):
    save_column_profile(store, ada, "Credit", ["CUSIP", "PX"])
    save_column_profile(store, ada, "Credit", ["CUSIP"])
    delete_column_profile(store, ada, "Credit")
    assert listing(store, "users", entity_prefix="column_profiles/") == [
        ("column_profile_deleted", "deleted column profile 'Credit'", True, ""),
        ("column_profile_saved", "changed column profile 'Credit'", False,
         "column profile 'Credit' was changed by ada at "
         f"{stamp(store, 'users')} after this change; revert that change first"),
        ("column_profile_saved", "created column profile 'Credit'", False,
         "column profile 'Credit' was changed by ada at "
         f"{stamp(store, 'users')} after this change; revert that change first")]
    deleted, changed, created = [c.event_id for c in recent_changes(store, "users")[:3]]
    revert_change(store, zoe, deleted)
    assert load_column_profiles(store) == {"Credit": ["CUSIP"]}
    revert_change(store, zoe, changed)
    assert load_column_profiles(store) == {"Credit": ["CUSIP", "PX"]}
    revert_change(store, zoe, created)
    assert load_column_profiles(store) == {}


def test_a_created_profile_in_use_is_not_removed_by_a_revert(store, ada, zoe, bob):
    save_column_profile(store, ada, "Credit", ["CUSIP"])
    created = newest(store, "users")
    update_user(store, ada, "bob", column_profile="Credit")
    with refused(Conflict, "column profile 'Credit' is assigned to bob; assign them another "
                 "profile first"):
        revert_change(store, zoe, created)


# -- presets ------------------------------------------------------------------------------------
def test_reverting_preset_changes_restores_each_exactly(store, ada, zoe):
    created = save_preset(store, ada, Preset("Mezz", MEZZ, shared=True))
    key = f"presets/ada/{created.id}"
    save_preset(store, ada, replace(created, name="Mezz only", description="2.0 mezz"))
    assert listing(store, "presets")[0][:3] == (
        "update", "changed ada's saved filter 'Mezz only' (description, name)", True)
    revert_change(store, zoe, newest(store, "presets"))
    assert preset_state(store, key) == created.to_dict()
    delete_preset(store, ada, created.id)
    revert_change(store, zoe, newest(store, "presets"))
    assert preset_state(store, key) == created.to_dict()
    first = str(load_changes(store, area="presets")["EVENT_ID"].iloc[-1])
    revert_change(store, zoe, first)
    assert preset_state(store, key) is None


def test_a_preset_changed_since_cannot_be_reverted(store, ada, zoe):
    created = save_preset(store, ada, Preset("Mezz", MEZZ, shared=True))
    first = newest(store, "presets")
    save_preset(store, zoe, replace(created, description="zoe was here"))
    with refused(Conflict, "cannot revert this change to ada's saved filter "
                 f"{created.id}: ada's saved filter {created.id} was changed by zoe at "
                 f"{stamp(store, 'presets')} after this change; revert that change first"):
        revert_change(store, ada, first)


def test_an_admin_cannot_revert_another_users_private_preset(store, ada, zoe):
    save_preset(store, ada, Preset("Mine", MEZZ))
    with refused(PermissionDenied,
                 "zoe is not allowed to revert changes to another user's preset"):
        revert_change(store, zoe, newest(store, "presets"))


# -- notifications --------------------------------------------------------------------------------
def test_reverting_smtp_changes_restores_each_exactly(store, ada, zoe):
    first = SmtpConfig("smtp.desk.example", sender="mp@desk.example")
    save_smtp_config(store, ada, first, expected_version=None)
    created = newest(store, "notifications")
    save_smtp_config(store, ada, replace(first, port=465, security="ssl"),
                     expected_version=get_smtp_config(store)[1])
    assert listing(store, "notifications")[0][:3] == (
        "smtp_changed", "changed the SMTP server (port, security)", True)
    revert_change(store, zoe, newest(store, "notifications"))
    assert get_smtp_config(store)[0] == first
    revert_change(store, zoe, created)
    assert get_smtp_config(store)[0] is None


def test_reverting_run_email_settings_restores_the_defaults(store, ada, zoe):
    defaults = load_email_settings(store)
    save_email_settings(store, ada, EmailSettings(to=["desk@desk.example"], on_failure=False),
                        expected_version=None)
    revert_change(store, zoe, newest(store, "notifications"))
    assert load_email_settings(store) == defaults


def test_smtp_changed_since_cannot_be_reverted(store, ada, zoe):
    config = SmtpConfig("smtp.desk.example", sender="mp@desk.example")
    save_smtp_config(store, ada, config, expected_version=None)
    first = newest(store, "notifications")
    save_smtp_config(store, zoe, replace(config, port=25),
                     expected_version=get_smtp_config(store)[1])
    with refused(Conflict, "cannot revert this change to the SMTP server: the SMTP server was "
                 f"changed by zoe at {stamp(store, 'notifications')} after this change; revert "
                 "that change first"):
        revert_change(store, ada, first)


def test_webhook_reverts_keep_a_url_whose_mask_matches_and_refuse_one_only_masked(store, ada,
                                                                                  zoe):
    save_webhook_settings(store, ada, WebhookSettings(slack_url=SLACK_1), expected_version=None)
    save_webhook_settings(store, ada, WebhookSettings(slack_url=SLACK_1, teams_url=TEAMS,
                                                      on_success=False),
                          expected_version=get_webhook_settings(store)[1])
    revert_change(store, zoe, newest(store, "notifications"))
    assert load_webhook_settings(store) == WebhookSettings(slack_url=SLACK_1)
    save_webhook_settings(store, ada, WebhookSettings(slack_url=SLACK_2),
                          expected_version=get_webhook_settings(store)[1])
    reason = ("the Slack URL https://hooks.slack.com/…1111 cannot be restored: the change log "
              "keeps webhook URLs masked; paste it again under Settings → Email & "
              "notifications")
    assert listing(store, "notifications")[0] == (
        "webhooks_changed", "changed the Slack and Teams webhooks (slack_url)", False, reason)
    with refused(Conflict, f"cannot revert this change to the Slack and Teams webhooks: {reason}"):
        revert_change(store, zoe, newest(store, "notifications"))
    assert load_webhook_settings(store).slack_url == SLACK_2


# -- sign-up (area auth) --------------------------------------------------------------------------
def test_reverting_the_sign_up_switch_and_only_it_among_auth_events(store, ada, zoe, bob):
    set_self_registration(store, ada, True, expected_version=None)
    authenticate(store, "bob", BOB_PW, settings=SETTINGS)
    assert listing(store, "auth") == [
        ("login_ok", "login ok users/bob", False, "'login ok' changes cannot be reverted"),
        ("self_registration_changed", "turned sign-up on", True, "")]
    [switched] = recent_changes(store, "auth", entity_prefix="config/")
    revert_change(store, zoe, switched.event_id)
    assert get_self_registration(store) is False


def test_a_sign_up_switch_flipped_since_cannot_be_reverted(store, ada, zoe):
    set_self_registration(store, ada, True, expected_version=None)
    first = newest(store, "auth")
    set_self_registration(store, zoe, False,
                          expected_version=get_self_registration_version(store)[1])
    with refused(Conflict, "cannot revert this change to the sign-up setting: the sign-up "
                 f"setting was changed by zoe at {stamp(store, 'auth')} after this change; "
                 "revert that change first"):
        revert_change(store, ada, first)


# -- buffer ---------------------------------------------------------------------------------------
def _queue(store, actor: Actor, *names: str) -> list[buffer.BufferEntry]:
    data = write_csv(make_colors(3)[list(INPUT_COLUMNS)])
    return buffer.add_files(store, actor, [(name, data) for name in names], SETTINGS)


def test_reverting_a_removal_queues_the_file_again_with_its_bytes(store, ada, zoe):
    [entry] = _queue(store, ada, "a.csv")
    buffer.remove(store, ada, entry.id)
    assert listing(store, "buffer")[0][:3] == (
        "file_removed", "removed from the queue buffer 000001 (a.csv)", True)
    revert_change(store, zoe, newest(store, "buffer"))
    assert buffer.logged_state(buffer.get_entry(store, entry.id)) == {
        "name": "a.csv", "status": "pending", "claimed_by": ""}
    assert [name for _, name, _ in buffer.claim_pending(store, "run-1")] == ["a.csv"]


def test_reverting_an_upload_cancels_the_file_while_nothing_claimed_it(store, ada, zoe):
    first, second = _queue(store, ada, "a.csv", "b.csv")
    queued_a, queued_b = [c.event_id for c in recent_changes(store, "buffer")][::-1]
    buffer.claim_pending(store, "run-1", [second.id])
    revert_change(store, zoe, queued_a)
    assert buffer.get_entry(store, first.id).status == "cancelled"
    assert listing(store, "buffer", actions={"file_queued"})[0] == (
        "file_queued", "queued buffer 000002 (b.csv)", False,
        f"buffer 000002 was changed by run-1 at {stamp(store, 'buffer')} after this change; "
        "it can no longer be reverted")
    with refused(Conflict, "cannot revert this change to buffer 000002: buffer 000002 was "
                 f"changed by run-1 at {stamp(store, 'buffer')} after this change; it can no "
                 "longer be reverted"):
        revert_change(store, zoe, queued_b)


def test_a_removal_whose_bytes_are_gone_cannot_be_reverted(store, ada):
    [entry] = _queue(store, ada, "a.csv")
    buffer.remove(store, ada, entry.id)
    store.delete_blob(entry.blob)  # as removals did before they kept the bytes
    assert listing(store, "buffer")[0][2:] == (
        False, "its bytes were deleted when it was removed; upload the file again")


def test_a_restore_over_a_state_that_moved_on_is_a_conflict(store, ada):
    config = SmtpConfig("smtp.desk.example", sender="mp@desk.example")
    save_smtp_config(store, ada, config, expected_version=None)
    with refused(Conflict, "the SMTP server changed while it was being reverted; reload and try "
                 "again"):
        restore_smtp_config(store, ada, None, {**config.to_dict(), "port": 25})
    assert get_smtp_config(store)[0] == config


# -- permissions ----------------------------------------------------------------------------------
def test_viewers_and_analysts_cannot_revert(store, ada, bob):
    update_user(store, ada, "bob", sectors=["CLO"])
    for actor in (bob, VIEWER_ACTOR):
        with refused(PermissionDenied, f"{actor.username} is not allowed to revert changes"):
            revert_change(store, actor, newest(store, "users"))


@pytest.mark.parametrize(("restore", "entity", "state"), [
    (restore_user, "bob", {"role": VIEWER}),
    (restore_column_profile, "Credit", ["CUSIP"]),
    (restore_preset, "presets/ada/x", {"name": "x"}),
    (restore_smtp_config, None, None),
    (restore_email_settings, None, {}),
    (restore_webhook_settings, None, {}),
    (restore_self_registration, None, {"self_registration": True}),
    (buffer.restore_entry, "000001", {"status": "cancelled"}),
])
def test_each_area_checks_its_own_permission_in_core(store, restore, entity, state):
    """A viewer reaching an area's restore directly is refused before anything is read."""
    args = (state, state) if entity is None else (entity, state, state)
    with pytest.raises(PermissionDenied):
        restore(store, VIEWER_ACTOR, *args)
