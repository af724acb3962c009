"""A backup archive is never held whole (DESIGN.md §7: at 10M rows it is hundreds of MB): backup,
listing, verify, preview, import and restore all go through the store's streaming blob calls
(open_blob, put_blob_file), on a real local store that refuses to hand an archive out or take it
in as bytes; a damaged archive is still refused before anything is changed."""

from __future__ import annotations

import io
from typing import Any

import pytest

from core.access import SYSTEM
from core.compliance import backups
from core.compliance.restore import preview_restore, restore_backup
from core.compliance.store_inventory import compare, take_inventory
from core.errors import BackupRefused
from core.rules.exclusion import delete_rule, load_rules
from storage import open_store
from tests.unit.test_backups import BOSS, LATER, NOW, _altered, _desk


class WholeArchivesRefused:
    """A real store that fails any read or write of a backup archive as bytes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_blob(self, key: str) -> bytes:
        assert not key.startswith(backups.BLOB_PREFIX), f"{key} read whole"
        data: bytes = self._inner.get_blob(key)
        return data

    def put_blob(self, key: str, data: bytes) -> None:
        assert not key.startswith(backups.BLOB_PREFIX), f"{key} written whole"
        self._inner.put_blob(key, data)


def test_backup_verify_list_import_and_restore_stream_the_archive(tmp_path):
    store = WholeArchivesRefused(_desk(open_store(str(tmp_path / "desk"))))
    before = take_inventory(store)
    summary = backups.create_backup(store, BOSS, "end of day", now=NOW)
    assert backups.verify_backup(store, BOSS, summary.id).startswith(
        f"backup {summary.id} verified: ")
    # an archive whose summary was never written is listed from its own manifest
    store.delete(backups.index_key(summary.id))
    listed = backups.list_backups(store, BOSS)
    assert [(s.id, s.bytes, s.sha256, s.rows) for s in listed] == [
        (summary.id, summary.bytes, summary.sha256, summary.rows)]

    fresh = WholeArchivesRefused(open_store(str(tmp_path / "fresh")))
    with backups.archive_file(store, BOSS, summary.id) as file:
        assert backups.import_backup(fresh, SYSTEM, file, "desk.zip", now=LATER).id == summary.id
    restore_backup(fresh, BOSS, summary.id, now=LATER)
    assert [p.split(":")[0] for p in compare(before, take_inventory(fresh))] == [
        "document audit/chain_head", f"table audit partition {NOW:%Y-%m}"]  # the restore's own

    rules = sorted(r.name for r in load_rules(store))
    delete_rule(store, BOSS, load_rules(store)[0].id, now=LATER)
    assert preview_restore(store, BOSS, summary.id, ["rules"]).summary() == [
        "rules: 2 added back"]  # the rule and the claim on its name
    restore_backup(store, BOSS, summary.id, ["rules"], now=LATER)
    assert sorted(r.name for r in load_rules(store)) == rules


def test_a_damaged_archive_in_the_backup_area_is_refused_before_anything_changes(tmp_path):
    store = _desk(open_store(str(tmp_path / "desk")))
    summary = backups.create_backup(store, BOSS, "end of day", now=NOW)
    damaged = _altered(backups.archive_bytes(store, BOSS, summary.id), "runs/colors/2.parquet")
    store.put_blob_file(backups.archive_key("damaged"), io.BytesIO(damaged))
    delete_rule(store, BOSS, load_rules(store)[0].id, now=LATER)
    before = take_inventory(store)

    refused = r"^backup damaged: member runs/colors/2.parquet \(rows of run 2 in table colors\) "
    with pytest.raises(BackupRefused, match=refused + "fails its checksum"):
        restore_backup(store, BOSS, "damaged", now=LATER)
    with pytest.raises(BackupRefused, match="fails its checksum"):
        backups.verify_backup(store, BOSS, "damaged")

    assert compare(before, take_inventory(store)) == []
    # no pre-restore backup was taken (the damaged one is listed: its manifest reads fine)
    assert sorted(s.id for s in backups.list_backups(store, BOSS)) == [summary.id, "damaged"]
