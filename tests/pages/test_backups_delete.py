"""Deleting a backup from the Backups page: Delete… asks for the backup's id to be typed (a deleted
backup cannot be brought back), Keep it cancels, and only the confirmed backup leaves the list and
the store, logged as the admin's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.access import Actor
from core.audit import load_changes
from core.compliance import backups

PAGE = "pages/backups.py"
ZOE = Actor("admin", "admin")
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def _two_backups(app_as, app_store):
    at = app_as("admin", "admin")  # the admin's account first: both backups hold it
    older = backups.create_backup(app_store, ZOE, "monday", now=NOW)
    newer = backups.create_backup(app_store, ZOE, "tuesday", now=NOW + timedelta(days=1))
    at = _ok(at.switch_page(PAGE).run())
    return at, older, newer


def _ok(at):
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    return at


def _listed(at) -> list[str]:
    frame = next(d.value for d in at.dataframe if "WHY" in d.value.columns)
    return frame["WHY"].tolist()


def _stored(app_store) -> list[str]:
    return [s.why for s in backups.list_backups(app_store, ZOE)]


def test_an_admin_deletes_a_backup_after_typing_its_id(app_as, app_store):
    at, older, newer = _two_backups(app_as, app_store)
    assert _listed(at) == ["tuesday", "monday"]
    at = _ok(at.selectbox(key="backups.pick").set_value(older.id).run())
    at = _ok(at.button(key="backups.delete").click().run())
    assert [w.value for w in at.warning] == [
        f"Delete the backup of 2026-03-16 09:00 UTC (manual, {older.bytes / 1024 / 1024:,.1f} "
        "MB)? Its archive leaves the store for good: download it first to keep a copy."]
    assert at.text_input(key="backups.delete_id").label == (
        f"Type the backup's id ({older.id}) to confirm")
    assert at.button(key="backups.delete_confirm").disabled
    at = _ok(at.text_input(key="backups.delete_id").input(newer.id).run())  # not this one's
    assert at.button(key="backups.delete_confirm").disabled
    at = _ok(at.text_input(key="backups.delete_id").input(f" {older.id} ").run())
    assert not at.button(key="backups.delete_confirm").disabled

    at = _ok(at.button(key="backups.delete_confirm").click().run())

    assert [s.value for s in at.success] == [f"Deleted backup {older.id}."]
    assert _listed(at) == ["tuesday"] == _stored(app_store)
    assert app_store.list_blobs(backups.BLOB_PREFIX) == [backups.archive_key(newer.id)]
    assert at.selectbox(key="backups.pick").value == newer.id
    assert [w.value for w in at.warning] == []  # the confirmation went with the backup
    assert load_changes(app_store, area="backups")[["ACTOR", "ACTION", "ENTITY"]
                                                   ].values.tolist()[0] == [
        "admin", "delete", older.id]


def test_nothing_is_deleted_without_the_confirmation(app_as, app_store):
    at, older, newer = _two_backups(app_as, app_store)
    at = _ok(at.button(key="backups.delete").click().run())  # the newest, chosen first
    assert at.text_input(key="backups.delete_id").label.endswith(f"({newer.id}) to confirm")
    at = _ok(at.button(key="backups.delete_cancel").click().run())
    assert [w.value for w in at.warning] == []
    assert "backups.delete_confirm" not in [b.key for b in at.button]
    assert _listed(at) == ["tuesday", "monday"] == _stored(app_store)

    # a confirmation asked for one backup is not one for another
    at = _ok(at.button(key="backups.delete").click().run())
    at = _ok(at.text_input(key="backups.delete_id").input(newer.id).run())
    at = _ok(at.selectbox(key="backups.pick").set_value(older.id).run())
    assert "backups.delete_confirm" not in [b.key for b in at.button]
    at = _ok(at.selectbox(key="backups.pick").set_value(newer.id).run())
    assert at.button(key="backups.delete_confirm").disabled  # asked again, typed again
    assert _stored(app_store) == ["tuesday", "monday"]
    assert load_changes(app_store, area="backups")["ACTION"].tolist() == ["backup", "backup"]
