"""`python -m core search QUERY [--bulk FILE] [--out PATH]` and `python -m core compact`: the search
page's semantics and the layout upkeep, headless (acting as the system user)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from core.access import SYSTEM
from core.compliance.access_log import compact_access_log, log_search
from core.config import Settings
from core.errors import InvalidInput
from core.reads.compaction import compact_colors, plan_compaction
from core.reads.identifiers import read_id_file
from core.reads.search import (
    EXPORT_FORMATS,
    MATCHES,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    TEXT_KINDS,
    SearchQuery,
    export_search,
    filters_group,
    search_colors,
)
from storage import Store

SHOWN = ["RUN_ID", "CUSIP", "TICKER", "SECTOR", "DATE", "BIAS", "RANK", "PX", "SOURCE",
         "MESSAGE_ID", "IS_PARENT"]
# The printed page stays small whatever the cells hold (a stored cell may be huge or hostile):
# cells cut to CELL_WIDTH characters, control characters shown as spaces, at most BULK_SHOWN
# bulk problems listed. --out files keep whole values.
CELL_WIDTH = 60
BULK_SHOWN = 50
_CONTROLS = {c: " " for c in [*range(32), *range(127, 160)]}


def cut(value: object, width: int = CELL_WIDTH) -> str:
    """The value as one terminal-safe line of at most `width` characters (+ "…" when cut)."""
    text = value[:width + 1] if isinstance(value, str) else str(value)[:width + 1]
    text = text.translate(_CONTROLS)
    return text[:width] + "…" if len(text) > width else text


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{cut(text, 20)!r} is not a whole number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is not between {low} and {high:,}")
        return number
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search published colors like the Search page")
    p.add_argument("query", nargs="?", default="", help="a CUSIP, ticker or MESSAGE_ID")
    p.add_argument("--bulk", type=Path, help="ids to look up: .xlsx/.csv (first column or a "
                                             "CUSIP/MESSAGE_ID/TICKER column) or .txt")
    p.add_argument("--out", type=Path, help="write the whole result (.xlsx, .csv or .parquet)")
    p.add_argument("--match", choices=MATCHES, default="prefix",
                   help="how a ticker or MESSAGE_ID matches (a CUSIP always matches exactly)")
    p.add_argument("--kind", choices=TEXT_KINDS, default="auto")
    p.add_argument("--parents-only", action="store_true")
    p.add_argument("--sort", default="RUN_ID")
    p.add_argument("--ascending", action="store_true")
    p.add_argument("--page", type=_whole_number(1, MAX_PAGE), default=1)
    p.add_argument("--page-size", type=_whole_number(1, MAX_PAGE_SIZE), default=20)

    c = sub.add_parser("compact", help="rewrite published colors into a CUSIP-clustered copy "
                                       "when the layout needs it (see bench/search.py)")
    c.add_argument("--force", action="store_true", help="compact even if not needed")
    c.add_argument("--dry-run", action="store_true", help="only say whether it is needed")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    """Run `search` or `compact`; returns the exit code."""
    if args.command == "compact":
        return _compact(args, store)
    bulk = tuple(read_id_file(args.bulk.name, args.bulk.read_bytes())) if args.bulk else ()
    query = SearchQuery(text=args.query, kind=args.kind, match=args.match, bulk=bulk,
                        filters=filters_group(parents_only=args.parents_only), sort=args.sort,
                        descending=not args.ascending, page=args.page, page_size=args.page_size)
    result = search_colors(store, SYSTEM, query)
    log_search(store, SYSTEM, query, result.total_rows)
    if result.total_parents and result.page > result.pages:
        raise InvalidInput("page", f"page {result.page} is past the last page ({result.pages})")
    if result.text is not None:
        # the reason echoes the searched text: cut wider than a cell, still bounded
        reason = f" ({cut(result.text.reason, 200)})" if result.text.reason else ""
        print(f"Searched {result.text.kind} {cut(result.text.value or result.text.text)}{reason}")
    print(f"{result.total_parents} parent group(s), {result.total_rows} row(s); "
          f"page {result.page} of {result.pages}")
    if result.bulk is not None:
        report = result.bulk
        print(f"Bulk: {len(report.matched)} matched, {len(report.unmatched)} unmatched, "
              f"{len(report.mangled)} mangled")
        problems = [e for e in report.entries if e.status != "matched"]
        for entry in problems[:BULK_SHOWN]:
            print(f"  {entry.status:9} {cut(entry.identifier.text)}  {cut(entry.reason, 120)}")
        if len(problems) > BULK_SHOWN:
            print(f"  ... and {len(problems) - BULK_SHOWN} more")
    if len(result.frame):
        shown = result.frame[[c for c in SHOWN if c in result.frame.columns]]
        text = [c for c in shown.columns if not pd.api.types.is_numeric_dtype(shown[c])]
        shown = shown.assign(**{c: shown[c].map(cut) for c in text})
        print(shown.to_string(index=False))
    if args.out:
        fmt = args.out.suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput("output file", f"unsupported suffix {args.out.suffix or '(none)'!r}"
                                              f" in {args.out.name}; use .xlsx, .csv or .parquet")
        args.out.write_bytes(export_search(store, SYSTEM, query, fmt))  # logged by core
        print(f"Wrote {result.total_rows} rows to {args.out}")
    return 0


def _compact(args: argparse.Namespace, store: Store) -> int:
    plan = plan_compaction(store)
    print(f"{'Needed' if plan.needed else 'Not needed'}: {plan.reason}")
    if args.dry_run:
        return 0
    print(f"Access log: merged {compact_access_log(store)} part(s)")
    if not (plan.needed or args.force):
        return 0
    report = compact_colors(store, force=args.force)
    print(f"Compacted {report.runs} run(s), {report.rows:,} rows into {report.files} file(s) "
          f"({report.partition}) in {report.seconds:.1f} s")
    return 0
