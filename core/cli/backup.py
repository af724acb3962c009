"""`python -m core backup [--why TEXT]`, `backup verify|download|delete ID`, `backups` and
`restore ID|FILE [--areas ...] [--preview]`: backups and restore from the command line, as the
system user (core.compliance.backups, core.compliance.restore)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.access import SYSTEM
from core.compliance import backups
from core.compliance.restore import preview_restore, restore_backup
from core.compliance.restore_plan import area_names
from core.config import Settings
from storage import Store

CHANGES_SHOWN = 200


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back the store up (or verify, download, delete a backup)")
    p.add_argument("--why", default="", help="the reason, kept with the backup")
    bsub = p.add_subparsers(dest="action")
    v = bsub.add_parser("verify", help="re-read a backup and re-check every checksum")
    v.add_argument("id")
    d = bsub.add_parser("download", help="write a backup's archive to a file")
    d.add_argument("id")
    d.add_argument("--out", type=Path, required=True)
    r = bsub.add_parser("delete", help="remove a backup from the backup area")
    r.add_argument("id")

    sub.add_parser("backups", help="list the backups in the store's backup area")

    areas = "; ".join(f"{name}: {what}" for name, what in area_names())
    r = sub.add_parser("restore", help="restore a backup (all, some areas, or one run)")
    r.add_argument("id", help="a backup id (see `backups`) or a backup .zip file to import first")
    r.add_argument("--areas", nargs="+", metavar="AREA",
                   help=f"only these areas, or run:<id> for one run (default: all). {areas}")
    r.add_argument("--preview", action="store_true", help="only say what would change")
    r.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                   help="how long to wait for a job run in progress (default 600)")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    say = _say
    if args.command == "backups":
        return _list(store)
    if args.command == "restore":
        return _restore(args, store, settings)
    if args.action == "verify":
        print(backups.verify_backup(store, SYSTEM, args.id, progress=say))
        return 0
    if args.action == "download":
        data = backups.download_backup(store, SYSTEM, args.id)
        args.out.write_bytes(data)
        print(f"Wrote backup {args.id} ({len(data):,} bytes) to {args.out}")
        return 0
    if args.action == "delete":
        backups.delete_backup(store, SYSTEM, args.id)
        print(f"Deleted backup {args.id}")
        return 0
    summary = backups.create_backup(store, SYSTEM, args.why, progress=say)
    print(f"Backup {summary.id}: {summary.items()}; {summary.bytes:,} bytes in "
          f"{summary.seconds:.1f} s (audit chain head {summary.audit_seq} "
          f"{summary.audit_hash[:16]}…)")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _list(store: Store) -> int:
    print(f"{'ID':24} {'WHEN (UTC)':19} {'BY':12} {'KIND':11} {'SIZE':>13} {'SECONDS':>7} "
          f"{'RUNS':>5} {'ROWS':>11}  WHY")
    for s in backups.list_backups(store, SYSTEM):
        print(f"{s.id:24} {s.created_at[:19].replace('T', ' '):19} {s.created_by:12} "
              f"{s.kind:11} {s.bytes:>13,} {s.seconds:>7.1f} {s.runs:>5} {s.rows:>11,}  {s.why}")
    return 0


def _restore(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    backup_id = args.id
    path = Path(args.id)
    if path.suffix == ".zip" and path.is_file():
        with path.open("rb") as file:  # read a member at a time, never whole
            summary = backups.import_backup(store, SYSTEM, file, path.name)
        print(f"Imported {path} as backup {summary.id} ({summary.items()})")
        backup_id = summary.id
    if args.preview:
        plan = preview_restore(store, SYSTEM, backup_id, args.areas)
        print(f"Restoring {plan.selection.describe()} from backup {backup_id} would change:")
        for line in plan.summary() + plan.notes:
            print(f"  {line}")
        for change in plan.changes[:CHANGES_SHOWN]:
            print(f"    {change.line()}")
        if len(plan.changes) > CHANGES_SHOWN:
            print(f"    ... and {len(plan.changes) - CHANGES_SHOWN} more")
        return 0
    report = restore_backup(store, SYSTEM, backup_id, args.areas, progress=_say,
                            lease_s=float(settings["scheduler.lease_seconds"]), wait_s=args.wait)
    for line in report.conflicts:
        print(f"  kept: {line}")
    print(report.summary())
    if report.rebuilt:
        print(f"Derived data rebuilt: {report.rebuilt}")
    return 0
