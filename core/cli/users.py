"""`python -m core users ...`: headless user administration (acting as the system user)."""

from __future__ import annotations

import argparse
import sys

from core.access import ROLES, SYSTEM
from core.errors import InvalidInput
from core.identity.user_records import list_users
from core.identity.users import create_user, reset_password, set_disabled, update_user
from storage import Store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="create and manage users")
    usub = p.add_subparsers(dest="action", required=True)
    c = usub.add_parser("create", help="create a user")
    c.add_argument("username")
    c.add_argument("--role", choices=ROLES, required=True)
    c.add_argument("--name", default="")
    c.add_argument("--email", default="")
    c.add_argument("--sectors", help="comma-separated allowed sectors (default: all)")
    c.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (else a temporary one is printed)")
    usub.add_parser("list", help="list users")
    for action in ("disable", "enable", "reset-password"):
        usub.add_parser(action).add_argument("username")
    r = usub.add_parser("set-role")
    r.add_argument("username")
    r.add_argument("role", choices=ROLES)


def run(args: argparse.Namespace, store: Store) -> int:
    if args.action == "create":
        password = None
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise InvalidInput("password", "nothing was read from standard input")
        sectors = None
        if args.sectors:
            sectors = [s.strip() for s in args.sectors.split(",") if s.strip()]
        user, temporary = create_user(
            store, SYSTEM, args.username, name=args.name, email=args.email, role=args.role,
            sectors=sectors, password=password, temporary=password is None)
        print(f"Created {user.role} {user.username}")
        if temporary:
            print(f"Temporary password (must be changed at first login): {temporary}")
        return 0
    if args.action == "list":
        print(f"{'USERNAME':20} {'ROLE':8} {'STATUS':9} {'SECTORS':30} NAME")
        for user in list_users(store):
            status = "disabled" if user.disabled else (
                "pending" if user.pending_approval else "active")
            shown = "all" if user.sectors is None else ",".join(user.sectors)
            print(f"{user.username:20} {user.role:8} {status:9} {shown:30} {user.name}")
        return 0
    if args.action in ("disable", "enable"):
        user = set_disabled(store, SYSTEM, args.username, args.action == "disable")
        print(f"{user.username} is now {'disabled' if user.disabled else 'enabled'}")
        return 0
    if args.action == "reset-password":
        temporary = reset_password(store, SYSTEM, args.username)
        print(f"Temporary password for {args.username} (must be changed at first login): "
              f"{temporary}")
        return 0
    user = update_user(store, SYSTEM, args.username, role=args.role)
    print(f"{user.username} is now {user.role}")
    return 0
