"""`sentinel host keys list|rotate|retire`: the host's key directory, seen and changed.

A rotation makes a new current key; the one it replaces stays published for its overlap, so
codes signed before still verify (venue posters: until the key is retired). Running hosts read
their keys at start: restart `sentinel host serve` after a change.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from host.commands import print_table
from host.core.times import from_ms
from host.keystore import (
    DEFAULT_OVERLAP_DAYS,
    HostKeyPurpose,
    KeyDirectory,
    KeyDirectoryError,
    KeyRecord,
    KeyState,
    retire,
    rotate,
)

ALL = "all"
RESTART = (
    "restart `sentinel host serve` so that its workers use this; devices learn the keys at"
    " their next configuration refresh (every 5 minutes)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every key of the ring, with its state")
    _add_directory(listing)
    rotating = commands.add_parser(
        "rotate",
        help="a new current key; the old one stays trusted for an overlap",
        description="Make a new current key for the purpose (or all four). The key it replaces "
        "stays published for devices for its overlap: by default "
        + ", ".join(
            f"{purpose} {'until retired' if days is None else f'{days:g} days'}"
            for purpose, days in DEFAULT_OVERLAP_DAYS.items()
        )
        + ". The ID-number hash key is never rotated: stored hashes could not be matched again.",
    )
    _add_directory(rotating)
    rotating.add_argument(
        "--purpose",
        choices=[*HostKeyPurpose, ALL],
        default=ALL,
        help="which key to rotate (default all)",
    )
    rotating.add_argument(
        "--overlap-days",
        type=float,
        metavar="DAYS",
        help="how long the replaced keys stay trusted (default: by purpose, as above)",
    )
    retiring = commands.add_parser(
        "retire", help="stop trusting a replaced key now, and delete its private half"
    )
    _add_directory(retiring)
    retiring.add_argument("kid", metavar="KEYID", help="the key's id, as `list` shows it")


def _add_directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keys",
        type=Path,
        required=True,
        metavar="DIR",
        help="the host's key directory (host.db.keys beside a SQLite file, unless given)",
    )


def run(args: argparse.Namespace) -> int:
    directory = KeyDirectory(args.keys)
    now_ms = int(time.time() * 1000)
    try:
        if args.keys_command == "list":
            _list(directory, now_ms)
        elif args.keys_command == "rotate":
            if args.overlap_days is not None and args.overlap_days < 0:
                raise ValueError("--overlap-days cannot be negative")
            purposes = (
                list(HostKeyPurpose) if args.purpose == ALL else [HostKeyPurpose(args.purpose)]
            )
            for record in rotate(directory, purposes, now_ms, args.overlap_days):
                print(f"{record.purpose}: new current key {record.kid}")
            _list(directory, now_ms)
            print(RESTART)
        else:
            record = retire(directory, args.kid, now_ms)
            print(f"{record.purpose} key {record.kid} retired: no longer trusted")
            print(RESTART)
    except (KeyDirectoryError, ValueError, OSError) as error:
        print(f"sentinel host keys {args.keys_command}: {error}", file=sys.stderr)
        return 2
    return 0


def _list(directory: KeyDirectory, now_ms: int) -> None:
    ring = directory.require()
    print(f"key ring {ring.id} in {directory.path}")
    print_table(
        ("KEY ID", "PURPOSE", "STATE", "MADE", "REPLACED", "TRUSTED UNTIL"),
        [_row(record, now_ms) for record in ring.keys],
    )


def _row(record: KeyRecord, now_ms: int) -> tuple[str, ...]:
    state = record.state(now_ms)
    until = "-"  # the current key, and a retired one
    if state in (KeyState.TRUSTED, KeyState.EXPIRED):
        until = (
            "until retired" if record.trusted_until_ms is None else _when(record.trusted_until_ms)
        )
    return (
        record.kid,
        record.purpose.value,
        state.value,
        _when(record.made_at_ms),
        "-" if record.replaced_at_ms is None else _when(record.replaced_at_ms),
        until,
    )


def _when(ms: int) -> str:
    return f"{from_ms(ms):%Y-%m-%d %H:%M} UTC"
