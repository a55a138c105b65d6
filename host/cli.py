"""`sentinel host serve`: run the host service under uvicorn, with an admin token kept in a file."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from host.app import Retention, create_app
from host.core.config import Settings
from host.core.security import new_token

log = logging.getLogger("host")
ADMIN_TOKEN_FILE = "admin-token"


def admin_token_for(db_path: Path, admin_token_file: Path | None) -> str:
    """The token from `admin_token_file`, or from `<db dir>/admin-token`, made there if missing."""
    if admin_token_file is not None:
        log.info("admin token: read from %s", admin_token_file)
        return admin_token_file.read_text(encoding="utf-8").strip()
    path = db_path.parent / ADMIN_TOKEN_FILE
    if path.exists():
        log.info("admin token: read from %s", path)
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token("admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    log.info("admin token: generated and written to %s (mode 0600)", path)
    return token


def serve(
    db_path: Path,
    *,
    host: str,
    port: int,
    public_url: str,
    admin_token: str | None,
    admin_token_file: Path | None,
    dcc_trust: Path | None = None,
    retention: Retention | None = None,
) -> None:
    """Run the host until interrupted; without an admin token, use or make a token file."""
    token = admin_token if admin_token else admin_token_for(db_path, admin_token_file)
    settings = Settings(
        db_path=db_path, public_url=public_url, admin_token=token, dcc_trust=dcc_trust
    )
    log.info("database %s; venue codes under %s", db_path, settings.public_url)
    uvicorn.run(create_app(settings, retention), host=host, port=port, log_level="info")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `host` subcommands (`serve`) to the parser of `sentinel host`."""
    commands = parser.add_subparsers(dest="host_command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the host verification service")
    serve_parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_parser.add_argument(
        "--public-url",
        required=True,
        help="https origin printed in venue codes, e.g. https://sentinel.example.org",
    )
    serve_parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file holding the admin token (default: {ADMIN_TOKEN_FILE} next to the database, "
        "generated on first start)",
    )
    serve_parser.add_argument(
        "--dcc-trust",
        type=Path,
        help="EU DCC signer certificates (a PEM/DER file or a directory) to publish to devices",
    )
    serve_parser.add_argument(
        "--retention-days",
        type=float,
        default=Retention.checkin_days,
        metavar="DAYS",
        help="delete check-ins scanned and received longer ago than this "
        f"(default {Retention.checkin_days:g}; checked every hour)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the `host` subcommand parsed by a parser set up with `add_arguments`."""
    serve(
        args.db,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        admin_token=None,
        admin_token_file=args.admin_token_file,
        dcc_trust=args.dcc_trust,
        retention=Retention(checkin_days=args.retention_days),
    )
    return 0
