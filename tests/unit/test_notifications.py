"""In-app notifications: who gets them, unread counts, newest first, mark read, run events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.access import SYSTEM
from core.alerts import bell as notifications
from core.alerts.bell import (
    BUFFER_PROCESSED,
    RUN_FAILED,
    RUN_FINISHED,
    Notification,
    list_notifications,
    mark_read,
    notify_buffer_processed,
    notify_run_finished,
    notify_users,
    unread_count,
)
from core.errors import InvalidInput
from core.identity import passwords
from core.identity.users import create_first_admin, create_user, set_disabled
from core.runs.records import RunRecord

NOW = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)


@pytest.fixture
def people(memory_store, monkeypatch):
    """Admins root and ada (and a disabled admin), analyst ana, viewer vic."""
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    create_first_admin(memory_store, "root", "Root", "root@desk.test", "correct horse battery")
    for username, role in (("ada", "admin"), ("old", "admin"), ("ana", "analyst"),
                           ("vic", "viewer")):
        create_user(memory_store, SYSTEM, username, name=username.title(),
                    email=f"{username}@desk.test", role=role, password="correct horse battery")
    set_disabled(memory_store, SYSTEM, "old", True)
    return memory_store


def test_admins_and_all_name_the_enabled_accounts(people):
    assert notify_users(people, "admins", RUN_FINISHED, "t", "b", NOW) == ["ada", "root"]
    assert notify_users(people, "all", RUN_FINISHED, "t", "b", NOW) == ["ada", "ana", "root",
                                                                         "vic"]
    assert notify_users(people, ["ANA", "ghost", "ana"], RUN_FINISHED, "t", "b", NOW) == ["ana"]
    assert [unread_count(people, u) for u in ("root", "ana", "vic", "old", "ghost")] == [
        2, 2, 1, 0, 0]


def test_notifications_list_newest_first_and_mark_read_lowers_the_count(people):
    for minute in range(3):
        notify_users(people, ["ana"], RUN_FINISHED, f"Run {minute}", "body",
                     NOW + timedelta(minutes=minute), notification_id=f"n{minute}")
    assert [n.id for n in list_notifications(people, "ana")] == ["n2", "n1", "n0"]
    assert list_notifications(people, "ana", limit=1) == [Notification(
        id="n2", kind=RUN_FINISHED, title="Run 2", body="body",
        at="2026-03-13T09:32:00+00:00", read=False, run_id=None)]

    assert mark_read(people, "ana", ["n0", "n2", "unknown"]) == 2
    assert unread_count(people, "ana") == 1
    assert [n.id for n in list_notifications(people, "ana", unread_only=True)] == ["n1"]
    assert mark_read(people, "ana", ["n0"]) == 0
    assert mark_read(people, "ana", "all") == 1
    assert unread_count(people, "ana") == 0
    assert unread_count(people, "vic") == 0  # other users are untouched


def test_the_same_event_shows_once(people):
    assert notify_users(people, ["ana"], RUN_FINISHED, "t", "b", NOW, notification_id="x") == [
        "ana"]
    assert notify_users(people, ["ana"], RUN_FINISHED, "t", "b", NOW, notification_id="x") == []
    assert unread_count(people, "ana") == 1


def test_old_notifications_drop_off(people, monkeypatch):
    monkeypatch.setattr(notifications, "KEEP", 3)
    for i in range(5):
        notify_users(people, ["vic"], RUN_FINISHED, f"n{i}", "", NOW, notification_id=f"n{i}")
    assert [n.id for n in list_notifications(people, "vic")] == ["n4", "n3", "n2"]


def test_a_finished_run_tells_the_admins_and_who_ran_it(people):
    record = RunRecord(run_id=7, kind="MANUAL", trigger="manual_save", actor="ana",
                       status="success", duration_s=2.5, job="",
                       counts={"published": 12, "parents": 4, "excluded": 3, "quarantined": 1})
    assert notify_run_finished(people, record, NOW) == ["ada", "root", "ana"]
    assert list_notifications(people, "ana") == [Notification(
        id="run-00000007-success", kind=RUN_FINISHED, title="Run 7 (manual) published 12 colors",
        body="4 parents, 3 excluded, 1 quarantined in 2.5 s.", at=NOW.isoformat(), run_id=7)]
    assert notify_run_finished(people, record, NOW) == []  # announced once
    assert unread_count(people, "vic") == 0


def test_a_failed_scheduled_run_tells_the_admins_with_the_error(people):
    record = RunRecord(run_id=8, kind="AUTOMATED", trigger="scheduled", actor="system",
                       status="failed", job="desk 09:30", error="inbox /x does not exist")
    assert notify_run_finished(people, record, NOW) == ["ada", "root"]
    [note] = list_notifications(people, "root")
    assert (note.kind, note.title, note.body) == (
        RUN_FAILED, "Run 8 (desk 09:30) failed", "inbox /x does not exist")


def test_the_uploader_hears_when_buffered_files_are_processed(people):
    assert notify_buffer_processed(people, "ana", ["a.xlsx", "b.csv"], 9, NOW) == ["ana"]
    [note] = list_notifications(people, "ana")
    assert (note.kind, note.title, note.body, note.run_id) == (
        BUFFER_PROCESSED, "2 buffered file(s) processed in run 9", "a.xlsx, b.csv", 9)


@pytest.mark.parametrize(("audience", "kind", "title", "message"), [
    ("everyone", RUN_FINISHED, "t", "usernames: give a list"),
    (["ana"], "Run Finished", "t", "kind: use lower-case"),
    (["ana"], RUN_FINISHED, "  ", "title: a notification needs a title"),
])
def test_bad_notifications_are_refused(people, audience, kind, title, message):
    with pytest.raises(InvalidInput, match=f"^{message}"):
        notify_users(people, audience, kind, title, "", NOW)
