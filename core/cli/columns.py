"""`python -m core columns ...`: the column configuration from scripts (acting as the system user):
list it, add or remove a header alias, preview how a file's headers map."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core.access import SYSTEM
from core.config import Settings
from core.ingest.columns import add_alias, load_column_config, preview_mapping, remove_alias
from storage import Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("columns", help="list the column configuration, add or remove aliases")
    csub = p.add_subparsers(dest="action", required=True)
    csub.add_parser("list", help="columns with type, flags and aliases")
    for action, words in (("alias", "accept ALIAS as a header for COLUMN"),
                          ("unalias", "stop accepting ALIAS for COLUMN")):
        a = csub.add_parser(action, help=words)
        a.add_argument("column")
        a.add_argument("alias")
    v = csub.add_parser("preview", help="how the headers of a file map to columns")
    v.add_argument("file", type=Path)


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    if args.action == "list":
        print(f"{'COLUMN':20} {'TYPE':9} {'FLAGS':24} {'DISPLAY NAME':22} ALIASES")
        for spec in load_column_config(store):
            flags = ",".join(f for f, on in (("required", spec.required), ("hidden",
                             not spec.visible), ("custom", spec.custom)) if on) or "-"
            print(f"{spec.name:20} {spec.type:9} {flags:24} {spec.display_name:22} "
                  f"{', '.join(spec.aliases)}")
        return 0
    if args.action in ("alias", "unalias"):
        change = add_alias if args.action == "alias" else remove_alias
        specs = change(store, SYSTEM, args.column, args.alias)
        column = next(s for s in specs if s.name.upper() == args.column.strip().upper())
        accepted = ", ".join([column.name, column.display_name, *column.aliases])
        print(f"{column.name} now accepts the headers: {accepted}")
        return 0
    # Local files chosen by the operator: the upload size limit protects the web process only.
    frame = preview_mapping(args.file.read_bytes(), args.file.name, load_column_config(store),
                            settings=settings.override(upload_max_mb=0))
    for header, column, note in frame.itertuples(index=False):
        shown = "(missing)" if pd.isna(header) else str(header)
        print(f"{shown:30} → {column}" + (f"  ({note})" if note else ""))
    return 0
