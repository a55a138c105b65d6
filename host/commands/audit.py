"""`sentinel host audit verify`: walk the audit log's hash chain and say whether it holds."""

from __future__ import annotations

import argparse

from host.commands import add_database_argument, with_storage
from host.storage.sql import SqlStorage
from host.storage.users import chain_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check every record's hash and link to the one before",
        description="Read the whole audit log, oldest first, and check that each record's hash "
        "covers its contents and the hash of the record before it, with no gap in the sequence. "
        "Prints the last hash: note it, and a later run shows whether the newest were cut off.",
    )
    add_database_argument(verify)


def run(args: argparse.Namespace) -> int:
    return with_storage("audit", args.db, _verify)


def _verify(storage: SqlStorage) -> int:
    count, last_hash, problems = chain_problems(storage.audit_chain())
    for problem in problems:
        print(f"broken: {problem}")
    verdict = "BROKEN" if problems else "intact"
    print(f"audit log {verdict}: {count} records, last hash {last_hash.hex()}")
    return 1 if problems else 0
