"""`sentinel host trace`: a case's visits and contacts from the host's API, as tables or CSV.

Runs as an epidemiologist, with their token: the host checks the role and records the trace
in its audit log, with the purpose given. A case is named by reference, or by ID number read
from standard input (so that it is in no shell history or process list) and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from host.commands import add_api_arguments, api_client, api_error, print_table
from host.tracing import DEFAULT_WINDOW_MINUTES


def _moment(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    case = parser.add_mutually_exclusive_group(required=True)
    case.add_argument("--person-ref", metavar="REF", help="the case's person reference")
    case.add_argument(
        "--id-number",
        action="store_true",
        help="name the case by ID number, read from standard input (asked without echo on a "
        "terminal); it is traced under their reference and their ID card's pseudonym",
    )
    parser.add_argument(
        "--since", type=_moment, required=True, help="first time of the case's visits (ISO 8601)"
    )
    parser.add_argument(
        "--until", type=_moment, help="end of the case's visits (ISO 8601; default now)"
    )
    parser.add_argument(
        "--window-minutes",
        type=int,
        default=DEFAULT_WINDOW_MINUTES,
        metavar="MINUTES",
        help=f"how close in time a contact's check-in is (default {DEFAULT_WINDOW_MINUTES})",
    )
    parser.add_argument(
        "--depth", type=int, choices=[1, 2], default=1, help="2: the contacts' contacts too"
    )
    parser.add_argument(
        "--purpose", required=True, help="why: a case or order number, kept in the audit log"
    )
    parser.add_argument(
        "--csv", type=Path, metavar="FILE", help="write the answer as CSV to FILE, not tables"
    )
    add_api_arguments(parser)


def _read_id_number() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("the case's ID number (not shown): ")
    return sys.stdin.readline().strip()


def _when(text: str) -> str:
    return text.replace("T", " ")


def run(args: argparse.Namespace) -> int:
    until = args.until or datetime.now(UTC)
    body: dict[str, Any] = {
        "since": args.since.isoformat(),
        "until": until.isoformat(),
        "window_minutes": args.window_minutes,
        "depth": args.depth,
        "purpose": args.purpose,
    }
    if args.id_number:
        body["id_number"] = _read_id_number()
    else:
        body["person_ref"] = args.person_ref
    headers = {"Accept": "text/csv"} if args.csv else {}
    try:
        with api_client(args) as client:
            response = client.post("/tracing", json=body, headers=headers)
    except (ValueError, httpx.HTTPError) as error:
        print(f"sentinel host trace: {error}", file=sys.stderr)
        return 2
    if not response.is_success:
        print(f"sentinel host trace: {api_error(response)}", file=sys.stderr)
        return 1
    if args.csv:
        args.csv.write_text(response.text, encoding="utf-8")
        print(f"written to {args.csv}")
        return 0
    _print(response.json())
    return 0


def _print(answer: dict[str, Any]) -> None:
    summary = answer["summary"]
    print(
        f"case {', '.join(summary['case_refs'])}: {summary['visits']} visits, "
        f"{summary['people']} people met them ({summary['contacts']} contacts)"
        + (
            f", {summary['second_degree_people']} in the second degree"
            if summary["second_degree_people"] is not None
            else ""
        )
        + f"; window ±{summary['window_minutes']} min; times UTC"
    )
    print("\nvisits")
    print_table(
        ("venue", "name", "room/plate", "scanned at"),
        [
            (v["venue_id"], v["venue_name"] or "-", v["binding"] or "-", _when(v["scanned_at"]))
            for v in answer["visits"]
        ],
    )
    print("\ncontacts, nearest first")
    print_table(
        ("degree", "person", "via", "venue", "room/plate", "visit", "contact", "min", "colour"),
        [
            (
                c["degree"],
                c["person_ref"],
                c["via"] or "-",
                c["venue_id"],
                c["binding"] or "-",
                _when(c["case_scanned_at"]),
                _when(c["contact_scanned_at"]),
                f"{c['minutes_apart']:g}",
                c["status"]["colour"] or "unknown",
            )
            for c in answer["contacts"]
        ],
    )
