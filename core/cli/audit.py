"""`python -m core audit verify`: walk the audit chain (core.audit_chain) and name the first broken
entry; exit 0 when it holds, 1 when it is broken."""

from __future__ import annotations

import argparse

from core import audit_chain
from storage import Store

BROKEN = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify the audit trail's hash chain")
    asub = p.add_subparsers(dest="action", required=True)
    asub.add_parser("verify", help="check every entry's hash and place; name the first broken one")


def run(args: argparse.Namespace, store: Store) -> int:
    verdict = audit_chain.verify(store)
    print(verdict.summary())
    return 0 if verdict.ok else BROKEN
