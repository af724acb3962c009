"""Who is acting and what they may do: roles, permissions (DESIGN.md §5) and row and column
entitlements.

Every core function that changes something takes an Actor and calls `require` first; pages only hide
what a role cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.errors import PermissionDenied
from core.schema import SECTOR

VIEWER, ANALYST, ADMIN = "viewer", "analyst", "admin"
ROLES = (VIEWER, ANALYST, ADMIN)

# permission → (roles that hold it, the words used in a refusal)
VIEW = "view"
OWN_SEARCHES = "own_searches"
MANUAL_SESSION = "manual_session"
UPLOAD_BUFFER = "upload_buffer"
TRIGGER_RUN = "trigger_run"
EDIT_RULES = "edit_rules"
EDIT_JOBS = "edit_jobs"
EDIT_COLUMNS = "edit_columns"
EDIT_NOTIFICATIONS = "edit_notifications"
EDIT_SETTINGS = "edit_settings"
MANAGE_USERS = "manage_users"
MANAGE_BACKUPS = "manage_backups"
REVERT = "revert"
REPUBLISH = "republish"
VIEW_AUDIT = "view_audit"
REMOVE_RUNS = "remove_runs"

PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {
    VIEW: (frozenset(ROLES), "view colors"),
    OWN_SEARCHES: (frozenset(ROLES), "keep saved searches and watchlists"),
    MANUAL_SESSION: (frozenset({ANALYST, ADMIN}), "work manual color sessions"),
    UPLOAD_BUFFER: (frozenset({ANALYST, ADMIN}), "upload files to the buffer"),
    TRIGGER_RUN: (frozenset({ADMIN}), "trigger runs"),
    EDIT_RULES: (frozenset({ADMIN}), "edit rules"),
    EDIT_JOBS: (frozenset({ADMIN}), "edit jobs"),
    EDIT_COLUMNS: (frozenset({ADMIN}), "edit the column configuration"),
    EDIT_NOTIFICATIONS: (frozenset({ADMIN}), "edit email and notifications"),
    EDIT_SETTINGS: (frozenset({ADMIN}), "edit settings"),
    MANAGE_USERS: (frozenset({ADMIN}), "manage users"),
    MANAGE_BACKUPS: (frozenset({ADMIN}), "back up and restore"),
    REVERT: (frozenset({ADMIN}), "revert changes"),
    REPUBLISH: (frozenset({ADMIN}), "publish already published colors again"),
    VIEW_AUDIT: (frozenset({ADMIN}), "read the audit trail"),
    REMOVE_RUNS: (frozenset({ADMIN}), "remove published runs"),
}


@dataclass(frozen=True)
class Actor:
    """The user on whose behalf core acts. sectors/columns None = all (no restriction)."""

    username: str
    role: str
    sectors: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None

    def can(self, permission: str) -> bool:
        roles, _ = PERMISSIONS[permission]
        return self.role in roles


# Until a user logs in (CLI, scheduler, first-run set-up) core acts as the system.
SYSTEM = Actor("system", ADMIN)


def require(actor: Actor, permission: str) -> None:
    """Raise PermissionDenied unless the actor's role holds the permission."""
    if not actor.can(permission):
        raise PermissionDenied(actor.username, PERMISSIONS[permission][1])


def entitled_rows(frame: pd.DataFrame, actor: Actor) -> pd.DataFrame:
    """Only the rows of sectors the actor may see (every read goes through this or its SQL twin)."""
    if actor.sectors is None or SECTOR not in frame.columns:
        return frame
    return frame[frame[SECTOR].isin(list(actor.sectors)).fillna(False)]


def entitled_columns(frame: pd.DataFrame, actor: Actor) -> pd.DataFrame:
    """Drop the columns outside the actor's column profile (kept in frame order)."""
    if actor.columns is None:
        return frame
    allowed = set(actor.columns)
    return frame[[c for c in frame.columns if c in allowed]]


def entitled(frame: pd.DataFrame, actor: Actor) -> pd.DataFrame:
    """Rows and columns the actor may see."""
    return entitled_columns(entitled_rows(frame, actor), actor)
