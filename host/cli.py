"""`sentinel host ...`: run the host service (one worker or several), and operators' commands."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

import uvicorn

from host.app import SERVE_ENVIRONMENT, Retention
from host.core.security import new_token
from host.flows import Alerting, SpikeRule
from host.storage import Database
from host.storage.sqlite import sqlite_refuses_workers

log = logging.getLogger("host")
ADMIN_TOKEN_FILE = "admin-token"
# `sentinel host NAME`: the module with its add_arguments(parser) and run(args), and its help.
COMMANDS = {
    "user": ("host.commands.users", "add, list and revoke host users (one role each)"),
    "audit": ("host.commands.audit", "check the audit log's hash chain"),
    "poster": ("host.commands.poster", "a venue's code poster to print, PDF or SVG (场所码)"),
    "trace": ("host.commands.trace", "a case's visits and contacts through the API (流调溯源)"),
    "screen": ("host.commands.screen", "screen a staff list through the API (复工复产比对)"),
}


def admin_token_file_for(database: Database, given: Path | None) -> Path:
    """Where the admin token is kept: as given, or beside a SQLite file."""
    if given is not None:
        return given
    if database.path is None:
        raise ValueError(
            "with a PostgreSQL database, name the admin token file: --admin-token-file FILE"
            " (made there on first start)"
        )
    return database.path.parent / ADMIN_TOKEN_FILE


def ensure_admin_token(path: Path) -> Path:
    """`path`, holding the admin token: read if it exists, else made there (mode 0600)."""
    if path.exists():
        log.info("admin token: read from %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(new_token("admin") + "\n")
    log.info("admin token: generated and written to %s (mode 0600)", path)
    return path


def serve(
    database: Database,
    *,
    host: str,
    port: int,
    public_url: str,
    admin_token_file: Path | None,
    workers: int = 1,
    dcc_trust: Path | None = None,
    retention: Retention | None = None,
    alerting: Alerting | None = None,
) -> None:
    """Run the host until interrupted: `workers` processes that share only the database."""
    refusal = sqlite_refuses_workers(database.path, workers) if database.path else None
    if refusal:
        raise ValueError(refusal)
    token_file = admin_token_file_for(database, admin_token_file)
    # Open (and migrate) the database once here, so that one that cannot be served is said
    # before any worker starts, and before a token is made for it.
    database.open().close()
    ensure_admin_token(token_file)
    retention = retention or Retention()
    os.environ[SERVE_ENVIRONMENT] = json.dumps(
        {
            "database": database.url or str(database.path),
            "public_url": public_url,
            "admin_token_file": str(token_file),
            "dcc_trust": None if dcc_trust is None else str(dcc_trust),
            "retention_days": retention.checkin_days,
            "alerting": (alerting or Alerting()).as_json(),
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
    )
    log.info(
        "database %s; %d worker(s); venue codes under %s", database.describe(), workers, public_url
    )
    uvicorn.run(
        "host.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `host` subcommands (`serve` and `COMMANDS`) to the parser of `sentinel host`."""
    commands = parser.add_subparsers(dest="host_command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the host verification service")
    add_serve_arguments(serve_parser)
    for name, (module_name, help_line) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(commands.add_parser(name, help=help_line, description=module.__doc__))


def add_serve_arguments(serve_parser: argparse.ArgumentParser) -> None:
    """The options of `sentinel host serve`."""
    serve_parser.add_argument(
        "--db",
        required=True,
        metavar="DATABASE",
        help="a SQLite file (or sqlite:///FILE), or postgresql://HOST[:PORT]/DATABASE",
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes; they keep nothing that must be consistent in memory (default 1)",
    )
    serve_parser.add_argument(
        "--public-url",
        required=True,
        help="https origin printed in venue codes, e.g. https://sentinel.example.org",
    )
    serve_parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file holding the admin token, made on first start (default with SQLite: "
        f"{ADMIN_TOKEN_FILE} next to the database; required with PostgreSQL)",
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
    rule = SpikeRule()
    alerts = serve_parser.add_argument_group(
        "spike alerts",
        "a venue's check-ins in a local hour, or its day so far, against the median of the same"
        f" on the {rule.baseline_days} days before: an alert when at least RATIO times that and"
        " at least the minimum count; one per venue and day",
    )
    alerts.add_argument(
        "--alert-webhook",
        metavar="URL",
        help="POST each alert here as JSON (retried with backoff until it answers 2xx)",
    )
    alerts.add_argument(
        "--alert-ratio",
        type=float,
        default=rule.ratio,
        metavar="RATIO",
        help=f"how many times its usual a count must be (default {rule.ratio:g})",
    )
    alerts.add_argument(
        "--alert-min-hour",
        type=int,
        default=rule.min_hour,
        metavar="N",
        help=f"check-ins an hour must reach (default {rule.min_hour})",
    )
    alerts.add_argument(
        "--alert-min-day",
        type=int,
        default=rule.min_day,
        metavar="N",
        help=f"check-ins a day so far must reach (default {rule.min_day})",
    )
    alerts.add_argument(
        "--alert-every",
        type=float,
        default=Alerting.detect_every_s,
        metavar="SECONDS",
        help=f"how often the detector runs (default {Alerting.detect_every_s:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Run the `host` subcommand parsed by a parser set up with `add_arguments`."""
    if args.host_command != "serve":
        return importlib.import_module(COMMANDS[args.host_command][0]).run(args)
    try:
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
        serve(
            Database.parse(args.db),
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            admin_token_file=args.admin_token_file,
            workers=args.workers,
            dcc_trust=args.dcc_trust,
            retention=Retention(checkin_days=args.retention_days),
            alerting=Alerting(
                rule=SpikeRule(
                    ratio=args.alert_ratio,
                    min_hour=args.alert_min_hour,
                    min_day=args.alert_min_day,
                ),
                webhook=args.alert_webhook,
                detect_every_s=args.alert_every,
            ),
        )
    except (ValueError, RuntimeError) as error:
        print(f"sentinel host serve: {error}", file=sys.stderr)
        return 2
    return 0
