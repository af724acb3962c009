"""`python -m core store copy --to URL`: copy the configured store (MARKETPULSE_STORE_URL) into
an empty store elsewhere and verify it (core.compliance.store_copy). The source is only read: the
command does not sweep dead runs first, as every other command does."""

from __future__ import annotations

import argparse

from core.access import SYSTEM
from core.compliance.store_copy import copy_store
from core.config import Settings, store_options
from storage import Store, open_store

PROBLEMS_SHOWN = 50


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="copy the store to another (moving a desk)")
    ssub = p.add_subparsers(dest="action", required=True)
    c = ssub.add_parser(
        "copy", help="copy every state document, blob, table and run into an EMPTY store and "
        "verify counts and checksums (stop the app and the scheduler first)")
    c.add_argument("--to", required=True, metavar="URL",
                   help="the target store: a folder, s3://bucket/prefix or a SQLAlchemy URL "
                   "(s3.* settings of the environment apply to it)")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    """Copy, printing progress lines and the summary; exit 2 when the target does not match."""
    target = open_store(args.to, store_options(settings))
    report = copy_store(SYSTEM, store, target, progress=lambda line: print(line, flush=True))
    if not report.verified:
        print(f"error: the copy in {report.target} does not match the source; it stays marked "
              f"incomplete ({len(report.problems)} difference(s)):")
        for line in report.problems[:PROBLEMS_SHOWN]:
            print(f"  {line}")
        if len(report.problems) > PROBLEMS_SHOWN:
            print(f"  ... and {len(report.problems) - PROBLEMS_SHOWN} more")
        return 2
    print(f"Copied and verified: {report.summary()}")
    if report.rebuilt:
        print(f"Derived data rebuilt on the target: {report.rebuilt}")
    if report.unknown:
        print(f"Not copied: {len(report.unknown)} key(s) the catalog does not know "
              "(listed above)")
    print(f"Point MARKETPULSE_STORE_URL at {report.target} to use it; {report.source} is "
          "unchanged")
    return 0
