"""What the operators' commands share: the database to open, or the host and token to call."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from host.storage import Database
from host.storage.sql import SqlStorage
from shared.messages import API_PREFIX

TOKEN_ENVIRONMENT = "SENTINEL_TOKEN"


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        required=True,
        metavar="DATABASE",
        help="the host's database: a SQLite file (or sqlite:///FILE), or postgresql://...",
    )


def with_storage(command: str, given: str, work: Callable[[SqlStorage], int]) -> int:
    """`work`'s exit status on the host's storage at `given`, opened and closed around it.

    The storage is migrated as the host itself would; exit 2 with a one-line error when it
    cannot be opened, or when a SQLite file is not there (a mistyped path makes no database).
    """
    try:
        database = Database.parse(given)
        if database.path is not None and not database.path.is_file():
            raise ValueError(
                f"--db {given}: no host database there (`sentinel host serve --db FILE` makes one)"
            )
        storage = database.open()
    except (ValueError, RuntimeError) as error:
        print(f"sentinel host {command}: {error}", file=sys.stderr)
        return 2
    assert isinstance(storage, SqlStorage)
    try:
        return work(storage)
    finally:
        storage.close()


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """--host and --token: commands that read personal data go through the API, as a user."""
    parser.add_argument(
        "--host", required=True, metavar="URL", help="the host's base URL, e.g. https://host:8000"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENVIRONMENT),
        help=f"your user token (default: the {TOKEN_ENVIRONMENT} environment variable)",
    )


def api_client(args: argparse.Namespace, timeout_s: float = 30.0) -> httpx.Client:
    """A client of the host's `/api/v1`, with the user's bearer token; ValueError without one."""
    if not args.token:
        raise ValueError(f"give --token or set {TOKEN_ENVIRONMENT}")
    if not args.host.startswith(("http://", "https://")):
        raise ValueError(f"--host {args.host}: not an http:// or https:// URL")
    return _NamingClient(
        base_url=args.host.rstrip("/") + API_PREFIX,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=timeout_s,
    )


class _NamingClient(httpx.Client):
    """Network errors that name the host ("cannot reach URL: ..."), not just the socket's."""

    def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        try:
            return super().send(request, **options)
        except httpx.TransportError as error:
            origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
            raise type(error)(f"cannot reach {origin}: {error}", request=request) from error


def api_error(response: httpx.Response) -> str:
    """The host's refusal in one line: its error code and detail, else the HTTP status."""
    try:
        body = response.json()
        return f"{body['error']}: {body['detail']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Rows under a header, each column as wide as its widest cell."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(padded).rstrip())
    sys.stdout.flush()
