"""`python -m core buffer add FILE...|list|clear`: the upload buffer from scripts, as the system."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.access import SYSTEM
from core.clock import utc_now
from core.config import Settings
from core.intake import buffer
from storage import Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("buffer", help="queue files for the next run, list or clear the buffer")
    bsub = p.add_subparsers(dest="action", required=True)
    a = bsub.add_parser("add", help="validate files and queue them (none is queued if one is "
                        "unusable)")
    a.add_argument("files", nargs="+", type=Path)
    lst = bsub.add_parser("list", help="the queue (pending and claimed files)")
    lst.add_argument("--all", action="store_true", help="the whole history, every status")
    bsub.add_parser("clear", help="cancel every pending file")


def _print_entries(entries: list[buffer.BufferEntry]) -> None:
    print(f"{'ID':6}  {'STATUS':9} {'UPLOADED':19} {'BY':12} {'ROWS':>5} {'QUAR':>5} "
          f"{'QUALITY':>7}  FILE")
    for e in entries:
        quality = "" if e.quality_score is None else f"{e.quality_score:.1f}"
        by = e.claimed_by if e.status == buffer.CLAIMED else e.uploaded_by
        print(f"{e.id:6}  {e.status:9} {e.uploaded_at[:19].replace('T', ' '):19} {by:12} "
              f"{e.rows:>5} {e.quarantined:>5} {quality:>7}  {e.name}")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    if args.action == "add":
        # Local files chosen by the operator: the upload size limit protects the web process only.
        settings = settings.override(upload_max_mb=0)
        files = [(path.name, path.read_bytes()) for path in args.files]
        entries = buffer.add_files(store, SYSTEM, files, settings, now=utc_now())
        for entry in entries:
            print(f"Queued {entry.name} as {entry.id}: {entry.summary}")
        return 0
    if args.action == "list":
        statuses = None if args.all else (buffer.PENDING, buffer.CLAIMED)
        entries = buffer.list_entries(store, statuses)
        if not entries:
            print("The buffer is empty" if not args.all else "No buffer history")
            return 0
        _print_entries(entries)
        return 0
    cancelled = buffer.clear(store, SYSTEM)
    print(f"Cancelled {len(cancelled)} pending file(s)")
    return 0
