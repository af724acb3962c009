"""Backups page (admins): back up now with a reason, the list with who, why, size and counts, a
download made and logged on the click, verify, restore of chosen areas after a preview and a
confirmation, an uploaded archive added; viewers and analysts cannot open it and core refuses
their calls."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.access import Actor
from core.compliance import backups
from core.compliance.access_log import load_access_log
from core.compliance.backup_schedule import load_backup_schedule
from core.errors import PermissionDenied
from core.rules.exclusion import Condition, Group, Rule, delete_rule, load_rules, save_rule
from core.schema import SOURCE
from tests.pages.test_search_page import recording_media

PAGE = "pages/backups.py"
ZOE = Actor("admin", "admin")


@pytest.fixture
def served(monkeypatch):
    return recording_media(monkeypatch)


def _page(app_as):
    at = app_as("admin", "admin", page=PAGE)
    assert not at.exception
    assert [t.value for t in at.title] == ["Backups"]
    return at


def _listed(at) -> list[list]:
    frame = next(d.value for d in at.dataframe if "WHY" in d.value.columns)
    return frame[["BY", "KIND", "WHY"]].values.tolist()


def _backed_up(app_as, app_store, why: str = "before the change"):
    at = _page(app_as)
    at.text_input(key="backups.why").input(why)
    at.button(key="backups.create").click().run()
    assert not at.exception
    (made,) = backups.list_backups(app_store, ZOE)
    assert [s.value for s in at.success] == [
        f"Backup {made.id} made: {made.items()}, {made.bytes / 1024 / 1024:,.1f} MB in "
        f"{made.seconds:.1f} s."]
    return at, made


def test_an_admin_backs_up_now_and_sees_it_listed(app_as, app_store):
    at = _page(app_as)
    assert [i.value for i in at.info] == [
        "No backups yet: Back up now makes the first, or add an archive below."]
    at, made = _backed_up(app_as, app_store)
    assert _listed(at) == [["admin", "manual", "before the change"]]
    frame = next(d.value for d in at.dataframe if "WHY" in d.value.columns)
    assert frame[["DOCUMENTS", "RUNS", "ROWS", "ID"]].values.tolist() == [
        [made.documents, 0, made.rows, made.id]]


def test_a_backup_downloads_as_its_archive_and_the_download_is_logged(app_as, app_store,
                                                                      served):
    at, made = _backed_up(app_as, app_store)
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Download (.zip)"]
    data, name = served(button)
    assert name == f"marketpulse-backup-{made.id}.zip"
    assert data == backups.archive_bytes(app_store, ZOE, made.id)
    assert load_access_log(app_store, action="export")[["ACTOR", "WHAT", "DETAIL"]
                                                        ].values.tolist() == [
        ["admin", f"backup {made.id}", "zip"]]


def test_verify_says_it_holds_or_names_the_damaged_item(app_as, app_store):
    at, made = _backed_up(app_as, app_store)
    at.button(key="backups.verify").click().run()
    assert [s.value for s in at.success][-1] == backups.verify_backup(app_store, ZOE, made.id)
    data = backups.archive_bytes(app_store, ZOE, made.id)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            zout.writestr(info, body.replace(b'"admin"', b'"admiN"')
                          if info.filename == "documents/users/admin.json" else body)
    app_store.put_blob(backups.archive_key(made.id), out.getvalue())
    at.button(key="backups.verify").click().run()
    assert [e.value for e in at.error] == [
        f"backup {made.id}: member documents/users/admin.json (document users/admin) fails its "
        "checksum: the archive was changed or damaged"]


def test_restore_previews_then_restores_only_the_chosen_areas(app_as, app_store):
    rule = save_rule(app_store, ZOE, Rule("No Nomura", Group("and", [
        Condition(SOURCE, "equal_to", "NOMURA")])))
    at, made = _backed_up(app_as, app_store)
    delete_rule(app_store, ZOE, rule.id)
    for name in ("users", "jobs", "settings", "runs", "buffer", "sessions", "searches",
                 "alerts", "audit"):
        at.checkbox(key=f"backups.area.{name}").uncheck()
    at.button(key="backups.preview").click().run()
    assert [m.value for m in at.markdown][-2:] == ["**What the restore changes**",
                                                   "- rules: 2 added back"]
    changes = next(d.value for d in at.dataframe if "CHANGE" in d.value.columns)
    assert sorted(changes["WHAT"].tolist())[-1] == "rule 'No Nomura'"
    assert [w.value for w in at.warning] == [
        f"Restore rules from the backup of {made.created_at[:16].replace('T', ' ')} UTC?"]
    assert [r.name for r in load_rules(app_store)] == []  # a preview changes nothing

    at.button(key="backups.confirm").click().run()

    assert not at.exception
    assert [r.name for r in load_rules(app_store)] == ["No Nomura"]
    assert at.success[0].value.startswith(f"Restored rules from backup {made.id}: 2 items "
                                          "changed, ")
    assert [s[1] for s in _listed(at)] == ["pre-restore", "manual"]


def test_an_uploaded_archive_is_checked_and_added_to_restore_from(app_as, app_store):
    at, made = _backed_up(app_as, app_store)
    data = backups.archive_bytes(app_store, ZOE, made.id)
    backups.delete_backup(app_store, ZOE, made.id)
    at.run()
    (uploader,) = [u for u in at.file_uploader if u.key.startswith("backups.upload")]
    at = uploader.set_value([("desk.zip", data, "application/zip")]).run()
    at.button(key="backups.import").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        f"desk.zip checked and added as backup {made.id} ({made.items()}); choose it above to "
        "restore it."]
    assert at.selectbox(key="backups.pick").value == made.id
    (uploader,) = [u for u in at.file_uploader if u.key.startswith("backups.upload")]
    at = uploader.set_value([("junk.zip", b"PK not a zip", "application/zip")]).run()
    at.button(key="backups.import").click().run()
    (error,) = [e.value for e in at.error]
    assert error.startswith(
        "Adding junk.zip: junk.zip: it is not a MarketPulse backup (not a readable zip")


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_backups_are_for_admins_only(app_as, app_store, role):
    at = app_as(role, role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
    someone = Actor(role, role)
    with pytest.raises(PermissionDenied):
        backups.create_backup(app_store, someone, "mine")
    with pytest.raises(PermissionDenied):
        backups.list_backups(app_store, someone)


def test_the_backup_schedule_is_saved_from_the_page(app_as, app_store):
    at = _page(app_as)
    at.checkbox(key="backups.sched.active").check()
    at.text_input(key="backups.sched.cron").input("30 1 * * 1-5")
    at.text_input(key="backups.sched.tz").input("UTC")
    at.number_input(key="backups.sched.daily").set_value(5)
    next(b for b in at.button if b.label == "Save the schedule").click().run()
    assert not at.exception
    saved, _ = load_backup_schedule(app_store)
    assert (saved.active, saved.schedule, saved.timezone, saved.keep_daily, saved.keep_weekly,
            saved.updated_by) == (True, "30 1 * * 1-5", "UTC", 5, 4, "admin")
    at.text_input(key="backups.sched.cron").input("99 1 * * *")
    next(b for b in at.button if b.label == "Save the schedule").click().run()
    assert [e.value for e in at.error] == [
        "Saving the schedule: schedule: '99 1 \\* \\* \\*' is not a valid cron expression "
        "(minute 0-59, hour 0-23, day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat)"]
