"""Revert for users and column profiles, presets, notification settings, sign-up and the buffer
(DOMAIN.md §6): each handler reads an entity as the change log snapshots it and restores it
through its area's core function, which checks the actor's permission and the stored version.
core.compliance.revert registers them with the words its "last changes" list uses."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core import catalog
from core.access import Actor
from core.alerts import email, templates, webhooks
from core.errors import InvalidInput, NotFound
from core.identity import login, users
from core.identity.column_profiles import load_column_profiles, restore_column_profile
from core.intake import buffer
from core.rules import presets
from storage import Store

if TYPE_CHECKING:  # revert imports this module to register its handlers
    from core.compliance.revert import Change

# An entity as the log snapshots it (a dict; a list for a column profile); None = it does not exist
State = Any
_BOOKKEEPING = {"updated_at", "updated_by"}


def canonical(state: Any) -> Any:
    """The state as the change log stores it, so a live entity compares equal to its snapshot."""
    return None if state is None else json.loads(json.dumps(state, default=str, sort_keys=True))


def changed_fields(change: Change) -> str:
    """" (a, b)" naming the fields an update changed, bookkeeping left out; "" for none."""
    if not isinstance(change.before, dict) or not isinstance(change.after, dict):
        return ""
    keys = sorted(k for k in change.before.keys() | change.after.keys()
                  if k not in _BOOKKEEPING and change.before.get(k) != change.after.get(k))
    return f" ({', '.join(keys)})" if keys else ""


# -- users and column profiles (area "users") --------------------------------------------------
PROFILE = "column_profiles/"
USER = catalog.USERS.key  # a user's changes name it by its document key
USER_ACTIONS = {"user_created", "user_registered", "user_changed", "role_changed",
                "user_disabled", "user_enabled", "user_approved", "column_profile_saved",
                "column_profile_deleted"}


class UsersHandler:
    """Accounts ("users/<name>": their name, email, role, sectors, column profile, disabled,
    waiting for approval) and column profiles ("column_profiles/<name>": the columns)."""

    def current_state(self, store: Store, entity: str) -> State:
        if entity.startswith(PROFILE):
            return load_column_profiles(store).get(entity.removeprefix(PROFILE))
        return users.user_state(store, entity.removeprefix(USER))

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        if entity.startswith(PROFILE):
            restore_column_profile(store, actor, entity.removeprefix(PROFILE), before, after)
        else:
            users.restore_user(store, actor, entity.removeprefix(USER), before, after)


def users_compare(state: State) -> Any:
    """A user's revertible fields (a login does not block reverting a role change); a profile
    whole."""
    return users.reverted_fields(state) if isinstance(state, dict) else state


def users_refuse(store: Store, change: Change) -> str:
    """A creation is undone by deleting the account: not once someone has logged in with it."""
    if change.action in ("user_created", "user_registered"):
        name = change.entity.removeprefix(USER)
        if (users.user_state(store, name) or {}).get("last_login_at"):
            return f"{name} has logged in since the account was created; disable it instead"
    return ""


def users_label(entity: str) -> str:
    if entity.startswith(PROFILE):
        return f"column profile {entity.removeprefix(PROFILE)!r}"
    return f"user {entity.removeprefix(USER)}"


_USER_VERBS = {"user_created": "created",
               "user_changed": "changed", "role_changed": "changed", "user_disabled": "disabled",
               "user_enabled": "enabled", "user_deleted": "deleted", "user_approved": "approved",
               "password_reset": "reset the password of", "user_unlocked": "unlocked",
               "column_profile_deleted": "deleted"}


def users_summary(change: Change) -> str:
    if change.action == "user_registered":
        return f"{users_label(change.entity)} signed up"
    if change.action == "column_profile_saved":
        verb = "created" if change.before is None else "changed"
    else:
        verb = _USER_VERBS.get(change.action, change.action.replace("_", " "))
    fields = changed_fields(change) if change.action in ("user_changed", "role_changed") else ""
    return f"{verb} {users_label(change.entity)}{fields}"


# -- presets ----------------------------------------------------------------------------------
class PresetsHandler:
    """Saved filters by document key ("presets/<owner>/<id>", the log's entity)."""

    def current_state(self, store: Store, entity: str) -> State:
        return presets.preset_state(store, entity)

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        presets.restore_preset(store, actor, entity, before, after)


def presets_label(entity: str) -> str:
    owner, _, preset_id = entity.removeprefix(presets.PREFIX).partition("/")
    return f"{owner}'s saved filter {preset_id}"


def presets_summary(change: Change) -> str:
    state = change.after or change.before or {}
    verb = {"create": "created", "update": "changed", "delete": "deleted"}.get(
        change.action, change.action)
    fields = changed_fields(change) if change.action == "update" else ""
    return f"{verb} {state.get('owner', '')}'s saved filter {state.get('name', '')!r}{fields}"


# -- notifications: entities "smtp", "email", "webhooks" ----------------------------------------
NOTIFICATION_NAMES = {"smtp": "the SMTP server", "email": "the run email settings",
                      "webhooks": "the Slack and Teams webhooks"}


class NotificationsHandler:
    """The SMTP server (None when not configured), run emails and webhooks (URLs masked, as the
    log keeps them)."""

    def current_state(self, store: Store, entity: str) -> State:
        if entity == "smtp":
            config = email.load_smtp_config(store)
            return None if config is None else config.to_dict()
        if entity == "email":
            return templates.load_email_settings(store).to_dict()
        if entity == "webhooks":
            return webhooks.load_webhook_settings(store).masked()
        return None

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        if entity == "smtp":
            email.restore_smtp_config(store, actor, before, after)
        elif entity == "email":
            templates.restore_email_settings(store, actor, before, after)
        elif entity == "webhooks":
            webhooks.restore_webhook_settings(store, actor, before, after)
        else:
            raise InvalidInput("revert", f"{entity!r} is not a notification setting")


def notifications_refuse(store: Store, change: Change) -> str:
    """A webhook URL the log only knows masked cannot be put back."""
    if change.entity != "webhooks" or not isinstance(change.before, dict):
        return ""
    return webhooks.unrestorable_urls(change.before, webhooks.load_webhook_settings(store))


def notifications_summary(change: Change) -> str:
    name = NOTIFICATION_NAMES.get(change.entity, change.entity)
    return f"set up {name}" if change.before is None else f"changed {name}{changed_fields(change)}"


# -- sign-up (area "auth": only the switch; logins and password changes are events) --------------
class SignUpHandler:
    """The self-registration switch ({"self_registration": bool})."""

    def current_state(self, store: Store, entity: str) -> State:
        return {"self_registration": login.get_self_registration(store)}

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        login.restore_self_registration(store, actor, before, after)


def signup_label(entity: str) -> str:
    return "the sign-up setting" if entity == login.AUTH_CONFIG_KEY else entity


def signup_summary(change: Change) -> str:
    """The switch in words; the area's events (logins…) as action and account."""
    if change.action != "self_registration_changed":
        return f"{change.action.replace('_', ' ')} {change.entity}"
    on = bool((change.after or {}).get("self_registration"))
    return f"turned sign-up {'on' if on else 'off'}"


# -- the buffer: an upload or a removal --------------------------------------------------------
BUFFER_ACTIONS = {"file_queued", "file_removed"}


class BufferHandler:
    """Buffer entries ("buffer <id>") by status and claimer."""

    def current_state(self, store: Store, entity: str) -> State:
        try:
            return buffer.logged_state(buffer.get_entry(store, entity.split()[-1]))
        except NotFound:
            return None

    def restore(self, store: Store, actor: Actor, entity: str, before: State, after: State
                ) -> None:
        if after is None:
            raise InvalidInput("revert", "that change recorded no buffer state to restore")
        buffer.restore_entry(store, actor, entity.split()[-1], before, after)


def buffer_refuse(store: Store, change: Change) -> str:
    """A file removed before removals kept the bytes cannot be queued again."""
    if change.action == "file_removed" and not buffer.has_bytes(store, change.entity.split()[-1]):
        return "its bytes were deleted when it was removed; upload the file again"
    return ""


def buffer_summary(change: Change) -> str:
    name = (change.after or change.before or {}).get("name")
    file = f"{change.entity} ({name})" if name else change.entity
    verbs = {"file_queued": "queued", "file_removed": "removed from the queue",
             "file_refused": "refused", "file_claimed": "claimed", "file_released": "released",
             "file_processed": "processed", "file_failed": "failed"}
    return f"{verbs.get(change.action, change.action.replace('_', ' '))} {file}"
