"""`sentinel host poster`: a venue's code poster to print (PDF or SVG), made by the host.

Runs as an admin or as the venue's manager, with their token. With --rooms, --plates or --csv,
each page carries a code bound to one room or vehicle; at most 500 pages in one poster, and an
SVG holds one page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import quote

import httpx

from host.commands import add_api_arguments, api_client, api_error

TIMEOUT_S = 300.0  # 500 pages take the host some 15 s; a busy host longer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", required=True, metavar="VENUE_ID", help="the venue's id")
    parser.add_argument(
        "--format",
        choices=["pdf", "svg"],
        default="pdf",
        help="pdf (default; any number of pages) or svg (one page, to edit)",
    )
    parser.add_argument("--size", choices=["a4", "a5"], default="a4", help="paper (default a4)")
    pages = parser.add_mutually_exclusive_group()
    pages.add_argument(
        "--rooms", metavar="LIST", help="a page per room: rooms and ranges, as 101-120,201,B1"
    )
    pages.add_argument(
        "--plates", metavar="LIST", help="a page per vehicle: plates, as 京A12345,苏A67890"
    )
    pages.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="a page per line of a UTF-8 CSV (its first column, taken as written; with --kind)",
    )
    parser.add_argument("--kind", choices=["room", "plate"], help="what the lines of --csv are")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    add_api_arguments(parser)


def _fetch(args: argparse.Namespace) -> httpx.Response:
    """The host's answer to the poster asked for; ValueError for options that do not fit."""
    if (args.csv is None) != (args.kind is None):
        raise ValueError("--csv FILE and --kind room|plate go together")
    path = f"/admin/venues/{quote(args.venue, safe='')}/poster.{args.format}"
    params = {"size": args.size}
    with api_client(args, TIMEOUT_S) as client:
        if args.csv is not None:
            try:
                listed = args.csv.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ValueError(f"{args.csv} is not UTF-8: save the CSV as UTF-8") from None
            return client.post(
                path,
                params=params | {"kind": args.kind},
                content=listed.encode(),
                headers={"Content-Type": "text/csv; charset=utf-8"},
            )
        if args.rooms is not None:
            params["rooms"] = args.rooms
        elif args.plates is not None:
            params["plates"] = args.plates
        return client.get(path, params=params)


def run(args: argparse.Namespace) -> int:
    try:
        response = _fetch(args)
    except (ValueError, OSError, httpx.HTTPError) as error:
        print(f"sentinel host poster: {error}", file=sys.stderr)
        return 2
    if not response.is_success:
        print(f"sentinel host poster: {api_error(response)}", file=sys.stderr)
        return 1
    try:
        args.out.write_bytes(response.content)
    except OSError as error:
        print(f"sentinel host poster: {error}", file=sys.stderr)
        return 2
    pages = response.headers.get("X-Poster-Pages", "?")
    print(f"{args.out}: {pages} page(s), {args.size.upper()} {args.format.upper()}")
    return 0
