"""`sentinel host user add|list|revoke`: host users, one role each, on the host's database."""

from __future__ import annotations

import argparse
import sys
import time

from pydantic import ValidationError

from host.commands import add_database_argument, print_table, with_storage
from host.core.times import from_ms
from host.storage.sql import SqlStorage
from host.storage.users import Role
from host.users import UserCreate, UserRefused, create_user


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = commands.add_parser(
        "add",
        help="add a user and print their token once (only its hash is kept)",
        description="Add a host user with one role. A venue-manager sees only the venues given "
        "with --venue; a screener only the screenings of the --org organisation.",
    )
    add.add_argument("name", help="the user's name, as the audit log will show it")
    add.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="what the user may do (one role each)",
    )
    add.add_argument(
        "--venue",
        action="append",
        default=[],
        metavar="VENUE_ID",
        help="a venue a venue-manager manages (repeat for several)",
    )
    add.add_argument("--org", help="the organisation a screener screens for")
    add_database_argument(add)
    listing = commands.add_parser("list", help="list the users and their roles")
    add_database_argument(listing)
    revoke = commands.add_parser("revoke", help="refuse a user's token from now on")
    revoke.add_argument("name", help="the user's name, as `sentinel host user list` shows it")
    add_database_argument(revoke)


def _when(ms: int | None) -> str:
    return "-" if ms is None else f"{from_ms(ms):%Y-%m-%d %H:%M}Z"


def run(args: argparse.Namespace) -> int:
    return with_storage("user", args.db, lambda storage: _run(args, storage))


def _run(args: argparse.Namespace, storage: SqlStorage) -> int:
    now_ms = int(time.time() * 1000)
    if args.user_command == "add":
        try:
            asked = UserCreate(
                name=args.name, role=Role(args.role), venues=args.venue, org=args.org
            )
            user, token = create_user(storage, asked, now_ms)
        except ValidationError as error:
            problems = "; ".join(
                item["msg"].removeprefix("Value error, ") for item in error.errors()
            )
            print(f"sentinel host user add: {problems}", file=sys.stderr)
            return 2
        except UserRefused as refusal:
            print(f"sentinel host user add: {refusal}", file=sys.stderr)
            return 2
        print(f"user {user.name} ({user.role.value}) added; their token, shown only now:")
        print(token)
        return 0
    if args.user_command == "list":
        users = storage.list_users()
        print_table(
            ("name", "role", "scope", "created", "revoked"),
            [
                (
                    user.name,
                    user.role.value,
                    ", ".join(user.venues) or user.org or "-",
                    _when(user.created_at_ms),
                    _when(user.revoked_at_ms),
                )
                for user in users
            ],
        )
        return 0
    user = storage.revoke_user(args.name, now_ms)
    if user is None:
        print(f"sentinel host user revoke: no user {args.name}", file=sys.stderr)
        return 2
    print(f"user {user.name} revoked: their token is refused from now on")
    return 0
