"""Backups and restore (core.compliance.backups, restore): a desk after a day's work backed up,
wiped and restored arrives whole (every document, blob, table row and run checked by checksum) on
memory, local and S3 stores; a damaged, altered or newer archive is refused naming the problem;
the preview says exactly what a restore changes; one area or one run comes back alone; jobs are
paused meanwhile; only admins may do any of it, and all of it is in the change log."""

from __future__ import annotations

import io
import json
import tomllib
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import core
from core import audit_chain, catalog
from core.__main__ import main
from core.access import ANALYST, SYSTEM, VIEWER, Actor
from core.alerts.email import SmtpConfig, load_smtp_config, save_smtp_config
from core.audit import load_changes
from core.automation.leases import acquire_lease, lease_holder
from core.automation.pause import PAUSE_KEY, current_pause, jobs_paused
from core.automation.scheduler import LEASE, run_once
from core.cli.demo import generate_colors, load_demo
from core.compliance import backups
from core.compliance.backup_archive import FORMAT, MANIFEST
from core.compliance.restore import preview_restore, restore_backup
from core.compliance.restore_areas import AREAS, CLAIM_AREAS, area_of, select
from core.compliance.store_inventory import compare, take_inventory
from core.config import load_settings
from core.errors import BackupRefused, Conflict, InvalidInput, PermissionDenied
from core.identity.user_records import get_user, list_users
from core.identity.users import create_first_admin, create_user
from core.intake import buffer
from core.rules.exclusion import Condition, Group, Rule, delete_rule, load_rules, save_rule
from core.runs.exports import write_csv
from core.runs.pipeline import process_files
from core.schema import INPUT_COLUMNS, SOURCE
from storage import open_store
from storage.run_tables import run_tables

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
BOSS = Actor("ayesha", "admin")
PASSWORD = "correct horse battery 1"


def _csv(seed: int, n: int = 8) -> bytes:
    return write_csv(generate_colors(n, seed=seed, date="2026-03-13")[list(INPUT_COLUMNS)])


def _desk(store: Any) -> Any:
    """A desk after a day's work: demo runs, a rule, two users, a run published through the
    pipeline, a file in the buffer, and the audit trail all of it wrote."""
    settings = load_settings({}, {})
    load_demo(store, settings, days=2, rows_per_day=40, now=NOW)
    create_first_admin(store, "ayesha", "Ayesha", "ayesha@example.com", PASSWORD, now=NOW)
    create_user(store, BOSS, "ann", name="Ann", email="ann@example.com", role=ANALYST,
                password=PASSWORD, temporary=False, now=NOW)
    save_rule(store, BOSS, Rule("No Nomura", Group("and", [
        Condition(SOURCE, "equal_to", "NOMURA")])), now=NOW)
    process_files(store, BOSS, [("desk.csv", _csv(5))], settings=settings, now=NOW)
    buffer.add_files(store, BOSS, [("noon.csv", _csv(6))], settings, now=NOW)
    return store


def _backup(store: Any, why: str = "end of day") -> backups.BackupSummary:
    return backups.create_backup(store, BOSS, why, now=NOW)


def _restored(source: Any, target: Any) -> None:
    """Back the source up, bring the archive to the empty target, restore it all there, and
    check every item by checksum: the target holds the source's state, its audit trail plus the
    restore's own two entries (its pre-restore backup and itself), and the chain holds."""
    before = take_inventory(source)
    summary = _backup(source)
    # a backup only reads the state; the change log says it was made
    assert [p.split(":")[0] for p in compare(before, take_inventory(source))] == [
        "document audit/chain_head", f"table audit partition {NOW:%Y-%m}"]
    imported = backups.import_backup(target, SYSTEM, backups.archive_bytes(
        source, BOSS, summary.id), f"{summary.id}.zip", now=LATER)
    assert imported.id == summary.id

    report = restore_backup(target, BOSS, summary.id, now=LATER)

    assert report.conflicts == []
    after = take_inventory(target)
    audit = f"audit/{NOW:%Y-%m}"
    rows = before.items[("table", audit)].size
    problems = compare(before, after)
    assert [p.split(":")[0] for p in problems] == ["document audit/chain_head",
                                                   f"table audit partition {NOW:%Y-%m}"]
    assert problems[1].endswith(f": {rows} rows in the source, {rows + 2} in the target")
    ours = target.scan("audit").sort_values("SEQ").reset_index(drop=True)
    theirs = source.scan("audit").sort_values("SEQ").reset_index(drop=True)
    n = len(theirs) - 1  # the source's last entry says it was backed up
    pd.testing.assert_frame_equal(ours.head(n), theirs.head(n))
    assert ours["ACTION"].tolist()[n:] == ["backup", "restore"]
    verdict = audit_chain.verify(target)
    assert (verdict.ok, verdict.entries) == (True, audit_chain.verify(source).entries + 1)
    assert [u.username for u in list_users(target)] == ["ann", "ayesha"]


def test_a_desk_backed_up_wiped_and_restored_in_memory_arrives_whole():
    _restored(_desk(open_store("memory://desk")), open_store("memory://fresh"))


def test_a_desk_on_a_folder_restores_into_a_fresh_folder(tmp_path):
    _restored(_desk(open_store(str(tmp_path / "desk"))), open_store(str(tmp_path / "fresh")))


def test_a_folder_desk_restores_into_s3_and_back(local_store, s3_store, tmp_path):
    _restored(_desk(local_store), s3_store)
    _restored(s3_store, open_store(str(tmp_path / "back")))


def test_the_manifest_says_what_who_when_why_and_which_versions():
    store = _desk(open_store("memory://desk"))
    inventory, head = take_inventory(store), audit_chain.head(store)
    summary = _backup(store)
    with backups.open_backup(store, BOSS, summary.id) as archive:
        manifest = archive.manifest
    assert (manifest["created_by"], manifest["why"], manifest["created_at"], manifest["kind"]) == (
        "ayesha", "end of day", NOW.isoformat(), "manual")
    assert (manifest["format"], manifest["schema"], manifest["marketpulse"]) == (
        FORMAT, catalog.SCHEMA_VERSION, "0.1.0")
    assert (manifest["audit_seq"], manifest["audit_hash"]) == head
    assert (summary.documents, summary.blobs, summary.runs) == (
        inventory.count("document"), inventory.count("blob"), 3)
    assert summary.rows == inventory.size("table", "run")
    assert {(i["part"], i["name"]): (i["size"], i["checksum"]) for i in manifest["items"]} == {
        key: (item.size, item.checksum) for key, item in inventory.items.items()}
    # derived data and the backup area itself are never in a backup
    assert not [i for i in manifest["items"] if i["name"].startswith(("backups/", "meta/",
                                                                      "colors_compact"))]
    assert backups.list_backups(store, BOSS) == [summary]
    assert load_changes(store, area="backups")[["ACTOR", "ACTION", "ENTITY", "DETAIL"]
                                               ].values.tolist() == [
        ["ayesha", "backup", summary.id, "end of day"]]


def test_verify_passes_a_good_backup_and_names_the_first_altered_item():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    with backups.open_backup(store, BOSS, summary.id) as archive:
        count = len(archive.members)
    assert backups.verify_backup(store, BOSS, summary.id) == (
        f"backup {summary.id} verified: {count} items ({summary.items()}) match their checksums")
    rule = next(k for k in store.list("rules/"))
    store.put_blob(backups.archive_key(summary.id), _altered(
        backups.archive_bytes(store, BOSS, summary.id), f"documents/{rule}.json"))
    with pytest.raises(BackupRefused) as refused:
        backups.verify_backup(store, BOSS, summary.id)
    assert str(refused.value) == (
        f"backup {summary.id}: member documents/{rule}.json (document {rule}) fails its checksum: "
        "the archive was changed or damaged")


def _altered(data: bytes, member: str, change: Any = None) -> bytes:
    """The archive with one byte of one member changed (a well-formed zip around it), or the
    member's bytes replaced by change(bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename == member:
                body = change(body) if change else bytes([body[0] ^ 1]) + body[1:]
            zout.writestr(info, body)
    return out.getvalue()


def test_a_corrupted_archive_is_refused_before_anything_is_restored():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    data = backups.archive_bytes(store, BOSS, summary.id)
    fresh = open_store("memory://fresh")
    # one byte flipped in the file itself: the zip's own check names the member
    stored = next(i for i in zipfile.ZipFile(io.BytesIO(data)).infolist()
                  if i.filename == "runs/colors/2.parquet")
    at = stored.header_offset + 30 + len(stored.filename) + len(stored.extra) + 100
    flipped = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
    with pytest.raises(BackupRefused, match=r"^flipped.zip: member runs/colors/2.parquet is "
                                            r"damaged \(Bad CRC-32"):
        backups.import_backup(fresh, SYSTEM, flipped, "flipped.zip")
    # one byte changed in a well-formed archive: the member's checksum names it
    with pytest.raises(BackupRefused, match=r"^edited.zip: member runs/colors/2.parquet \(rows of "
                                            r"run 2 in table colors\) fails its checksum"):
        backups.import_backup(fresh, SYSTEM, _altered(data, "runs/colors/2.parquet"), "edited.zip")
    # and one restored from the backup area is refused the same way, the store untouched
    fresh.put_blob(backups.archive_key("x"), _altered(data, "runs/colors/2.parquet"))
    with pytest.raises(BackupRefused, match="fails its checksum"):
        restore_backup(fresh, BOSS, "x", now=LATER)
    assert (fresh.list(""), fresh.list_blobs("")) == ([], ["backups/x.zip"])


def _manifest(change: Any) -> Any:
    def edit(body: bytes) -> bytes:
        manifest = json.loads(body)
        change(manifest)
        return json.dumps(manifest).encode()
    return edit


def test_an_archive_of_a_newer_format_or_schema_is_refused_with_what_to_do():
    store = _desk(open_store("memory://desk"))
    data = backups.archive_bytes(store, BOSS, _backup(store).id)
    newer = _altered(data, MANIFEST, _manifest(lambda m: m.update(format=FORMAT + 1,
                                                                  marketpulse="9.0")))
    with pytest.raises(BackupRefused) as refused:
        backups.import_backup(open_store("memory://fresh"), SYSTEM, newer, "new.zip")
    assert str(refused.value) == (
        f"new.zip: it was made by MarketPulse 9.0 (archive format {FORMAT + 1}, store schema "
        f"{catalog.SCHEMA_VERSION}); this MarketPulse 0.1.0 reads format {FORMAT} and schema "
        f"{catalog.SCHEMA_VERSION} at most: upgrade MarketPulse, then restore")
    newer = _altered(data, MANIFEST, _manifest(lambda m: m.update(schema=99)))
    with pytest.raises(BackupRefused, match="store schema 99"):
        backups.import_backup(open_store("memory://fresh"), SYSTEM, newer, "new.zip")


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "not in the manifest"),
    ("documents/extra.json", "member documents/extra.json is not in the manifest"),
])
def test_a_hostile_archive_is_refused_from_its_directory(name, expected):
    store = _desk(open_store("memory://desk"))
    data = backups.archive_bytes(store, BOSS, _backup(store).id)
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr(name, b"x")
    with pytest.raises(BackupRefused, match=expected):
        backups.import_backup(open_store("memory://fresh"), SYSTEM, out.getvalue(), "h.zip")


def test_a_manifest_naming_a_path_outside_the_store_or_a_zip_bomb_is_refused():
    store = _desk(open_store("memory://desk"))
    data = backups.archive_bytes(store, BOSS, _backup(store).id)

    def escape(manifest: dict) -> None:
        manifest["items"][0]["name"] = "../outside"
    with pytest.raises(BackupRefused, match="its manifest names an item that cannot be restored"):
        backups.import_backup(open_store("memory://f"), SYSTEM,
                              _altered(data, MANIFEST, _manifest(escape)), "h.zip")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b"{}")
        z.writestr("blobs/big", b"\0" * (50 << 20))
    with pytest.raises(BackupRefused, match=r"member blobs/big unpacks 52,428,800 bytes out of "
                                            r"[\d,]+: a zip bomb, not a backup"):
        backups.import_backup(open_store("memory://f"), SYSTEM, bomb.getvalue(), "bomb.zip")
    with pytest.raises(BackupRefused, match="not a readable zip"):
        backups.import_backup(open_store("memory://f"), SYSTEM, b"PK\x03\x04 junk", "junk.zip")


def _break_things(store: Any) -> None:
    """After the backup: a rule deleted, a user created, the SMTP server set, a run published."""
    rule = next(r for r in load_rules(store) if r.name == "No Nomura")
    delete_rule(store, BOSS, rule.id, now=LATER)
    create_user(store, BOSS, "bob", name="Bob", email="bob@example.com", role=VIEWER,
                password=PASSWORD, temporary=False, now=LATER)
    save_smtp_config(store, BOSS, SmtpConfig(host="smtp.example.com", sender="mp@example.com"),
                     expected_version=None)
    process_files(store, BOSS, [("late.csv", _csv(9))], settings=load_settings({}, {}),
                  now=LATER)


def test_the_preview_says_exactly_what_a_restore_changes():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    _break_things(store)

    plan = preview_restore(store, BOSS, summary.id, ["rules", "users", "settings", "runs"])

    assert [c.line() for c in plan.changes if c.part != "run"] == [
        "runs: removed: blob outputs/run-00000004.xlsx",
        "rules: added back: document claims/rules/" + plan.changes[1].name.split("/")[-1],
        "settings: removed: document config/smtp",
        "rules: added back: rule 'No Nomura'",
        "runs: removed: run record 4",
        "runs: changed: document sequences/run_id",
        "users: removed: user bob",
    ]
    assert [c.line() for c in plan.changes if c.part == "run"] == [
        "runs: removed: rows of run 4 in table colors"]
    assert plan.summary() == ["rules: 2 added back", "runs: 1 changed, 3 removed",
                              "settings: 1 removed", "users: 1 removed"]
    assert plan.notes == []
    assert preview_restore(store, Actor("bob", "admin"), summary.id, ["users"]).notes == [
        "users: your own account (bob) is not in the backup: the restore removes it and signs "
        "you out"]
    # a preview changes nothing
    assert [u.username for u in list_users(store)] == ["ann", "ayesha", "bob"]


def test_restoring_one_area_leaves_the_others_as_they_are():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    _break_things(store)
    smtp = load_smtp_config(store)

    report = restore_backup(store, BOSS, summary.id, ["rules"], now=LATER)

    assert sorted(r.name for r in load_rules(store)) == ["Low-confidence valuations", "No Nomura"]
    assert get_user(store, "bob").username == "bob"
    assert load_smtp_config(store) == smtp
    assert run_tables(store).runs() == [1, 2, 3, 4]
    assert report.applied == 2
    assert preview_restore(store, BOSS, summary.id, ["rules"]).summary() == [
        f"nothing to change: the store already matches backup {summary.id} in rules"]
    # the pre-restore backup holds the state before, rule deleted
    with backups.open_backup(store, BOSS, report.pre_restore_id) as pre:
        manifest = pre.manifest
    assert manifest["kind"] == "pre-restore"
    assert manifest["why"] == f"before restoring backup {summary.id}"
    nomura = next(r for r in load_rules(store) if r.name == "No Nomura")
    assert f"rules/{nomura.id}" not in [i["name"] for i in manifest["items"]]
    changes = load_changes(store, area="backups")
    assert changes[["ACTION", "ENTITY"]].values.tolist() == [
        ["restore", summary.id], ["backup", report.pre_restore_id], ["backup", summary.id]]
    assert changes["DETAIL"].iloc[0] == report.summary()
    # and the audit trail, which continues the backup's, was kept as it is
    assert audit_chain.verify(store).ok


def test_restoring_everything_brings_the_backup_back_and_keeps_the_trail():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    at_backup = take_inventory(store)
    _break_things(store)

    report = restore_backup(store, BOSS, summary.id, now=LATER)

    assert report.plan.notes[0].startswith("audit: kept as it is: the store has its own audit "
                                           "trail and email log")
    problems = compare(at_backup, take_inventory(store))
    # the trail goes on: the entries since the backup are kept (some at the real clock's month)
    assert {p.split(":")[0] for p in problems} == {
        "document audit/chain_head", f"table audit partition {NOW:%Y-%m}",
        f"table audit partition {datetime.now(UTC):%Y-%m}"}
    assert audit_chain.verify(store).ok
    assert run_tables(store).runs() == [1, 2, 3]


def test_one_run_can_be_restored_alone():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    rows = run_tables(store).read("colors", [2])
    run_tables(store).remove_run(2)
    store.delete("runs/00000002")
    rule = next(r for r in load_rules(store) if r.name == "No Nomura")
    delete_rule(store, BOSS, rule.id, now=LATER)

    report = restore_backup(store, BOSS, summary.id, ["run:2"], now=LATER)

    assert [c.line() for c in report.plan.changes] == [
        "runs: added back: run record 2", "runs: added back: rows of run 2 in table colors",
        "runs: added back: rows of run 2 in table quarantined"]
    assert run_tables(store).read("colors", [2]).equals(rows)
    assert "No Nomura" not in [r.name for r in load_rules(store)]


def test_every_state_entry_belongs_to_exactly_one_area():
    held = [e for _, entries in AREAS.values() for e in entries]
    state = [e for e in catalog.state_entries() if e is not catalog.CLAIMS]
    assert sorted(e.key for e in held) == sorted(e.key for e in state)
    assert len(held) == len(set(held))
    assert {area_of("document", f"claims/{kind}/x") for kind in CLAIM_AREAS} == {
        "rules", "jobs", "users"}
    assert area_of("document", "claims/first-admin") == "users"
    assert area_of("run", "colors/3") == "runs"
    with pytest.raises(InvalidInput, match="'rulez' is not an area"):
        select(["rulez"])


@pytest.mark.parametrize("role", [VIEWER, ANALYST])
def test_only_admins_may_back_up_or_restore(role):
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    someone = Actor("sam", role)
    for call in (lambda: backups.create_backup(store, someone),
                 lambda: backups.list_backups(store, someone),
                 lambda: backups.verify_backup(store, someone, summary.id),
                 lambda: backups.download_backup(store, someone, summary.id),
                 lambda: backups.import_backup(store, someone, b"", "x.zip"),
                 lambda: backups.delete_backup(store, someone, summary.id),
                 lambda: preview_restore(store, someone, summary.id),
                 lambda: restore_backup(store, someone, summary.id)):
        with pytest.raises(PermissionDenied):
            call()
    assert [s.id for s in backups.list_backups(store, BOSS)] == [summary.id]


def test_a_restore_pauses_jobs_and_the_scheduler_lets_go_of_its_lease():
    store = _desk(open_store("memory://desk"))
    settings = load_settings({}, {})
    summary = _backup(store)
    now = datetime.now(UTC)
    assert acquire_lease(store, LEASE, "sched-a", 30, now)
    # a scheduler that holds the lease (a run in progress) makes a restore wait, then give up
    with pytest.raises(Conflict, match=r"^the scheduler \(sched-a\) is still running jobs after "
                                       r"0 s; try again when it ends$"):
        restore_backup(store, BOSS, summary.id, now=LATER, wait_s=0)
    assert current_pause(store, now) is None  # the pause was withdrawn
    # paused (a restore waiting): the scheduler's next step starts nothing and lets the lease go
    store.put(PAUSE_KEY, {"owner": "restore:x", "reason": "ayesha is restoring backup 1",
                          "until": (now + timedelta(seconds=30)).isoformat()}, None)
    assert run_once(store, settings, now, owner="sched-a") == []
    assert lease_holder(store, LEASE, now) is None
    assert store.get(catalog.HEARTBEAT.key)[0]["paused"]["reason"] == (
        "ayesha is restoring backup 1")
    with jobs_paused(store, "restore:x", "restoring", ttl_s=30, wait_s=0) as done:
        assert done == "jobs paused and the scheduler lease held"
        assert lease_holder(store, LEASE, datetime.now(UTC))[0] == "restore:x"
        assert run_once(store, settings, datetime.now(UTC), owner="sched-a") == []
    assert lease_holder(store, LEASE, datetime.now(UTC)) is None
    assert store.list(PAUSE_KEY) == []


def test_an_imported_archive_is_kept_once_and_can_be_downloaded_and_deleted():
    store = _desk(open_store("memory://desk"))
    summary = _backup(store)
    data = backups.download_backup(store, BOSS, summary.id, now=NOW)
    fresh = open_store("memory://fresh")
    first = backups.import_backup(fresh, BOSS, data, "desk.zip", now=LATER)
    again = backups.import_backup(fresh, BOSS, data, "desk.zip", now=LATER)
    assert (first.id, again.id, first.origin) == (
        summary.id, summary.id, f"desk.zip, uploaded by ayesha at {LATER.isoformat()}")
    backups.delete_backup(fresh, BOSS, first.id, now=LATER)
    assert (backups.list_backups(fresh, BOSS), fresh.list_blobs("backups/")) == ([], [])
    assert load_changes(fresh, area="backups")[["ACTION", "ENTITY"]].values.tolist() == [
        ["delete", summary.id], ["import", summary.id]]


def test_the_version_in_every_manifest_is_the_package_version():
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert core.__version__ == project["project"]["version"]


def test_the_cli_backs_up_lists_verifies_previews_and_restores(tmp_path, monkeypatch, capsys):
    source = _desk(open_store(str(tmp_path / "desk")))
    monkeypatch.setenv("MARKETPULSE_STORE_URL", source.url)
    assert main(["backup", "--why", "before the upgrade"]) == 0
    out = capsys.readouterr().out.splitlines()
    (summary,) = backups.list_backups(source, BOSS)
    assert out[-1] == (f"Backup {summary.id}: {summary.items()}; {summary.bytes:,} bytes in "
                       f"{summary.seconds:.1f} s (audit chain head {summary.audit_seq} "
                       f"{summary.audit_hash[:16]}…)")
    assert main(["backups"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].split()[:5] == [summary.id, summary.created_at[:10],
                                     summary.created_at[11:19], "system", "manual"]
    assert listed[1].endswith("  before the upgrade")
    assert main(["backup", "verify", summary.id]) == 0
    assert capsys.readouterr().out.endswith("match their checksums\n")
    assert main(["backup", "download", summary.id, "--out", str(tmp_path / "b.zip")]) == 0
    capsys.readouterr()

    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(tmp_path / "fresh"))
    assert main(["restore", str(tmp_path / "b.zip"), "--areas", "rules", "--preview"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == [f"Restoring rules from backup {summary.id} would change:",
                        "  rules: 4 added back"]
    assert sorted(line for line in out[3:] if "claims" not in line) == [
        "    rules: added back: rule 'Low-confidence valuations'",
        "    rules: added back: rule 'No Nomura'"]
    assert main(["restore", summary.id]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith(f"Restored everything from backup {summary.id}: ")
    assert out[-1].startswith("Derived data rebuilt: compaction: 3 runs")
    assert main(["restore", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no backup 'nope' in ")


@pytest.mark.parametrize("backend", ["sqlite_store", "postgres_store"])
def test_a_folder_desk_restores_into_a_sql_store_and_back(local_store, backend, request,
                                                          tmp_path):
    sql = request.getfixturevalue(backend)
    _restored(_desk(local_store), sql)
    _restored(sql, open_store(str(tmp_path / "back")))
